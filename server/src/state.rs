//! What the services share: the serving epoch, the registry, the limits
//! and the metrics.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use cds_core::{CredentialVerifier, E164};
use tonic::Status;

use crate::config::ServerConfig;
use crate::contacts_only::StoredList;
use crate::epoch::ServingEpoch;
use crate::limits::gate::Gate;
use crate::limits::peer::PeerLimits;
use crate::limits::quota::Quotas;
use crate::limits::response_memory::ResponseMemory;
use crate::metrics::{Metrics, Snapshot};
use crate::store::{BudgetStore, RegistryStore};

/// How many retired epochs are remembered, to tell their clients precisely
/// why a request was refused (older ones get the generic message).
const RETIRED_REMEMBERED: usize = 8;

/// Shared server state.
#[derive(Debug)]
pub(crate) struct State {
    /// `None` until the record table is first built.
    serving: RwLock<Option<Arc<ServingEpoch>>>,
    /// Replicated keys only: the next epoch, built and accepted for
    /// Discover between a rotation's two phases.
    next: RwLock<Option<Arc<ServingEpoch>>>,
    /// Replicated keys only: epochs retired by a switch, still accepted
    /// until the instant beside them (clients whose GetConfig reached a
    /// replica that had not switched yet).
    grace: Mutex<Vec<(Arc<ServingEpoch>, Instant)>>,
    /// The keys in PostgreSQL, when replicas share them.
    pub(crate) keys: Option<crate::replicated_keys::Replica>,
    /// While a rotation prepares the next epoch: the numbers changed since
    /// it read the registry, to apply to the new table before the switch.
    pub(crate) rotation: Mutex<Option<BTreeSet<E164>>>,
    /// Set once shutdown starts: a rotation that has not switched yet gives up.
    stopping: AtomicBool,
    retired: Mutex<Vec<u64>>,
    pub(crate) registry: Arc<dyn RegistryStore>,
    /// Where this server's budgets are written behind (unused with shared
    /// budgets).
    pub(crate) budget_store: Arc<dyn BudgetStore>,
    /// Serializes admin writes, the first table build and a rotation's
    /// switch, so the registry and the serving table change in the same order.
    pub(crate) writes: Mutex<()>,
    pub(crate) config: ServerConfig,
    /// Milliseconds the last table build (start or rotation) took.
    pub(crate) table_build_ms: AtomicU64,
    /// Checks credentials (the issuer's public key only).
    pub(crate) verifier: CredentialVerifier,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) quotas: Quotas,
    pub(crate) peers: PeerLimits,
    pub(crate) gate: Gate,
    /// Memory of Discover responses not yet sent.
    pub(crate) response_memory: ResponseMemory,
    /// With a shared registry: the last change-feed number applied to the
    /// serving table (changed under the write lock).
    pub(crate) feed_position: AtomicU64,
    /// With a shared registry: the allow-lists placed in the serving table
    /// as of `feed_position` (changed under the write lock), so a feed entry
    /// can withdraw the pair records of the list it replaces.
    pub(crate) placed_lists: Mutex<HashMap<E164, StoredList>>,
    /// Serializes budget saves, so an older snapshot never overwrites a
    /// newer one (a housekeeping save cut off at shutdown and the final one).
    pub(crate) budget_saves: Mutex<()>,
}

impl State {
    pub(crate) fn new(
        registry: Arc<dyn RegistryStore>,
        budget_store: Arc<dyn BudgetStore>,
        config: ServerConfig,
        verifier: CredentialVerifier,
        quotas: Quotas,
        peers: PeerLimits,
        gate: Gate,
    ) -> Self {
        let response_memory = ResponseMemory::new(config.max_response_memory);
        Self {
            serving: RwLock::new(None),
            next: RwLock::new(None),
            grace: Mutex::new(Vec::new()),
            keys: None,
            rotation: Mutex::new(None),
            stopping: AtomicBool::new(false),
            retired: Mutex::new(Vec::new()),
            registry,
            budget_store,
            writes: Mutex::new(()),
            config,
            table_build_ms: AtomicU64::new(0),
            verifier,
            metrics: Arc::new(Metrics::default()),
            quotas,
            peers,
            gate,
            response_memory,
            feed_position: AtomicU64::new(0),
            placed_lists: Mutex::new(HashMap::new()),
            budget_saves: Mutex::new(()),
        }
    }

    /// The most elements a request may carry: the configured limit, or the
    /// quota burst if smaller (a larger batch could never be admitted).
    pub(crate) fn max_elements(&self) -> u32 {
        self.config
            .max_elements_per_request
            .min(self.config.quota.burst.max(1))
    }

    /// The epoch serving now, if the table has been built.
    pub(crate) fn serving(&self) -> Option<Arc<ServingEpoch>> {
        self.serving
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// [`State::serving`], or UNAVAILABLE while the server starts.
    pub(crate) fn serving_or_unavailable(&self) -> Result<Arc<ServingEpoch>, Status> {
        self.serving().ok_or_else(|| {
            crate::limits::with_retry_after(
                Status::unavailable(
                    "the server is starting (building its record table): retry shortly",
                ),
                Some(std::time::Duration::from_secs(5)),
            )
        })
    }

    /// The epoch that answers a Discover naming `requested`: the serving
    /// one, the built next one, or one retired less than the grace period
    /// ago; otherwise the serving one (which refuses it as unknown).
    pub(crate) fn epoch_for(&self, requested: u64) -> Result<Arc<ServingEpoch>, Status> {
        let serving = self.serving_or_unavailable()?;
        if serving.id == requested || self.keys.is_none() {
            return Ok(serving);
        }
        if let Some(next) = self.next_epoch().filter(|n| n.id == requested) {
            return Ok(next);
        }
        let now = Instant::now();
        let grace = self.grace.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(grace
            .iter()
            .find(|(e, until)| e.id == requested && *until > now)
            .map_or(serving, |(e, _)| Arc::clone(e)))
    }

    /// The built next epoch (replicated keys, during a rotation).
    pub(crate) fn next_epoch(&self) -> Option<Arc<ServingEpoch>> {
        self.next
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Accept `next` for Discover beside the serving epoch (or stop, with
    /// `None`). Callers hold the write lock.
    pub(crate) fn set_next(&self, next: Option<Arc<ServingEpoch>>) -> Option<Arc<ServingEpoch>> {
        std::mem::replace(
            &mut *self.next.write().unwrap_or_else(PoisonError::into_inner),
            next,
        )
    }

    /// The epochs an admin write must reach: the serving one and, during a
    /// replicated rotation, the built next one. Callers hold the write lock.
    pub(crate) fn write_epochs(&self) -> Vec<Arc<ServingEpoch>> {
        self.serving()
            .into_iter()
            .chain(self.next_epoch())
            .collect()
    }

    /// Keep accepting `retired` until `until`; forget epochs whose grace
    /// has ended (their keys are wiped when the last request drops them).
    pub(crate) fn retire_with_grace(&self, retired: Option<Arc<ServingEpoch>>, until: Instant) {
        let now = Instant::now();
        let mut grace = self.grace.lock().unwrap_or_else(PoisonError::into_inner);
        grace.retain(|(_, u)| *u > now);
        if let Some(r) = retired {
            grace.push((r, until));
        }
    }

    /// Put `next` in service; returns the epoch it replaces. Callers hold
    /// the write lock.
    pub(crate) fn switch_to(&self, next: Arc<ServingEpoch>) -> Option<Arc<ServingEpoch>> {
        let old = self
            .serving
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(next);
        if let Some(old) = &old {
            let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
            retired.push(old.id);
            let excess = retired.len().saturating_sub(RETIRED_REMEMBERED);
            retired.drain(..excess);
        }
        old
    }

    /// Put `rebuilt` in service in place of the serving epoch, which it
    /// replaces under the same key (nothing is retired); returns the one it
    /// replaces. Callers hold the write lock.
    pub(crate) fn replace_serving(&self, rebuilt: Arc<ServingEpoch>) -> Option<Arc<ServingEpoch>> {
        self.serving
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(rebuilt)
    }

    /// Whether a key rotation is preparing or holding the next epoch.
    pub(crate) fn is_rotating(&self) -> bool {
        self.next_epoch().is_some()
            || self
                .rotation
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
    }

    /// Note that shutdown has started.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// The gauges of the metrics, read now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let serving = self.serving();
        let rotating = self
            .rotation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        Snapshot {
            records: serving.as_ref().map_or(0, |s| s.table.len()),
            record_bytes: serving.as_ref().map_or(0, |s| s.table.record_bytes()),
            table_build_ms: self.table_build_ms.load(Ordering::Relaxed),
            ready: serving.is_some(),
            rotating,
            quota_accounts: self.quotas.tracked(),
            response_memory: self.response_memory.held(),
        }
    }

    /// Whether shutdown has started.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Whether `epoch` served here before a rotation since start.
    pub(crate) fn is_retired(&self, epoch: u64) -> bool {
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&epoch)
    }

    /// Note that `numbers` changed, for a rotation preparing the next epoch.
    /// Callers hold the write lock.
    pub(crate) fn note_changed(&self, numbers: impl IntoIterator<Item = E164>) {
        if let Some(journal) = self
            .rotation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            journal.extend(numbers);
        }
    }
}
