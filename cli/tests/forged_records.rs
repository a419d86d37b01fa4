//! `cds discover` against a server that sends a forged record: the entry
//! is listed as not registered, the command succeeds, and a warning with
//! the count (never the entry) goes to standard error.

mod common;

use cds_tests::tamper::{TamperingProxy, forged_record, plant};
use cds_tests::{TEST_ACCOUNT, TestServer};
use common::{CDS, path, text};

#[tokio::test(flavor = "multi_thread")]
async fn discover_warns_with_the_count_of_records_that_do_not_open() {
    let server = TestServer::start().await;
    server.register("+12015550123", "alice", true).await;
    let proxy = TamperingProxy::start(&server.url()).await;
    let (tag, bucket) = server.tag_of("+12015550124");
    proxy.tamper_with(move |r| plant(r, bucket, &forged_record(&tag)));

    let dir = tempfile::tempdir().expect("tempdir");
    let book = dir.path().join("book.txt");
    std::fs::write(&book, "(201) 555-0123\n(201) 555-0124\n").expect("writes");
    let (url, token) = (proxy.url(), server.token(TEST_ACCOUNT));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(CDS)
            .args(["discover", "--server", &url, "--token", &token])
            .args(["--region", "US", path(&book)])
            .env_remove("CDS_PROFILE")
            .output()
            .expect("cds runs")
    })
    .await
    .expect("joins");

    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("2 entries: 1 registered, 1 not registered, 0 invalid"),
        "{table}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: the server sent 1 record(s)") && stderr.contains("do not open"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("555-0124") && !stderr.contains("+12015550124"),
        "the warning names no contact: {stderr}"
    );
    server.stop().await;
}
