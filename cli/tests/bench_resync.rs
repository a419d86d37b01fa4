//! `cds bench --resync`: the sync-mode steady state measured with the real
//! client against the in-process server.

mod common;

use common::{cds, text};

/// Users of the local server, and the 33-byte records their 8-byte labels
/// make (record format 2).
const USERS: u64 = 2_000;
const RECORD: u64 = 33;

#[test]
fn bench_resync_reports_a_whole_first_download_then_only_new_contacts_and_changes() {
    let out = cds(&[
        "bench",
        "--local",
        "--users",
        &USERS.to_string(),
        "--contacts",
        "50",
        "--clients",
        "1",
        "--duration",
        "1s",
        "--resync",
        "--resync-changes",
        "20",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let r = &report["resync"];
    let up = |step: &str| r[step]["bytes_up"].as_u64().expect("bytes_up");
    let down = |step: &str| r[step]["bytes_down"].as_u64().expect("bytes_down");

    // The first call downloads every record of the table.
    assert!(down("first_download") >= USERS * RECORD, "{report}");
    // New contacts: 32 bytes up and down per contact, no records.
    assert_eq!(r["new_contacts_count"].as_u64(), Some(50), "{report}");
    assert!(up("new_contacts") >= 50 * 32, "{report}");
    assert!(down("new_contacts") < 50 * 32 + 1_000, "{report}");
    // Nothing changed: one empty delta.
    assert!(up("unchanged") + down("unchanged") <= 100, "{report}");
    // 20 registrations: their records, not the table.
    assert!(down("after_changes") >= 20 * RECORD, "{report}");
    assert!(down("after_changes") < USERS * RECORD / 10, "{report}");
    assert_eq!(r["changes"].as_u64(), Some(20), "{report}");
    // The copy is kept: the cache holds every record.
    assert!(
        r["client_storage_bytes"].as_u64() >= Some(USERS * RECORD),
        "{report}"
    );
    // The server runs in this process, so the client's CPU is told apart.
    for step in [
        "first_download",
        "new_contacts",
        "unchanged",
        "after_changes",
    ] {
        assert!(
            r[step]["client_cpu_ms"].as_f64().is_some(),
            "{step}: {report}"
        );
    }
}
