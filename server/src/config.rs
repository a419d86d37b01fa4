//! Server settings and their defaults.
//!
//! (Over 400 lines: each setting's field, default and validity rule sit
//! together, so a setting is changed in one place of this file.)
//!
//! [`ServerConfig`] is what the server runs with, typed. Reading settings
//! from flags, the environment or a configuration file, and describing
//! them, is the `cds` command's business (`cds_cli::settings`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cds_core::{BucketBits, CredentialVerifier};

/// Everything `cds serve` can be told. [`ServerConfig::default`] is what a
/// fresh machine gets: loopback listeners and `./cds-data`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where apps reach the Discovery service.
    pub listen: SocketAddr,
    /// Where the messenger backend reaches the Admin service. Keep it off
    /// the public network.
    pub admin_listen: SocketAddr,
    /// A file holding the token every Admin call must present
    /// (`authorization: Bearer <token>`). `None`: Admin calls are not
    /// authenticated, which [`ServerConfig::validate`] allows only on a
    /// loopback `admin_listen`.
    pub admin_token_file: Option<PathBuf>,
    /// Where Prometheus `/metrics` is served. `None`: no metrics endpoint.
    /// It follows the Admin listener's TLS.
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain the Discovery listener serves over TLS (with
    /// `tls_key`). `None`: plaintext, which [`ServerConfig::validate`]
    /// allows only on loopback or with `insecure_behind_terminator`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM certificate chain of the Admin listener (and `/metrics`).
    pub admin_tls_cert: Option<PathBuf>,
    /// PEM private key of `admin_tls_cert`.
    pub admin_tls_key: Option<PathBuf>,
    /// PEM certificates of the CA(s) whose client certificates the Admin
    /// listener requires (mutual TLS). Needs `admin_tls_cert`.
    pub admin_client_ca: Option<PathBuf>,
    /// The operator's statement that a TLS terminator in front of the
    /// listeners does TLS: plaintext is then allowed beyond loopback.
    pub insecure_behind_terminator: bool,
    /// Directory of the registry database and the OPRF key file.
    pub data_dir: PathBuf,
    /// The table has `2^bucket_bits` buckets.
    pub bucket_bits: BucketBits,
    /// The most blinded elements one Discover request may carry.
    pub max_elements_per_request: u32,
    /// The largest encoded response the server sends (records of many
    /// buckets can be large).
    pub max_response_bytes: usize,
    /// The memory all Discover responses not yet sent may hold together;
    /// beyond it requests are shed with UNAVAILABLE. The encoding of every
    /// bucket that `all` responses of one table version share counts once.
    pub max_response_memory: usize,
    /// How long one request may take before it is cancelled.
    pub request_timeout: Duration,
    /// How long in-flight requests may run after SIGTERM or SIGINT before
    /// they are cut off.
    pub shutdown_timeout: Duration,
    /// How long entries of the registry's change feed are kept.
    pub change_log_retention: Duration,
    /// The messenger backend's credential public key. `None` only with
    /// `dev`: [`ServerConfig::validate`] refuses a server with neither.
    pub issuer: Option<CredentialVerifier>,
    /// The contacts issuer's public key (`cds_core::contacts_only`): with
    /// it, apps of contacts-only users upload allow-lists signed with their
    /// identity keys; without it, uploads are refused.
    pub contacts_issuer: Option<cds_core::contacts_only::IssuerPublicKey>,
    /// The longest validity a credential may have: from its issue time to
    /// its expiry (credentials without an issue time: from now). Longer
    /// ones are refused, which bounds how long a stolen credential is
    /// usable. Whole seconds.
    pub max_credential_lifetime: Duration,
    /// Development mode: without `issuer`, create an issuer key in the data
    /// directory and accept the credentials made with it (`cds admin
    /// token`). Only when asked for: whoever reads the data directory can
    /// then mint credentials.
    pub dev: bool,
    /// Evaluation budgets per account.
    pub quota: QuotaConfig,
    /// Where account budgets live: `None` in this server's memory, saved
    /// to its registry (one server); `Some(redis://host:port/db)` in Redis,
    /// shared by every replica pointing at it. Without Redis, discovery is
    /// refused (UNAVAILABLE): budgets fail closed.
    pub budgets: Option<String>,
    /// Where the registry lives: `None` in the data directory (redb, one
    /// server); `Some(postgres://user:password@host:port/database)` in
    /// PostgreSQL, shared by every replica pointing at it, each following
    /// its change feed; the OPRF keys then live there too, wrapped under
    /// `key_encryption_key_file`, and every replica serves the same epoch.
    pub registry: Option<String>,
    /// With a PostgreSQL registry: the schema holding its tables (created
    /// if missing), so several deployments (or tests) share one database;
    /// `None` uses the connection's default search path.
    pub registry_schema: Option<String>,
    /// The prefix of every Redis key of the budgets, so several deployments
    /// (or tests) can share one Redis.
    pub budgets_key_prefix: String,
    /// The key-encryption key (64 hex digits, mode 0600) that wraps the
    /// OPRF keys in `registry`; every replica needs the same one.
    pub key_encryption_key_file: Option<PathBuf>,
    /// Limits per peer address.
    pub peer: PeerConfig,
    /// Load shedding.
    pub overload: OverloadConfig,
}

/// Evaluation budget of each account: a token bucket of evaluations.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct QuotaConfig {
    /// Evaluations an account can spend at once (a full address book).
    pub burst: u32,
    /// Evaluations added back per hour.
    pub refill_per_hour: f64,
    /// Discover requests one account may have in flight.
    pub max_in_flight: u32,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            burst: DEFAULT_QUOTA_BURST,
            refill_per_hour: DEFAULT_QUOTA_REFILL_PER_HOUR,
            max_in_flight: DEFAULT_QUOTA_MAX_IN_FLIGHT,
        }
    }
}

/// Default evaluation burst per account.
pub const DEFAULT_QUOTA_BURST: u32 = 10_000;
/// Default evaluations refilled per account and hour.
pub const DEFAULT_QUOTA_REFILL_PER_HOUR: f64 = 6.0;
/// Default Discover requests in flight per account.
pub const DEFAULT_QUOTA_MAX_IN_FLIGHT: u32 = 2;

/// Limits per peer IP address (held in memory only, never logged).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PeerConfig {
    /// Open connections per address; more are closed on accept.
    pub max_connections: u32,
    /// Requests per second per address, sustained.
    pub requests_per_second: f64,
    /// Requests per address in a burst.
    pub request_burst: u32,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_PEER_MAX_CONNECTIONS,
            requests_per_second: DEFAULT_PEER_REQUESTS_PER_SECOND,
            request_burst: DEFAULT_PEER_REQUEST_BURST,
        }
    }
}

/// Default open connections per peer address.
pub const DEFAULT_PEER_MAX_CONNECTIONS: u32 = 64;
/// Default sustained requests per second per peer address.
pub const DEFAULT_PEER_REQUESTS_PER_SECOND: f64 = 20.0;
/// Default request burst per peer address.
pub const DEFAULT_PEER_REQUEST_BURST: u32 = 100;

/// How much evaluation work may run and wait before requests are shed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OverloadConfig {
    /// Discover requests evaluating at once.
    pub max_concurrent: usize,
    /// Discover requests waiting for a slot; beyond this they are shed.
    pub max_queued: usize,
    /// Longest wait for a slot before the request is shed.
    pub max_queue_wait: Duration,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            max_concurrent: DEFAULT_OVERLOAD_CONCURRENT_PER_CORE * cores,
            max_queued: DEFAULT_OVERLOAD_QUEUED_PER_CORE * cores,
            max_queue_wait: DEFAULT_OVERLOAD_MAX_QUEUE_WAIT,
        }
    }
}

/// Default concurrent evaluations per CPU core.
pub const DEFAULT_OVERLOAD_CONCURRENT_PER_CORE: usize = 2;
/// Default queued evaluations per CPU core.
pub const DEFAULT_OVERLOAD_QUEUED_PER_CORE: usize = 16;
/// Default longest wait in the evaluation queue.
pub const DEFAULT_OVERLOAD_MAX_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Default Discovery listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default Admin listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:50052";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./cds-data";
/// Default bucket bits: 256 buckets.
pub const DEFAULT_BUCKET_BITS: u8 = 8;
/// Default batch limit.
pub const DEFAULT_MAX_ELEMENTS: u32 = 4096;
/// Default largest response: 256 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;
/// Default memory of responses not yet sent: 1 GiB.
pub const DEFAULT_MAX_RESPONSE_MEMORY: usize = 1024 * 1024 * 1024;
/// Default time limit of one request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time in-flight requests get after SIGTERM or SIGINT.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default retention of the registry's change feed: 30 days.
pub const DEFAULT_CHANGE_LOG_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Default prefix of the budgets' Redis keys.
pub const DEFAULT_BUDGETS_KEY_PREFIX: &str = "cds:budget:";
/// Default longest credential lifetime: 7 days.
pub const DEFAULT_MAX_CREDENTIAL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 50052)),
            admin_token_file: None,
            metrics_listen: None,
            tls_cert: None,
            tls_key: None,
            admin_tls_cert: None,
            admin_tls_key: None,
            admin_client_ca: None,
            insecure_behind_terminator: false,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            bucket_bits: BucketBits::new(DEFAULT_BUCKET_BITS).expect("the default is in range"),
            max_elements_per_request: DEFAULT_MAX_ELEMENTS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_response_memory: DEFAULT_MAX_RESPONSE_MEMORY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            change_log_retention: DEFAULT_CHANGE_LOG_RETENTION,
            issuer: None,
            contacts_issuer: None,
            max_credential_lifetime: DEFAULT_MAX_CREDENTIAL_LIFETIME,
            dev: false,
            quota: QuotaConfig::default(),
            budgets: None,
            registry: None,
            registry_schema: None,
            budgets_key_prefix: DEFAULT_BUDGETS_KEY_PREFIX.to_owned(),
            key_encryption_key_file: None,
            peer: PeerConfig::default(),
            overload: OverloadConfig::default(),
        }
    }
}

/// A setting with a value the server cannot run with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key} {problem}")]
pub struct InvalidSetting {
    /// The setting, as named in the configuration file (`quota.burst`).
    pub key: &'static str,
    /// What is wrong and what would be right.
    pub problem: String,
}

/// A pair of TLS files: both or neither.
fn pair_complete(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> bool {
    cert.is_some() == key.is_some()
}

impl ServerConfig {
    /// Whether the Discovery listener serves TLS.
    pub fn discovery_tls(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// Whether the Admin listener (and `/metrics`) serves TLS.
    pub fn admin_tls(&self) -> bool {
        self.admin_tls_cert.is_some()
    }

    /// The channel rules: TLS files come in pairs; a listener beyond
    /// loopback serves TLS unless a terminator in front does; Admin beyond
    /// loopback authenticates its callers (token or client certificate).
    fn validate_channel(&self) -> Result<(), InvalidSetting> {
        let fail = |key, problem: String| Err(InvalidSetting { key, problem });
        if !pair_complete(&self.tls_cert, &self.tls_key) {
            return fail(
                "tls_key",
                "and tls_cert must be given together (the key of the certificate)".into(),
            );
        }
        if !pair_complete(&self.admin_tls_cert, &self.admin_tls_key) {
            return fail(
                "admin_tls_key",
                "and admin_tls_cert must be given together (the key of the certificate)".into(),
            );
        }
        if self.admin_client_ca.is_some() && !self.admin_tls() {
            return fail(
                "admin_client_ca",
                "needs admin_tls_cert and admin_tls_key: client certificates are checked only over TLS"
                    .into(),
            );
        }
        let admin_authenticated = self.admin_token_file.is_some() || self.admin_client_ca.is_some();
        if !admin_authenticated && !self.admin_listen.ip().is_loopback() {
            return fail(
                "admin_token_file",
                format!(
                    "must be set when admin_listen ({}) is not a loopback address: without it (or admin_client_ca for client certificates) anyone who reaches that address can read and change the registry (`cds admin new-admin-token --out FILE` writes one)",
                    self.admin_listen
                ),
            );
        }
        let plaintext_ok =
            |addr: SocketAddr| addr.ip().is_loopback() || self.insecure_behind_terminator;
        if !self.discovery_tls() && !plaintext_ok(self.listen) {
            return fail(
                "tls_cert",
                format!(
                    "must be set when listen ({}) is not a loopback address: give --tls-cert and --tls-key, or --insecure-behind-terminator if a TLS terminator in front does TLS",
                    self.listen
                ),
            );
        }
        if !self.admin_tls() && !plaintext_ok(self.admin_listen) {
            return fail(
                "admin_tls_cert",
                format!(
                    "must be set when admin_listen ({}) is not a loopback address: give --admin-tls-cert and --admin-tls-key, or --insecure-behind-terminator if a TLS terminator in front does TLS",
                    self.admin_listen
                ),
            );
        }
        if let Some(metrics) = self.metrics_listen
            && !self.admin_tls()
            && !plaintext_ok(metrics)
        {
            return fail(
                "metrics_listen",
                format!(
                    "{metrics} is not a loopback address: /metrics follows the Admin listener's TLS, so give --admin-tls-cert and --admin-tls-key (or --insecure-behind-terminator)"
                ),
            );
        }
        Ok(())
    }

    /// Defaults, with the data directory set.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }

    /// Check every setting is within what the server can run with, naming
    /// the first that is not. [`crate::start`] refuses such settings too;
    /// this tells before anything is opened.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.validate_partial()?;
        self.validate_issuer()
    }

    /// Who issues credentials: the messenger backend's public key, or
    /// development mode when asked for; never both, never neither (an
    /// empty key is no key).
    fn validate_issuer(&self) -> Result<(), InvalidSetting> {
        let fail = |key, problem: &str| {
            Err(InvalidSetting {
                key,
                problem: problem.to_owned(),
            })
        };
        match (&self.issuer, self.dev) {
            (None, false) => fail(
                "issuer_public_key",
                "is not set (or empty): give --issuer-public-key with the messenger backend's credential public key (`cds admin issuer-keygen` makes one), or --dev for development mode, with an issuer key in the data directory",
            ),
            (Some(_), true) => fail(
                "dev",
                "cannot be combined with issuer_public_key: development mode makes its own issuer key; leave out --dev in production, or the issuer key for development",
            ),
            _ => Ok(()),
        }
    }

    /// Every check of [`ServerConfig::validate`] except who issues
    /// credentials: for one layer of settings (a configuration file) that
    /// the environment or flags may still complete with an issuer key or
    /// `dev`.
    pub fn validate_partial(&self) -> Result<(), InvalidSetting> {
        let check = |ok: bool, key: &'static str, problem: String| {
            if ok {
                Ok(())
            } else {
                Err(InvalidSetting { key, problem })
            }
        };
        self.validate_channel()?;
        check(
            (1..=cds_core::MAX_BATCH).contains(&(self.max_elements_per_request as usize)),
            "max_elements_per_request",
            format!(
                "must be from 1 to {}, not {}",
                cds_core::MAX_BATCH,
                self.max_elements_per_request
            ),
        )?;
        check(
            self.max_response_bytes > 0,
            "max_response_bytes",
            "must be at least 1".into(),
        )?;
        check(
            self.max_response_memory >= self.max_response_bytes,
            "max_response_memory",
            format!(
                "must be at least max_response_bytes ({}), or no response of the largest size could ever be sent",
                self.max_response_bytes
            ),
        )?;
        check(
            !self.request_timeout.is_zero(),
            "request_timeout",
            "must be longer than 0s".into(),
        )?;
        check(
            self.max_credential_lifetime.as_secs() > 0,
            "max_credential_lifetime",
            "must be at least 1s (credentials carry whole seconds)".into(),
        )?;
        check(
            self.quota.burst > 0,
            "quota.burst",
            "must be at least 1".into(),
        )?;
        check(
            self.quota.refill_per_hour.is_finite() && self.quota.refill_per_hour >= 0.0,
            "quota.refill_per_hour",
            format!(
                "must be a finite number of at least 0, not {}",
                self.quota.refill_per_hour
            ),
        )?;
        check(
            self.budgets
                .as_deref()
                .is_none_or(|url| url.starts_with("redis://") || url.starts_with("redis+unix://")),
            "budgets",
            "must be a Redis URL (redis://host:port/db), or empty for budgets in this server's memory"
                .into(),
        )?;
        check(
            self.registry.as_deref().is_none_or(|url| {
                url.starts_with("postgres://") || url.starts_with("postgresql://")
            }),
            "registry",
            "must be a PostgreSQL URL (postgres://user:password@host:5432/database), or empty for the embedded registry in the data directory"
                .into(),
        )?;
        check(
            self.registry_schema
                .as_deref()
                .is_none_or(|s| crate::postgres::check_schema_name(s).is_ok()),
            "registry_schema",
            "must be 1 to 63 lowercase letters, digits or '_', not starting with a digit".into(),
        )?;
        check(
            self.registry.is_none() || self.key_encryption_key_file.is_some(),
            "key_encryption_key_file",
            "must be set with registry: the OPRF keys in the database are wrapped under it (`cds admin new-key-encryption-key --out FILE`, then give every replica a copy)"
                .into(),
        )?;
        check(
            self.registry.is_some() || self.key_encryption_key_file.is_none(),
            "key_encryption_key_file",
            "is only used with registry = postgres://...: without it the key lives in the data directory"
                .into(),
        )?;
        check(
            self.registry_schema.is_none() || self.registry.is_some(),
            "registry_schema",
            "is only used with registry = postgres://...".into(),
        )?;
        check(
            self.quota.max_in_flight > 0,
            "quota.max_in_flight",
            "must be at least 1".into(),
        )?;
        check(
            self.peer.max_connections > 0,
            "peer.max_connections",
            "must be at least 1".into(),
        )?;
        check(
            self.peer.requests_per_second.is_finite() && self.peer.requests_per_second > 0.0,
            "peer.requests_per_second",
            format!(
                "must be a finite number above 0, not {}",
                self.peer.requests_per_second
            ),
        )?;
        check(
            self.peer.request_burst > 0,
            "peer.request_burst",
            "must be at least 1".into(),
        )?;
        check(
            self.overload.max_concurrent > 0,
            "overload.max_concurrent",
            "must be at least 1".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beyond_loopback() -> ServerConfig {
        ServerConfig {
            listen: "0.0.0.0:50051".parse().expect("address"),
            admin_listen: "10.0.0.5:50052".parse().expect("address"),
            admin_token_file: Some("admin.token".into()),
            dev: true,
            ..ServerConfig::default()
        }
    }

    #[test]
    fn development_mode_only_when_asked_for_and_never_beside_an_issuer_key() {
        let defaults = ServerConfig::default();
        let refused = defaults.validate().expect_err("no issuer, no dev");
        assert_eq!(refused.key, "issuer_public_key");
        assert!(
            refused.problem.contains("--issuer-public-key") && refused.problem.contains("--dev"),
            "{refused}"
        );
        defaults
            .validate_partial()
            .expect("a layer may leave the issuer to the next");

        let dev = ServerConfig {
            dev: true,
            ..ServerConfig::default()
        };
        dev.validate().expect("development mode, asked for");
        let issuer = cds_core::CredentialIssuer::from_seed(&[1; 32]).verifier();
        let production = ServerConfig {
            issuer: Some(issuer),
            ..ServerConfig::default()
        };
        production.validate().expect("the backend's key");
        let both = ServerConfig {
            issuer: Some(issuer),
            dev: true,
            ..ServerConfig::default()
        };
        assert_eq!(refused_key(&both), "dev");
    }

    fn refused_key(c: &ServerConfig) -> &'static str {
        c.validate().expect_err("refused").key
    }

    #[test]
    fn listeners_beyond_loopback_need_tls_or_a_declared_terminator() {
        let mut c = beyond_loopback();
        assert_eq!(refused_key(&c), "tls_cert");
        c.tls_cert = Some("d.pem".into());
        c.tls_key = Some("d.key".into());
        assert_eq!(refused_key(&c), "admin_tls_cert");
        c.admin_tls_cert = Some("a.pem".into());
        c.admin_tls_key = Some("a.key".into());
        c.validate().expect("TLS on both");
        c.metrics_listen = Some("0.0.0.0:9090".parse().expect("address"));
        c.validate().expect("metrics follow Admin's TLS");

        let mut plain = beyond_loopback();
        plain.metrics_listen = Some("0.0.0.0:9090".parse().expect("address"));
        plain.insecure_behind_terminator = true;
        plain.validate().expect("a declared terminator");
        assert!(
            ServerConfig {
                dev: true,
                ..ServerConfig::default()
            }
            .validate()
            .is_ok(),
            "loopback quick start (cds serve --dev)"
        );
    }

    #[test]
    fn tls_files_come_in_pairs_and_client_cas_need_admin_tls() {
        let only = |adjust: fn(&mut ServerConfig)| {
            let mut c = ServerConfig::new("data");
            c.dev = true;
            adjust(&mut c);
            refused_key(&c)
        };
        assert_eq!(only(|c| c.tls_cert = Some("d.pem".into())), "tls_key");
        assert_eq!(
            only(|c| c.admin_tls_key = Some("a.key".into())),
            "admin_tls_key"
        );
        assert_eq!(
            only(|c| c.admin_client_ca = Some("ca.pem".into())),
            "admin_client_ca"
        );
    }

    #[test]
    fn admin_beyond_loopback_authenticates_by_token_or_client_certificate() {
        let mut c = beyond_loopback();
        c.insecure_behind_terminator = true;
        c.admin_token_file = None;
        assert_eq!(refused_key(&c), "admin_token_file");
        c.admin_tls_cert = Some("a.pem".into());
        c.admin_tls_key = Some("a.key".into());
        c.admin_client_ca = Some("ca.pem".into());
        c.validate().expect("client certificates authenticate");
    }

    #[test]
    fn credentials_must_be_allowed_a_lifetime_of_at_least_a_second() {
        let mut c = ServerConfig::new("data");
        c.dev = true;
        c.max_credential_lifetime = Duration::from_millis(999);
        assert_eq!(refused_key(&c), "max_credential_lifetime");
        c.max_credential_lifetime = Duration::from_secs(1);
        c.validate().expect("one second");
    }
}
