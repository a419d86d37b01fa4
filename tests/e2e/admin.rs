//! The Admin API end to end: changes reach the very next Discover, state
//! survives restarts, bad input changes nothing.

use cds_proto::v1::{ImportRequest, RegisterRequest, SetDiscoverableRequest, User};
use cds_tests::{TestServer, german_mobiles, label_of, us};

const ALICE: &str = "+12015550123";

#[tokio::test]
async fn admin_changes_take_effect_on_the_next_discover() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let book = ["(201) 555-0123"];
    let lookup = |found: Vec<cds_client::Contact>| label_of(&found[0]);

    assert_eq!(
        lookup(client.discover(&book, us()).await.expect("discovers")),
        None
    );
    server.register(ALICE, "v1", true).await;
    assert_eq!(
        lookup(client.discover(&book, us()).await.expect("discovers")).as_deref(),
        Some("v1")
    );
    server.register(ALICE, "v2", true).await;
    assert_eq!(
        lookup(client.discover(&book, us()).await.expect("discovers")).as_deref(),
        Some("v2")
    );
    server.set_discoverable(ALICE, false).await;
    assert_eq!(
        lookup(client.discover(&book, us()).await.expect("discovers")),
        None
    );
    server.set_discoverable(ALICE, true).await;
    assert_eq!(
        lookup(client.discover(&book, us()).await.expect("discovers")).as_deref(),
        Some("v2")
    );
    server.unregister(ALICE).await;
    assert_eq!(
        lookup(client.discover(&book, us()).await.expect("discovers")),
        None
    );
    let stats = server.stats().await;
    assert_eq!((stats.registered, stats.discoverable), (0, 0));
    server.stop().await;
}

#[tokio::test]
async fn restart_keeps_users_key_and_results() {
    let mut server = TestServer::start().await;
    server.register(ALICE, "alice", true).await;
    server.register("+4915123456789", "bob", false).await;
    let before_key = server.client().await.params().public_key;
    let book = ["(201) 555-0123", "+49 1512 3456789"];
    let before = server.discover(&book).await;

    server.restart().await;

    let mut client = server.client().await;
    assert_eq!(client.params().public_key, before_key);
    let after = client.discover(&book, us()).await.expect("discovers");
    assert_eq!(before, after);
    assert_eq!(label_of(&after[0]).as_deref(), Some("alice"));
    let stats = server.stats().await;
    assert_eq!((stats.registered, stats.discoverable), (2, 1));
    server.stop().await;
}

#[tokio::test]
async fn bad_numbers_and_labels_are_rejected_and_change_nothing() {
    let server = TestServer::start().await;
    server.register(ALICE, "alice", true).await;
    let mut admin = server.admin().await;
    for (e164, label) in [
        ("2015550123", b"x".to_vec()),
        ("+1 201 555 0124", b"x".to_vec()),
        ("+0123456789", b"x".to_vec()),
        ("", b"x".to_vec()),
        ("+12015550124", vec![b'x'; 65]),
    ] {
        let err = admin
            .register(RegisterRequest {
                user: Some(User {
                    e164: e164.into(),
                    label: label.into(),
                    discoverable: true,
                }),
            })
            .await
            .expect_err("invalid input");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{e164:?}");
        assert!(
            e164.is_empty() || !err.message().contains(e164),
            "no echo of the number: {}",
            err.message()
        );
        assert!(
            !err.message().contains("0124") && !err.message().contains("201"),
            "{}",
            err.message()
        );
    }
    let missing = admin
        .register(RegisterRequest { user: None })
        .await
        .expect_err("no user");
    assert_eq!(missing.code(), tonic::Code::InvalidArgument);
    let unknown = admin
        .set_discoverable(SetDiscoverableRequest {
            e164: "+12015550199".into(),
            discoverable: true,
        })
        .await
        .expect_err("not registered");
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let stats = server.stats().await;
    assert_eq!((stats.registered, stats.discoverable), (1, 1));
    let found = server.discover(&[ALICE]).await;
    assert_eq!(label_of(&found[0]).as_deref(), Some("alice"));
    server.stop().await;
}

#[tokio::test]
async fn import_applies_good_rows_and_reports_bad_ones_by_row() {
    let server = TestServer::start().await;
    let numbers = german_mobiles(250, 0);
    let mut rows: Vec<User> = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| User {
            e164: n.clone(),
            label: format!("id-{i}").into_bytes().into(),
            discoverable: i % 2 == 0,
        })
        .collect();
    rows[7].e164 = "not a number".into();
    rows[120].label = vec![0u8; 100].into();
    let chunks: Vec<ImportRequest> = rows
        .chunks(100)
        .map(|c| ImportRequest { users: c.to_vec() })
        .collect();

    let summary = server
        .admin()
        .await
        .import(tokio_stream_iter(chunks))
        .await
        .expect("import runs")
        .into_inner();
    assert_eq!(summary.received, 250);
    assert_eq!(summary.created, 248);
    assert_eq!(summary.rejected, 2);
    let bad_rows: Vec<u64> = summary.errors.iter().map(|e| e.row).collect();
    assert_eq!(bad_rows, vec![7, 120]);

    let stats = server.stats().await;
    assert_eq!(stats.registered, 248);
    assert_eq!(stats.discoverable, 124);
    let found = server.discover(&numbers).await;
    assert_eq!(label_of(&found[0]).as_deref(), Some("id-0"));
    assert_eq!(label_of(&found[1]), None);
    assert_eq!(label_of(&found[7]), None);
    assert_eq!(label_of(&found[120]), None);
    assert_eq!(found.iter().filter(|c| label_of(c).is_some()).count(), 124);
    server.stop().await;
}

fn tokio_stream_iter(
    items: Vec<ImportRequest>,
) -> impl tonic::IntoStreamingRequest<Message = ImportRequest> {
    tokio_stream::iter(items)
}

#[tokio::test]
async fn with_an_admin_token_admin_calls_without_it_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("admin.token");
    cds_server::admin_token::create(&token_file).expect("writes a token");
    let token = std::fs::read_to_string(&token_file).expect("reads");
    let server = TestServer::start_with(|c| {
        c.admin_token_file = Some(token_file.clone());
        c.metrics_listen = Some("127.0.0.1:0".parse().expect("valid"));
    })
    .await;
    let mut admin = server.admin().await;
    let register = |value: Option<String>| {
        let mut request = tonic::Request::new(RegisterRequest {
            user: Some(User {
                e164: ALICE.into(),
                label: b"alice".to_vec().into(),
                discoverable: true,
            }),
        });
        if let Some(v) = value {
            request
                .metadata_mut()
                .insert("authorization", v.parse().expect("ASCII"));
        }
        request
    };

    let refused = [
        None,
        Some("Bearer not-the-token-but-long-enough-to-look-like-one".to_owned()),
        Some(format!("Bearer {}x", token.trim())),
        Some(token.trim().to_owned()),
    ];
    for value in refused {
        let status = admin.register(register(value)).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(!status.message().contains(token.trim()));
    }
    let stats = admin
        .stats(cds_proto::v1::StatsRequest {})
        .await
        .expect_err("reading needs the token too");
    assert_eq!(stats.code(), tonic::Code::Unauthenticated);
    assert_eq!(label_of(&server.discover(&[ALICE]).await[0]), None);
    assert!(
        server
            .metrics()
            .await
            .contains("cds_admin_auth_refusals_total 5\n"),
        "every refusal is counted"
    );

    admin
        .register(register(Some(format!("Bearer {}", token.trim()))))
        .await
        .expect("the token lets the call through");
    assert_eq!(
        label_of(&server.discover(&[ALICE]).await[0]).as_deref(),
        Some("alice")
    );

    // Probes need no token: health answers on the Admin listener.
    let health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Channel::from_shared(server.admin_url())
            .expect("valid URL")
            .connect()
            .await
            .expect("connects"),
    )
    .check(tonic_health::pb::HealthCheckRequest {
        service: "cds.v1.Admin".into(),
    })
    .await
    .expect("health answers without the token")
    .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}
