//! `cds serve`.
//!
//! Settings come from, in rising precedence: the defaults, the file of
//! `--config`, `CDS_*` environment variables, and flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::admin::TokenFile;
use anyhow::Context;
use cds_core::{BucketBits, CredentialVerifier};
use cds_server::config::{self, LogFormat, Settings, docs};
use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};

/// Options of `cds serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A TOML configuration file; flags and CDS_* environment variables win
    /// over it. `cds serve --print-config` writes one with every setting.
    #[arg(long, value_name = "FILE", env = "CDS_CONFIG")]
    config: Option<PathBuf>,
    /// Print the configuration the server would run with (the defaults, the
    /// file, the environment and the flags) as TOML, and exit.
    #[arg(long)]
    print_config: bool,
    // Boxed: the settings are many, and `ServeArgs` lives in an enum.
    #[command(flatten)]
    flags: Box<SettingArgs>,
}

/// One flag per setting. Every one is an `Option`: `None` keeps what the
/// configuration file (or the default) says.
#[derive(Args, Debug)]
struct SettingArgs {
    #[arg(long, env = "CDS_LISTEN", value_name = "ADDR", help = docs::LISTEN.help())]
    listen: Option<SocketAddr>,
    #[arg(long, env = "CDS_ADMIN_LISTEN", value_name = "ADDR", help = docs::ADMIN_LISTEN.help())]
    admin_listen: Option<SocketAddr>,
    #[arg(
        long,
        env = "CDS_ADMIN_TOKEN_FILE",
        value_name = "FILE",
        value_parser = crate::admin::parse_token_file,
        help = docs::ADMIN_TOKEN_FILE.help()
    )]
    admin_token_file: Option<TokenFile>,
    #[arg(
        long,
        env = "CDS_METRICS_LISTEN",
        value_name = "ADDR",
        value_parser = parse_metrics_listen,
        help = docs::METRICS_LISTEN.help()
    )]
    metrics_listen: Option<MetricsListen>,
    #[arg(long, env = "CDS_DATA_DIR", value_name = "DIR", help = docs::DATA_DIR.help())]
    data_dir: Option<PathBuf>,
    #[arg(
        long,
        env = "CDS_BUCKET_BITS",
        value_name = "BITS",
        value_parser = parse_bucket_bits,
        help = docs::BUCKET_BITS.help()
    )]
    bucket_bits: Option<BucketBits>,
    #[arg(
        long,
        alias = "max-elements-per-request",
        env = "CDS_MAX_ELEMENTS",
        value_name = "N",
        help = docs::MAX_ELEMENTS_PER_REQUEST.help()
    )]
    max_elements: Option<u32>,
    #[arg(
        long,
        env = "CDS_MAX_RESPONSE_BYTES",
        value_name = "BYTES",
        help = docs::MAX_RESPONSE_BYTES.help()
    )]
    max_response_bytes: Option<usize>,
    #[arg(
        long,
        env = "CDS_REQUEST_TIMEOUT",
        value_name = "DURATION",
        value_parser = config::parse_duration,
        help = docs::REQUEST_TIMEOUT.help()
    )]
    request_timeout: Option<Duration>,
    #[arg(
        long,
        env = "CDS_SHUTDOWN_TIMEOUT",
        value_name = "DURATION",
        value_parser = config::parse_duration,
        help = docs::SHUTDOWN_TIMEOUT.help()
    )]
    shutdown_timeout: Option<Duration>,
    #[arg(
        long,
        env = "CDS_CHANGE_LOG_RETENTION",
        value_name = "DURATION",
        value_parser = config::parse_duration,
        help = docs::CHANGE_LOG_RETENTION.help()
    )]
    change_log_retention: Option<Duration>,
    #[arg(
        long,
        env = "CDS_ISSUER_PUBLIC_KEY",
        value_name = "HEX",
        value_parser = parse_issuer_public_key,
        help = docs::ISSUER_PUBLIC_KEY.help()
    )]
    issuer_public_key: Option<IssuerPublicKey>,
    #[arg(
        long,
        env = "CDS_LOG_FORMAT",
        value_name = "FORMAT",
        value_parser = PossibleValuesParser::new(["human", "json"])
            .map(|s| if s == "json" { LogFormat::Json } else { LogFormat::Human }),
        help = docs::LOG_FORMAT.help()
    )]
    log_format: Option<LogFormat>,
    #[arg(long, env = "CDS_QUOTA_BURST", value_name = "N", help = docs::QUOTA_BURST.help())]
    quota_burst: Option<u32>,
    #[arg(
        long,
        env = "CDS_QUOTA_REFILL_PER_HOUR",
        value_name = "N",
        help = docs::QUOTA_REFILL_PER_HOUR.help()
    )]
    quota_refill_per_hour: Option<f64>,
    #[arg(
        long,
        env = "CDS_QUOTA_MAX_IN_FLIGHT",
        value_name = "N",
        help = docs::QUOTA_MAX_IN_FLIGHT.help()
    )]
    quota_max_in_flight: Option<u32>,
    #[arg(
        long,
        env = "CDS_PEER_MAX_CONNECTIONS",
        value_name = "N",
        help = docs::PEER_MAX_CONNECTIONS.help()
    )]
    peer_max_connections: Option<u32>,
    #[arg(
        long,
        env = "CDS_PEER_REQUESTS_PER_SECOND",
        value_name = "N",
        help = docs::PEER_REQUESTS_PER_SECOND.help()
    )]
    peer_requests_per_second: Option<f64>,
    #[arg(
        long,
        env = "CDS_PEER_REQUEST_BURST",
        value_name = "N",
        help = docs::PEER_REQUEST_BURST.help()
    )]
    peer_request_burst: Option<u32>,
    #[arg(
        long,
        env = "CDS_OVERLOAD_MAX_CONCURRENT",
        value_name = "N",
        help = docs::OVERLOAD_MAX_CONCURRENT.help()
    )]
    overload_max_concurrent: Option<usize>,
    #[arg(
        long,
        env = "CDS_OVERLOAD_MAX_QUEUED",
        value_name = "N",
        help = docs::OVERLOAD_MAX_QUEUED.help()
    )]
    overload_max_queued: Option<usize>,
    #[arg(
        long,
        env = "CDS_OVERLOAD_MAX_QUEUE_WAIT",
        value_name = "DURATION",
        value_parser = config::parse_duration,
        help = docs::OVERLOAD_MAX_QUEUE_WAIT.help()
    )]
    overload_max_queue_wait: Option<Duration>,
}

fn parse_bucket_bits(text: &str) -> Result<BucketBits, String> {
    let max = cds_core::MAX_BUCKET_BITS;
    let bits: u8 = text
        .parse()
        .map_err(|_| format!("expected a whole number from 0 to {max}"))?;
    BucketBits::new(bits).map_err(|_| {
        format!(
            "bucket_bits must be from 0 to {max}, not {bits} (set by {})",
            where_set("bucket_bits")
        )
    })
}

/// `--metrics-listen`: an address, or "" for none.
#[derive(Clone, Copy, Debug)]
struct MetricsListen(Option<SocketAddr>);

fn parse_metrics_listen(text: &str) -> Result<MetricsListen, String> {
    config::parse_optional_addr(text).map(MetricsListen)
}

/// `--issuer-public-key`: a key, or "" for development mode.
#[derive(Clone, Copy, Debug)]
struct IssuerPublicKey(Option<CredentialVerifier>);

fn parse_issuer_public_key(text: &str) -> Result<IssuerPublicKey, String> {
    config::parse_issuer_key(text).map(IssuerPublicKey)
}

impl ServeArgs {
    /// The defaults, then the configuration file, then the environment and
    /// the flags (clap has already let flags win over the environment).
    fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        self.flags.apply(&mut settings);
        settings
            .server
            .validate()
            .map_err(|e| anyhow::anyhow!("{e} (set by {})", where_set(e.key)))?;
        Ok(settings)
    }
}

impl SettingArgs {
    /// Replace in `settings` whatever a flag or an environment variable sets.
    fn apply(&self, settings: &mut Settings) {
        fn set<T: Clone>(setting: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *setting = v.clone();
            }
        }
        let s = &mut settings.server;
        set(&mut s.listen, &self.listen);
        set(&mut s.admin_listen, &self.admin_listen);
        if let Some(TokenFile(path)) = &self.admin_token_file {
            s.admin_token_file = path.clone();
        }
        if let Some(MetricsListen(addr)) = self.metrics_listen {
            s.metrics_listen = addr;
        }
        set(&mut s.data_dir, &self.data_dir);
        set(&mut s.bucket_bits, &self.bucket_bits);
        set(&mut s.max_elements_per_request, &self.max_elements);
        set(&mut s.max_response_bytes, &self.max_response_bytes);
        set(&mut s.request_timeout, &self.request_timeout);
        set(&mut s.shutdown_timeout, &self.shutdown_timeout);
        set(&mut s.change_log_retention, &self.change_log_retention);
        if let Some(IssuerPublicKey(key)) = self.issuer_public_key {
            s.issuer = key;
        }
        set(&mut s.quota.burst, &self.quota_burst);
        set(&mut s.quota.refill_per_hour, &self.quota_refill_per_hour);
        set(&mut s.quota.max_in_flight, &self.quota_max_in_flight);
        set(&mut s.peer.max_connections, &self.peer_max_connections);
        set(
            &mut s.peer.requests_per_second,
            &self.peer_requests_per_second,
        );
        set(&mut s.peer.request_burst, &self.peer_request_burst);
        set(
            &mut s.overload.max_concurrent,
            &self.overload_max_concurrent,
        );
        set(&mut s.overload.max_queued, &self.overload_max_queued);
        set(
            &mut s.overload.max_queue_wait,
            &self.overload_max_queue_wait,
        );
        set(&mut settings.log_format, &self.log_format);
    }
}

/// Where the setting `key` (`quota.burst`) comes from, for errors.
fn where_set(key: &str) -> String {
    let flag = if key == docs::MAX_ELEMENTS_PER_REQUEST.key {
        "max-elements".to_owned()
    } else {
        key.replace(['.', '_'], "-")
    };
    let env = flag.replace('-', "_").to_uppercase();
    format!("--{flag}, CDS_{env} or `{key}` in the configuration file")
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

/// The exit code after a second stop signal cut the graceful stop short.
const EXIT_FORCED: i32 = 3;

/// SIGTERM and SIGINT. On Unix they are listened for from creation on: a
/// signal that comes while the server binds or builds its table is kept,
/// not left to the default action (which would kill the process
/// uncleanly). Elsewhere Ctrl-C is listened for once first awaited.
struct StopSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind| signal(kind).context("cannot listen for SIGTERM and SIGINT");
            Ok(Self {
                terminate: listen(SignalKind::terminate())?,
                interrupt: listen(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// The next SIGTERM or SIGINT.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Run the server until SIGINT or SIGTERM (with `--print-config`, print
/// the configuration instead).
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    if args.print_config {
        return crate::print_out(&settings.to_toml()?);
    }
    init_logging(settings.log_format);
    // Signals are acted on from here on: the first one is kept until the
    // server can be told (opening a large registry can take a while), a
    // second one exits at once, whenever it comes.
    let mut signals = StopSignals::listen()?;
    let (signalled, mut stop_requested) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signals.next().await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = signalled.send(true);
        signals.next().await;
        tracing::warn!(
            "second stop signal: exiting without waiting for requests in flight or closing the registry"
        );
        std::process::exit(EXIT_FORCED);
    });
    let cfg = settings.server;
    let data_dir = cfg.data_dir.clone();
    let starting = cds_server::bind(cfg)
        .await
        .context("the server could not start")?;
    let stop = starting.stopper();
    tokio::spawn(async move {
        if stop_requested.wait_for(|s| *s).await.is_ok() {
            stop();
        }
    });
    let metrics = starting
        .metrics_addr()
        .map(|a| format!(", metrics on http://{a}/metrics"))
        .unwrap_or_default();
    eprintln!(
        "cds is starting: building the record table (health reports NOT_SERVING until it is done){metrics}"
    );
    let server = match starting.serve(None).await {
        Ok(server) => server,
        Err(cds_server::ServerError::ShuttingDown) => {
            tracing::info!("stopped before the record table was built");
            return Ok(());
        }
        Err(e) => return Err(e).context("the server could not build its record table"),
    };
    eprintln!(
        "cds is serving: discovery on http://{}, admin on http://{}, data in {}{metrics}",
        server.discovery_addr(),
        server.admin_addr(),
        data_dir.display()
    );
    server
        .wait()
        .await
        .context("the server stopped with an error")?;
    Ok(())
}
