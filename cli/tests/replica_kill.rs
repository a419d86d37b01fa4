//! A replica of a PostgreSQL registry killed with SIGKILL during an import
//! restarts and converges to exactly the registry's state. Runs the real
//! `cds` binary; skipped (saying why) without `CDS_TEST_POSTGRES_URL`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use cds_tests::services::{postgres_url, unique_schema};
use common::{CDS, Served, cds_ok, path, serve_with};

/// The `record bytes` and `registered` lines of `cds admin stats`.
fn table_stats(served: &Served) -> (String, String) {
    let out = cds_ok(&["admin", "stats", "--admin", &served.admin]);
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("stats has {key}: {out}"))
            .to_owned()
    };
    (line("registered"), line("record bytes"))
}

#[test]
fn a_replica_killed_during_an_import_restarts_and_converges_to_the_registry() {
    let Some(url) = postgres_url("replica_kill") else {
        return;
    };
    let schema = unique_schema("cds_cli", "kill");
    let dir = tempfile::tempdir().expect("tempdir");
    // Both replicas unwrap the OPRF key in the database with one KEK.
    let kek = dir.path().join("kek");
    let created = std::process::Command::new(CDS)
        .args(["admin", "new-key-encryption-key", "--out", path(&kek)])
        .output()
        .expect("runs cds");
    assert!(created.status.success(), "{created:?}");
    let shared = [
        "--registry",
        url.as_str(),
        "--registry-schema",
        schema.as_str(),
        "--key-encryption-key-file",
        path(&kek),
    ];

    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let a = serve_with(&a_dir, &shared);
    // Replica b shares a's development issuer (the OPRF key comes from the
    // database).
    std::fs::create_dir(&b_dir).expect("creates");
    std::fs::set_permissions(&b_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::copy(a_dir.join("issuer.key"), b_dir.join("issuer.key")).expect("copies");
    let mut b = serve_with(&b_dir, &shared);

    let n = 20_000;
    let csv = dir.path().join("users.csv");
    let mut rows = String::from("e164,label,discoverable\n");
    for i in 0..n {
        rows.push_str(&format!("+4915200{i:06},u{i},true\n"));
    }
    std::fs::write(&csv, rows).expect("writes");
    let mut import = std::process::Command::new(CDS)
        .args(["admin", "import", "--admin", &a.admin, path(&csv)])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("import starts");
    std::thread::sleep(Duration::from_millis(300));
    b.child.kill().expect("SIGKILL delivered");
    b.child.wait().expect("b exits");
    assert!(
        import.wait().expect("import ends").success(),
        "the import through a succeeds"
    );
    let b = serve_with(&b_dir, &shared);

    let want = table_stats(&a);
    assert!(want.0.ends_with(&n.to_string()), "{want:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = table_stats(&b);
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b serves {got:?}, the registry {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop((a, b));
    let out = std::process::Command::new("psql")
        .args([url.as_str(), "-c", &format!("DROP SCHEMA {schema} CASCADE")])
        .output();
    if !matches!(out, Ok(ref o) if o.status.success()) {
        eprintln!("could not drop the test schema {schema} (psql missing?)");
    }
}
