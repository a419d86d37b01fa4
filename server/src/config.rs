//! Server settings and their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cds_core::CredentialVerifier;

/// Everything `cds serve` can be told. [`ServerConfig::default`] is what a
/// fresh machine gets: loopback listeners and `./cds-data`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where apps reach the Discovery service.
    pub listen: SocketAddr,
    /// Where the messenger backend reaches the Admin service. Keep it off
    /// the public network: it is not authenticated.
    pub admin_listen: SocketAddr,
    /// Directory of the registry database and the OPRF key file.
    pub data_dir: PathBuf,
    /// The table has `2^bucket_bits` buckets.
    pub bucket_bits: u8,
    /// The most blinded elements one Discover request may carry.
    pub max_elements_per_request: u32,
    /// The largest encoded response the server sends (records of many
    /// buckets can be large).
    pub max_response_bytes: usize,
    /// How long one request may take before it is cancelled.
    pub request_timeout: Duration,
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
            max_in_flight: 2,
        }
    }
}

/// Default evaluation burst per account.
pub const DEFAULT_QUOTA_BURST: u32 = 10_000;
/// Default evaluations refilled per account and hour.
pub const DEFAULT_QUOTA_REFILL_PER_HOUR: f64 = 6.0;

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
            max_connections: 64,
            requests_per_second: 20.0,
            request_burst: 100,
        }
    }
}

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
            max_concurrent: 2 * cores,
            max_queued: 16 * cores,
            max_queue_wait: Duration::from_secs(2),
        }
    }
}

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

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 50052)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            bucket_bits: DEFAULT_BUCKET_BITS,
            max_elements_per_request: DEFAULT_MAX_ELEMENTS,
            max_response_bytes: 256 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            issuer: None,
            quota: QuotaConfig::default(),
            peer: PeerConfig::default(),
            overload: OverloadConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Defaults, with the data directory set.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }
}
