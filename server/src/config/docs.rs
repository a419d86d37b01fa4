//! What each setting does and its default, in the words `cds serve --help`
//! and `cds serve --print-config` use.

/// One setting: its key in the configuration file, what it does and its
/// default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingDoc {
    /// The key, with its section: `bucket_bits`, `quota.burst`.
    pub key: &'static str,
    /// What the setting does, as one or more sentences.
    pub about: &'static str,
    /// The default, as a person reads it.
    pub default: &'static str,
}

impl SettingDoc {
    /// The key without its section: `burst` for `quota.burst`.
    pub fn name(&self) -> &'static str {
        self.key.rsplit('.').next().unwrap_or(self.key)
    }

    /// What the setting does, followed by its default; for `--help` (without
    /// the final full stop, as clap writes help).
    pub fn help(&self) -> String {
        let about = self.about.strip_suffix('.').unwrap_or(self.about);
        format!("{about} [default: {}]", self.default)
    }
}

macro_rules! settings {
    ($($(#[$m:meta])* $name:ident = $key:literal, $default:literal, $about:literal;)*) => {
        $(
            $(#[$m])*
            pub const $name: SettingDoc = SettingDoc { key: $key, about: $about, default: $default };
        )*
        /// Every setting, in the order of the configuration file.
        pub const ALL: &[SettingDoc] = &[$($name),*];
    };
}

settings! {
    /// `listen`
    LISTEN = "listen", "127.0.0.1:50051",
        "Address of the Discovery service, for apps.";
    /// `admin_listen`
    ADMIN_LISTEN = "admin_listen", "127.0.0.1:50052",
        "Address of the Admin service, for the messenger backend. Keep it \
         private; an address other than loopback needs admin_token_file.";
    /// `admin_token_file`
    ADMIN_TOKEN_FILE = "admin_token_file", "none",
        "File holding the token every Admin call must send as \
         `authorization: Bearer <token>` (from `cds admin new-admin-token`). \
         \"\" for none: Admin is then unauthenticated, allowed on loopback only.";
    /// `metrics_listen`
    METRICS_LISTEN = "metrics_listen", "none",
        "Address where Prometheus /metrics is served; \"\" for none.";
    /// `data_dir`
    DATA_DIR = "data_dir", "./cds-data",
        "Directory of the registry and the OPRF key, created if missing \
         (relative to the working directory).";
    /// `bucket_bits`
    BUCKET_BITS = "bucket_bits", "8",
        "The record table has 2^bucket_bits buckets, from 0 (one bucket) to \
         24; see docs/threat-model.md for what clients reveal per bit.";
    /// `max_elements_per_request`
    MAX_ELEMENTS_PER_REQUEST = "max_elements_per_request", "4096",
        "The most blinded elements (contacts) one Discover request may carry.";
    /// `max_response_bytes`
    MAX_RESPONSE_BYTES = "max_response_bytes", "268435456",
        "The largest encoded response the server sends, in bytes (the records \
         of many buckets can be large).";
    /// `request_timeout`
    REQUEST_TIMEOUT = "request_timeout", "30s",
        "How long one request may take before it is cancelled.";
    /// `shutdown_timeout`
    SHUTDOWN_TIMEOUT = "shutdown_timeout", "30s",
        "How long requests in flight may run after SIGTERM or SIGINT before \
         they are cut off.";
    /// `change_log_retention`
    CHANGE_LOG_RETENTION = "change_log_retention", "30days",
        "How long entries of the registry's change feed (numbers, labels, \
         flags of every admin write) are kept. \"0s\" logs no changes at all.";
    /// `issuer_public_key`
    ISSUER_PUBLIC_KEY = "issuer_public_key", "none (development mode)",
        "The messenger backend's credential public key, 64 hex digits (from \
         `cds admin issuer-keygen`). \"\" runs in development mode with an \
         issuer key in the data directory, which `cds admin token` uses.";
    /// `log_format`
    LOG_FORMAT = "log_format", "human",
        "Log format, \"human\" or \"json\"; the level is set with CDS_LOG \
         (default info).";
    /// `quota.burst`
    QUOTA_BURST = "quota.burst", "10000",
        "Evaluations (new contacts) an account may spend at once.";
    /// `quota.refill_per_hour`
    QUOTA_REFILL_PER_HOUR = "quota.refill_per_hour", "6.0",
        "Evaluations given back to each account per hour.";
    /// `quota.max_in_flight`
    QUOTA_MAX_IN_FLIGHT = "quota.max_in_flight", "2",
        "Discover requests one account may have in flight at once.";
    /// `peer.max_connections`
    PEER_MAX_CONNECTIONS = "peer.max_connections", "64",
        "Open connections per client address (IPv4, or IPv6 /64). Behind a \
         proxy every client shares its address: raise this there.";
    /// `peer.requests_per_second`
    PEER_REQUESTS_PER_SECOND = "peer.requests_per_second", "20.0",
        "Sustained requests per second per client address.";
    /// `peer.request_burst`
    PEER_REQUEST_BURST = "peer.request_burst", "100",
        "Requests per client address in a burst.";
    /// `overload.max_concurrent`
    OVERLOAD_MAX_CONCURRENT = "overload.max_concurrent", "2 per CPU core",
        "Discover requests evaluating at once.";
    /// `overload.max_queued`
    OVERLOAD_MAX_QUEUED = "overload.max_queued", "16 per CPU core",
        "Discover requests waiting for an evaluation slot; beyond this they \
         are shed with UNAVAILABLE.";
    /// `overload.max_queue_wait`
    OVERLOAD_MAX_QUEUE_WAIT = "overload.max_queue_wait", "2s",
        "Longest wait for an evaluation slot before a request is shed.";
}

/// What each section of the file is about.
pub const SECTIONS: &[(&str, &str)] = &[
    (
        "quota",
        "Evaluation budget of each account (a token bucket).",
    ),
    (
        "peer",
        "Limits per client IP address (held in memory only, never logged).",
    ),
    (
        "overload",
        "Load shedding: how much evaluation work may run and wait.",
    ),
];
