//! What a malicious server can do to a client's records, end to end: a real
//! server, the real client, and a proxy between them that rewrites the
//! `Discover` responses in flight as the key holder could.

use cds_client::{Client, Contact};
use cds_tests::tamper::{TamperingProxy, forged_record, plant};
use cds_tests::{TEST_ACCOUNT, TestServer, label_of, us};

const ALICE: &str = "+12015550123";
const BOB: &str = "+12015550124";
/// In no address book of these tests.
const DAVE: &str = "+12015550125";

async fn client_via(proxy: &TamperingProxy, server: &TestServer) -> Client {
    Client::builder(proxy.url())
        .credential(server.token(TEST_ACCOUNT))
        .connect()
        .await
        .expect("connects through the proxy")
}

#[tokio::test]
async fn a_forged_record_under_a_contacts_tag_reads_as_not_registered_and_the_call_succeeds() {
    let server = TestServer::start().await;
    server.register(ALICE, "alice", true).await;
    let book = [ALICE, BOB];

    // Honest: alice is registered, bob is not, nothing fails to open.
    let proxy = TamperingProxy::start(&server.url()).await;
    let mut client = client_via(&proxy, &server).await;
    let honest = client.discover(&book, us()).await.expect("discovers");
    assert_eq!(label_of(&honest[0]).as_deref(), Some("alice"));
    assert!(matches!(honest[1], Contact::NotRegistered { .. }));
    assert_eq!(client.last_report().unopenable_records, 0);

    // The key holder plants a record under bob's tag: bob is still "not
    // registered", the call succeeds, and only the count says anything.
    let (tag, bucket) = server.tag_of(BOB);
    proxy.tamper_with(move |r| plant(r, bucket, &forged_record(&tag)));
    let forged = client.discover(&book, us()).await.expect("still discovers");
    assert_eq!(forged, honest, "the same answer as without the record");
    assert_eq!(client.last_report().unopenable_records, 1);

    // A fresh client (no cache) sees the same.
    let mut fresh = client_via(&proxy, &server).await;
    let again = fresh.discover(&book, us()).await.expect("discovers");
    assert_eq!(again, honest);
    assert_eq!(fresh.last_report().unopenable_records, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_tampered_record_of_a_registered_contact_reads_as_not_registered() {
    let server = TestServer::start().await;
    server.register(ALICE, "alice", true).await;
    let proxy = TamperingProxy::start(&server.url()).await;
    let (_, bucket) = server.tag_of(ALICE);
    proxy.tamper_with(move |r| {
        // Alice's record is the only one: flip a bit of its Poly1305 tag.
        let entry = r
            .buckets
            .iter_mut()
            .find(|b| b.bucket == bucket)
            .expect("alice's bucket");
        let mut records = entry.records.to_vec();
        *records.last_mut().expect("alice's record") ^= 1;
        entry.records = records.into();
    });
    let mut client = client_via(&proxy, &server).await;
    let found = client
        .discover(&[ALICE, BOB], us())
        .await
        .expect("a record that does not open does not fail the call");
    assert!(
        found
            .iter()
            .all(|c| matches!(c, Contact::NotRegistered { .. })),
        "{found:?}"
    );
    assert_eq!(client.last_report().unopenable_records, 1);
    server.stop().await;
}

/// What the server sees of a client (its requests, and whether it comes
/// back) is the same whether a forged record hit one of its contacts or
/// not: the forger learns nothing from planting it.
#[tokio::test]
async fn in_all_buckets_mode_the_server_sees_the_same_traffic_whether_or_not_a_forged_record_hit_a_contact()
 {
    let server = TestServer::start().await;
    server.register(ALICE, "alice", true).await;
    let book = [ALICE, BOB];
    // Two sessions of one client each, two calls per session: the first
    // evaluates, the second is a re-sync from the cache.
    let mut sessions = Vec::new();
    for target in [BOB, DAVE] {
        let proxy = TamperingProxy::start(&server.url()).await;
        let (tag, bucket) = server.tag_of(target);
        proxy.tamper_with(move |r| plant(r, bucket, &forged_record(&tag)));
        let mut client = client_via(&proxy, &server).await;
        let mut results = Vec::new();
        for _ in 0..2 {
            results.push(client.discover(&book, us()).await.expect("discovers"));
        }
        let unopenable = client.last_report().unopenable_records;
        sessions.push((proxy.take_seen(), results, unopenable));
    }
    let (hit, missed) = (&sessions[0], &sessions[1]);
    assert_eq!(
        (hit.2, missed.2),
        (1, 0),
        "only the device knows it was hit"
    );
    assert_eq!(hit.0, missed.0, "the same requests");
    assert_eq!(hit.1, missed.1, "the same results");
    assert_eq!(hit.0.len(), 2, "one request per call: {:?}", hit.0);
    assert_eq!(hit.0[0].elements, 2);
    assert_eq!(hit.0[1].elements, 0, "the re-sync evaluates nothing");
    server.stop().await;
}
