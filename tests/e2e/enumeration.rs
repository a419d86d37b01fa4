//! Enumeration resistance end to end: credentials, quotas, incremental
//! discovery and load shedding against a real server on 127.0.0.1.

use std::time::Duration;

use cds_client::session::{BucketSelection, prepare};
use cds_client::{Client, ClientError, DiscoveryCache, Limit};
use cds_core::{AccountId, CredentialIssuer, E164, dangerous};
use cds_proto::v1::DiscoverRequest;
use cds_proto::v1::discovery_client::DiscoveryClient;
use cds_tests::{TestServer, german_mobiles, label_of, us};

fn quota(burst: u32) -> impl FnOnce(&mut cds_server::ServerConfig) {
    move |c| {
        c.quota.burst = burst;
        c.quota.refill_per_hour = 6.0;
    }
}

#[tokio::test]
async fn an_attacker_learns_at_most_its_budget_and_the_rest_is_refused_with_retry_after() {
    let server = TestServer::start_with(quota(1_000)).await;
    let numbers = german_mobiles(10_000, 0);
    for n in numbers.iter().step_by(100) {
        server.register(n, "victim", true).await;
    }
    let mut mallory = server
        .client_builder("mallory")
        .connect()
        .await
        .expect("connects");
    let mut learned = 0;
    let mut refused = 0;
    for batch in numbers.chunks(500) {
        match mallory.discover(batch, us()).await {
            Ok(found) => learned += found.len(),
            Err(ClientError::QuotaExceeded {
                limit, retry_after, ..
            }) => {
                assert_eq!(limit, Limit::AccountBudget);
                // 500 evaluations at 6 an hour: about 83 hours.
                let wait = retry_after.expect("a retry-after hint");
                assert!(wait > Duration::from_secs(80 * 3600), "{wait:?}");
                refused += 1;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(learned, 1_000);
    assert_eq!(refused, 18);

    // Another account has its own budget; Mallory's is untouched by refusals.
    let mut eve = server
        .client_builder("eve")
        .connect()
        .await
        .expect("connects");
    let found = eve
        .discover(&numbers[..1_000], us())
        .await
        .expect("eve's own budget");
    assert_eq!(found.iter().filter(|c| label_of(c).is_some()).count(), 10);
    server.stop().await;
}

#[tokio::test]
async fn a_refused_request_charges_nothing() {
    let server = TestServer::start_with(quota(1_000)).await;
    let numbers = german_mobiles(1_500, 0);
    let mut client = server
        .client_builder("carol")
        .connect()
        .await
        .expect("connects");
    client
        .discover(&numbers[..600], us())
        .await
        .expect("600 of 1000");
    let refused = client.discover(&numbers[600..1_100], us()).await;
    assert!(
        matches!(refused, Err(ClientError::QuotaExceeded { .. })),
        "{refused:?}"
    );
    client
        .discover(&numbers[600..1_000], us())
        .await
        .expect("the remaining 400 are still there");
    server.stop().await;
}

#[tokio::test]
async fn an_honest_client_resyncing_the_same_book_is_charged_once() {
    let server = TestServer::start_with(quota(2_100)).await;
    let book = german_mobiles(2_000, 0);
    server.register(&book[10], "friend", true).await;

    let mut client = server
        .client_builder("honest")
        .connect()
        .await
        .expect("connects");
    let first = client.discover(&book, us()).await.expect("first sync");
    assert_eq!(client.last_report().evaluated, 2_000);
    for _ in 0..5 {
        let again = client.discover(&book, us()).await.expect("re-sync is free");
        assert_eq!(again, first);
        assert_eq!(client.last_report().evaluated, 0);
        assert_eq!(client.last_report().cached, 2_000);
    }

    // The app persists the cache; a new session pays nothing either, and
    // still sees who registered or opted out since.
    let saved = client.cache().to_bytes();
    server.register(&book[20], "new friend", true).await;
    server.set_discoverable(&book[10], false).await;
    let mut later = server
        .client_builder("honest")
        .cache(DiscoveryCache::from_bytes(&saved).expect("reads back"))
        .connect()
        .await
        .expect("connects");
    let now = later
        .discover(&book, us())
        .await
        .expect("sync from the saved cache");
    assert_eq!(later.last_report().evaluated, 0);
    assert_eq!(label_of(&now[10]), None);
    assert_eq!(label_of(&now[20]).as_deref(), Some("new friend"));

    // New numbers always cost.
    let mut grown = book.clone();
    grown.extend(german_mobiles(50, 9_000));
    later
        .discover(&grown, us())
        .await
        .expect("50 new numbers fit the budget");
    assert_eq!(later.last_report().evaluated, 50);
    server.stop().await;
}

#[tokio::test]
async fn a_cache_from_another_key_epoch_is_not_used() {
    let server = TestServer::start().await;
    let other = TestServer::start().await;
    let book = german_mobiles(20, 0);
    let mut a = other.client().await;
    a.discover(&book, us()).await.expect("fills a cache");
    let mut b = server
        .client_builder("x")
        .cache(a.cache().clone())
        .connect()
        .await
        .expect("connects");
    b.discover(&book, us()).await.expect("discovers");
    assert_eq!(
        b.last_report().evaluated,
        20,
        "outputs under another key are worthless"
    );
    server.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn missing_forged_expired_and_tampered_credentials_are_unauthenticated() {
    let server = TestServer::start().await;
    let account = AccountId::new(b"alice".to_vec()).expect("valid");
    let forger = CredentialIssuer::generate(&mut rand::rng());
    let now = cds_server::unix_now();
    let mut tampered = server.token("alice").into_bytes();
    tampered[14] = if tampered[14] == b'A' { b'B' } else { b'A' };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("forged", Some(forger.issue(&account, now, now + 3600))),
        (
            "expired",
            Some(server.issuer.issue(&account, now - 7200, now - 3600)),
        ),
        (
            "valid longer than the default 7 days",
            Some(server.issuer.issue(&account, now, now + 7 * 86_400 + 1)),
        ),
        ("malformed", Some("not-a-token".into())),
        (
            "tampered",
            Some(String::from_utf8(tampered).expect("ascii")),
        ),
    ];
    for (name, token) in cases {
        let mut builder = Client::builder(server.url());
        if let Some(t) = token {
            builder = builder.credential(t);
        }
        let mut client = builder
            .connect()
            .await
            .expect("configuration needs no credential");
        let err = client
            .discover(&["+12015550123"], us())
            .await
            .expect_err(name);
        match err {
            ClientError::Unauthenticated { message: msg } => {
                assert!(!msg.contains("alice"), "{name}: {msg}")
            }
            other => panic!("{name}: expected Unauthenticated, got {other:?}"),
        }
    }
    // A valid credential still works.
    server
        .client()
        .await
        .discover(&["+12015550123"], us())
        .await
        .expect("valid");
    server.stop().await;
}

/// A discovery of `+12015550123` with `token`: the label found, or the
/// refusal's message.
async fn discover_with(server: &TestServer, token: &str) -> Result<Option<String>, String> {
    let mut client = Client::builder(server.url())
        .credential(token)
        .connect()
        .await
        .expect("configuration needs no credential");
    match client.discover(&["+12015550123"], us()).await {
        Ok(found) => Ok(label_of(&found[0])),
        Err(ClientError::Unauthenticated { message }) => Err(message),
        Err(other) => panic!("expected Unauthenticated, got {other:?}"),
    }
}

#[tokio::test]
async fn credentials_valid_too_long_or_issued_in_the_future_are_refused_and_evaluate_nothing() {
    let max = 3_600;
    let server =
        TestServer::start_with(|c| c.max_credential_lifetime = Duration::from_secs(max)).await;
    server.register("+12015550123", "alice", true).await;
    let account = AccountId::new(b"alice".to_vec()).expect("valid");
    let now = cds_server::unix_now();
    let ahead = cds_core::CLOCK_SKEW_SECS + 600;
    let refused = [
        (
            "valid one second longer than the maximum",
            server.issuer.issue(&account, now, now + max + 1),
            "at most 3600 s",
        ),
        (
            "issued beyond the clock skew in the future",
            server.issuer.issue(&account, now + ahead, now + ahead + 60),
            "issued in the future",
        ),
        (
            "version 1 expiring beyond the maximum from now",
            dangerous::issue_v1_credential(&server.issuer, &account, now + 2 * max),
            "at most 3600 s",
        ),
    ];
    for (name, token, expected) in refused {
        let message = discover_with(&server, &token).await.expect_err(name);
        assert!(message.contains(expected), "{name}: {message}");
        assert!(!message.contains("alice"), "{name}: {message}");
        assert!(!message.contains(&token), "{name}: {message}");
    }
    assert_eq!(
        server.stats().await.evaluated_elements,
        0,
        "a refused credential evaluates nothing"
    );

    // Exactly the maximum is accepted, and so is a version 1 credential
    // (no issue time) that expires within it.
    for token in [
        server.issuer.issue(&account, now, now + max),
        dangerous::issue_v1_credential(&server.issuer, &account, now + max / 2),
    ] {
        let label = discover_with(&server, &token).await.expect("accepted");
        assert_eq!(label.as_deref(), Some("alice"));
    }
    assert_eq!(server.stats().await.evaluated_elements, 2);
    server.stop().await;
}

#[tokio::test]
async fn requests_over_the_peer_rate_are_refused_with_a_retry_hint() {
    let server = TestServer::start_with(|c| {
        c.peer.requests_per_second = 0.5;
        c.peer.request_burst = 3;
    })
    .await;
    // Connecting costs one request (GetConfig); two discovers fit the burst.
    let mut client = server.client().await;
    client.discover(&["+12015550123"], us()).await.expect("1st");
    client.discover(&["+12015550124"], us()).await.expect("2nd");
    match client.discover(&["+12015550125"], us()).await {
        Err(ClientError::QuotaExceeded {
            limit: Limit::PeerRate,
            retry_after,
            ..
        }) => {
            assert!(retry_after.is_some());
        }
        other => panic!("expected the peer rate limit, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_per_peer_limit_are_closed() {
    let server = TestServer::start_with(|c| c.peer.max_connections = 2).await;
    let _a = server.client().await;
    let _b = server.client().await;
    let third = tokio::time::timeout(
        Duration::from_secs(10),
        server.client_builder("c").connect(),
    )
    .await;
    assert!(
        matches!(third, Ok(Err(_))),
        "a third connection from one address is refused"
    );
    drop(_a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    server
        .client()
        .await
        .discover(&["+12015550123"], us())
        .await
        .expect("a slot is free again");
    server.stop().await;
}

/// `count` Discover requests of `elements` blinded numbers each, blinded
/// up front so they can be fired at the same moment; account `i` is
/// `accounts(i)`.
async fn prepared_requests(
    server: &TestServer,
    elements: usize,
    count: usize,
    accounts: impl Fn(usize) -> String,
) -> Vec<tonic::Request<DiscoverRequest>> {
    let params = server.client().await.params().clone();
    let numbers: Vec<E164> = german_mobiles(elements, 0)
        .iter()
        .map(|n| E164::parse(n).expect("valid"))
        .collect();
    (0..count)
        .map(|i| {
            let p = prepare(
                numbers.clone(),
                &params,
                BucketSelection::Ids(vec![]),
                &mut rand::rng(),
            )
            .expect("prepares");
            let mut req = tonic::Request::new(p.message);
            let auth = format!("Bearer {}", server.token(&accounts(i)))
                .parse()
                .expect("ascii");
            req.metadata_mut().insert("authorization", auth);
            req
        })
        .collect()
}

/// Fire all requests at once; each gets at most 60 s.
async fn fire(
    server: &TestServer,
    requests: Vec<tonic::Request<DiscoverRequest>>,
) -> Vec<Result<(), tonic::Status>> {
    let mut tasks = Vec::new();
    for req in requests {
        let mut rpc = DiscoveryClient::connect(server.url())
            .await
            .expect("connects");
        tasks.push(tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(60), rpc.discover(req))
                .await
                .map(|r| r.map(drop))
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task joins").expect("no request hangs"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_over_capacity_is_shed_quickly_and_the_server_recovers() {
    let server = TestServer::start_with(|c| {
        c.overload.max_concurrent = 1;
        c.overload.max_queued = 2;
        c.overload.max_queue_wait = Duration::from_millis(300);
        c.quota.burst = 1_000_000;
    })
    .await;
    let requests = prepared_requests(&server, 2_000, 32, |i| format!("user-{i}")).await;
    let started = std::time::Instant::now();
    let results = fire(&server, requests).await;
    let elapsed = started.elapsed();
    let served = results.iter().filter(|r| r.is_ok()).count();
    let shed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(served >= 1, "some requests are served");
    assert!(!shed.is_empty(), "some requests are shed");
    for status in &shed {
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.metadata().get("retry-after").is_some());
    }
    assert!(
        elapsed < Duration::from_secs(30),
        "the burst is answered quickly: {elapsed:?}"
    );
    // Afterwards the server answers normally.
    let book = german_mobiles(400, 0);
    let found = server
        .client()
        .await
        .discover(&book, us())
        .await
        .expect("recovered");
    assert_eq!(found.len(), 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_account_cannot_hold_more_than_its_in_flight_share() {
    let server = TestServer::start_with(|c| {
        c.quota.max_in_flight = 1;
        c.quota.burst = 1_000_000;
    })
    .await;
    let requests = prepared_requests(&server, 2_000, 6, |_| "greedy".to_owned()).await;
    let results = fire(&server, requests).await;
    let limited: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        !limited.is_empty(),
        "concurrent requests beyond the share are refused"
    );
    for status in limited {
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status
                .metadata()
                .get("cds-limit")
                .and_then(|v| v.to_str().ok()),
            Some("account-concurrency")
        );
    }
    assert!(results.iter().any(|r| r.is_ok()));
    server.stop().await;
}

#[tokio::test]
async fn garbage_elements_are_refused_without_charging_the_account() {
    let server = TestServer::start_with(quota(8)).await;
    let params = server.client().await.params().clone();
    let mut rpc = DiscoveryClient::connect(server.url())
        .await
        .expect("connects");
    let auth: tonic::metadata::MetadataValue<_> = format!("Bearer {}", server.token("garbler"))
        .parse()
        .expect("ascii");
    let mut garbage = tonic::Request::new(DiscoverRequest {
        epoch: params.epoch,
        blinded_elements: vec![0xee; 8 * 32].into(),
        buckets: Some(cds_proto::v1::discover_request::Buckets::Ids(
            Default::default(),
        )),
        record_format: cds_proto::wire::RECORD_FORMAT,
    });
    garbage.metadata_mut().insert("authorization", auth.clone());
    let err = rpc.discover(garbage).await.expect_err("garbage");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        server.stats().await.evaluated_elements,
        0,
        "nothing was evaluated"
    );

    // The whole budget of 8 is still there.
    let book = german_mobiles(8, 0);
    let mut client = server
        .client_builder("garbler")
        .connect()
        .await
        .expect("connects");
    client
        .discover(&book, us())
        .await
        .expect("budget untouched by the refused request");
    server.stop().await;
}

#[tokio::test]
async fn the_whole_table_without_evaluations_does_not_tell_which_numbers_to_skip() {
    use sha2::{Digest, Sha512};
    // 200 discoverable users in 256 buckets: about 46% of buckets stay empty.
    let server =
        TestServer::start_with(|c| c.bucket_bits = cds_core::BucketBits::new(8).expect("valid"))
            .await;
    let registered = german_mobiles(200, 0);
    server
        .import(
            registered
                .iter()
                .map(|n| cds_proto::v1::User {
                    e164: n.clone(),
                    label: b"x".to_vec().into(),
                    discoverable: true,
                })
                .collect(),
        )
        .await;
    // The attacker downloads every bucket, which costs no evaluation.
    let mut rpc = DiscoveryClient::connect(server.url())
        .await
        .expect("connects");
    let epoch = server.stats().await.epoch;
    let table = rpc
        .discover(server.authed(
            "attacker",
            DiscoverRequest {
                epoch,
                blinded_elements: Vec::new().into(),
                buckets: Some(cds_proto::v1::discover_request::Buckets::All(
                    Default::default(),
                )),
                record_format: cds_proto::wire::RECORD_FORMAT,
            },
        ))
        .await
        .expect("records are free")
        .into_inner();
    assert_eq!(server.stats().await.evaluated_elements, 0);
    let occupied: Vec<bool> = table
        .buckets
        .iter()
        .map(|b| !b.records.is_empty())
        .collect();
    let empty = occupied.iter().filter(|o| !**o).count() as f64 / 256.0;
    assert!(empty > 0.3, "{empty}");

    // Any placement the attacker can compute without the key (here the
    // public hash of the number that cds used before) puts registered
    // numbers into empty buckets about as often as chance: an empty bucket
    // rules nothing out. Under a public placement this would be 0.
    let public_bucket = |n: &str| {
        let h = Sha512::new()
            .chain_update(b"cds-v1-bucket")
            .chain_update(n.as_bytes())
            .finalize();
        usize::from(h[0])
    };
    let skipped = registered
        .iter()
        .filter(|n| !occupied[public_bucket(n)])
        .count() as f64
        / registered.len() as f64;
    assert!(
        (skipped - empty).abs() < 0.2,
        "{skipped:.2} of the registered numbers fall into empty buckets, against {empty:.2} by chance"
    );
}

#[tokio::test]
async fn a_spent_budget_stays_spent_across_a_restart_and_a_key_rotation() {
    let mut server = TestServer::start_with(quota(50)).await;
    let numbers = german_mobiles(60, 0);
    let spend = |server: &TestServer, book: Vec<String>| {
        let builder = server.client_builder("spender");
        async move {
            let mut client = builder.connect().await.expect("connects");
            client.discover(&book, us()).await.map(|_| ())
        }
    };
    spend(&server, numbers[..50].to_vec())
        .await
        .expect("within the budget");
    let refused = |r: Result<(), ClientError>| {
        matches!(
            r,
            Err(ClientError::QuotaExceeded {
                limit: Limit::AccountBudget,
                ..
            })
        )
    };
    assert!(refused(spend(&server, numbers[50..55].to_vec()).await));

    server.restart().await;
    assert!(
        refused(spend(&server, numbers[50..55].to_vec()).await),
        "a restart refilled the budget"
    );
    server.rotate_key().await;
    assert!(
        refused(spend(&server, numbers[50..55].to_vec()).await),
        "a key rotation refilled the budget"
    );
    // Other accounts are untouched.
    let mut other = server
        .client_builder("someone-else")
        .connect()
        .await
        .expect("connects");
    other
        .discover(&numbers[50..55], us())
        .await
        .expect("own budget");
}
