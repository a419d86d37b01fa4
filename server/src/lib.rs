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
//!   bulk import, counts. It is not authenticated: bind it to a private
//!   interface.
//!
//! State lives in a data directory: `registry.redb` (users, in redb) and
//! `oprf-key.v1` (the key seed, mode 0600). The table of sealed records is
//! rebuilt in memory at start, in parallel, and updated on every admin
//! change. Evaluation runs on a rayon pool, never on the async workers.
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
mod auth;
pub mod config;
mod discovery;
mod error;
pub mod keystore;
pub mod limits;
pub mod registry;
mod state;
pub mod table;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use cds_core::{BucketBits, VoprfServer};
use cds_proto::v1::admin_server::AdminServer;
use cds_proto::v1::discovery_server::DiscoveryServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

pub use auth::unix_now;
pub use config::ServerConfig;
pub use error::ServerError;

use crate::admin::AdminService;
use crate::discovery::DiscoveryService;
use crate::limits::gate::Gate;
use crate::limits::peer::{LimitedConnection, PeerLimits};
use crate::limits::quota::Quotas;
use crate::limits::token_bucket::Rate;
use crate::registry::Registry;
use crate::state::{Counters, State};
use crate::table::RecordTable;

/// Largest admin message accepted (an import chunk).
const MAX_ADMIN_MESSAGE: usize = 16 * 1024 * 1024;
/// Concurrent requests one connection may have in flight.
const PER_CONNECTION_CONCURRENCY: usize = 64;

/// A started server: its bound addresses and a handle to stop it.
#[derive(Debug)]
pub struct RunningServer {
    discovery_addr: SocketAddr,
    admin_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
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

    /// Stop accepting connections, let in-flight requests finish, and
    /// close the registry.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Wait until the server stops (after [`RunningServer::shutdown`] from
    /// elsewhere, or a transport failure).
    pub async fn wait(self) -> Result<(), ServerError> {
        for t in self.tasks {
            t.await
                .map_err(|e| ServerError::Task(e.to_string()))?
                .map_err(|e| ServerError::Task(e.to_string()))?;
        }
        Ok(())
    }

    /// A handle that stops the server when told to (for signal handlers).
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let stop = self.stop.clone();
        move || {
            let _ = stop.send(true);
        }
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

/// Forget idle quota and peer state every minute: it is kept only as long
/// as it limits anything.
fn spawn_sweeper(state: Arc<State>) {
    let weak = Arc::downgrade(&state);
    drop(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { break };
            let now = Instant::now();
            let accounts = state.quotas.sweep(now);
            let peers = state.peers.sweep(now);
            tracing::debug!(accounts, peers, "idle limiter state forgotten");
        }
    });
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Open the data directory, build the record table, bind both listeners
/// and start serving.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    start_observed(config, None).await
}

/// [`start`], counting in `progress` the users sealed while the record
/// table is built (for progress bars over large registries).
pub async fn start_observed(
    config: ServerConfig,
    progress: Option<Arc<AtomicUsize>>,
) -> Result<RunningServer, ServerError> {
    let bits =
        BucketBits::new(config.bucket_bits).map_err(|e| ServerError::Config(e.to_string()))?;
    if config.max_elements_per_request == 0
        || config.max_elements_per_request as usize > cds_core::MAX_BATCH
    {
        return Err(ServerError::Config(format!(
            "max_elements_per_request must be between 1 and {}",
            cds_core::MAX_BATCH
        )));
    }

    let refill = config.quota.refill_per_hour;
    if !(refill.is_finite() && refill >= 0.0) || config.quota.burst == 0 {
        return Err(ServerError::Config(
            "the quota needs a burst of at least 1 and a finite, non-negative refill per hour"
                .into(),
        ));
    }
    if !(config.peer.requests_per_second.is_finite() && config.peer.requests_per_second > 0.0) {
        return Err(ServerError::Config(
            "peer requests per second must be finite and positive".into(),
        ));
    }
    let dir = config.data_dir.clone();
    let configured_issuer = config.issuer;
    let (epoch, registry, table, build_ms, verifier) = tokio::task::spawn_blocking(move || {
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
        let epoch = keystore::load_or_create(&dir)?;
        let registry = Registry::open(&dir)?;
        let users = registry.discoverable_users()?;
        let started = Instant::now();
        let oprf = VoprfServer::new(epoch.key.clone());
        let table = RecordTable::build(bits, &oprf, &users, progress.as_deref());
        let build_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            records = table.len(),
            build_ms,
            buckets = bits.count(),
            "record table built"
        );
        Ok::<_, ServerError>((epoch, registry, table, build_ms, verifier))
    })
    .await
    .map_err(|e| ServerError::Task(e.to_string()))??;

    let discovery_listener = bind(config.listen).await?;
    let admin_listener = bind(config.admin_listen).await?;
    let discovery_addr = discovery_listener
        .local_addr()
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| ServerError::Bind {
            addr: config.admin_listen,
            source,
        })?;

    let peers = PeerLimits::new(
        config.peer.max_connections,
        Rate {
            burst: f64::from(config.peer.request_burst),
            per_sec: config.peer.requests_per_second,
        },
    );
    let state = Arc::new(State {
        oprf: VoprfServer::new(epoch.key.clone()),
        epoch,
        table,
        registry,
        writes: std::sync::Mutex::new(()),
        config: config.clone(),
        table_build_ms: build_ms,
        verifier,
        counters: Counters::default(),
        quotas: Quotas::new(
            Rate::per_hour(config.quota.burst, config.quota.refill_per_hour),
            config.quota.max_in_flight,
        ),
        peers: peers.clone(),
        gate: Gate::new(
            config.overload.max_concurrent,
            config.overload.max_queued,
            config.overload.max_queue_wait,
        ),
    });
    spawn_sweeper(Arc::clone(&state));

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
    // at most 5 bytes); the rest is framing.
    .max_decoding_message_size(
        config.max_elements_per_request as usize * (cds_core::ELEMENT_LEN + 5) + 4096,
    )
    .max_encoding_message_size(config.max_response_bytes.saturating_add(4096));
    let discovery_task = tokio::spawn(
        tonic::transport::Server::builder()
            .timeout(config.request_timeout)
            // Find and drop dead or stalled peers instead of holding their
            // responses forever.
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
            .tcp_keepalive(Some(std::time::Duration::from_secs(60)))
            .concurrency_limit_per_connection(PER_CONNECTION_CONCURRENCY)
            .add_service(discovery)
            .serve_with_incoming_shutdown(
                limited_incoming(discovery_listener, peers),
                stopped(&stop),
            ),
    );

    let admin =
        AdminServer::new(AdminService { state }).max_decoding_message_size(MAX_ADMIN_MESSAGE);
    let admin_task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(admin)
            .serve_with_incoming_shutdown(TcpListenerStream::new(admin_listener), stopped(&stop)),
    );

    tracing::info!("serving");
    Ok(RunningServer {
        discovery_addr,
        admin_addr,
        stop,
        tasks: vec![discovery_task, admin_task],
    })
}
