//! Sync mode end to end: a real server on 127.0.0.1, the real client
//! keeping its own copy of every record and syncing it by delta.

use std::collections::BTreeSet;

use cds_client::{BucketMode, Client, ClientError, DiscoveryCache};
use cds_core::{Label, OUTPUT_LEN, Output, RecordKeys, RecordRef};
use cds_proto::v1::discover_request::Buckets;
use cds_proto::v1::discovery_client::DiscoveryClient;
use cds_proto::v1::{BucketIds, DiscoverRequest, SyncRequest};
use cds_tests::{TestServer, german_mobiles, label_of, us};

async fn sync_client(server: &TestServer, account: &str) -> Client {
    server
        .client_builder(account)
        .bucket_mode(BucketMode::Sync)
        .connect()
        .await
        .expect("connects")
}

/// Every record the server holds now, as a set of encodings, fetched
/// bucket by bucket with records-only requests (no evaluation).
async fn server_records(server: &TestServer) -> BTreeSet<Vec<u8>> {
    let mut rpc = DiscoveryClient::connect(server.url())
        .await
        .expect("connects");
    let epoch = rpc
        .get_config(cds_proto::v1::GetConfigRequest {})
        .await
        .expect("config")
        .into_inner()
        .epoch;
    let mut all = BTreeSet::new();
    for bucket in 0..server.config.bucket_bits.count() {
        let response = rpc
            .discover(server.authed(
                "reader",
                DiscoverRequest {
                    epoch,
                    blinded_elements: Default::default(),
                    buckets: Some(Buckets::Ids(BucketIds {
                        ids: vec![bucket],
                        known_digests: Default::default(),
                        scheme: cds_proto::wire::BUCKET_SCHEME_TAG,
                    })),
                    record_format: cds_proto::wire::RECORD_FORMAT,
                },
            ))
            .await
            .expect("records")
            .into_inner();
        for b in &response.buckets {
            for r in RecordRef::decode_packed(&b.records).expect("well-formed") {
                all.insert(r.as_bytes().to_vec());
            }
        }
    }
    all
}

/// The encoded size of a record with a label of `len` bytes.
fn record_len(len: usize) -> usize {
    RecordKeys::derive(&Output::from_bytes([1; OUTPUT_LEN]))
        .seal(&Label::new(vec![b'x'; len]).expect("short"))
        .as_bytes()
        .len()
}

fn copy_records(client: &Client) -> BTreeSet<Vec<u8>> {
    let packed = client.cache().record_copy().expect("a copy").packed();
    RecordRef::decode_packed(&packed)
        .expect("well-formed")
        .iter()
        .map(|r| r.as_bytes().to_vec())
        .collect()
}

#[tokio::test]
async fn an_opt_out_an_unregister_and_a_new_registration_are_seen_after_a_delta() {
    let server = TestServer::start().await;
    let book = german_mobiles(4, 0);
    server.register(&book[0], "opts-out", true).await;
    server.register(&book[1], "leaves", true).await;
    server.register(&book[2], "stays", true).await;
    let mut client = sync_client(&server, "syncer").await;
    let first = client.discover(&book, us()).await.expect("discovers");
    let labels: Vec<_> = first.iter().map(label_of).collect();
    assert_eq!(
        labels,
        [
            Some("opts-out".into()),
            Some("leaves".into()),
            Some("stays".into()),
            None
        ]
    );
    assert!(client.last_report().full_download);

    server.set_discoverable(&book[0], false).await;
    server.unregister(&book[1]).await;
    server.register(&book[3], "newcomer", true).await;
    let second = client.discover(&book, us()).await.expect("discovers");
    let labels: Vec<_> = second.iter().map(label_of).collect();
    assert_eq!(
        labels,
        [None, None, Some("stays".into()), Some("newcomer".into())]
    );
    let report = client.last_report();
    assert!(!report.full_download, "a delta, not a new download");
    assert_eq!(report.sync_requests, 1);
    // Every contact was cached: nothing was evaluated, no Discover sent.
    assert_eq!((report.evaluated, report.requests), (0, 0));
    assert_eq!(copy_records(&client), server_records(&server).await);
    server.stop().await;
}

#[tokio::test]
async fn a_resync_with_nothing_changed_is_one_small_request() {
    let server = TestServer::start().await;
    let book = german_mobiles(50, 0);
    for n in book.iter().step_by(2) {
        server.register(n, "label-08", true).await;
    }
    let mut client = sync_client(&server, "syncer").await;
    client.discover(&book, us()).await.expect("discovers");
    let first = client.last_report();
    assert!(first.sync_bytes_received >= 25 * record_len(8));
    client.discover(&book, us()).await.expect("discovers");
    let again = client.last_report();
    assert_eq!(again.sync_requests, 1);
    // epoch (9) + version (2..11) + digest (18), and the request's epoch
    // (9) and version: nothing in proportion to the table.
    assert!(again.sync_bytes_received <= 40, "{again:?}");
    assert!(again.sync_bytes_sent <= 24, "{again:?}");
    assert_eq!(again.bytes_sent + again.bytes_received, 0);
    server.stop().await;
}

#[tokio::test]
async fn after_a_key_rotation_the_client_downloads_the_records_again() {
    let server = TestServer::start().await;
    let book = german_mobiles(3, 0);
    server.register(&book[0], "alice", true).await;
    let mut client = sync_client(&server, "syncer").await;
    client.discover(&book, us()).await.expect("discovers");
    let old_epoch = client.cache().record_copy().expect("a copy").epoch();
    let rotated = server.rotate_key().await;
    server.register(&book[1], "bob", true).await;
    let found = client.discover(&book, us()).await.expect("discovers");
    assert_eq!(label_of(&found[0]).as_deref(), Some("alice"));
    assert_eq!(label_of(&found[1]).as_deref(), Some("bob"));
    let copy = client.cache().record_copy().expect("a copy");
    assert_ne!(copy.epoch(), old_epoch);
    assert_eq!(copy.epoch(), rotated.epoch);
    assert!(client.last_report().full_download);
    assert_eq!(copy_records(&client), server_records(&server).await);
    server.stop().await;
}

#[tokio::test]
async fn a_sync_naming_another_epoch_is_refused() {
    let server = TestServer::start().await;
    let mut rpc = DiscoveryClient::connect(server.url())
        .await
        .expect("connects");
    let epoch = rpc
        .get_config(cds_proto::v1::GetConfigRequest {})
        .await
        .expect("config")
        .into_inner()
        .epoch;
    for since_version in [0, 1] {
        let status = rpc
            .sync_records(server.authed(
                "syncer",
                SyncRequest {
                    epoch: epoch ^ 1,
                    since_version,
                    cursor: Default::default(),
                },
            ))
            .await
            .expect_err("another epoch");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    }
    // Without a credential, nothing.
    let status = rpc
        .sync_records(SyncRequest {
            epoch,
            since_version: 0,
            cursor: Default::default(),
        })
        .await
        .expect_err("no credential");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn a_resumed_first_download_equals_an_uninterrupted_one() {
    // Pages of 2 kB, and a budget of 4 calls that does not refill: the
    // first client's download stops after 4 pages.
    let server = TestServer::start_with(|c| {
        c.max_response_bytes = 4096;
        c.quota.burst = 4;
        c.quota.refill_per_hour = 0.001;
    })
    .await;
    let label = "u-08";
    let per_record = record_len(label.len());
    // About four and a half pages of records.
    let users = 9 * 1024 / per_record;
    let numbers = german_mobiles(users, 100);
    server
        .import(
            numbers
                .iter()
                .map(|n| cds_proto::v1::User {
                    e164: n.clone(),
                    label: label.as_bytes().to_vec().into(),
                    discoverable: true,
                })
                .collect(),
        )
        .await;
    let book = [numbers[0].clone()];
    let mut interrupted = sync_client(&server, "first").await;
    let err = interrupted
        .discover(&book, us())
        .await
        .expect_err("the budget runs out midway");
    assert!(matches!(err, ClientError::QuotaExceeded { .. }), "{err}");
    let saved = interrupted.cache().to_bytes();
    let partial = interrupted.cache().record_copy().expect("kept");
    assert!(partial.is_downloading());
    assert!(!partial.is_empty());

    // Another account's client resumes from the saved cache.
    let mut resumed = server
        .client_builder("second")
        .bucket_mode(BucketMode::Sync)
        .cache(DiscoveryCache::from_bytes(&saved).expect("reads"))
        .connect()
        .await
        .expect("connects");
    let found = resumed.discover(&book, us()).await.expect("resumes");
    assert_eq!(label_of(&found[0]).as_deref(), Some(label));
    let report = resumed.last_report();
    assert!(report.full_download);
    assert!(report.sync_requests <= 3, "{report:?}");
    let copy = resumed.cache().record_copy().expect("a copy");
    assert!(!copy.is_downloading());
    assert_eq!(copy.len(), users);
    assert_eq!(copy_records(&resumed), server_records(&server).await);
    server.stop().await;
}

#[tokio::test]
async fn a_download_resumed_from_a_cursor_the_server_refuses_starts_over() {
    let server = TestServer::start().await;
    let book = german_mobiles(3, 0);
    server.register(&book[0], "alice", true).await;
    server.register(&book[1], "bob", true).await;
    let mut client = sync_client(&server, "syncer").await;
    client.discover(&book, us()).await.expect("discovers");
    // The saved copy turned into a download in progress whose cursor is a
    // 12-byte bucket-and-tag one, as servers before record ids handed out:
    // the copy section's "current" flag (just before the records' length
    // and records) becomes "downloading", first version 1, that cursor.
    let mut saved = client.cache().to_bytes();
    let records = client.cache().record_copy().expect("a copy").packed().len();
    let flag = saved.len() - records - 8 - 1;
    assert_eq!(saved[flag], 0);
    let mut pending = vec![1];
    pending.extend_from_slice(&1u64.to_be_bytes());
    pending.extend_from_slice(&12u32.to_be_bytes());
    pending.extend_from_slice(&[0; 12]);
    saved.splice(flag..=flag, pending);
    let cache = DiscoveryCache::from_bytes(&saved).expect("reads");
    assert!(cache.record_copy().expect("kept").is_downloading());
    let mut resumed = server
        .client_builder("syncer")
        .bucket_mode(BucketMode::Sync)
        .cache(cache)
        .connect()
        .await
        .expect("connects");
    let found = resumed.discover(&book, us()).await.expect("starts over");
    assert_eq!(label_of(&found[1]).as_deref(), Some("bob"));
    assert!(resumed.last_report().full_download);
    assert_eq!(copy_records(&resumed), server_records(&server).await);
    server.stop().await;
}

#[tokio::test]
async fn a_tampered_delta_is_refused_and_the_copy_is_downloaded_again() {
    let server = TestServer::start().await;
    let book = german_mobiles(3, 0);
    server.register(&book[0], "alice", true).await;
    let proxy = cds_tests::tamper::TamperingProxy::start(&server.url()).await;
    let mut client = Client::builder(proxy.url())
        .credential(server.token("syncer"))
        .bucket_mode(BucketMode::Sync)
        .connect()
        .await
        .expect("connects");
    client.discover(&book, us()).await.expect("discovers");
    server.register(&book[1], "bob", true).await;
    // One flipped byte in every delta's records (pages pass untouched):
    // the delta is refused, the copy downloaded again, and its closing
    // delta (empty) passes.
    proxy.tamper_sync_with(|r| {
        if !r.set_digest.is_empty() && !r.records.is_empty() {
            let mut bytes = r.records.to_vec();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            r.records = bytes.into();
        }
    });
    let found = client.discover(&book, us()).await.expect("recovers");
    assert_eq!(label_of(&found[1]).as_deref(), Some("bob"));
    assert!(client.last_report().full_download);
    assert_eq!(copy_records(&client), server_records(&server).await);
    // Every digest wrong: refused, downloaded again, refused again: an error.
    server.register(&book[2], "carol", true).await;
    proxy.tamper_sync_with(|r| {
        if !r.set_digest.is_empty() {
            let mut d = r.set_digest.to_vec();
            d[0] ^= 1;
            r.set_digest = d.into();
        }
    });
    let err = client
        .discover(&book, us())
        .await
        .expect_err("no delta ever matches");
    assert!(matches!(err, ClientError::Sync(_)), "{err}");
    // The honest server again: the next call syncs and finds carol.
    proxy.tamper_sync_with(|_| {});
    let found = client.discover(&book, us()).await.expect("discovers");
    assert_eq!(label_of(&found[2]).as_deref(), Some("carol"));
    assert_eq!(copy_records(&client), server_records(&server).await);
    server.stop().await;
}
