//! Several replicas sharing one PostgreSQL registry: real servers on
//! 127.0.0.1, the real client, the PostgreSQL of `CDS_TEST_POSTGRES_URL`.
//! Without that variable the tests print that they were skipped and pass.
//! Each test uses its own schema, so tests and runs never share a registry.
//! Replicas share the OPRF keys wrapped in the database under one KEK file.

use std::time::{Duration, Instant};

use cds_core::CredentialIssuer;
use cds_core::contacts_only::IssuerSecret;
use cds_proto::v1::Discoverability;
use cds_tests::proxy::{TcpProxy, service_addr};
use cds_tests::services::postgres_url;
use cds_tests::{TestServer, german_mobiles, label_of, private_tempdir, upload_allow_list, us};

/// How long a change made through one replica may take to be served by
/// every other (the follower polls every 500 ms and wakes on NOTIFY).
const CONVERGENCE: Duration = Duration::from_secs(3);

/// A schema name no other test or run uses.
fn unique_schema(test: &str) -> String {
    cds_tests::services::unique_schema("cds_it", test)
}

/// `n` replicas on `url` in `schema`, sharing one issuer and one OPRF key;
/// the data directories they really use are returned alongside.
async fn replicas(n: usize, url: &str, schema: &str) -> (Vec<TestServer>, Vec<tempfile::TempDir>) {
    replicas_with(n, url, schema, |_| {}).await
}

/// [`replicas`], each configured further by `extra`.
async fn replicas_with(
    n: usize,
    url: &str,
    schema: &str,
    extra: impl Fn(&mut cds_server::ServerConfig),
) -> (Vec<TestServer>, Vec<tempfile::TempDir>) {
    let issuer = CredentialIssuer::generate(&mut rand::rng());
    // The OPRF keys live in the database, wrapped under one KEK file that
    // every replica reads.
    let kek_dir = private_tempdir();
    let kek = kek_dir.path().join("kek");
    cds_server::postgres::keys::Kek::create(&kek).expect("creates the KEK file");
    let adjust = |c: &mut cds_server::ServerConfig| {
        extra(c);
        c.key_encryption_key_file = Some(kek.clone());
        c.registry = Some(url.to_owned());
        c.registry_schema = Some(schema.to_owned());
        // The tests poll until a change is served: never short of budget.
        c.quota.burst = 100_000_000;
    };
    let first =
        TestServer::start_trusting(CredentialIssuer::from_seed(&issuer.to_seed()), adjust).await;
    let mut servers = vec![first];
    let mut dirs = vec![kek_dir];
    for _ in 1..n {
        let dir = private_tempdir();
        let path = dir.path().to_owned();
        servers.push(
            TestServer::start_trusting(CredentialIssuer::from_seed(&issuer.to_seed()), |c| {
                adjust(c);
                c.data_dir = path;
            })
            .await,
        );
        dirs.push(dir);
    }
    (servers, dirs)
}

/// The labels `server` serves for `book`, in book order (`None` when not found).
async fn labels(server: &TestServer, book: &[String]) -> Vec<Option<String>> {
    let found = server.discover(book).await;
    assert_eq!(found.len(), book.len(), "one answer per entry");
    found.iter().map(label_of).collect()
}

/// Poll `server` until it serves `want` for `book`; how long that took, or
/// a failure naming the replica once `CONVERGENCE` has passed.
async fn until_served(
    server: &TestServer,
    replica: usize,
    book: &[String],
    want: &[Option<String>],
    since: Instant,
) -> Duration {
    loop {
        if labels(server, book).await == want {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < CONVERGENCE,
            "replica {replica} did not serve the change within {CONVERGENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn users(book: &[String], tag: &str) -> Vec<cds_proto::v1::User> {
    book.iter()
        .map(|n| cds_proto::v1::User {
            e164: n.clone(),
            label: format!("{tag}{n}").into_bytes().into(),
            discoverable: true,
        })
        .collect()
}

async fn drop_schema(url: &str, schema: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connects to PostgreSQL");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("drops the test schema");
}

#[tokio::test]
async fn three_replicas_serve_a_registration_and_an_opt_out_made_through_one_within_three_seconds()
{
    let test = "three";
    let Some(url) = postgres_url(test) else {
        return;
    };
    let schema = unique_schema(test);
    let (servers, _dirs) = replicas(3, &url, &schema).await;
    let book = german_mobiles(4, 0);

    // Registered through replica 0: every replica serves it.
    servers[0].register(&book[0], "alice", true).await;
    servers[0].register(&book[1], "bob", true).await;
    let want = vec![Some("alice".to_owned()), Some("bob".to_owned()), None, None];
    let since = Instant::now();
    for (i, s) in servers.iter().enumerate() {
        let took = until_served(s, i, &book, &want, since).await;
        assert!(took < CONVERGENCE);
    }

    // An opt-out through replica 1 and a removal through replica 2.
    servers[1].set_discoverable(&book[0], false).await;
    servers[2].unregister(&book[1]).await;
    let none = vec![None; 4];
    let since = Instant::now();
    for (i, s) in servers.iter().enumerate() {
        until_served(s, i, &book, &none, since).await;
    }

    // A batch through replica 2: identical answers everywhere.
    servers[2].import(users(&book[2..], "x")).await;
    let want: Vec<Option<String>> = vec![
        None,
        None,
        Some(format!("x{}", book[2])),
        Some(format!("x{}", book[3])),
    ];
    let since = Instant::now();
    for (i, s) in servers.iter().enumerate() {
        until_served(s, i, &book, &want, since).await;
    }
    let answers = answers_of(&servers, &book).await;
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    drop_schema(&url, &schema).await;
}

async fn answers_of(servers: &[TestServer], book: &[String]) -> Vec<Vec<Option<String>>> {
    let mut out = Vec::new();
    for s in servers {
        out.push(labels(s, book).await);
    }
    out
}

#[tokio::test]
async fn a_replica_started_later_builds_from_the_snapshot_and_follows_the_feed_after_it() {
    let test = "late";
    let Some(url) = postgres_url(test) else {
        return;
    };
    let schema = unique_schema(test);
    let (mut servers, _dirs) = replicas(2, &url, &schema).await;
    let book = german_mobiles(300, 1000);
    servers[0].import(users(&book[..200], "a")).await;
    // Replica 1 restarts: it builds from a snapshot, then follows.
    servers[1].restart().await;
    servers[0].import(users(&book[200..], "b")).await;
    let want: Vec<Option<String>> = book
        .iter()
        .enumerate()
        .map(|(i, n)| Some(format!("{}{n}", if i < 200 { "a" } else { "b" })))
        .collect();
    until_served(&servers[1], 1, &book, &want, Instant::now()).await;
    assert_eq!(servers[1].stats().await.registered, 300);
    drop_schema(&url, &schema).await;
}

#[tokio::test]
async fn postgres_cut_in_the_middle_of_an_import_loses_and_duplicates_nothing() {
    let test = "cut";
    let Some(url) = postgres_url(test) else {
        return;
    };
    let schema = unique_schema(test);
    let proxy = TcpProxy::start(service_addr(&url).await).await;
    let proxied = {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (userinfo, tail) = match rest.rsplit_once('@') {
            Some((u, t)) => (format!("{u}@"), t),
            None => (String::new(), rest),
        };
        let path = tail.find('/').map_or("", |i| &tail[i..]);
        format!("{scheme}://{userinfo}{}{path}", proxy.addr())
    };
    let (servers, _dirs) = replicas(2, &proxied, &schema).await;
    let book = german_mobiles(20_000, 50_000);
    let intended = users(&book, "c");

    // The import runs in batches; the database goes away under it.
    let importing = {
        let mut admin = servers[0].admin().await;
        let batch = intended.clone();
        tokio::spawn(async move {
            admin
                .import(tokio_stream::iter(
                    batch
                        .chunks(500)
                        .map(|c| cds_proto::v1::ImportRequest { users: c.to_vec() })
                        .collect::<Vec<_>>(),
                ))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    let interrupted = importing.await.expect("the import task ends");
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.restore();
    assert!(
        interrupted.is_err(),
        "the import must have been interrupted by the cut (make the import larger if it finished first)"
    );

    // Re-running the import yields exactly the intended registry.
    let mut again = None;
    for _ in 0..50 {
        let r = servers[0]
            .admin()
            .await
            .import(tokio_stream::iter(
                intended
                    .chunks(500)
                    .map(|c| cds_proto::v1::ImportRequest { users: c.to_vec() })
                    .collect::<Vec<_>>(),
            ))
            .await;
        if let Ok(r) = r {
            again = Some(r.into_inner());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let again = again.expect("the import succeeds once PostgreSQL is back");
    assert_eq!(again.received, 20_000);
    assert_eq!(again.rejected, 0);
    assert_eq!(servers[0].stats().await.registered, 20_000);

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), count(DISTINCT number), \
                 count(*) FILTER (WHERE label <> convert_to('c+' || number::text, 'UTF8')) \
                 FROM {schema}.users"
            ),
            &[],
        )
        .await
        .expect("counts");
    let (rows, distinct, wrong): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((rows, distinct, wrong), (20_000, 20_000, 0));

    // Both replicas serve exactly that registry (a sample of it).
    let sample: Vec<String> = book.iter().step_by(997).cloned().collect();
    let want: Vec<Option<String>> = sample.iter().map(|n| Some(format!("c{n}"))).collect();
    for (i, s) in servers.iter().enumerate() {
        until_served(s, i, &sample, &want, Instant::now()).await;
    }
    drop(client);
    drop_schema(&url, &schema).await;
}

/// What `finder` (holding its identity keys) is served for `owner` by `server`.
async fn finds(
    server: &TestServer,
    issuer: &IssuerSecret,
    finder: &str,
    owner: &str,
) -> Option<String> {
    let keys = issuer.issue(&cds_core::E164::parse(finder).expect("valid"));
    let found = server
        .client_builder(&format!("acct-{finder}"))
        .identity_keys(keys)
        .connect()
        .await
        .expect("connects")
        .discover(&[owner], us())
        .await
        .expect("discovers");
    label_of(&found[0])
}

/// Poll until every replica serves `want` to each finder for `owner`.
async fn until_found_everywhere(
    servers: &[TestServer],
    issuer: &IssuerSecret,
    owner: &str,
    want: &[(&str, Option<&str>)],
) {
    let since = Instant::now();
    for (i, server) in servers.iter().enumerate() {
        for (finder, label) in want {
            loop {
                if finds(server, issuer, finder, owner).await.as_deref() == *label {
                    break;
                }
                assert!(
                    since.elapsed() < CONVERGENCE,
                    "replica {i} did not serve the allow-list change within {CONVERGENCE:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn an_allow_list_uploaded_changed_and_withdrawn_through_one_replica_is_followed_by_every_replica()
 {
    let test = "lists";
    let Some(url) = postgres_url(test) else {
        return;
    };
    let schema = unique_schema(test);
    let issuer = IssuerSecret::generate(&mut rand::rng());
    let public = *issuer.public_key();
    let (servers, _dirs) =
        replicas_with(3, &url, &schema, |c| c.contacts_issuer = Some(public)).await;
    const A: &str = "+12015550123";
    const B: &str = "+4915123456789";
    const C: &str = "+442079460958";
    servers[0].register(A, "alice", false).await;
    servers[0].register(B, "bob", true).await;
    servers[0].register(C, "carol", true).await;
    servers[0].set_mode(A, Discoverability::Contacts).await;

    let upload = |server: &TestServer, allowed: &'static [&'static str]| {
        let keys = issuer.issue(&cds_core::E164::parse(A).expect("valid"));
        let builder = server.client_builder("acct-a").identity_keys(keys);
        async move {
            let mut a = builder.connect().await.expect("connects");
            upload_allow_list(&mut a, allowed, "alice-cts").await;
        }
    };

    // Uploaded through replica 0: B finds A through every replica, C does not.
    upload(&servers[0], &[B]).await;
    until_found_everywhere(&servers, &issuer, A, &[(B, Some("alice-cts")), (C, None)]).await;

    // Replaced through replica 1 (B out, C in): the old pair records are
    // withdrawn everywhere, the new ones placed everywhere.
    tokio::time::sleep(Duration::from_millis(5)).await;
    upload(&servers[1], &[C]).await;
    until_found_everywhere(&servers, &issuer, A, &[(B, None), (C, Some("alice-cts"))]).await;

    // Switched to nobody through replica 2: nobody finds A anywhere.
    servers[2].set_mode(A, Discoverability::Nobody).await;
    until_found_everywhere(&servers, &issuer, A, &[(B, None), (C, None)]).await;

    // Back to contacts-only with a new list: served everywhere again.
    servers[1].set_mode(A, Discoverability::Contacts).await;
    upload(&servers[1], &[B]).await;
    until_found_everywhere(&servers, &issuer, A, &[(B, Some("alice-cts")), (C, None)]).await;

    for s in servers {
        s.stop().await;
    }
    drop_schema(&url, &schema).await;
}

/// The value of the unlabelled series `name` in `server`'s `/metrics`.
async fn metric(server: &TestServer, name: &str) -> f64 {
    let body = server.metrics().await;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is exported"))
}

/// Poll until `server` reports `want` table rebuilds from a snapshot.
async fn until_rebuilds(server: &TestServer, replica: usize, want: f64) {
    let since = Instant::now();
    loop {
        let now = metric(server, "cds_feed_rebuilds_total").await;
        if now == want {
            return;
        }
        assert!(
            since.elapsed() < CONVERGENCE,
            "replica {replica} reports {now} rebuilds, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An E.164 string's digits, as the registry's tables store them.
fn digits(e164: &str) -> i64 {
    e164.trim_start_matches('+').parse().expect("digits")
}

#[tokio::test]
async fn a_replica_whose_feed_position_was_pruned_rebuilds_from_a_snapshot_and_serves_the_gap_without_restart()
 {
    let test = "pruned";
    let Some(url) = postgres_url(test) else {
        return;
    };
    let schema = unique_schema(test);
    let (servers, _dirs) = replicas_with(2, &url, &schema, |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let book = german_mobiles(7, 3000);
    let name = |i: usize| Some(["alice", "bob", "carol", "dave", "erin", "frank"][i].to_owned());
    servers[0].register(&book[0], "alice", true).await;
    servers[0].register(&book[1], "bob", true).await;
    let want = vec![name(0), name(1), None, None, None, None, None];
    for (i, s) in servers.iter().enumerate() {
        until_served(s, i, &book, &want, Instant::now()).await;
        assert_eq!(metric(s, "cds_feed_rebuilds_total").await, 0.0);
    }

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    // Carol registered and Bob removed, their entries pruned (with every
    // earlier one) before any replica read them: one transaction, so no
    // replica can read the feed in between. The feed is left empty, its
    // head past every replica's position.
    client
        .batch_execute(&format!(
            "BEGIN; \
             INSERT INTO {schema}.users VALUES ({carol}, convert_to('carol', 'UTF8'), true); \
             DELETE FROM {schema}.users WHERE number = {bob}; \
             UPDATE {schema}.feed_head SET next_seq = next_seq + 2; \
             DELETE FROM {schema}.changes; \
             COMMIT;",
            carol = digits(&book[2]),
            bob = digits(&book[1]),
        ))
        .await
        .expect("writes the gap");
    let want = vec![name(0), None, name(2), None, None, None, None];
    for (i, s) in servers.iter().enumerate() {
        until_served(s, i, &book, &want, Instant::now()).await;
        until_rebuilds(s, i, 1.0).await;
    }

    // A hole with the feed going on after it: Dave's entry pruned, Erin's
    // kept. Every replica rebuilds again and serves both.
    client
        .batch_execute(&format!(
            "BEGIN; \
             INSERT INTO {schema}.users VALUES \
               ({dave}, convert_to('dave', 'UTF8'), true), ({erin}, convert_to('erin', 'UTF8'), true); \
             INSERT INTO {schema}.changes (seq, at_unix, kind, number, label, discoverable) \
               SELECT next_seq + 1, extract(epoch from now())::bigint, 1, {erin}, \
                      convert_to('erin', 'UTF8'), true FROM {schema}.feed_head; \
             UPDATE {schema}.feed_head SET next_seq = next_seq + 2; \
             COMMIT;",
            dave = digits(&book[3]),
            erin = digits(&book[4]),
        ))
        .await
        .expect("writes the hole");
    let want = vec![name(0), None, name(2), name(3), name(4), None, None];
    for (i, s) in servers.iter().enumerate() {
        until_served(s, i, &book, &want, Instant::now()).await;
        until_rebuilds(s, i, 2.0).await;
    }

    // From the snapshot's mark on, each follows the feed again: a write
    // through one is served by the other, without another rebuild.
    servers[0].register(&book[5], "frank", true).await;
    servers[1].unregister(&book[0]).await;
    let want = vec![None, None, name(2), name(3), name(4), name(5), None];
    for (i, s) in servers.iter().enumerate() {
        until_served(s, i, &book, &want, Instant::now()).await;
        assert_eq!(metric(s, "cds_feed_rebuilds_total").await, 2.0);
    }
    drop(client);
    drop_schema(&url, &schema).await;
}
