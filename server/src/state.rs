//! What the two services share, and how they run work off the async runtime.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicU64;

use cds_core::{CredentialVerifier, VoprfServer};
use tonic::Status;

use crate::config::ServerConfig;
use crate::keystore::Epoch;
use crate::limits::gate::Gate;
use crate::limits::peer::PeerLimits;
use crate::limits::quota::Quotas;
use crate::registry::Registry;
use crate::table::RecordTable;

/// Shared server state.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) epoch: Epoch,
    pub(crate) oprf: VoprfServer,
    pub(crate) table: RecordTable,
    pub(crate) registry: Registry,
    /// Serializes admin writes so the registry and the table change in the same order.
    pub(crate) writes: std::sync::Mutex<()>,
    pub(crate) config: ServerConfig,
    pub(crate) table_build_ms: u64,
    /// Checks credentials (the issuer's public key only).
    pub(crate) verifier: CredentialVerifier,
    pub(crate) counters: Counters,
    pub(crate) quotas: Quotas,
    pub(crate) peers: PeerLimits,
    pub(crate) gate: Gate,
}

impl State {
    /// The most elements a request may carry: the configured limit, or the
    /// quota burst if smaller (a larger batch could never be admitted).
    pub(crate) fn max_elements(&self) -> u32 {
        self.config
            .max_elements_per_request
            .min(self.config.quota.burst.max(1))
    }
}

/// Running totals since start (counts only, never identifiers).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Blinded elements evaluated.
    pub(crate) evaluated_elements: AtomicU64,
    /// Thread-busy time spent decoding, evaluating and proving, in nanoseconds.
    pub(crate) evaluation_busy_ns: AtomicU64,
}

/// Run CPU-bound `f` on the rayon pool (all cores) without blocking an
/// async worker. A panic inside `f` becomes INTERNAL instead of aborting.
pub(crate) async fn on_cpu_pool<T, F>(f: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        _ => {
            tracing::error!("a CPU task panicked");
            Err(Status::internal(
                "internal error while evaluating; the request changed nothing",
            ))
        }
    }
}

/// Run blocking I/O `f` (the registry) on tokio's blocking pool.
pub(crate) async fn on_blocking_pool<T, F>(f: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        tracing::error!("a blocking task panicked");
        Status::internal("internal error in the registry")
    })
}

/// Log a store failure (without user data) and turn it into UNAVAILABLE.
pub(crate) fn store_status(e: crate::error::ServerError) -> Status {
    tracing::error!(error = %e, "registry operation failed");
    Status::unavailable("the registry is unavailable: this change was not applied, retry later")
}
