//! Discovery end to end: a real server on 127.0.0.1, the real client.

use cds_client::{BucketMode, Contact};
use cds_core::BucketBits;
use cds_tests::{TestServer, german_mobiles, label_of, us};

fn bits(bits: u8) -> BucketBits {
    BucketBits::new(bits).expect("valid bucket bits")
}

#[tokio::test]
async fn registered_discoverable_contacts_are_found_with_their_labels() {
    let server = TestServer::start().await;
    server.register("+12015550123", "alice-id", true).await;
    server.register("+4915123456789", "bob-id", true).await;

    let book = ["(201) 555-0123", "+49 1512 3456789", "201.555.0199"];
    let found = server.discover(&book).await;

    assert_eq!(found.len(), 3);
    assert_eq!(label_of(&found[0]).as_deref(), Some("alice-id"));
    assert_eq!(label_of(&found[1]).as_deref(), Some("bob-id"));
    assert!(
        matches!(&found[2], Contact::NotRegistered { number } if number.as_str() == "+12015550199")
    );
    match &found[0] {
        Contact::Registered { number, .. } => assert_eq!(number.as_str(), "+12015550123"),
        other => panic!("expected registered, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn hidden_and_unregistered_numbers_are_not_found() {
    let server = TestServer::start().await;
    server.register("+12015550123", "hidden", false).await;
    let found = server
        .discover(&["+1 201 555 0123", "+1 201 555 0124"])
        .await;
    assert!(
        found
            .iter()
            .all(|c| matches!(c, Contact::NotRegistered { .. })),
        "{found:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn invalid_entries_get_a_reason_and_duplicates_are_resolved_alike() {
    let server = TestServer::start().await;
    server.register("+12015550123", "alice", true).await;
    let book = [
        "",
        "call me",
        "(201) 555-0123",
        "+1-201-555-0123",
        "201 555 0123",
    ];
    let found = server.discover(&book).await;
    assert!(matches!(found[0], Contact::Invalid { .. }));
    assert!(matches!(found[1], Contact::Invalid { .. }));
    for c in &found[2..] {
        assert_eq!(label_of(c).as_deref(), Some("alice"));
    }
    server.stop().await;
}

#[tokio::test]
async fn contacts_only_bucket_mode_finds_the_same_contacts() {
    let server = TestServer::start().await;
    let numbers = german_mobiles(40, 0);
    for (i, n) in numbers.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        server.register(n, &format!("user-{i}"), true).await;
    }
    let all = server.discover(&numbers).await;
    let mut narrow = server
        .client_builder(cds_tests::TEST_ACCOUNT)
        .bucket_mode(BucketMode::ContactsOnly)
        .connect()
        .await
        .expect("connects");
    let some = narrow.discover(&numbers, us()).await.expect("discovers");
    assert_eq!(all, some);
    assert_eq!(all.iter().filter(|c| label_of(c).is_some()).count(), 14);
    server.stop().await;
}

#[tokio::test]
async fn address_books_larger_than_one_request_are_split_and_fully_answered() {
    let server = TestServer::start_with(|c| c.max_elements_per_request = 16).await;
    let numbers = german_mobiles(100, 1000);
    for n in numbers.iter().step_by(10) {
        server.register(n, "x", true).await;
    }
    let found = server.discover(&numbers).await;
    assert_eq!(found.len(), 100);
    for (i, c) in found.iter().enumerate() {
        assert_eq!(label_of(c).is_some(), i % 10 == 0, "entry {i}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_single_bucket_table_serves_every_record_to_everyone() {
    let server = TestServer::start_with(|c| c.bucket_bits = bits(0)).await;
    server.register("+12015550123", "alice", true).await;
    let mut client = server
        .client_builder(cds_tests::TEST_ACCOUNT)
        .bucket_mode(BucketMode::ContactsOnly)
        .connect()
        .await
        .expect("connects");
    let found = client
        .discover(&["2015550123"], us())
        .await
        .expect("discovers");
    assert_eq!(label_of(&found[0]).as_deref(), Some("alice"));
    server.stop().await;
}

#[tokio::test]
async fn a_book_without_valid_numbers_needs_no_request() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // With the server gone, any request would fail: these calls succeed
    // only because they send none.
    server.stop().await;
    let empty: [&str; 0] = [];
    assert!(
        client
            .discover(&empty, us())
            .await
            .expect("no request")
            .is_empty()
    );
    assert_eq!(client.last_report().requests, 0);
    let found = client
        .discover(&["call me maybe", ""], us())
        .await
        .expect("no request");
    assert!(found.iter().all(|c| matches!(c, Contact::Invalid { .. })));
    assert_eq!(client.last_report().requests, 0);
    assert_eq!(client.last_report().bytes_sent, 0);
}

#[tokio::test]
async fn a_full_batch_with_one_bucket_per_contact_fits_the_request_limit() {
    // 4096 contacts in 4096 buckets: the request carries 4096 elements and
    // up to 4096 bucket ids.
    let server = TestServer::start_with(|c| c.bucket_bits = bits(12)).await;
    let numbers = german_mobiles(4096, 50_000);
    server.register(&numbers[4095], "last", true).await;
    let mut client = server
        .client_builder(cds_tests::TEST_ACCOUNT)
        .bucket_mode(BucketMode::ContactsOnly)
        .connect()
        .await
        .expect("connects");
    let found = client.discover(&numbers, us()).await.expect("discovers");
    assert_eq!(label_of(&found[4095]).as_deref(), Some("last"));
    assert_eq!(found.iter().filter(|c| label_of(c).is_some()).count(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_resync_downloads_only_the_buckets_that_changed_and_still_sees_opt_outs() {
    use cds_proto::v1::User;
    let server = TestServer::start_with(|c| {
        c.bucket_bits = bits(10);
        c.quota.burst = 100_000;
    })
    .await;
    let numbers = german_mobiles(600, 0);
    // Every other number is registered and discoverable.
    let users = numbers
        .iter()
        .step_by(2)
        .map(|e164| User {
            e164: e164.clone(),
            label: format!("label-{e164}").into_bytes().into(),
            discoverable: true,
        })
        .collect();
    server.import(users).await;
    let mut client = server
        .client_builder("resync")
        .bucket_mode(BucketMode::ContactsOnly)
        .connect()
        .await
        .expect("connects");
    let labels = |found: Vec<Contact>| found.iter().map(label_of).collect::<Vec<_>>();

    let first = labels(client.discover(&numbers, us()).await.expect("discovers"));
    let cold = client.last_report();
    assert_eq!((cold.evaluated, cold.unchanged_buckets), (600, 0));
    assert!(cold.buckets > 400, "{cold:?}");
    assert_eq!(first.iter().filter(|l| l.is_some()).count(), 300);

    // Nothing changed: every bucket is confirmed, none is sent again.
    let again = labels(client.discover(&numbers, us()).await.expect("discovers"));
    let warm = client.last_report();
    assert_eq!(again, first);
    assert_eq!(warm.evaluated, 0);
    assert_eq!(warm.unchanged_buckets, warm.buckets);
    // Framing only: a bucket id and the `unchanged` flag per bucket.
    assert!(
        warm.bytes_received <= 8 * warm.buckets + 32,
        "{warm:?} against {cold:?}"
    );

    // One user opts out: exactly their bucket comes again, and shows it.
    server.set_discoverable(&numbers[0], false).await;
    let after = labels(client.discover(&numbers, us()).await.expect("discovers"));
    let report = client.last_report();
    assert_eq!(report.unchanged_buckets, report.buckets - 1);
    assert_eq!(after[0], None);
    assert_eq!(after[1..], first[1..]);

    // The kept buckets survive serialization with the outputs.
    let saved = client.cache().to_bytes();
    let mut restored = server
        .client_builder("resync")
        .bucket_mode(BucketMode::ContactsOnly)
        .cache(cds_client::DiscoveryCache::from_bytes(&saved).expect("reads"))
        .connect()
        .await
        .expect("connects");
    let restored_labels = labels(restored.discover(&numbers, us()).await.expect("discovers"));
    assert_eq!(restored_labels, after);
    let report = restored.last_report();
    assert_eq!(
        (report.evaluated, report.unchanged_buckets),
        (0, report.buckets)
    );

    // Looking up one new contact keeps the buckets of all the others.
    restored
        .discover(&german_mobiles(1, 5_000), us())
        .await
        .expect("discovers");
    restored.discover(&numbers, us()).await.expect("discovers");
    let report = restored.last_report();
    assert_eq!(report.unchanged_buckets, report.buckets);
}
