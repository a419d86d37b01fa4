//! `cds serve`.
//!
//! Settings come from, in rising precedence: the defaults, the file of
//! `--config`, `CDS_*` environment variables, and flags.

use std::path::PathBuf;

use anyhow::Context;
use cds_cli::settings::{self, LogFormat, SettingArgs, Settings};
use clap::Args;

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
    // One flag per setting, made from `cds_cli::settings::SETTINGS`.
    #[command(flatten)]
    flags: SettingArgs,
}

impl ServeArgs {
    /// The defaults, then the configuration file, then the environment and
    /// the flags (clap has already let flags win over the environment).
    fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        self.flags
            .apply(&mut settings)
            .map_err(anyhow::Error::msg)?;
        settings
            .server
            .validate()
            .map_err(|e| anyhow::anyhow!("{e} (set by {})", settings::where_set(e.key)))?;
        Ok(settings)
    }
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
    let scheme = |tls: bool| if tls { "https" } else { "http" };
    let (discovery_scheme, admin_scheme) = (scheme(cfg.discovery_tls()), scheme(cfg.admin_tls()));
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
        .map(|a| format!(", metrics on {admin_scheme}://{a}/metrics"))
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
        "cds is serving: discovery on {discovery_scheme}://{}, admin on {admin_scheme}://{}, data in {}{metrics}",
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
