//! Housekeeping while the server runs: save changed account budgets, forget
//! idle limiter state and prune the change log past its retention.

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::auth::unix_now;
use crate::limits::budget_store::{SAVE_EVERY, unix_ms_now};
use crate::state::State;

/// How often idle limiter state is forgotten and the change log pruned.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Housekeeping until `stopped`: every [`SAVE_EVERY`], write the budgets
/// that changed; every [`SWEEP_EVERY`], forget idle quota and peer state (it
/// is kept only as long as it limits anything) and prune the registry's
/// change log past its retention. It holds the state only while it works,
/// and it is one of the serving tasks, so [`crate::RunningServer::wait`]
/// waits for work in progress before the registry closes (and saves the
/// budgets a last time after the last request).
pub(crate) async fn sweep(
    state: Weak<State>,
    stopped: impl Future<Output = ()>,
) -> Result<(), String> {
    let mut save = tokio::time::interval(SAVE_EVERY);
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    tokio::pin!(stopped);
    loop {
        let sweeping = tokio::select! {
            _ = &mut stopped => return Ok(()),
            _ = save.tick() => false,
            _ = sweep.tick() => true,
        };
        let Some(state) = state.upgrade() else {
            return Ok(());
        };
        if sweeping {
            let now = Instant::now();
            let accounts = state.quotas.sweep(now);
            let peers = state.peers.sweep(now);
            tracing::debug!(accounts, peers, "idle limiter state forgotten");
        }
        let done = tokio::task::spawn_blocking(move || {
            state.save_budgets();
            if sweeping {
                prune(&state);
            }
        })
        .await;
        if done.is_err() {
            tracing::warn!("a housekeeping task failed");
        }
    }
}

/// Delete change log entries past their retention.
fn prune(state: &State) {
    let cutoff = unix_now().saturating_sub(state.config.change_log_retention.as_secs());
    match state.registry.prune_changes(cutoff) {
        Ok(0) => {}
        Ok(n) => tracing::info!(pruned = n, "change log entries past retention deleted"),
        Err(e) => tracing::warn!(error = %e, "the change log could not be pruned"),
    }
}

impl State {
    /// Write the budgets changed since the last save (blocking). A failure
    /// is logged and the budgets are marked again for the next save.
    pub(crate) fn save_budgets(&self) {
        let _one_at_a_time = self
            .budget_saves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = self.quotas.dirty(Instant::now(), unix_ms_now());
        if changed.is_empty() {
            return;
        }
        let count = changed.len();
        if let Err(e) = self.budget_store.save_budgets(&changed) {
            tracing::warn!(error = %e, accounts = count, "account budgets could not be saved; retrying");
            self.quotas
                .mark_dirty(changed.into_iter().map(|b| b.account));
        }
    }
}
