//! A server's life after [`crate::bind`]: [`Starting`] builds the record
//! table and becomes a [`RunningServer`], which serves until it is stopped
//! and then drains its requests and releases the registry.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use cds_core::VoprfServer;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::epoch::ServingEpoch;
use crate::error::ServerError;
use crate::keystore;
use crate::state::State;
use crate::table::RecordTable;

/// How often a stopping server looks whether the last holder of its state
/// has let go of it.
const HOLDER_POLL: Duration = Duration::from_millis(10);

/// The tasks serving the listeners; each ends with its transport's error, if any.
pub(crate) type ServeTasks = JoinSet<Result<(), String>>;

/// Listeners bound and store opened, record table not built yet: health
/// checks answer NOT_SERVING and Discover answers UNAVAILABLE. Call
/// [`Starting::serve`] to build the table and start serving.
#[derive(Debug)]
#[must_use = "nothing is served until `serve` is called"]
pub struct Starting {
    pub(crate) inner: RunningServer,
    pub(crate) epoch: keystore::Epoch,
}

/// A started server: its bound addresses and a handle to stop it.
#[derive(Debug)]
pub struct RunningServer {
    pub(crate) discovery_addr: SocketAddr,
    pub(crate) admin_addr: SocketAddr,
    pub(crate) metrics_addr: Option<SocketAddr>,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) tasks: ServeTasks,
    pub(crate) health: Health,
    pub(crate) state: Arc<State>,
}

impl Starting {
    /// Where the Discovery service listens (useful with port 0).
    pub fn discovery_addr(&self) -> SocketAddr {
        self.inner.discovery_addr
    }

    /// Where the Admin service listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.inner.admin_addr
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.inner.metrics_addr
    }

    /// A handle that stops the server when told to, from now on: a stop
    /// during the table build ends the build within one user per core, and
    /// [`Starting::serve`] then returns [`ServerError::ShuttingDown`]. Take
    /// it before `serve` so that signals cannot be missed while it builds.
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        self.inner.stopper()
    }

    /// Build the record table from the registry (counting sealed users in
    /// `progress`, if given), then report SERVING and serve. Fails with
    /// [`ServerError::ShuttingDown`] if stopped before the table is built,
    /// after the listeners have stopped and the registry is released.
    pub async fn serve(
        self,
        progress: Option<Arc<AtomicUsize>>,
    ) -> Result<RunningServer, ServerError> {
        let Starting { inner, epoch } = self;
        let state = Arc::clone(&inner.state);
        let built = tokio::task::spawn_blocking(move || build_first_table(&state, epoch, progress))
            .await
            .map_err(|e| ServerError::Task(e.to_string()));
        if let Err(e) = built.and_then(|r| r) {
            // Stop the listeners and release the store before reporting.
            let _ = inner.shutdown().await;
            return Err(e);
        }
        crate::follow::spawn(&inner.state);
        inner.set_health(ServingStatus::Serving).await;
        tracing::info!("serving");
        Ok(inner)
    }
}

/// Build the first table under the write lock (admin writes wait for it)
/// and put it in service.
pub(crate) fn build_first_table(
    state: &State,
    epoch: keystore::Epoch,
    progress: Option<Arc<AtomicUsize>>,
) -> Result<(), ServerError> {
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let bits = state.config.bucket_bits;
    // A shared registry: a consistent snapshot and the feed number it
    // includes, followed from there.
    // The allow-lists come from the same snapshot, so the follower's first
    // entry finds exactly the lists that snapshot held.
    let (users, mark) = match state.registry.shared_feed() {
        Some(feed) => {
            let snapshot = feed.snapshot()?;
            *state
                .placed_lists
                .lock()
                .unwrap_or_else(PoisonError::into_inner) =
                snapshot.allow_lists.into_iter().collect();
            (snapshot.users, Some(snapshot.mark))
        }
        None => (state.registry.discoverable_users()?, None),
    };
    let started = Instant::now();
    let oprf = VoprfServer::new(epoch.key);
    let table = RecordTable::build(bits, &oprf, &users, progress.as_deref(), &|| {
        state.is_stopping()
    })
    .ok_or(ServerError::ShuttingDown)?;
    crate::contacts_only::install_all(state, &table, &oprf)?;
    let build_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        records = table.len(),
        build_ms,
        buckets = bits.count(),
        "record table built"
    );
    state.table_build_ms.store(build_ms, Ordering::Relaxed);
    if let Some(mark) = mark {
        state.feed_position.store(mark, Ordering::Release);
    }
    state.switch_to(Arc::new(ServingEpoch::with_server(epoch.id, oprf, table)));
    Ok(())
}

impl RunningServer {
    /// Where the Discovery service listens (useful with port 0).
    pub fn discovery_addr(&self) -> SocketAddr {
        self.discovery_addr
    }

    /// Where the Admin service listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    async fn set_health(&self, status: ServingStatus) {
        self.health.report(status).await;
    }

    /// Graceful shutdown: report NOT_SERVING, stop accepting connections,
    /// let in-flight requests finish within the configured
    /// `shutdown_timeout` (then cut them off), and close the registry.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.set_health(ServingStatus::NotServing).await;
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Wait until the server stops (after [`RunningServer::shutdown`] or a
    /// [`RunningServer::stopper`] call from elsewhere, or a transport
    /// failure), giving in-flight requests up to `shutdown_timeout` once
    /// the stop was requested, and the tasks that still hold the registry
    /// (a feed catch-up, a rotation giving up) up to `shutdown_timeout`
    /// more to let go of it. When this returns the registry is closed,
    /// unless one of them outlived that: then it closes when it ends (the
    /// log says so).
    pub async fn wait(self) -> Result<(), ServerError> {
        let RunningServer {
            mut tasks,
            stop,
            state,
            health,
            ..
        } = self;
        let deadline = state.config.shutdown_timeout;
        let mut stopped = stop.subscribe();
        let mut first_error = None;
        // Until a stop is requested, a task ending with an error (a
        // transport failure) stops the others.
        let stop_requested = loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    None => break false,
                    Some(outcome) => {
                        if let Some(e) = task_error(outcome) {
                            tracing::error!(error = %e, "a listener failed; stopping");
                            first_error.get_or_insert(e);
                            let _ = stop.send(true);
                        }
                    }
                },
                _ = stopped.wait_for(|s| *s) => break true,
            }
        };
        if stop_requested {
            state.stop();
            health.report(ServingStatus::NotServing).await;
            let drained = tokio::time::timeout(deadline, async {
                while let Some(outcome) = tasks.join_next().await {
                    if let Some(e) = task_error(outcome) {
                        first_error.get_or_insert(e);
                    }
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!(
                    timeout_ms = deadline.as_millis() as u64,
                    "requests still running at the shutdown deadline were cut off"
                );
                tasks.shutdown().await;
            }
        }
        // The last requests' charges, before the registry closes.
        {
            let state = Arc::clone(&state);
            let _ = tokio::task::spawn_blocking(move || state.save_budgets()).await;
        }
        // The services held the state; the registry closes when the last
        // holder is gone (every change was already committed durably).
        // A feed catch-up under way, a rotation giving up or a connection
        // cut off at the deadline may still hold it: wait for them, up to
        // the shutdown timeout, so that a server started again at once on
        // the same data directory finds the registry closed.
        let registry = Arc::downgrade(&state);
        drop(state);
        if registry.strong_count() > 0 {
            let _ = tokio::time::timeout(deadline, async {
                while registry.strong_count() > 0 {
                    tokio::time::sleep(HOLDER_POLL).await;
                }
            })
            .await;
        }
        let holders = registry.strong_count();
        if holders == 0 {
            tracing::info!("stopped; registry closed");
        } else {
            tracing::info!(
                holders,
                "stopped; the registry closes when the last task ends"
            );
        }
        match first_error {
            Some(e) => Err(ServerError::Task(e)),
            None => Ok(()),
        }
    }

    /// A handle that stops the server when told to (for signal handlers).
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let stop = self.stop.clone();
        // Weak: a handle kept by a signal task must not keep the registry
        // open after `wait` returns.
        let state = Arc::downgrade(&self.state);
        move || {
            // Noted at once, so that a table build or key rotation gives up
            // before `wait` sees the request.
            if let Some(state) = state.upgrade() {
                state.stop();
            }
            let _ = stop.send(true);
        }
    }
}

/// The error a finished serving task reports, if any (cancellation is none).
fn task_error(joined: Result<Result<(), String>, tokio::task::JoinError>) -> Option<String> {
    match joined {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(e) if e.is_cancelled() => None,
        Err(e) => Some(e.to_string()),
    }
}

/// The health reporter of each listener and the cds service it serves:
/// each listener advertises only what it answers.
#[derive(Clone, Debug)]
pub(crate) struct Health {
    pub(crate) listeners: Vec<(HealthReporter, &'static str)>,
}

impl Health {
    /// Report `status` for the server as a whole and for each listener's
    /// cds service.
    pub(crate) async fn report(&self, status: ServingStatus) {
        for (reporter, service) in &self.listeners {
            for name in ["", service] {
                reporter.set_service_status(name, status).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_returns_once_a_task_still_holding_the_state_lets_go() {
        let mut builder = tempfile::Builder::new();
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let dir = builder.tempdir().expect("temporary directory");
        let mut config = crate::ServerConfig::new(dir.path());
        config.listen = "127.0.0.1:0".parse().expect("an address");
        config.admin_listen = "127.0.0.1:0".parse().expect("an address");
        config.dev = true;
        let running = crate::start(config.clone())
            .await
            .expect("the server starts");
        // A task that holds the state past the stop, as a feed catch-up
        // under way does.
        let held = Arc::clone(&running.state);
        let registry = Arc::downgrade(&running.state);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        });
        running.shutdown().await.expect("a clean shutdown");
        assert_eq!(registry.strong_count(), 0, "the registry is still open");
        // So the same data directory opens again at once.
        let again = crate::start(config).await.expect("the server starts again");
        again.shutdown().await.expect("a clean shutdown");
    }
}
