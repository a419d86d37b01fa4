//! Starting a server: open the data directory, bind every listener and
//! start answering (health says NOT_SERVING until the table is built).

use std::net::SocketAddr;
use std::sync::Arc;

use cds_core::CredentialVerifier;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic_health::ServingStatus;

use crate::admin_token::AdminToken;
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::housekeeping::sweep;
use crate::keystore::{self, Epoch};
use crate::lifecycle::{Health, RunningServer, ServeTasks, Starting};
use crate::limits::budget_store::{StoredBudget, unix_ms_now};
use crate::limits::gate::Gate;
use crate::limits::peer::PeerLimits;
use crate::limits::quota::Quotas;
use crate::limits::shared_budget::SharedBudgets;
use crate::limits::token_bucket::Rate;
use crate::listeners::{ADMIN_SERVICE, DISCOVERY_SERVICE, spawn_admin, spawn_discovery, stopped};
use crate::postgres::registry::PostgresRegistry;
use crate::private_files;
use crate::registry::Registry;
use crate::state::State;
use crate::tls::ListenerTls;

/// What the data directory and the configured files give a server.
pub(crate) struct Opened {
    budgets: Vec<StoredBudget>,
    /// The key from the data directory (`None` with keys in PostgreSQL).
    pub(crate) epoch: Option<Epoch>,
    pub(crate) registry: Registry,
    /// The shared registry, when `registry` names a PostgreSQL database.
    pub(crate) shared: Option<PostgresRegistry>,
    pub(crate) verifier: CredentialVerifier,
    admin_token: Option<AdminToken>,
    discovery_tls: Option<ListenerTls>,
    admin_tls: Option<ListenerTls>,
}

/// Read the admin token and the TLS files, create or check the data
/// directory, open the registry (its lock keeps a second server off the
/// directory) and load or create the key. Every secret file and the data
/// directory must be closed to group and others (Unix). Blocking: runs on
/// the blocking pool.
pub(crate) fn open_store(config: &ServerConfig) -> Result<Opened, ServerError> {
    if let Some(path) = &config.admin_token_file {
        private_files::check_secret(path, "the admin token file")?;
    }
    for key in [&config.tls_key, &config.admin_tls_key]
        .into_iter()
        .flatten()
    {
        private_files::check_secret(key, "the TLS private key file")?;
    }
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
    private_files::check_data_dir(dir)?;
    for (name, what) in private_files::DATA_DIR_SECRETS {
        private_files::check_secret(&dir.join(name), what)?;
    }
    let verifier = match (config.issuer, config.dev) {
        (Some(v), _) => v,
        (None, true) => {
            tracing::warn!(
                "development mode: credentials are checked against {} in the data directory; \
                 give the messenger backend's public key for production",
                keystore::ISSUER_FILE
            );
            keystore::load_or_create_dev_issuer(dir)?
        }
        // `validate` refuses this before anything is opened.
        (None, false) => {
            return Err(ServerError::Config(
                "no issuer_public_key and not in development mode".into(),
            ));
        }
    };
    // The registry first: its lock keeps a second server off this
    // directory before anything in it (such as a pending key) is touched.
    private_files::create_private(&dir.join(crate::registry::DB_FILE))?;
    let registry = Registry::open_with(dir, !config.change_log_retention.is_zero())?;
    // With keys shared through PostgreSQL, the data directory holds none.
    let epoch = match config.registry {
        None => Some(keystore::load_or_create(dir)?),
        Some(_) => None,
    };
    let budgets = crate::store::BudgetStore::load_budgets(&registry)?;
    let shared = config
        .registry
        .as_deref()
        .map(|url| PostgresRegistry::open(url, config.registry_schema.as_deref()))
        .transpose()?;
    Ok(Opened {
        budgets,
        epoch,
        registry,
        shared,
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
    shared: Option<PostgresRegistry>,
    verifier: CredentialVerifier,
) -> Result<State, ServerError> {
    let peers = PeerLimits::new(
        config.peer.max_connections,
        Rate {
            burst: f64::from(config.peer.request_burst),
            per_sec: config.peer.requests_per_second,
        },
    );
    let rate = Rate::per_hour(config.quota.burst, config.quota.refill_per_hour);
    let quotas = match &config.budgets {
        None => Quotas::new(rate, config.quota.max_in_flight),
        Some(url) => Quotas::with_shared(
            config.quota.max_in_flight,
            SharedBudgets::new(url, &config.budgets_key_prefix, rate)?,
        ),
    };
    let registry = Arc::new(registry);
    let users: Arc<dyn crate::store::RegistryStore> = match shared {
        Some(shared) => Arc::new(shared),
        None => Arc::clone(&registry) as Arc<dyn crate::store::RegistryStore>,
    };
    Ok(State::new(
        users,
        registry,
        config.clone(),
        verifier,
        quotas,
        peers,
        Gate::new(
            config.overload.max_concurrent,
            config.overload.max_queued,
            config.overload.max_queue_wait,
        ),
    ))
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
    let (epoch, replica) = match (opened.epoch, &config.registry) {
        (Some(epoch), _) => (epoch, None),
        (None, Some(url)) => {
            let (epoch, replica) = open_shared_keys(&config, url).await?;
            (epoch, Some(replica))
        }
        (None, None) => {
            return Err(ServerError::Config(
                "no key: neither the data directory nor a registry holds one".into(),
            ));
        }
    };
    note_terminator(&config);
    let (discovery_listener, discovery_addr) = bind_listener(config.listen).await?;
    let (admin_listener, admin_addr) = bind_listener(config.admin_listen).await?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(bind_listener(addr).await?),
        None => None,
    };

    let mut state = new_state(&config, opened.registry, opened.shared, opened.verifier)?;
    let shared_keys = replica.is_some();
    state.keys = replica;
    let state = Arc::new(state);
    // Budgets spent before a restart stay spent (shared budgets stay in Redis).
    if config.budgets.is_none() {
        state
            .quotas
            .restore(opened.budgets, std::time::Instant::now(), unix_ms_now());
    }

    let (stop, _) = watch::channel(false);
    let mut tasks = ServeTasks::new();
    tasks.spawn(sweep(Arc::downgrade(&state), stopped(&stop)));
    if shared_keys {
        tasks.spawn(crate::replicated_keys::follow(
            Arc::downgrade(&state),
            stopped(&stop),
        ));
    }
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

    let backend = cds_core::CurveBackend::detect();
    tracing::info!(
        curve_backend = backend.as_str(),
        avx512_compiled = cds_core::CurveBackend::avx512_compiled(),
        "listening; building the record table"
    );
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

/// Read the key-encryption key, connect to the shared database and load
/// its current key (creating it if this is the deployment's first
/// replica). A KEK that does not open the stored key stops the start.
async fn open_shared_keys(
    config: &ServerConfig,
    url: &str,
) -> Result<(Epoch, crate::replicated_keys::Replica), ServerError> {
    let kek_file = config.key_encryption_key_file.as_deref().ok_or_else(|| {
        ServerError::Config("registry = postgres://... needs key_encryption_key_file".into())
    })?;
    let kek = {
        let path = kek_file.to_owned();
        tokio::task::spawn_blocking(move || crate::postgres::keys::Kek::read(&path))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??
    };
    let pg = crate::postgres::Postgres::connect(url, config.registry_schema.as_deref()).await?;
    let store = crate::postgres::keys::KeyStore::new(pg, kek);
    let epoch = store.load_or_create_current().await?;
    tracing::info!(
        epoch = format_args!("{:016x}", epoch.id),
        "the OPRF key was loaded from the shared database"
    );
    Ok((epoch, crate::replicated_keys::Replica::new(store)))
}
