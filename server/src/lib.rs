//! # cds-server: the contact discovery service
//!
//! Two gRPC services on two listeners:
//!
//! - **Discovery** (`cds.v1.Discovery`, default `127.0.0.1:50051`) for apps:
//!   evaluates batches of blinded elements under the epoch key with a
//!   batched VOPRF proof, and returns the sealed records of the requested
//!   buckets. It never sees a phone number.
//! - **Admin** (`cds.v1.Admin`, default `127.0.0.1:50052`) for the
//!   messenger's backend: register, unregister, change discoverability,
//!   bulk import, counts, key rotation (and announcing the next key ahead
//!   of it, for apps' server profiles), the change feed. Bind it to a
//!   private interface; beyond loopback it requires a shared token
//!   ([`admin_token`], `admin_token_file`).
//!
//! Both listeners also serve gRPC health checking (`grpc.health.v1`,
//! SERVING once the record table is built) and reflection; Prometheus
//! metrics are served on `/metrics` when `metrics_listen` is set.
//!
//! State lives in a data directory: `registry.redb` (users and their change
//! log, in redb) and `oprf-key.v1` (the key seed, mode 0600). The table of
//! sealed records is rebuilt in memory at start, in parallel, and updated
//! on every admin change; a key rotation builds the next epoch's table in
//! the background and switches atomically. Evaluation runs on a rayon
//! pool, never on the async workers.
//!
//! Starting is a typestate: [`bind`] opens the store and the listeners
//! (health says NOT_SERVING), [`Starting::serve`] builds the table and
//! returns the [`RunningServer`]; [`start`] does both.
//!
//! ```no_run
//! # async fn run() -> Result<(), cds_server::ServerError> {
//! let mut config = cds_server::ServerConfig::new("./cds-data");
//! config.dev = true; // or config.issuer = Some(the messenger backend's key)
//! let server = cds_server::start(config).await?;
//! println!("discovery on {}", server.discovery_addr());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::unwrap_used)]

mod admin;
pub mod admin_token;
mod auth;
mod bind;
pub mod changelog;
pub mod config;
mod contacts_only;
pub mod discovery;
mod epoch;
mod error;
mod exec;
mod follow;
#[doc(hidden)]
pub mod fuzzing;
mod housekeeping;
pub mod keystore;
mod lifecycle;
mod limits;
mod listeners;
mod metrics;
pub mod postgres;
mod private_files;
pub mod registry;
mod replicated_keys;
mod rotation;
mod state;
mod store;
pub mod table;
mod tls;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

pub use auth::unix_now;
pub use bind::bind;
pub use config::ServerConfig;
pub use epoch::ServingEpoch;
pub use error::ServerError;
pub use lifecycle::{RunningServer, Starting};

/// Open the data directory, build the record table, bind the listeners and
/// start serving.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    start_observed(config, None).await
}

/// [`start`], counting in `progress` the users sealed while the record
/// table is built (for progress bars over large registries).
pub async fn start_observed(
    config: ServerConfig,
    progress: Option<Arc<AtomicUsize>>,
) -> Result<RunningServer, ServerError> {
    bind(config).await?.serve(progress).await
}
