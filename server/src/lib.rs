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
//!   bulk import, counts, key rotation, the change feed. Bind it to a
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
//! let server = cds_server::start(cds_server::ServerConfig::new("./cds-data")).await?;
//! println!("discovery on {}", server.discovery_addr());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::unwrap_used)]

mod admin;
pub mod admin_token;
mod auth;
pub mod config;
mod discovery;
mod error;
pub mod keystore;
pub mod limits;
mod metrics;
pub mod registry;
mod rotation;
mod state;
pub mod table;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, Weak};
use std::time::{Duration, Instant};

use cds_core::VoprfServer;
use cds_proto::v1::admin_server::AdminServer;
use cds_proto::v1::discovery_server::DiscoveryServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use auth::{AUTHORIZATION, unix_now};
pub use config::ServerConfig;
pub use error::ServerError;

use crate::admin::AdminService;
use crate::discovery::DiscoveryService;
use crate::limits::gate::Gate;
use crate::limits::peer::{LimitedConnection, PeerLimits};
use crate::limits::quota::Quotas;
use crate::limits::token_bucket::Rate;
use crate::registry::Registry;
use crate::state::{Serving, State};
use crate::table::RecordTable;

/// Largest admin message accepted (an import chunk).
const MAX_ADMIN_MESSAGE: usize = 16 * 1024 * 1024;
/// Concurrent requests one connection may have in flight.
const PER_CONNECTION_CONCURRENCY: usize = 64;

/// The tasks serving the listeners; each ends with its transport's error, if any.
type ServeTasks = JoinSet<Result<(), String>>;

/// Listeners bound and store opened, record table not built yet: health
/// checks answer NOT_SERVING and Discover answers UNAVAILABLE. Call
/// [`Starting::serve`] to build the table and start serving.
#[derive(Debug)]
#[must_use = "nothing is served until `serve` is called"]
pub struct Starting {
    inner: RunningServer,
    epoch: keystore::Epoch,
}

/// A started server: its bound addresses and a handle to stop it.
#[derive(Debug)]
pub struct RunningServer {
    discovery_addr: SocketAddr,
    admin_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: ServeTasks,
    health: HealthReporter,
    state: Arc<State>,
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
        inner.set_health(ServingStatus::Serving).await;
        tracing::info!("serving");
        Ok(inner)
    }
}

/// Build the first table under the write lock (admin writes wait for it)
/// and put it in service.
fn build_first_table(
    state: &State,
    epoch: keystore::Epoch,
    progress: Option<Arc<AtomicUsize>>,
) -> Result<(), ServerError> {
    let _writes = state.writes.lock().unwrap_or_else(PoisonError::into_inner);
    let bits = state.config.bucket_bits;
    let users = state.registry.discoverable_users()?;
    let started = Instant::now();
    let oprf = VoprfServer::new(epoch.key);
    let table = RecordTable::build(bits, &oprf, &users, progress.as_deref(), &|| {
        state.is_stopping()
    })
    .ok_or(ServerError::ShuttingDown)?;
    let build_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        records = table.len(),
        build_ms,
        buckets = bits.count(),
        "record table built"
    );
    state.table_build_ms.store(build_ms, Ordering::Relaxed);
    state.switch_to(Arc::new(Serving {
        epoch: epoch.id,
        oprf,
        table,
    }));
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
        report_health(&self.health, status).await;
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
    /// the stop was requested. When this returns the registry is closed,
    /// unless a connection cut off at the deadline or a rotation still
    /// preparing holds it: then it closes when they end (the log says so).
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
            report_health(&health, ServingStatus::NotServing).await;
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
        // The services held the state; the registry closes when the last
        // holder is gone (every change was already committed durably).
        // Connections cut off at the deadline, or a rotation still
        // preparing, may hold it a little longer.
        let holders = Arc::strong_count(&state) - 1;
        drop(state);
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

const DISCOVERY_SERVICE: &str = "cds.v1.Discovery";
const ADMIN_SERVICE: &str = "cds.v1.Admin";

/// Report `status` for the server as a whole and for both cds services.
async fn report_health(health: &HealthReporter, status: ServingStatus) {
    for service in ["", DISCOVERY_SERVICE, ADMIN_SERVICE] {
        health.set_service_status(service, status).await;
    }
}

/// Accepted connections, less those over their peer's connection limit
/// (closed at once).
fn limited_incoming(
    listener: TcpListener,
    peers: PeerLimits,
) -> impl tokio_stream::Stream<Item = std::io::Result<LimitedConnection>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).filter_map(move |accepted| match accepted {
        Ok(io) => LimitedConnection::admit(io, &peers).map(Ok),
        Err(e) => Some(Err(e)),
    })
}

/// Housekeeping every minute until `stopped`: forget idle quota and peer
/// state (it is kept only as long as it limits anything) and prune the
/// registry's change log past its retention. It holds the state only while
/// it works, and it is one of the serving tasks, so [`RunningServer::wait`]
/// waits for a prune in progress before the registry closes.
async fn sweep(state: Weak<State>, stopped: impl Future<Output = ()>) -> Result<(), String> {
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

async fn bind_listener(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    Ok((listener, local))
}

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

/// Open the data directory and the key, bind every listener and start
/// answering: health checks say NOT_SERVING until [`Starting::serve`] has
/// built the record table.
pub async fn bind(config: ServerConfig) -> Result<Starting, ServerError> {
    config
        .validate()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let dir = config.data_dir.clone();
    let configured_issuer = config.issuer;
    let change_log_retention = config.change_log_retention;
    let token_file = config.admin_token_file.clone();
    let (epoch, registry, verifier, admin_token) = tokio::task::spawn_blocking(move || {
        let admin_token = token_file
            .as_deref()
            .map(admin_token::AdminToken::read)
            .transpose()?;
        keystore::ensure_private_dir(&dir)?;
        let verifier = match configured_issuer {
            Some(v) => v,
            None => {
                tracing::warn!(
                    "development mode: credentials are checked against {} in the data directory; \
                     give the messenger backend's public key for production",
                    keystore::ISSUER_FILE
                );
                keystore::load_or_create_dev_issuer(&dir)?
            }
        };
        // The registry first: its lock keeps a second server off this
        // directory before anything in it (such as a pending key) is touched.
        let registry = Registry::open_with(&dir, !change_log_retention.is_zero())?;
        let epoch = keystore::load_or_create(&dir)?;
        Ok::<_, ServerError>((epoch, registry, verifier, admin_token))
    })
    .await
    .map_err(|e| ServerError::Task(e.to_string()))??;

    let (discovery_listener, discovery_addr) = bind_listener(config.listen).await?;
    let (admin_listener, admin_addr) = bind_listener(config.admin_listen).await?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(bind_listener(addr).await?),
        None => None,
    };

    let peers = PeerLimits::new(
        config.peer.max_connections,
        Rate {
            burst: f64::from(config.peer.request_burst),
            per_sec: config.peer.requests_per_second,
        },
    );
    let state = Arc::new(State::new(
        registry,
        config.clone(),
        verifier,
        Quotas::new(
            Rate::per_hour(config.quota.burst, config.quota.refill_per_hour),
            config.quota.max_in_flight,
        ),
        peers.clone(),
        Gate::new(
            config.overload.max_concurrent,
            config.overload.max_queued,
            config.overload.max_queue_wait,
        ),
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    report_health(&health, ServingStatus::NotServing).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cds_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServerError::Config(format!("gRPC reflection: {e}")))?;

    let (stop, _) = watch::channel(false);
    let stopped = |stop: &watch::Sender<bool>| {
        let mut rx = stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let discovery = DiscoveryServer::new(DiscoveryService {
        state: Arc::clone(&state),
    })
    // Each element is 32 bytes and may come with one bucket id (a varint of
    // at most 5 bytes) and its 16-byte digest; the rest is framing.
    .max_decoding_message_size(
        config.max_elements_per_request as usize
            * (cds_core::ELEMENT_LEN + 5 + cds_core::BUCKET_DIGEST_LEN)
            + 4096,
    )
    .max_encoding_message_size(config.max_response_bytes.saturating_add(4096));
    let mut tasks = ServeTasks::new();
    tasks.spawn(sweep(Arc::downgrade(&state), stopped(&stop)));
    tasks.spawn({
        let serve = tonic::transport::Server::builder()
            .timeout(config.request_timeout)
            // Find and drop dead or stalled peers instead of holding their
            // responses forever.
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .concurrency_limit_per_connection(PER_CONNECTION_CONCURRENCY)
            .add_service(health_service.clone())
            .add_service(reflection.clone())
            .add_service(discovery)
            .serve_with_incoming_shutdown(
                limited_incoming(discovery_listener, peers),
                stopped(&stop),
            );
        async move { serve.await.map_err(|e| e.to_string()) }
    });

    if admin_token.is_none() {
        tracing::warn!(
            "Admin calls are not authenticated (no admin_token_file): any process that reaches the Admin listener can read and change the registry"
        );
    }
    let auth_refusals = state.metrics.admin_auth_refusals.clone();
    let admin = InterceptedService::new(
        AdminServer::new(AdminService {
            state: Arc::clone(&state),
        })
        .max_decoding_message_size(MAX_ADMIN_MESSAGE),
        move |request: tonic::Request<()>| match &admin_token {
            Some(token) => token
                .check(request.metadata())
                .map(|()| request)
                .inspect_err(|_| {
                    auth_refusals.inc();
                    tracing::warn!("an Admin call was refused: missing or wrong admin token");
                }),
            None => Ok(request),
        },
    );
    tasks.spawn({
        let serve = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(admin)
            .serve_with_incoming_shutdown(TcpListenerStream::new(admin_listener), stopped(&stop));
        async move { serve.await.map_err(|e| e.to_string()) }
    });
    let mut metrics_addr = None;
    if let Some((listener, addr)) = metrics_listener {
        metrics_addr = Some(addr);
        let serve = metrics::serve(listener, Arc::clone(&state), stopped(&stop));
        tasks.spawn(async move { serve.await.map_err(|e| e.to_string()) });
    }

    tracing::info!("listening; building the record table");
    Ok(Starting {
        inner: RunningServer {
            discovery_addr,
            admin_addr,
            metrics_addr,
            stop,
            tasks,
            health,
            state,
        },
        epoch,
    })
}
