//! Several replicas sharing Redis budgets: real servers on 127.0.0.1, the
//! real client, the Redis of `CDS_TEST_REDIS_URL`. Without that variable
//! the tests print that they were skipped and pass. Each test uses its own
//! key prefix, so tests (and test runs) never share a budget.

use std::time::Duration;

use cds_client::ClientError;
use cds_core::CredentialIssuer;
use cds_tests::proxy::{TcpProxy, service_addr};
use cds_tests::services::redis_url;
use cds_tests::{TEST_ACCOUNT, TestServer, german_mobiles, label_of, us};

/// A key prefix no other test or run uses.
fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("cds-test:{test}:{}:{nanos}:", std::process::id())
}

/// What `server` answers [`TEST_ACCOUNT`] for `book`, with a fresh client
/// (nothing cached, so every number is evaluated and charged).
async fn discover(server: &TestServer, book: &[String]) -> Result<usize, ClientError> {
    let mut client = server
        .client_builder(TEST_ACCOUNT)
        .connect()
        .await
        .expect("client connects");
    client.discover(book, us()).await.map(|found| found.len())
}

#[tokio::test]
async fn a_credential_spread_over_three_replicas_gets_one_budget_and_restarts_refund_nothing() {
    let test = "one_budget";
    let Some(url) = redis_url(test) else { return };
    let prefix = unique_prefix(test);
    let issuer = CredentialIssuer::generate(&mut rand::rng());
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let issuer = CredentialIssuer::from_seed(&issuer.to_seed());
        replicas.push(
            TestServer::start_trusting(issuer, |c| {
                c.budgets = Some(url.clone());
                c.budgets_key_prefix = prefix.clone();
                c.quota.burst = 9;
                c.quota.refill_per_hour = 0.0;
            })
            .await,
        );
    }
    // Three evaluations on each replica: the one budget of nine is spent.
    for (i, replica) in replicas.iter().enumerate() {
        let book = german_mobiles(3, 3 * i);
        assert_eq!(discover(replica, &book).await.expect("within budget"), 3);
    }
    // Each replica alone would still have six; together they have none.
    for (i, replica) in replicas.iter().enumerate() {
        let refused = discover(replica, &german_mobiles(1, 100 + i)).await;
        assert!(
            matches!(refused, Err(ClientError::QuotaExceeded { .. })),
            "replica {i} must refuse: {refused:?}"
        );
    }
    for replica in &mut replicas {
        replica.restart().await;
    }
    for (i, replica) in replicas.iter().enumerate() {
        let refused = discover(replica, &german_mobiles(1, 200 + i)).await;
        assert!(
            matches!(refused, Err(ClientError::QuotaExceeded { .. })),
            "replica {i} must still refuse after the restart: {refused:?}"
        );
    }
    // Another account has its own budget, on any replica.
    let mut other = replicas[2]
        .client_builder("another-account")
        .connect()
        .await
        .expect("client connects");
    other
        .discover(&german_mobiles(9, 300), us())
        .await
        .expect("a fresh budget");
    for replica in replicas {
        replica.stop().await;
    }
}

#[tokio::test]
async fn while_redis_is_cut_discovery_is_refused_cleanly_and_recovers_by_itself() {
    let test = "redis_cut";
    let Some(url) = redis_url(test) else { return };
    let proxy = TcpProxy::start(service_addr(&url).await).await;
    let server = TestServer::start_with(|c| {
        c.budgets = Some(format!("redis://{}", proxy.addr()));
        c.budgets_key_prefix = unique_prefix(test);
    })
    .await;
    server.register("+12015550123", "alice-id", true).await;
    let book = vec!["+12015550123".to_owned()];
    assert_eq!(discover(&server, &book).await.expect("served"), 1);

    let evaluated = server.stats().await.evaluated_elements;
    proxy.cut();
    let refused = discover(&server, &book).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Unavailable {
                retry_after: Some(_),
                ..
            })
        ),
        "UNAVAILABLE with a retry-after while Redis is cut: {refused:?}"
    );
    assert_eq!(
        server.stats().await.evaluated_elements,
        evaluated,
        "nothing evaluated while the budget cannot be checked"
    );

    proxy.restore();
    // Within a minute (the connection is re-made on a later request).
    let mut found = None;
    for _ in 0..120 {
        match server.client().await.discover(&book, us()).await {
            Ok(contacts) => {
                found = Some(contacts);
                break;
            }
            Err(ClientError::Unavailable { .. }) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(other) => panic!("only UNAVAILABLE while Redis returns, not {other:?}"),
        }
    }
    let found = found.expect("discovery recovers once Redis is back");
    assert_eq!(label_of(&found[0]).as_deref(), Some("alice-id"));
    server.stop().await;
}
