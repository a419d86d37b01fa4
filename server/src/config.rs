//! Server settings and their defaults.
//!
//! [`ServerConfig`] is what the server runs with, typed. Reading settings
//! from flags, the environment or a configuration file, and describing
//! them, is the `cds` command's business (`cds_cli::settings`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cds_core::{BucketBits, CredentialVerifier};

/// Everything `cds serve` can be told. [`ServerConfig::default`] is what a
/// fresh machine gets: loopback listeners and `./cds-data`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where apps reach the Discovery service.
    pub listen: SocketAddr,
    /// Where the messenger backend reaches the Admin service. Keep it off
    /// the public network.
    pub admin_listen: SocketAddr,
    /// A file holding the token every Admin call must present
    /// (`authorization: Bearer <token>`). `None`: Admin calls are not
    /// authenticated, which [`ServerConfig::validate`] allows only on a
    /// loopback `admin_listen`.
    pub admin_token_file: Option<PathBuf>,
    /// Where Prometheus `/metrics` is served. `None`: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Directory of the registry database and the OPRF key file.
    pub data_dir: PathBuf,
    /// The table has `2^bucket_bits` buckets.
    pub bucket_bits: BucketBits,
    /// The most blinded elements one Discover request may carry.
    pub max_elements_per_request: u32,
    /// The largest encoded response the server sends (records of many
    /// buckets can be large).
    pub max_response_bytes: usize,
    /// How long one request may take before it is cancelled.
    pub request_timeout: Duration,
    /// How long in-flight requests may run after SIGTERM or SIGINT before
    /// they are cut off.
    pub shutdown_timeout: Duration,
    /// How long entries of the registry's change feed are kept.
    pub change_log_retention: Duration,
    /// The messenger backend's credential public key. `None`: development
    /// mode, with an issuer key created in the data directory.
    pub issuer: Option<CredentialVerifier>,
    /// Evaluation budgets per account.
    pub quota: QuotaConfig,
    /// Limits per peer address.
    pub peer: PeerConfig,
    /// Load shedding.
    pub overload: OverloadConfig,
}

/// Evaluation budget of each account: a token bucket of evaluations.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct QuotaConfig {
    /// Evaluations an account can spend at once (a full address book).
    pub burst: u32,
    /// Evaluations added back per hour.
    pub refill_per_hour: f64,
    /// Discover requests one account may have in flight.
    pub max_in_flight: u32,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            burst: DEFAULT_QUOTA_BURST,
            refill_per_hour: DEFAULT_QUOTA_REFILL_PER_HOUR,
            max_in_flight: DEFAULT_QUOTA_MAX_IN_FLIGHT,
        }
    }
}

/// Default evaluation burst per account.
pub const DEFAULT_QUOTA_BURST: u32 = 10_000;
/// Default evaluations refilled per account and hour.
pub const DEFAULT_QUOTA_REFILL_PER_HOUR: f64 = 6.0;
/// Default Discover requests in flight per account.
pub const DEFAULT_QUOTA_MAX_IN_FLIGHT: u32 = 2;

/// Limits per peer IP address (held in memory only, never logged).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PeerConfig {
    /// Open connections per address; more are closed on accept.
    pub max_connections: u32,
    /// Requests per second per address, sustained.
    pub requests_per_second: f64,
    /// Requests per address in a burst.
    pub request_burst: u32,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_PEER_MAX_CONNECTIONS,
            requests_per_second: DEFAULT_PEER_REQUESTS_PER_SECOND,
            request_burst: DEFAULT_PEER_REQUEST_BURST,
        }
    }
}

/// Default open connections per peer address.
pub const DEFAULT_PEER_MAX_CONNECTIONS: u32 = 64;
/// Default sustained requests per second per peer address.
pub const DEFAULT_PEER_REQUESTS_PER_SECOND: f64 = 20.0;
/// Default request burst per peer address.
pub const DEFAULT_PEER_REQUEST_BURST: u32 = 100;

/// How much evaluation work may run and wait before requests are shed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OverloadConfig {
    /// Discover requests evaluating at once.
    pub max_concurrent: usize,
    /// Discover requests waiting for a slot; beyond this they are shed.
    pub max_queued: usize,
    /// Longest wait for a slot before the request is shed.
    pub max_queue_wait: Duration,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            max_concurrent: DEFAULT_OVERLOAD_CONCURRENT_PER_CORE * cores,
            max_queued: DEFAULT_OVERLOAD_QUEUED_PER_CORE * cores,
            max_queue_wait: DEFAULT_OVERLOAD_MAX_QUEUE_WAIT,
        }
    }
}

/// Default concurrent evaluations per CPU core.
pub const DEFAULT_OVERLOAD_CONCURRENT_PER_CORE: usize = 2;
/// Default queued evaluations per CPU core.
pub const DEFAULT_OVERLOAD_QUEUED_PER_CORE: usize = 16;
/// Default longest wait in the evaluation queue.
pub const DEFAULT_OVERLOAD_MAX_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Default Discovery listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default Admin listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:50052";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./cds-data";
/// Default bucket bits: 256 buckets.
pub const DEFAULT_BUCKET_BITS: u8 = 8;
/// Default batch limit.
pub const DEFAULT_MAX_ELEMENTS: u32 = 4096;
/// Default largest response: 256 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;
/// Default time limit of one request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time in-flight requests get after SIGTERM or SIGINT.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default retention of the registry's change feed: 30 days.
pub const DEFAULT_CHANGE_LOG_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 50052)),
            admin_token_file: None,
            metrics_listen: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            bucket_bits: BucketBits::new(DEFAULT_BUCKET_BITS).expect("the default is in range"),
            max_elements_per_request: DEFAULT_MAX_ELEMENTS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            change_log_retention: DEFAULT_CHANGE_LOG_RETENTION,
            issuer: None,
            quota: QuotaConfig::default(),
            peer: PeerConfig::default(),
            overload: OverloadConfig::default(),
        }
    }
}

/// A setting with a value the server cannot run with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key} {problem}")]
pub struct InvalidSetting {
    /// The setting, as named in the configuration file (`quota.burst`).
    pub key: &'static str,
    /// What is wrong and what would be right.
    pub problem: String,
}

impl ServerConfig {
    /// Defaults, with the data directory set.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }

    /// Check every setting is within what the server can run with, naming
    /// the first that is not. [`crate::start`] refuses such settings too;
    /// this tells before anything is opened.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let check = |ok: bool, key: &'static str, problem: String| {
            if ok {
                Ok(())
            } else {
                Err(InvalidSetting { key, problem })
            }
        };
        check(
            self.admin_token_file.is_some() || self.admin_listen.ip().is_loopback(),
            "admin_token_file",
            format!(
                "must be set when admin_listen ({}) is not a loopback address: \
                 without it anyone who reaches that address can read and change \
                 the registry (`cds admin new-admin-token --out FILE` writes one)",
                self.admin_listen
            ),
        )?;
        check(
            (1..=cds_core::MAX_BATCH).contains(&(self.max_elements_per_request as usize)),
            "max_elements_per_request",
            format!(
                "must be from 1 to {}, not {}",
                cds_core::MAX_BATCH,
                self.max_elements_per_request
            ),
        )?;
        check(
            self.max_response_bytes > 0,
            "max_response_bytes",
            "must be at least 1".into(),
        )?;
        check(
            !self.request_timeout.is_zero(),
            "request_timeout",
            "must be longer than 0s".into(),
        )?;
        check(
            self.quota.burst > 0,
            "quota.burst",
            "must be at least 1".into(),
        )?;
        check(
            self.quota.refill_per_hour.is_finite() && self.quota.refill_per_hour >= 0.0,
            "quota.refill_per_hour",
            format!(
                "must be a finite number of at least 0, not {}",
                self.quota.refill_per_hour
            ),
        )?;
        check(
            self.quota.max_in_flight > 0,
            "quota.max_in_flight",
            "must be at least 1".into(),
        )?;
        check(
            self.peer.max_connections > 0,
            "peer.max_connections",
            "must be at least 1".into(),
        )?;
        check(
            self.peer.requests_per_second.is_finite() && self.peer.requests_per_second > 0.0,
            "peer.requests_per_second",
            format!(
                "must be a finite number above 0, not {}",
                self.peer.requests_per_second
            ),
        )?;
        check(
            self.peer.request_burst > 0,
            "peer.request_burst",
            "must be at least 1".into(),
        )?;
        check(
            self.overload.max_concurrent > 0,
            "overload.max_concurrent",
            "must be at least 1".into(),
        )
    }
}
