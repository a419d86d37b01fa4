//! Server settings and their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
