//! Replicas sharing their OPRF keys through PostgreSQL (`registry`,
//! `key_encryption_key_file`): real servers on 127.0.0.1, the real client,
//! the PostgreSQL of `CDS_TEST_POSTGRES_URL`. Without that variable the
//! tests print that they were skipped and pass. Each test uses a schema of
//! its own, dropped at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cds_core::{CredentialIssuer, KeyPair, Mode, PublicKey};
use cds_server::ServerError;
use cds_server::postgres::keys::{Kek, KeyState};
use cds_tests::services::postgres_url;
use cds_tests::{TestServer, german_mobiles, private_tempdir, test_config, us};

/// A schema name no other test or run uses.
fn unique_schema(test: &str) -> String {
    cds_tests::services::unique_schema("cds_keys", test)
}

/// One deployment: its database, schema, KEK file and issuer.
struct Deployment {
    url: String,
    schema: String,
    kek_dir: tempfile::TempDir,
    issuer: CredentialIssuer,
}

impl Deployment {
    fn new(url: String, test: &str) -> Self {
        let kek_dir = private_tempdir();
        Kek::create(&kek_dir.path().join("kek")).expect("creates the KEK file");
        Self {
            url,
            schema: unique_schema(test),
            kek_dir,
            issuer: CredentialIssuer::generate(&mut rand::rng()),
        }
    }

    fn kek_path(&self) -> std::path::PathBuf {
        self.kek_dir.path().join("kek")
    }

    fn configure(&self, c: &mut cds_server::ServerConfig) {
        c.registry = Some(self.url.clone());
        c.registry_schema = Some(self.schema.clone());
        c.key_encryption_key_file = Some(self.kek_path());
        c.quota.burst = 1_000_000;
        c.quota.refill_per_hour = 0.0;
        c.quota.max_in_flight = 64;
        c.metrics_listen = Some("127.0.0.1:0".parse().expect("valid address"));
    }

    async fn replica(&self) -> TestServer {
        let issuer = CredentialIssuer::from_seed(&self.issuer.to_seed());
        TestServer::start_trusting(issuer, |c| self.configure(c)).await
    }

    /// Three replicas started together (they race for the first key).
    async fn three_replicas(&self) -> Vec<TestServer> {
        let (a, b, c) = tokio::join!(self.replica(), self.replica(), self.replica());
        vec![a, b, c]
    }

    async fn sql(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connects to PostgreSQL");
        tokio::spawn(conn);
        client
    }

    async fn drop_schema(&self) {
        self.sql()
            .await
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await
            .expect("drops the test schema");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_starting_together_on_an_empty_database_serve_one_epoch_and_key() {
    let test = "same_epoch";
    let Some(url) = postgres_url(test) else {
        return;
    };
    let d = Deployment::new(url, test);
    let replicas = d.three_replicas().await;
    let keys = public_keys(&replicas).await;
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "one key: {keys:?}");
    let rows: i64 = d
        .sql()
        .await
        .query_one(
            &format!("SELECT count(*) FROM {}.key_epochs", d.schema),
            &[],
        )
        .await
        .expect("counts keys")
        .get(0);
    assert_eq!(rows, 1, "exactly one replica created the key");
    // A replica started later loads the same key.
    let late = d.replica().await;
    assert_eq!(late.public_key().await, keys[0]);
    for r in replicas {
        r.stop().await;
    }
    late.stop().await;
    d.drop_schema().await;
}

async fn public_keys(replicas: &[TestServer]) -> Vec<PublicKey> {
    let mut keys = Vec::new();
    for r in replicas {
        keys.push(r.public_key().await);
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_with_another_or_a_missing_kek_refuses_to_start() {
    let test = "wrong_kek";
    let Some(url) = postgres_url(test) else {
        return;
    };
    let d = Deployment::new(url, test);
    let first = d.replica().await;

    let other = private_tempdir();
    Kek::create(&other.path().join("kek")).expect("creates another KEK");
    let dir = private_tempdir();
    let mut config = test_config(dir.path(), &d.issuer);
    d.configure(&mut config);
    config.key_encryption_key_file = Some(other.path().join("kek"));
    let refused = cds_server::start(config.clone()).await;
    match refused {
        Err(e @ ServerError::WrongKeyEncryptionKey { .. }) => {
            assert!(
                e.to_string().contains("--key-encryption-key-file"),
                "the error says what to do: {e}"
            );
        }
        Err(e) => panic!("expected WrongKeyEncryptionKey, got {e}"),
        Ok(_) => panic!("a replica with another KEK must not start"),
    }
    config.key_encryption_key_file = Some(other.path().join("missing"));
    match cds_server::start(config).await {
        Err(ServerError::KeyEncryptionKeyFile { .. }) => {}
        Err(e) => panic!("expected KeyEncryptionKeyFile, got {e}"),
        Ok(_) => panic!("a replica without its KEK file must not start"),
    }
    first.stop().await;
    d.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dump_of_the_keys_table_holds_no_secret_key_but_opens_with_the_kek() {
    let test = "dump";
    let Some(url) = postgres_url(test) else {
        return;
    };
    let d = Deployment::new(url, test);
    let replica = d.replica().await;
    let served = replica.public_key().await;
    let sql = d.sql().await;
    let dump = sql
        .query(
            &format!(
                "SELECT epoch, public_key, state, wrapped, created_unix, switched_unix, \
                 (SELECT string_agg(t::text, ',') FROM {s}.key_epochs t) FROM {s}.key_epochs",
                s = d.schema
            ),
            &[],
        )
        .await
        .expect("dumps the keys table");
    assert_eq!(dump.len(), 1);
    let row = &dump[0];
    let epoch: i64 = row.get(0);
    let public: Vec<u8> = row.get(1);
    let state: i16 = row.get(2);
    let wrapped: Vec<u8> = row.get(3);
    let text: String = row.get(6);
    assert_eq!(public, served.as_bytes().to_vec());
    assert_eq!(state, KeyState::Current as i16);

    // With the KEK, the dump yields the key that serves.
    let kek = Kek::read(&d.kek_path()).expect("reads the KEK");
    let seed = kek
        .unwrap(&wrapped, epoch as u64, &served, KeyState::Current)
        .expect("the KEK opens the dumped key");
    let key = KeyPair::derive(Mode::Voprf, &seed, cds_server::keystore::KEY_INFO).expect("derives");
    assert_eq!(key.public(), &served);

    // Without it, neither the seed nor the secret scalar appears anywhere.
    let secret = key.secret().to_bytes();
    let mut bytes = public.clone();
    bytes.extend_from_slice(&wrapped);
    bytes.extend_from_slice(text.as_bytes());
    for needle in [seed.as_slice(), secret.as_slice()] {
        assert!(
            !bytes.windows(32).any(|w| w == needle),
            "secret in the dump"
        );
        let hex = hex_lower(needle);
        assert!(!text.contains(&hex), "secret in the dump as hex");
    }
    replica.stop().await;
    d.drop_schema().await;
}

/// Discover calls answered with any status but OK, from a metrics page.
fn discover_refusals(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("cds_requests_total{")
                && l.contains("rpc=\"Discover\"")
                && !l.contains("code=\"OK\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotation_across_three_replicas_under_load_fails_no_request_and_ends_on_one_new_epoch() {
    let test = "rotation";
    let Some(url) = postgres_url(test) else {
        return;
    };
    let d = Deployment::new(url, test);
    let replicas = d.three_replicas().await;
    // Each replica's own registry holds the same users.
    let registered = german_mobiles(40, 0);
    for r in &replicas {
        for (i, n) in registered.iter().enumerate() {
            r.register(n, &format!("u{i}"), true).await;
        }
    }
    let before = replicas[0].public_key().await;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut loops = Vec::new();
    for (i, r) in replicas.iter().enumerate() {
        for j in 0..2 {
            let fresh = j == 1;
            let builder = r.client_builder(&format!("load-{i}-{j}"));
            let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
            let book_base = 1_000 * (i * 2 + j);
            loops.push(tokio::spawn(async move {
                let mut client = builder.clone().connect().await.expect("connects");
                let mut round = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    if fresh {
                        // A new client each time: GetConfig, then Discover.
                        client = builder.clone().connect().await.expect("connects");
                    }
                    // Half known numbers, half new ones (evaluated afresh).
                    let mut book = german_mobiles(5, round % 35);
                    book.extend(german_mobiles(5, book_base + round * 5 + 100_000));
                    match client.discover(&book, us()).await {
                        Ok(found) => {
                            let matched = found
                                .iter()
                                .filter(|c| cds_tests::label_of(c).is_some())
                                .count();
                            if matched == 5 {
                                ok.fetch_add(1, Ordering::Relaxed);
                            } else {
                                failed
                                    .lock()
                                    .expect("lock")
                                    .push(format!("found {matched} of 5"));
                            }
                        }
                        Err(e) => failed.lock().expect("lock").push(e.to_string()),
                    }
                    round += 1;
                }
            }));
        }
    }
    // Load before, during and after the rotation.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rotated = replicas[1].rotate_key().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.expect("load loop");
    }
    let failed = failed.lock().expect("lock").clone();
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(
        ok.load(Ordering::Relaxed) >= 6,
        "the load ran: {}",
        ok.load(Ordering::Relaxed)
    );
    // Not one Discover was refused by any replica (the client would have
    // retried a refusal for another epoch: count them where they happen).
    for (i, r) in replicas.iter().enumerate() {
        let refused = discover_refusals(&r.metrics().await);
        assert_eq!(refused, 0, "replica {i} refused {refused} Discover calls");
    }
    let after = public_keys(&replicas).await;
    assert!(
        after.iter().all(|k| *k == after[0]),
        "one key after: {after:?}"
    );
    assert_ne!(after[0], before, "the key changed");
    assert_eq!(
        rotated.epoch,
        cds_server::keystore::epoch_id(&after[0]),
        "every replica serves the epoch the rotation reported"
    );
    for r in replicas {
        r.stop().await;
    }
    d.drop_schema().await;
}
