//! The listeners: Discovery and Admin, each with its own health service and
//! reflection, its TLS, its limits and its layers (metrics, response
//! memory), serving until the stop signal.

use std::sync::Arc;
use std::time::Duration;

use cds_proto::v1::admin_server::AdminServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::admin::AdminService;
use crate::admin_token::AdminToken;
use crate::discovery::{DiscoveryRoutes, DiscoveryService};
use crate::error::ServerError;
use crate::lifecycle::ServeTasks;
use crate::limits::peer::{LimitedConnection, PeerLimits};
use crate::limits::response_memory::HoldLayer;
use crate::metrics::layer::ObserveLayer;
use crate::state::State;
use crate::tls::ListenerTls;

/// The full name of the Discovery service, as health checks name it.
pub(crate) const DISCOVERY_SERVICE: &str = "cds.v1.Discovery";
/// The full name of the Admin service.
pub(crate) const ADMIN_SERVICE: &str = "cds.v1.Admin";
/// The health service both listeners serve.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
/// Reflection, as both listeners serve it.
const REFLECTION_V1_SERVICE: &str = "grpc.reflection.v1.ServerReflection";
/// Reflection's older version, served beside v1.
const REFLECTION_V1ALPHA_SERVICE: &str = "grpc.reflection.v1alpha.ServerReflection";

/// Largest admin message accepted (an import chunk).
const MAX_ADMIN_MESSAGE: usize = 16 * 1024 * 1024;
/// Concurrent requests one connection may have in flight.
const PER_CONNECTION_CONCURRENCY: usize = 64;

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
pub(crate) fn stopped(stop: &watch::Sender<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = stop.subscribe();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// The services a listener serving `cds_service` advertises by reflection:
/// that one, health and reflection itself (both versions), never the cds
/// service of the other listener.
fn reflection_builder(cds_service: &str) -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cds_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .with_service_name(cds_service)
        .with_service_name(HEALTH_SERVICE)
        .with_service_name(REFLECTION_V1_SERVICE)
        .with_service_name(REFLECTION_V1ALPHA_SERVICE)
}

/// gRPC reflection for a listener serving `cds_service`, in both versions
/// tools speak: `grpc.reflection.v1` and the older `v1alpha` (grpcio-reflection,
/// older grpcurl).
fn reflection(
    cds_service: &str,
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    ServerError,
> {
    let error =
        |e: tonic_reflection::server::Error| ServerError::Config(format!("gRPC reflection: {e}"));
    Ok((
        reflection_builder(cds_service).build_v1().map_err(error)?,
        reflection_builder(cds_service)
            .build_v1alpha()
            .map_err(error)?,
    ))
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

/// A server builder for one listener: TLS with `tls`, if given, and the
/// metadata limit of the wire contract.
fn with_tls(
    builder: tonic::transport::Server,
    tls: Option<ListenerTls>,
) -> Result<tonic::transport::Server, ServerError> {
    let builder =
        builder.http2_max_header_list_size(Some(cds_proto::wire::MAX_METADATA_BYTES as u32));
    match tls {
        Some(tls) => builder
            .tls_config(tls.tonic())
            .map_err(|e| ServerError::Config(format!("TLS: {e}"))),
        None => Ok(builder),
    }
}

/// Serve Discovery (with health and reflection) on `listener` until `stop`.
pub(crate) async fn spawn_discovery(
    tasks: &mut ServeTasks,
    state: &Arc<State>,
    listener: TcpListener,
    tls: Option<ListenerTls>,
    stop: &watch::Sender<bool>,
) -> Result<HealthReporter, ServerError> {
    let (health, health_service) = not_serving_health().await;
    let (reflection, reflection_v1alpha) = reflection(DISCOVERY_SERVICE)?;
    let config = &state.config;
    // Hand-written rather than generated: `all` responses send one shared
    // encoding of the table without copying it (`discovery::route`).
    let discovery = DiscoveryRoutes::new(
        DiscoveryService {
            state: Arc::clone(state),
        },
        cds_proto::wire::max_discover_request_bytes(config.max_elements_per_request as usize),
        config.max_response_bytes.saturating_add(4096),
    );
    let serve = with_tls(tonic::transport::Server::builder(), tls)?
        .layer(ObserveLayer::new(Arc::clone(&state.metrics)))
        // Responses keep their memory reservation until they are sent.
        .layer(HoldLayer)
        .timeout(config.request_timeout)
        // Find and drop dead or stalled peers instead of holding their
        // responses forever.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .concurrency_limit_per_connection(PER_CONNECTION_CONCURRENCY)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
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
pub(crate) async fn spawn_admin(
    tasks: &mut ServeTasks,
    state: &Arc<State>,
    listener: TcpListener,
    token: Option<AdminToken>,
    tls: Option<ListenerTls>,
    stop: &watch::Sender<bool>,
) -> Result<HealthReporter, ServerError> {
    let (health, health_service) = not_serving_health().await;
    let (reflection, reflection_v1alpha) = reflection(ADMIN_SERVICE)?;
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
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(admin)
        // The same per-address connection limit as Discovery: Admin may
        // listen beyond loopback, where anyone can open connections.
        .serve_with_incoming_shutdown(
            limited_incoming(listener, state.peers.clone()),
            stopped(stop),
        );
    tasks.spawn(async move { serve.await.map_err(|e| e.to_string()) });
    Ok(health)
}
