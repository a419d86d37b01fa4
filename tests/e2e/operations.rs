//! Operating cds: key rotation under traffic, health, reflection, metrics,
//! the change feed and graceful shutdown, against a real server.

use std::time::Duration;

use cds_client::Contact;
use cds_client::session::{BucketSelection, prepare};
use cds_core::E164;
use cds_proto::v1::admin_client::AdminClient;
use cds_proto::v1::discovery_client::DiscoveryClient;
use cds_proto::v1::{ListChangesRequest, RotateKeyRequest, User, registry_change};
use cds_tests::{TestServer, german_mobiles, label_of, test_config, us};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Register `n` users: even ones discoverable, every third one hidden.
async fn populate(server: &TestServer, numbers: &[String]) {
    let users = numbers
        .iter()
        .enumerate()
        .map(|(i, e164)| User {
            e164: e164.clone(),
            label: format!("user-{i}").into_bytes().into(),
            discoverable: i % 3 != 0,
        })
        .collect();
    server.import(users).await;
}

/// What a client sees for `book`: each entry's label, or `None`.
fn labels(found: &[Contact]) -> Vec<Option<String>> {
    found.iter().map(label_of).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_under_concurrent_discovery_fails_no_request_and_changes_no_result() {
    let server = TestServer::start_with(|c| {
        c.quota.burst = 1_000_000;
        c.metrics_listen = Some("127.0.0.1:0".parse().expect("valid"));
    })
    .await;
    let registered = german_mobiles(3_000, 0);
    populate(&server, &registered).await;
    // A book of registered (visible and hidden) and unregistered numbers.
    let mut book: Vec<String> = registered.iter().step_by(37).cloned().collect();
    book.extend(german_mobiles(20, 500_000));
    let expected = labels(&server.discover(&book).await);
    assert!(expected.iter().filter(|l| l.is_some()).count() > 40);
    let epoch_before = server.stats().await.epoch;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..4 {
        let mut client = server
            .client_builder(&format!("reader-{i}"))
            .connect()
            .await
            .expect("connects");
        let (book, expected, stop) = (book.clone(), expected.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds < 2 {
                // Every call must succeed: a request that meets a rotation
                // is retried by the library itself.
                let found = client
                    .discover(&book, us())
                    .await
                    .expect("no request fails");
                assert_eq!(labels(&found), expected, "results never change");
                rounds += 1;
            }
            rounds
        }));
    }
    let first = server.rotate_key().await;
    let second = server.rotate_key().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut rounds = 0;
    for c in clients {
        rounds += c.await.expect("client task joins");
    }
    assert!(rounds >= 8);

    assert_eq!(first.retired_epoch, epoch_before);
    assert_eq!(second.retired_epoch, first.epoch);
    assert_ne!(second.epoch, epoch_before);
    assert_eq!(second.records, 2_000);
    let stats = server.stats().await;
    assert_eq!((stats.epoch, stats.rotations), (second.epoch, 2));
    // Requests did meet the switches: each such request was refused with
    // the documented FAILED_PRECONDITION and retried by the library.
    let m = server.metrics().await;
    let refreshed = sample(
        &m,
        "cds_requests_total",
        &["rpc=\"Discover\"", "code=\"FAILED_PRECONDITION\""],
    );
    assert!(refreshed >= Some(1.0), "{refreshed:?}");
    let failed: f64 = m
        .lines()
        .filter(|l| l.starts_with("cds_requests_total{") && l.contains("rpc=\"Discover\""))
        .filter(|l| !l.contains("code=\"OK\"") && !l.contains("code=\"FAILED_PRECONDITION\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(failed, 0.0, "no other failure");
    // A fresh client after the rotations sees the same.
    let after = server.discover(&book).await;
    assert_eq!(labels(&after), expected);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_changes_during_a_rotation_land_in_the_new_epoch() {
    let server = TestServer::start_with(|c| c.quota.burst = 1_000_000).await;
    let registered = german_mobiles(3_000, 0);
    populate(&server, &registered).await;
    let mut admin = server.admin().await;
    let rotation = tokio::spawn(async move { admin.rotate_key(RotateKeyRequest {}).await });
    // While the next epoch is prepared: a new user, a user who hides, a
    // user who leaves.
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.register("+12015550100", "newcomer", true).await;
    server.set_discoverable(&registered[1], false).await;
    server.unregister(&registered[2]).await;
    let rotated = rotation
        .await
        .expect("joins")
        .expect("rotates")
        .into_inner();

    let found = server
        .client()
        .await
        .discover(
            &[
                "+12015550100",
                &registered[1],
                &registered[2],
                &registered[4],
            ],
            us(),
        )
        .await
        .expect("discovers");
    assert_eq!(server.stats().await.epoch, rotated.epoch);
    assert_eq!(
        labels(&found),
        vec![Some("newcomer".into()), None, None, Some("user-4".into())]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_rotation_while_one_runs_is_refused_and_changes_nothing() {
    let server = TestServer::start().await;
    populate(&server, &german_mobiles(3_000, 0)).await;
    let mut admin = server.admin().await;
    let first = tokio::spawn(async move { admin.rotate_key(RotateKeyRequest {}).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = server
        .admin()
        .await
        .rotate_key(RotateKeyRequest {})
        .await
        .expect_err("refused");
    assert_eq!(second.code(), tonic::Code::FailedPrecondition);
    assert!(second.message().contains("already running"));
    first
        .await
        .expect("joins")
        .expect("the first rotation completes");
    assert_eq!(server.stats().await.rotations, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_request_for_the_retired_epoch_is_told_to_refresh() {
    let server = TestServer::start().await;
    let numbers = vec![E164::parse("+12015550123").expect("valid")];
    let client = server.client().await;
    let old_params = client.params().clone();
    server.rotate_key().await;
    let p =
        prepare(numbers, &old_params, BucketSelection::All, &mut rand::rng()).expect("prepares");
    let req = server.authed("a", p.message);
    let err = DiscoveryClient::connect(server.url())
        .await
        .expect("connects")
        .discover(req)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("retired"), "{}", err.message());
    assert!(err.message().contains("GetConfig"));
    server.stop().await;
}

#[tokio::test]
async fn rotation_survives_a_restart_and_the_old_key_file_is_replaced() {
    let mut server = TestServer::start().await;
    server.register("+12015550123", "alice", true).await;
    let key_path = server.dir.path().join(cds_server::keystore::KEY_FILE);
    let old_key = std::fs::read(&key_path).expect("key file");
    let rotated = server.rotate_key().await;
    assert_ne!(std::fs::read(&key_path).expect("key file"), old_key);
    assert!(
        !server
            .dir
            .path()
            .join(cds_server::keystore::NEXT_KEY_FILE)
            .exists()
    );
    server.restart().await;
    assert_eq!(server.stats().await.epoch, rotated.epoch);
    let found = server.discover(&["+12015550123"]).await;
    assert_eq!(label_of(&found[0]).as_deref(), Some("alice"));
    server.stop().await;
}

async fn channel(url: String) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url)
        .expect("valid url")
        .connect()
        .await
        .expect("connects")
}

async fn health(url: String, service: &str) -> ServingStatus {
    let status = HealthClient::new(channel(url).await)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status;
    ServingStatus::try_from(status).expect("known status")
}

#[tokio::test]
async fn health_is_not_serving_until_the_table_is_built_then_serving() {
    let dir = cds_tests::private_tempdir();
    let issuer = cds_core::CredentialIssuer::generate(&mut rand::rng());
    let starting = cds_server::bind(test_config(dir.path(), &issuer))
        .await
        .expect("binds");
    let discovery = format!("http://{}", starting.discovery_addr());
    let admin = format!("http://{}", starting.admin_addr());
    for (url, service) in [
        (&discovery, ""),
        (&discovery, "cds.v1.Discovery"),
        (&admin, "cds.v1.Admin"),
    ] {
        assert_eq!(
            health(url.clone(), service).await,
            ServingStatus::NotServing
        );
    }
    // Discovery refuses politely meanwhile.
    let err = DiscoveryClient::connect(discovery.clone())
        .await
        .expect("connects")
        .get_config(cds_proto::v1::GetConfigRequest {})
        .await
        .expect_err("not ready");
    assert_eq!(err.code(), tonic::Code::Unavailable);

    let running = starting.serve(None).await.expect("serves");
    for (url, service) in [
        (&discovery, ""),
        (&discovery, "cds.v1.Discovery"),
        (&admin, "cds.v1.Admin"),
    ] {
        assert_eq!(health(url.clone(), service).await, ServingStatus::Serving);
    }
    running.shutdown().await.expect("stops");
}

#[tokio::test]
async fn each_listener_advertises_only_the_cds_service_it_answers() {
    let server = TestServer::start().await;
    for (url, absent) in [
        (server.url(), "cds.v1.Admin"),
        (server.admin_url(), "cds.v1.Discovery"),
    ] {
        let err = HealthClient::new(channel(url).await)
            .check(HealthCheckRequest {
                service: absent.into(),
            })
            .await
            .expect_err("not served on this listener");
        assert_eq!(err.code(), tonic::Code::NotFound, "{absent}");
    }
}

#[tokio::test]
async fn a_stop_during_the_table_build_ends_it_and_releases_the_store() {
    let mut server = TestServer::start().await;
    let numbers = german_mobiles(300, 0);
    populate(&server, &numbers).await;
    server.take().shutdown().await.expect("stops");

    let starting = cds_server::bind(server.config.clone())
        .await
        .expect("binds");
    let sealed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // The stop comes before the build, as a signal during startup would.
    starting.stopper()();
    let err = starting
        .serve(Some(std::sync::Arc::clone(&sealed)))
        .await
        .expect_err("stopped before serving");
    assert!(
        matches!(err, cds_server::ServerError::ShuttingDown),
        "{err}"
    );
    assert_eq!(sealed.load(std::sync::atomic::Ordering::Relaxed), 0);

    // The registry lock was released and nothing was lost.
    server.restart().await;
    let found = server.discover(&numbers).await;
    let expected: Vec<Option<String>> = (0..numbers.len())
        .map(|i| (i % 3 != 0).then(|| format!("user-{i}")))
        .collect();
    assert_eq!(labels(&found), expected);
}

#[tokio::test]
async fn reflection_lists_the_cds_services_on_both_listeners() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start().await;
    for (url, wanted) in [
        (server.url(), "cds.v1.Discovery"),
        (server.admin_url(), "cds.v1.Admin"),
    ] {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new(channel(url).await)
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .expect("reflection answers")
            .into_inner();
        let response = responses
            .message()
            .await
            .expect("a response")
            .expect("not empty");
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("expected a service list");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(names.iter().any(|n| n == wanted), "{names:?}");
        assert!(
            names.iter().any(|n| n == "grpc.health.v1.Health"),
            "{names:?}"
        );
    }
    server.stop().await;
}

/// The value of the first sample of `name` with all of `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|want| l.contains(want))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_endpoint_counts_requests_refusals_and_the_table_without_identifiers() {
    let server = TestServer::start_with(|c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().expect("valid"));
        c.quota.burst = 3;
    })
    .await;
    server.register("+12015550123", "label-secret", true).await;
    server.register("+12015550124", "label-other", false).await;
    let mut client = server
        .client_builder("account-secret")
        .connect()
        .await
        .expect("connects");
    client
        .discover(&["+12015550123"], us())
        .await
        .expect("discovers");
    let refused = client
        .discover(&["+12015550125", "+12015550126", "+12015550127"], us())
        .await
        .expect_err("over budget");
    assert!(matches!(
        refused,
        cds_client::ClientError::QuotaExceeded { .. }
    ));

    let m = server.metrics().await;
    assert_eq!(
        sample(
            &m,
            "cds_requests_total",
            &["rpc=\"Discover\"", "code=\"OK\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "cds_requests_total",
            &["rpc=\"Discover\"", "code=\"RESOURCE_EXHAUSTED\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "cds_limit_refusals_total",
            &["limit=\"account-budget\""]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&m, "cds_evaluated_elements_total", &[]), Some(1.0));
    assert_eq!(sample(&m, "cds_table_records", &[]), Some(1.0));
    assert_eq!(sample(&m, "cds_ready", &[]), Some(1.0));
    assert!(
        sample(
            &m,
            "cds_request_duration_seconds_count",
            &["rpc=\"Discover\""]
        ) >= Some(2.0)
    );
    assert!(sample(&m, "cds_evaluation_cpu_seconds_total", &[]) > Some(0.0));
    assert!(m.contains("cds_shed_requests_total"));
    assert!(m.contains("cds_table_build_seconds"));
    for secret in ["2015550", "label-", "account-secret", "127.0.0.1", "Bearer"] {
        assert!(!m.contains(secret), "metrics must not contain {secret}");
    }
    server.stop().await;
}

#[tokio::test]
async fn change_feed_pages_every_registry_change_in_order() {
    let server = TestServer::start().await;
    server.register("+12015550123", "alice", true).await;
    server.register("+12015550124", "bob", true).await;
    server.set_discoverable("+12015550123", false).await;
    server.unregister("+12015550124").await;
    let mut admin: AdminClient<_> = server.admin().await;

    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = admin
            .list_changes(ListChangesRequest { after, limit: 3 })
            .await
            .expect("lists")
            .into_inner();
        assert_eq!(page.oldest_retained, 1);
        if page.changes.is_empty() {
            assert_eq!(page.next_seq, 5);
            break;
        }
        for c in page.changes {
            after = c.seq;
            seen.push(match c.change.expect("content") {
                registry_change::Change::Upserted(u) => {
                    format!(
                        "{} {} {}",
                        u.e164,
                        String::from_utf8_lossy(&u.label),
                        u.discoverable
                    )
                }
                registry_change::Change::Removed(e164) => format!("{e164} removed"),
            });
        }
    }
    assert_eq!(
        seen,
        vec![
            "+12015550123 alice true",
            "+12015550124 bob true",
            "+12015550123 alice false",
            "+12015550124 removed",
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_lets_an_in_flight_request_finish_then_refuses_connections() {
    let mut server = TestServer::start_with(|c| c.quota.burst = 1_000_000).await;
    let params = server.client().await.params().clone();
    let numbers: Vec<E164> = german_mobiles(4_000, 0)
        .iter()
        .map(|n| E164::parse(n).expect("valid"))
        .collect();
    let p = prepare(
        numbers,
        &params,
        BucketSelection::Ids(vec![]),
        &mut rand::rng(),
    )
    .expect("prepares");
    let req = server.authed("a", p.message);
    let url = server.url();
    let mut rpc = DiscoveryClient::connect(url.clone())
        .await
        .expect("connects");
    let in_flight = tokio::spawn(async move { rpc.discover(req).await });
    // The request is being evaluated (4,000 elements take well over this).
    tokio::time::sleep(Duration::from_millis(30)).await;
    server.take().shutdown().await.expect("clean shutdown");
    let response = in_flight
        .await
        .expect("joins")
        .expect("the in-flight request is answered");
    p.state
        .finish(response.into_inner())
        .expect("a complete, verified response");
    assert!(
        DiscoveryClient::connect(url).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotation_cut_short_by_shutdown_stops_building_at_once_and_never_switches() {
    let mut server = TestServer::start().await;
    // Enough users that sealing them dominates the fsyncs of the stop.
    populate(&server, &german_mobiles(10_000, 0)).await;
    // How long a whole rotation takes here, to compare the stop against.
    let started = std::time::Instant::now();
    let before = server.rotate_key().await.epoch;
    let whole_rotation = started.elapsed();

    let mut admin = server.admin().await;
    let rotation = tokio::spawn(async move { admin.rotate_key(RotateKeyRequest {}).await });
    let next_key = server.dir.path().join(cds_server::keystore::NEXT_KEY_FILE);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !next_key.exists() {
        assert!(std::time::Instant::now() < deadline, "the rotation started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stopping = std::time::Instant::now();
    server.take().shutdown().await.expect("clean shutdown");
    let stop_took = stopping.elapsed();
    // The build gave up within a user per core instead of finishing, and
    // shutdown waited for the rotation request to end: the pending key is
    // already wiped and the store already released.
    assert!(
        stop_took < whole_rotation / 2,
        "shutdown took {stop_took:?}; a whole rotation {whole_rotation:?}"
    );
    assert!(
        rotation.await.expect("joins").is_err(),
        "no rotation completed"
    );
    assert!(!next_key.exists(), "the pending key is wiped");
    let restarted = cds_server::start(server.config.clone())
        .await
        .expect("restarts at once on the same store");
    let stats = AdminClient::connect(format!("http://{}", restarted.admin_addr()))
        .await
        .expect("connects")
        .stats(cds_proto::v1::StatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    assert_eq!((stats.epoch, stats.rotations), (before, 0));
    restarted.shutdown().await.expect("stops");
}

#[tokio::test]
async fn a_server_stopped_right_after_start_releases_its_store_every_time() {
    let mut server = TestServer::start().await;
    for _ in 0..10 {
        server.restart().await;
    }
    server.stop().await;
}
