//! # cds-tests: the end-to-end harness
//!
//! [`TestServer`] starts a real cds server on `127.0.0.1` with ephemeral
//! ports in a temporary data directory; tests talk to it with the real
//! client library and the real Admin API.
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::unwrap_used)]

use cds_client::{Client, ClientBuilder, Contact, Region};
use cds_core::{AccountId, CredentialIssuer};
use cds_proto::v1::admin_client::AdminClient;
use cds_proto::v1::{
    AnnounceNextKeyRequest, AnnounceNextKeyResponse, Discoverability, ProfileRequest,
    ProfileResponse, RegisterRequest, RotateKeyRequest, RotateKeyResponse,
    SetDiscoverabilityRequest, SetDiscoverableRequest, StatsRequest, StatsResponse,
    UnregisterRequest, User,
};
use cds_server::{RunningServer, ServerConfig};
use tonic::transport::Channel;

pub mod pki;
pub mod proxy;
pub mod raw;
pub mod services;
pub mod tamper;

/// A running server on loopback and its data directory.
pub struct TestServer {
    /// The data directory (kept across restarts).
    pub dir: tempfile::TempDir,
    server: Option<RunningServer>,
    /// Settings used at start.
    pub config: ServerConfig,
    /// The messenger backend's credential issuer the server trusts.
    pub issuer: CredentialIssuer,
}

/// The account the default test client uses.
pub const TEST_ACCOUNT: &str = "test-account";

/// Settings for tests: ephemeral loopback ports, small buckets, generous
/// per-peer limits (every test client shares 127.0.0.1).
pub fn test_config(dir: &std::path::Path, issuer: &CredentialIssuer) -> ServerConfig {
    let mut c = ServerConfig::new(dir);
    c.listen = "127.0.0.1:0".parse().expect("valid address");
    c.admin_listen = "127.0.0.1:0".parse().expect("valid address");
    c.bucket_bits = cds_core::BucketBits::new(4).expect("valid");
    c.issuer = Some(issuer.verifier());
    c.peer.requests_per_second = 10_000.0;
    c.peer.request_burst = 10_000;
    c.peer.max_connections = 1_000;
    c
}

impl TestServer {
    /// Start a server on a fresh data directory.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Start a server on a fresh data directory with adjusted settings.
    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_trusting(CredentialIssuer::generate(&mut rand::rng()), adjust).await
    }

    /// [`TestServer::start_with`], trusting the credentials of `issuer`
    /// (replicas of one deployment trust the same backend).
    pub async fn start_trusting(
        issuer: CredentialIssuer,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let dir = private_tempdir();
        let mut config = test_config(dir.path(), &issuer);
        adjust(&mut config);
        let server = cds_server::start(config.clone())
            .await
            .expect("server starts");
        Self {
            dir,
            server: Some(server),
            config,
            issuer,
        }
    }

    /// A credential for `account`, valid for an hour.
    pub fn token(&self, account: &str) -> String {
        let account = AccountId::new(account.as_bytes().to_vec()).expect("valid account id");
        let now = cds_server::unix_now();
        self.issuer.issue(&account, now, now + 3600)
    }

    /// `message` as a request carrying a valid credential of `account`.
    pub fn authed<T>(&self, account: &str, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        let value = format!("Bearer {}", self.token(account))
            .parse()
            .expect("a token is ASCII");
        req.metadata_mut().insert("authorization", value);
        req
    }

    /// A client builder for `account`, with its credential.
    pub fn client_builder(&self, account: &str) -> ClientBuilder {
        Client::builder(self.url()).credential(self.token(account))
    }

    fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    /// The Discovery listener's address.
    pub fn discovery_addr(&self) -> std::net::SocketAddr {
        self.running().discovery_addr()
    }

    /// The Admin listener's address.
    pub fn admin_addr(&self) -> std::net::SocketAddr {
        self.running().admin_addr()
    }

    /// The Discovery URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.running().discovery_addr())
    }

    /// The public key the server announces now (`GetConfig`, read without
    /// the client's checks).
    pub async fn public_key(&self) -> cds_core::PublicKey {
        let config = cds_proto::v1::discovery_client::DiscoveryClient::connect(self.url())
            .await
            .expect("discovery connects")
            .get_config(cds_proto::v1::GetConfigRequest {})
            .await
            .expect("config")
            .into_inner();
        cds_core::PublicKey::from_slice(&config.public_key).expect("a valid public key")
    }

    /// The match tag of `e164` as the key holder computes it (with the
    /// key file of the data directory), and its bucket: where the server
    /// would put a record for that number, forged or not.
    pub fn tag_of(&self, e164: &str) -> (cds_core::MatchTag, u32) {
        let epoch = cds_server::keystore::load_or_create(self.dir.path()).expect("the key loads");
        let number = cds_core::E164::parse(e164).expect("a valid number");
        let tag = cds_server::table::tag_of(&cds_core::VoprfServer::new(epoch.key), &number);
        (tag, self.config.bucket_bits.bucket_of(&tag))
    }

    /// A connected client of [`TEST_ACCOUNT`] with default options.
    pub async fn client(&self) -> Client {
        self.client_builder(TEST_ACCOUNT)
            .connect()
            .await
            .expect("client connects")
    }

    /// What a fresh client of [`TEST_ACCOUNT`] finds for `book` (entries
    /// without a country code read as US numbers).
    pub async fn discover<S: AsRef<str>>(&self, book: &[S]) -> Vec<Contact> {
        self.client()
            .await
            .discover(book, us())
            .await
            .expect("discovers")
    }

    /// A raw Admin API client.
    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::connect(format!("http://{}", self.running().admin_addr()))
            .await
            .expect("admin connects")
    }

    /// Register (or update) a user.
    pub async fn register(&self, e164: &str, label: &str, discoverable: bool) {
        self.admin()
            .await
            .register(RegisterRequest {
                user: Some(User {
                    e164: e164.into(),
                    label: label.as_bytes().to_vec().into(),
                    discoverable,
                }),
            })
            .await
            .expect("register succeeds");
    }

    /// Import `users` in one Admin `Import` call.
    pub async fn import(&self, users: Vec<cds_proto::v1::User>) {
        self.admin()
            .await
            .import(tokio_stream::iter(vec![cds_proto::v1::ImportRequest {
                users,
            }]))
            .await
            .expect("imports");
    }

    /// Change discoverability.
    pub async fn set_discoverable(&self, e164: &str, discoverable: bool) {
        self.admin()
            .await
            .set_discoverable(SetDiscoverableRequest {
                e164: e164.into(),
                discoverable,
            })
            .await
            .expect("set_discoverable succeeds");
    }

    /// Set a user's discoverability mode (everybody, contacts only,
    /// nobody).
    pub async fn set_mode(&self, e164: &str, mode: Discoverability) {
        self.admin()
            .await
            .set_discoverability(SetDiscoverabilityRequest {
                e164: e164.into(),
                discoverability: mode as i32,
            })
            .await
            .expect("sets discoverability");
    }

    /// Unregister a user.
    pub async fn unregister(&self, e164: &str) {
        self.admin()
            .await
            .unregister(UnregisterRequest { e164: e164.into() })
            .await
            .expect("unregister succeeds");
    }

    /// Rotate the key and wait for the switch.
    pub async fn rotate_key(&self) -> RotateKeyResponse {
        self.admin()
            .await
            .rotate_key(RotateKeyRequest {})
            .await
            .expect("rotation succeeds")
            .into_inner()
    }

    /// Announce the next key (Admin `AnnounceNextKey`).
    pub async fn announce_next_key(&self) -> AnnounceNextKeyResponse {
        self.admin()
            .await
            .announce_next_key(AnnounceNextKeyRequest {})
            .await
            .expect("announcement succeeds")
            .into_inner()
    }

    /// The current and announced keys and the bucket bits (Admin `Profile`).
    pub async fn profile_keys(&self) -> ProfileResponse {
        self.admin()
            .await
            .profile(ProfileRequest {})
            .await
            .expect("profile")
            .into_inner()
    }

    /// The Admin URL.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.running().admin_addr())
    }

    /// The Discovery URL by host name, for a server serving TLS with a
    /// certificate for `localhost`.
    pub fn https_url(&self) -> String {
        format!(
            "https://localhost:{}",
            self.running().discovery_addr().port()
        )
    }

    /// The Admin URL by host name, for an Admin listener serving TLS.
    pub fn admin_https_url(&self) -> String {
        format!("https://localhost:{}", self.running().admin_addr().port())
    }

    /// Where `/metrics` listens, if it does.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.running().metrics_addr()
    }

    /// The body of `GET /metrics` (the server must have `metrics_listen`).
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self
            .running()
            .metrics_addr()
            .expect("the server was started with metrics_listen");
        let mut conn = tokio::net::TcpStream::connect(addr)
            .await
            .expect("metrics endpoint accepts");
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: cds\r\nConnection: close\r\n\r\n")
            .await
            .expect("request sent");
        let mut response = String::new();
        conn.read_to_string(&mut response)
            .await
            .expect("response read");
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "metrics answered {response:.80}"
        );
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    /// Current counts.
    pub async fn stats(&self) -> StatsResponse {
        self.admin()
            .await
            .stats(StatsRequest {})
            .await
            .expect("stats")
            .into_inner()
    }

    /// Stop the server and start it again on the same data directory (and
    /// the same settings, with new ephemeral ports).
    pub async fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
        self.server = Some(
            cds_server::start(self.config.clone())
                .await
                .expect("server restarts"),
        );
    }

    /// Take the running server out of the harness (to shut it down by hand).
    pub fn take(&mut self) -> RunningServer {
        self.server.take().expect("server is running")
    }

    /// Stop the server.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
    }
}

/// A new temporary directory only its owner can enter (0700 on Unix), as
/// the server requires of its data directory: `tempfile` creates them with
/// the default mode (0755 under the usual umask).
pub fn private_tempdir() -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    builder.tempdir().expect("temporary directory")
}

/// The US region, for entries written without a country code.
pub fn us() -> Region {
    Region::parse("US").expect("US is a region")
}

/// Upload `allowed` (US numbers) as `client`'s contacts-only allow-list
/// with `label`, and insist the server stored one record for each.
pub async fn upload_allow_list(client: &mut Client, allowed: &[&str], label: &str) {
    let label = cds_core::Label::new(label.as_bytes().to_vec()).expect("a short label");
    let report = client
        .upload_allow_list(allowed, us(), &label)
        .await
        .expect("uploads");
    assert_eq!(report.stored as usize, allowed.len());
}

/// The label of a registered contact, or `None` if not registered.
pub fn label_of(c: &Contact) -> Option<String> {
    match c {
        Contact::Registered { label, .. } => {
            Some(String::from_utf8_lossy(label.as_bytes()).into_owned())
        }
        _ => None,
    }
}

/// `n` distinct valid German mobile numbers in E.164 form.
pub fn german_mobiles(n: usize, offset: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("+491512{:07}", offset + i))
        .collect()
}
