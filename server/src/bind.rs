//! Starting a server: open the data directory, bind every listener and
//! start answering (health says NOT_SERVING until the table is built).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cds_core::CredentialVerifier;
use cds_proto::v1::admin_server::AdminServer;
use cds_proto::v1::discovery_server::DiscoveryServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::admin::AdminService;
use crate::admin_token::AdminToken;
use crate::config::ServerConfig;
use crate::discovery::DiscoveryService;
use crate::error::ServerError;
use crate::housekeeping::sweep;
use crate::keystore::{self, Epoch};
use crate::lifecycle::{Health, RunningServer, ServeTasks, Starting};
use crate::limits::gate::Gate;
use crate::limits::peer::{LimitedConnection, PeerLimits};
use crate::limits::quota::Quotas;
use crate::limits::token_bucket::Rate;
use crate::metrics::layer::ObserveLayer;
use crate::registry::Registry;
use crate::state::State;
use crate::tls::ListenerTls;

/// The full name of the Discovery service, as health checks name it.
const DISCOVERY_SERVICE: &str = "cds.v1.Discovery";
/// The full name of the Admin service.
const ADMIN_SERVICE: &str = "cds.v1.Admin";

/// Largest admin message accepted (an import chunk).
const MAX_ADMIN_MESSAGE: usize = 16 * 1024 * 1024;
/// Concurrent requests one connection may have in flight.
const PER_CONNECTION_CONCURRENCY: usize = 64;

/// What the data directory and the configured files give a server.
pub(crate) struct Opened {
    pub(crate) epoch: Epoch,
    pub(crate) registry: Registry,
    pub(crate) verifier: CredentialVerifier,
    admin_token: Option<AdminToken>,
    discovery_tls: Option<ListenerTls>,
    admin_tls: Option<ListenerTls>,
}

/// Read the admin token and the TLS files, create or check the data
/// directory, open the registry (its lock keeps a second server off the
/// directory) and load or create the key. Blocking: runs on the blocking
/// pool.
pub(crate) fn open_store(config: &ServerConfig) -> Result<Opened, ServerError> {
    let admin_token = config
        .admin_token_file
        .as_deref()
        .map(AdminToken::read)
        .transpose()?;
    let discovery_tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(ListenerTls::read(cert, key, None)?),
        _ => None,
    };
    let admin_tls = match (&config.admin_tls_cert, &config.admin_tls_key) {
        (Some(cert), Some(key)) => Some(ListenerTls::read(
            cert,
            key,
            config.admin_client_ca.as_deref(),
        )?),
        _ => None,
    };
    let dir = &config.data_dir;
    keystore::ensure_private_dir(dir)?;
    let verifier = match config.issuer {
        Some(v) => v,
        None => {
            tracing::warn!(
                "development mode: credentials are checked against {} in the data directory; \
                 give the messenger backend's public key for production",
                keystore::ISSUER_FILE
            );
            keystore::load_or_create_dev_issuer(dir)?
        }
    };
    // The registry first: its lock keeps a second server off this
    // directory before anything in it (such as a pending key) is touched.
    let registry = Registry::open_with(dir, !config.change_log_retention.is_zero())?;
    let epoch = keystore::load_or_create(dir)?;
    Ok(Opened {
        epoch,
        registry,
        verifier,
        admin_token,
        discovery_tls,
        admin_tls,
    })
}

/// The shared state of a server with `config`, its limiters set up.
pub(crate) fn new_state(
    config: &ServerConfig,
    registry: Registry,
    verifier: CredentialVerifier,
) -> State {
    let peers = PeerLimits::new(
        config.peer.max_connections,
        Rate {
            burst: f64::from(config.peer.request_burst),
            per_sec: config.peer.requests_per_second,
        },
    );
    State::new(
        registry,
        config.clone(),
        verifier,
        Quotas::new(
            Rate::per_hour(config.quota.burst, config.quota.refill_per_hour),
            config.quota.max_in_flight,
        ),
        peers,
        Gate::new(
            config.overload.max_concurrent,
            config.overload.max_queued,
            config.overload.max_queue_wait,
        ),
    )
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

/// A future that resolves once `stop` says so.
fn stopped(stop: &watch::Sender<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = stop.subscribe();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// gRPC reflection of the cds and health services.
fn reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    ServerError,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cds_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServerError::Config(format!("gRPC reflection: {e}")))
}

/// A health reporter for one listener and its service, saying NOT_SERVING
/// (a fresh reporter says SERVING) until the table is built.
async fn not_serving_health() -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (health, service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    (health, service)
}

/// `builder` serving TLS with `tls`, if given.
fn with_tls(
    builder: tonic::transport::Server,
    tls: Option<ListenerTls>,
) -> Result<tonic::transport::Server, ServerError> {
    match tls {
        Some(tls) => builder
            .tls_config(tls.tonic())
            .map_err(|e| ServerError::Config(format!("TLS: {e}"))),
        None => Ok(builder),
    }
}

/// Say once, at start, which listeners serve plaintext beyond loopback
/// because the operator declared a TLS terminator in front.
fn note_terminator(config: &ServerConfig) {
    let beyond = |addr: SocketAddr, tls: bool| !tls && !addr.ip().is_loopback();
    let mut plaintext = Vec::new();
    if beyond(config.listen, config.discovery_tls()) {
        plaintext.push("Discovery");
    }
    if beyond(config.admin_listen, config.admin_tls()) {
        plaintext.push("Admin");
    }
    if config
        .metrics_listen
        .is_some_and(|addr| beyond(addr, config.admin_tls()))
    {
        plaintext.push("metrics");
    }
    if !plaintext.is_empty() {
        tracing::warn!(
            listeners = plaintext.join(", "),
            "serving plaintext beyond loopback (insecure_behind_terminator): a TLS terminator in front must do TLS"
        );
    }
}

/// Serve Discovery (with health and reflection) on `listener` until `stop`.
async fn spawn_discovery(
    tasks: &mut ServeTasks,
    state: &Arc<State>,
    listener: TcpListener,
    tls: Option<ListenerTls>,
    stop: &watch::Sender<bool>,
) -> Result<HealthReporter, ServerError> {
    let (health, health_service) = not_serving_health().await;
    let config = &state.config;
    let discovery = DiscoveryServer::new(DiscoveryService {
        state: Arc::clone(state),
    })
    .max_decoding_message_size(cds_proto::wire::max_discover_request_bytes(
        config.max_elements_per_request as usize,
    ))
    .max_encoding_message_size(config.max_response_bytes.saturating_add(4096));
    let serve = with_tls(tonic::transport::Server::builder(), tls)?
        .layer(ObserveLayer::new(Arc::clone(&state.metrics)))
        .timeout(config.request_timeout)
        // Find and drop dead or stalled peers instead of holding their
        // responses forever.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .concurrency_limit_per_connection(PER_CONNECTION_CONCURRENCY)
        .add_service(health_service)
        .add_service(reflection()?)
        .add_service(discovery)
        .serve_with_incoming_shutdown(
            limited_incoming(listener, state.peers.clone()),
            stopped(stop),
        );
    tasks.spawn(async move { serve.await.map_err(|e| e.to_string()) });
    Ok(health)
}

/// The Admin gRPC service over `state`, as the Admin listener serves it
/// behind the token check.
pub(crate) fn admin_server(state: &Arc<State>) -> AdminServer<AdminService> {
    AdminServer::new(AdminService {
        state: Arc::clone(state),
    })
    .max_decoding_message_size(MAX_ADMIN_MESSAGE)
}

/// Serve Admin (with health and reflection) on `listener` until `stop`,
/// checking `token` on every Admin call when there is one.
async fn spawn_admin(
    tasks: &mut ServeTasks,
    state: &Arc<State>,
    listener: TcpListener,
    token: Option<AdminToken>,
    tls: Option<ListenerTls>,
    stop: &watch::Sender<bool>,
) -> Result<HealthReporter, ServerError> {
    let (health, health_service) = not_serving_health().await;
    if token.is_none() && state.config.admin_client_ca.is_none() {
        tracing::warn!(
            "Admin calls are not authenticated (no admin_token_file or admin_client_ca): any process that reaches the Admin listener can read and change the registry"
        );
    }
    let auth_refusals = state.metrics.admin_auth_refusals.clone();
    let admin =
        InterceptedService::new(
            admin_server(state),
            move |request: tonic::Request<()>| match &token {
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
    let serve = with_tls(tonic::transport::Server::builder(), tls)?
        .layer(ObserveLayer::new(Arc::clone(&state.metrics)))
        .add_service(health_service)
        .add_service(reflection()?)
        .add_service(admin)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped(stop));
    tasks.spawn(async move { serve.await.map_err(|e| e.to_string()) });
    Ok(health)
}

/// Open the data directory and the key, bind every listener and start
/// answering: health checks say NOT_SERVING until [`Starting::serve`] has
/// built the record table.
pub async fn bind(config: ServerConfig) -> Result<Starting, ServerError> {
    config
        .validate()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let opened = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || open_store(&config))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??
    };
    note_terminator(&config);
    let (discovery_listener, discovery_addr) = bind_listener(config.listen).await?;
    let (admin_listener, admin_addr) = bind_listener(config.admin_listen).await?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(bind_listener(addr).await?),
        None => None,
    };

    let state = Arc::new(new_state(&config, opened.registry, opened.verifier));

    let (stop, _) = watch::channel(false);
    let mut tasks = ServeTasks::new();
    tasks.spawn(sweep(Arc::downgrade(&state), stopped(&stop)));
    let health = Health {
        listeners: vec![
            (
                spawn_discovery(
                    &mut tasks,
                    &state,
                    discovery_listener,
                    opened.discovery_tls,
                    &stop,
                )
                .await?,
                DISCOVERY_SERVICE,
            ),
            (
                spawn_admin(
                    &mut tasks,
                    &state,
                    admin_listener,
                    opened.admin_token,
                    opened.admin_tls.clone(),
                    &stop,
                )
                .await?,
                ADMIN_SERVICE,
            ),
        ],
    };
    health.report(ServingStatus::NotServing).await;
    let mut metrics_addr = None;
    if let Some((listener, addr)) = metrics_listener {
        metrics_addr = Some(addr);
        let render = {
            let state = Arc::clone(&state);
            move || state.metrics.render(state.snapshot())
        };
        let tls = opened.admin_tls.as_ref().map(ListenerTls::acceptor);
        let serve = crate::metrics::endpoint::serve(listener, tls, render, stopped(&stop));
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
        epoch: opened.epoch,
    })
}
