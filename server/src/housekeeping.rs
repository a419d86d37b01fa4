//! Housekeeping while the server runs: forget idle limiter state and prune
//! the change log past its retention.

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::auth::unix_now;
use crate::state::State;

/// Housekeeping every minute until `stopped`: forget idle quota and peer
/// state (it is kept only as long as it limits anything) and prune the
/// registry's change log past its retention. It holds the state only while
/// it works, and it is one of the serving tasks, so [`RunningServer::wait`]
/// waits for a prune in progress before the registry closes.
pub(crate) async fn sweep(
    state: Weak<State>,
    stopped: impl Future<Output = ()>,
) -> Result<(), String> {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return Ok(()),
            _ = tick.tick() => {}
        }
        let Some(state) = state.upgrade() else {
            return Ok(());
        };
        let now = Instant::now();
        let accounts = state.quotas.sweep(now);
        let peers = state.peers.sweep(now);
        tracing::debug!(accounts, peers, "idle limiter state forgotten");
        let cutoff = unix_now().saturating_sub(state.config.change_log_retention.as_secs());
        let pruned =
            tokio::task::spawn_blocking(move || state.registry.prune_changes(cutoff)).await;
        match pruned {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                tracing::info!(pruned = n, "change log entries past retention deleted")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "the change log could not be pruned"),
            Err(_) => tracing::warn!("the change log pruning task failed"),
        }
    }
}
