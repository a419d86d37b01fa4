//! `cds bench --allow-list N`: contacts-only mode measured against the
//! server under bench, in process (`--local`) and running (`--server`).

mod common;

use common::{cds, cds_ok, dev_credential, path, serve_with, text};

/// The `allow_list` object of a `cds bench --json` report, checked for
/// what any run with `allowed` numbers must show.
fn allow_list_report(stdout: &[u8], allowed: u64) -> serde_json::Value {
    let report: serde_json::Value = serde_json::from_slice(stdout).expect("JSON report");
    let a = report["allow_list"].clone();
    assert_eq!(a["allowed"].as_u64(), Some(allowed), "{report}");
    assert_eq!(a["stored"].as_u64(), Some(allowed), "{report}");
    // 16-byte label: each record is 25 + 16 bytes, and the upload carries
    // them all plus the signature and fields.
    assert_eq!(a["server_bytes_per_pair"].as_u64(), Some(41), "{report}");
    assert!(
        a["upload_bytes"].as_u64() > Some(41 * allowed + 96),
        "{report}"
    );
    // The finder's book: the owner and the other allowed numbers, none
    // found by a normal record, so one pairing each.
    assert_eq!(a["lookup_contacts"].as_u64(), Some(allowed), "{report}");
    assert_eq!(a["lookup_pairings"].as_u64(), Some(allowed), "{report}");
    assert!(a["lookup_bytes_received"].as_u64() > Some(0), "{report}");
    assert!(
        a["lookup_pairing_cpu_us_per_contact"].as_f64() > Some(0.0),
        "{report}"
    );
    assert!(a["sealing_us_per_allowed"].as_f64() > Some(0.0), "{report}");
    a
}

#[test]
fn bench_local_with_allow_list_uploads_finds_and_reports_the_costs() {
    let out = cds(&[
        "bench",
        "--local",
        "--users",
        "200",
        "--bucket-bits",
        "2",
        "--duration",
        "1s",
        "--clients",
        "1",
        "--contacts",
        "10",
        "--allow-list",
        "25",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    allow_list_report(&out.stdout, 25);

    // The table for people names the same figures.
    let out = cds(&[
        "bench",
        "--local",
        "--users",
        "100",
        "--bucket-bits",
        "2",
        "--duration",
        "1s",
        "--clients",
        "1",
        "--contacts",
        "5",
        "--allow-list",
        "3",
        "--contacts-only",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for row in [
        "allow-list upload",
        "3 numbers, 3 records stored",
        "server storage",
        "41 B per allowed pair",
        "allow-list lookup",
        "3 contacts, 3 pairings",
        "pairing CPU",
    ] {
        assert!(table.contains(row), "{row:?} missing in:\n{table}");
    }
}

#[test]
fn bench_server_with_allow_list_uses_the_servers_issuer_key_and_cleans_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = dir.path().join("contacts-issuer");
    let public = cds_ok(&["admin", "contacts-issuer", "--out", path(&issuer)]);
    let data = dir.path().join("data");
    let served = serve_with(&data, &["--contacts-issuer-public-key", public.trim()]);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, dev_credential(&data)).expect("writes the token");
    let bench = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--server",
            &served.discovery,
            "--token-file",
            path(&token_file),
            "--duration",
            "1s",
            "--clients",
            "1",
            "--contacts",
            "5",
            "--json",
            "--allow-list",
            "12",
        ];
        args.extend(extra);
        cds(&args)
    };
    // Without the issuer secret or the Admin URL it refuses before running.
    let refused = bench(&["--admin", &served.admin]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("--contacts-issuer"),
        "{}",
        text(&refused.stderr)
    );
    let refused = bench(&["--contacts-issuer", path(&issuer)]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("--admin"),
        "{}",
        text(&refused.stderr)
    );

    let out = bench(&["--admin", &served.admin, "--contacts-issuer", path(&issuer)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    allow_list_report(&out.stdout, 12);
    // The synthetic contacts-only user was unregistered afterwards.
    let stats = cds_ok(&["admin", "--admin", &served.admin, "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("JSON stats");
    assert_eq!(stats["registered"].as_u64(), Some(0), "{stats}");

    // A server without the issuer's key refuses the upload: an error, not
    // a report with figures.
    let other = dir.path().join("other-issuer");
    cds_ok(&["admin", "contacts-issuer", "--out", path(&other)]);
    let out = bench(&["--admin", &served.admin, "--contacts-issuer", path(&other)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("contacts-only measurement failed"),
        "{}",
        text(&out.stderr)
    );
}
