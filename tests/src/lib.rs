//! # cds-tests: the end-to-end harness
//!
//! [`TestServer`] starts a real cds server on `127.0.0.1` with ephemeral
//! ports in a temporary data directory; tests talk to it with the real
//! client library and the real Admin API.
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::unwrap_used)]

use cds_client::{Client, Contact, Region};
use cds_proto::v1::admin_client::AdminClient;
use cds_proto::v1::{
    RegisterRequest, SetDiscoverableRequest, StatsRequest, StatsResponse, UnregisterRequest, User,
};
use cds_server::{RunningServer, ServerConfig};
use tonic::transport::Channel;

/// A running server on loopback and its data directory.
pub struct TestServer {
    /// The data directory (kept across restarts).
    pub dir: tempfile::TempDir,
    server: Option<RunningServer>,
    /// Settings used at start.
    pub config: ServerConfig,
}

/// Settings for tests: ephemeral loopback ports, small buckets.
pub fn test_config(dir: &std::path::Path) -> ServerConfig {
    let mut c = ServerConfig::new(dir);
    c.listen = "127.0.0.1:0".parse().expect("valid address");
    c.admin_listen = "127.0.0.1:0".parse().expect("valid address");
    c.bucket_bits = 4;
    c
}

impl TestServer {
    /// Start a server on a fresh data directory.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Start a server on a fresh data directory with adjusted settings.
    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = test_config(dir.path());
        adjust(&mut config);
        let server = cds_server::start(config.clone())
            .await
            .expect("server starts");
        Self {
            dir,
            server: Some(server),
            config,
        }
    }

    fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    /// The Discovery URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.running().discovery_addr())
    }

    /// A connected client with default options.
    pub async fn client(&self) -> Client {
        Client::connect(self.url()).await.expect("client connects")
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

    /// Unregister a user.
    pub async fn unregister(&self, e164: &str) {
        self.admin()
            .await
            .unregister(UnregisterRequest { e164: e164.into() })
            .await
            .expect("unregister succeeds");
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

    /// Stop the server.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
    }
}

/// The US region, for entries written without a country code.
pub fn us() -> Region {
    Region::parse("US").expect("US is a region")
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
