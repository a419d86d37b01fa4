//! `cds serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cds_server::config::{self, ServerConfig};
use clap::Args;

/// Options of `cds serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the Discovery service (for apps).
    #[arg(long, default_value = config::DEFAULT_LISTEN, env = "CDS_LISTEN")]
    listen: SocketAddr,
    /// Address of the Admin service (for the messenger backend; keep it private).
    #[arg(long, default_value = config::DEFAULT_ADMIN_LISTEN, env = "CDS_ADMIN_LISTEN")]
    admin_listen: SocketAddr,
    /// Directory of the registry and the OPRF key (created if missing).
    #[arg(long, default_value = config::DEFAULT_DATA_DIR, env = "CDS_DATA_DIR")]
    data_dir: PathBuf,
    /// The table has 2^BITS buckets; 0 means one bucket (see docs/threat-model.md).
    #[arg(long, default_value_t = config::DEFAULT_BUCKET_BITS, env = "CDS_BUCKET_BITS")]
    bucket_bits: u8,
    /// The most blinded elements one Discover request may carry.
    #[arg(long, default_value_t = config::DEFAULT_MAX_ELEMENTS, env = "CDS_MAX_ELEMENTS")]
    max_elements: u32,
    /// The messenger backend's credential public key (64 hex digits). Without
    /// it the server runs in development mode with an issuer key in the data
    /// directory (`cds admin token` uses it).
    #[arg(long, env = "CDS_ISSUER_PUBLIC_KEY")]
    issuer_public_key: Option<String>,
    /// Evaluations (new contacts) an account may spend at once.
    #[arg(long, default_value_t = config::DEFAULT_QUOTA_BURST, env = "CDS_QUOTA_BURST")]
    quota_burst: u32,
    /// Evaluations given back to each account per hour.
    #[arg(long, default_value_t = config::DEFAULT_QUOTA_REFILL_PER_HOUR, env = "CDS_QUOTA_REFILL_PER_HOUR")]
    quota_refill_per_hour: f64,
    /// Open connections per client address (IPv4, or IPv6 /64). Behind a
    /// proxy every client shares its address: raise this there.
    #[arg(long, default_value_t = 64, env = "CDS_PEER_MAX_CONNECTIONS")]
    peer_max_connections: u32,
    /// Sustained requests per second per client address.
    #[arg(long, default_value_t = 20.0, env = "CDS_PEER_REQUESTS_PER_SECOND")]
    peer_requests_per_second: f64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, env = "CDS_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Human,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CDS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Run the server until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let mut cfg = ServerConfig::new(&args.data_dir);
    cfg.listen = args.listen;
    cfg.admin_listen = args.admin_listen;
    cfg.bucket_bits = args.bucket_bits;
    cfg.max_elements_per_request = args.max_elements;
    cfg.quota.burst = args.quota_burst;
    cfg.quota.refill_per_hour = args.quota_refill_per_hour;
    cfg.peer.max_connections = args.peer_max_connections;
    cfg.peer.requests_per_second = args.peer_requests_per_second;
    if let Some(hex_key) = &args.issuer_public_key {
        let bytes: [u8; 32] = hex::decode(hex_key.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("--issuer-public-key must be 64 hex digits")?;
        cfg.issuer = Some(
            cds_core::CredentialVerifier::from_bytes(&bytes)
                .context("--issuer-public-key is not a valid Ed25519 public key")?,
        );
    }
    let server = cds_server::start(cfg)
        .await
        .context("the server could not start")?;
    eprintln!(
        "cds is serving: discovery on http://{}, admin on http://{}, data in {}",
        server.discovery_addr(),
        server.admin_addr(),
        args.data_dir.display()
    );
    let stop = server.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        stop();
    });
    server
        .wait()
        .await
        .context("the server stopped with an error")?;
    Ok(())
}
