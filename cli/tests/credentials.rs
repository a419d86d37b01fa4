//! Credentials from the command line: `cds admin token --valid-for` and
//! `--token-file`, against the real `cds` binary and a real server.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{CDS, cds, path, register_alice, serve, text};

/// A new issuer key file in `dir`.
fn issuer_key(dir: &Path) -> std::path::PathBuf {
    let key = dir.join("issuer.key");
    let out = cds(&["admin", "issuer-keygen", "--out", path(&key)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    key
}

/// `cds admin token --account me --issuer-key KEY EXTRA...`.
fn token(key: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "admin",
        "token",
        "--account",
        "me",
        "--issuer-key",
        path(key),
    ];
    args.extend(extra);
    cds(&args)
}

/// The lifetime (expires_at - issued_at) of a v2 token issued by `key`.
fn lifetime(key: &Path, token: &str) -> u64 {
    let issuer = cds_server::keystore::read_issuer(key).expect("reads the key");
    let c = issuer
        .verifier()
        .verify(token, cds_server::unix_now(), u64::MAX)
        .expect("a valid credential");
    c.expires_at - c.issued_at.expect("version 2 has an issue time")
}

#[test]
fn admin_token_refuses_more_than_the_servers_default_maximum_unless_told_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = issuer_key(dir.path());

    let refused = token(&key, &["--valid-for", "30d"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(refused.stdout.is_empty(), "no token is printed");
    let message = text(&refused.stderr);
    for needed in [
        "30days",
        "7 days",
        "max_credential_lifetime",
        "--max-lifetime",
    ] {
        assert!(message.contains(needed), "{needed:?} missing: {message}");
    }

    let allowed = token(&key, &["--valid-for", "30d", "--max-lifetime", "30days"]);
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
    assert_eq!(lifetime(&key, text(&allowed.stdout).trim()), 30 * 86_400);

    let beyond = token(&key, &["--valid-for", "2h", "--max-lifetime", "1h"]);
    assert_eq!(beyond.status.code(), Some(1));
    assert!(text(&beyond.stderr).contains("--max-lifetime 1h"));

    let default = token(&key, &[]);
    assert!(default.status.success(), "{}", text(&default.stderr));
    assert_eq!(lifetime(&key, text(&default.stdout).trim()), 86_400);
    let week = token(&key, &["--valid-for", "7days"]);
    assert_eq!(lifetime(&key, text(&week.stdout).trim()), 7 * 86_400);
    let old_spelling = token(&key, &["--ttl-secs", "600"]);
    assert!(
        old_spelling.status.success(),
        "{}",
        text(&old_spelling.stderr)
    );
    assert_eq!(lifetime(&key, text(&old_spelling.stdout).trim()), 600);
}

/// Write `token` to a file only its owner can read.
fn token_file(dir: &Path, name: &str, token: &str) -> std::path::PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, format!("{token}\n")).expect("writes");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    }
    file
}

#[test]
fn discover_reads_the_credential_from_a_file_and_never_prints_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let served = serve(&data);
    register_alice(&served);
    let key = data.join("issuer.key");
    let book = dir.path().join("book.txt");
    std::fs::write(&book, "+12015550123\n").expect("writes");
    let discover = |file: &Path, via_environment: bool| {
        let mut command = Command::new(CDS);
        command.args(["discover", "--server", &served.discovery, "--region", "US"]);
        if via_environment {
            command.env("CDS_TOKEN_FILE", file);
        } else {
            command.arg("--token-file").arg(file);
        }
        command
            .arg(&book)
            .env_remove("CDS_TOKEN")
            .output()
            .expect("cds runs")
    };
    let shows = |out: &Output, secret: &str| {
        text(&out.stdout).contains(secret) || text(&out.stderr).contains(secret)
    };

    let good = text(&token(&key, &[]).stdout).trim().to_owned();
    let good_file = token_file(dir.path(), "me.token", &good);
    for via_environment in [false, true] {
        let out = discover(&good_file, via_environment);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("alice"), "{}", text(&out.stdout));
        assert!(!shows(&out, &good), "the token is never printed");
    }

    // A credential the server refuses: valid longer than its 7 days.
    let long = token(&key, &["--valid-for", "8days", "--max-lifetime", "8days"]);
    let long = text(&long.stdout).trim().to_owned();
    let out = discover(&token_file(dir.path(), "long.token", &long), false);
    assert_eq!(out.status.code(), Some(1));
    let message = text(&out.stderr);
    assert!(message.contains("at most 604800 s"), "{message}");
    assert!(!shows(&out, &long), "the refused token is never printed");

    // A file of something else: refused without echoing it.
    let junk = "not-a-credential-but-a-secret";
    let out = discover(&token_file(dir.path(), "junk.token", junk), false);
    assert_eq!(out.status.code(), Some(1));
    assert!(!shows(&out, junk), "{}", text(&out.stderr));

    let missing = dir.path().join("missing.token");
    let out = discover(&missing, false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read the credential file")
            && text(&out.stderr).contains("missing.token"),
        "{}",
        text(&out.stderr)
    );

    // --token still works, but not together with a file.
    let out = cds(&[
        "discover",
        "--server",
        &served.discovery,
        "--region",
        "US",
        "--token",
        &good,
        path(&book),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let both = cds(&[
        "discover",
        "--server",
        &served.discovery,
        "--region",
        "US",
        "--token",
        &good,
        "--token-file",
        path(&good_file),
        path(&book),
    ]);
    assert_eq!(both.status.code(), Some(1));
    assert!(!shows(&both, &good));

    // cds bench reads the same file.
    let bench = cds(&[
        "bench",
        "--server",
        &served.discovery,
        "--token-file",
        path(&good_file),
        "--duration",
        "1s",
        "--clients",
        "1",
        "--contacts",
        "5",
        "--json",
    ]);
    assert!(bench.status.success(), "{}", text(&bench.stderr));
    assert!(!shows(&bench, &good));
    let report: serde_json::Value = serde_json::from_slice(&bench.stdout).expect("JSON report");
    assert!(report["requests"].as_u64() > Some(0), "{report}");
}
