//! Every setting of `cds serve`, once.
//!
//! Adding a setting is one field in `cds_server::ServerConfig` (with its
//! default) and one row here: the flag, the `CDS_*` variable, the file key,
//! `--print-config`, `--help` and the tests all follow from the row. The
//! field's type needs a [`SettingValue`](super::SettingValue) (most have
//! one already).

use super::{Setting, field};

/// A `[section]` of the configuration file.
#[derive(Clone, Copy, Debug)]
pub struct Section {
    /// Its name: `quota`.
    pub name: &'static str,
    /// What its settings are about.
    pub about: &'static str,
}

/// Every section, in the order of the configuration file.
pub static SECTIONS: &[Section] = &[
    Section {
        name: "quota",
        about: "Evaluation budget of each account (a token bucket).",
    },
    Section {
        name: "peer",
        about: "Limits per client IP address (held in memory only, never logged).",
    },
    Section {
        name: "overload",
        about: "Load shedding: how much evaluation work may run and wait.",
    },
];

/// Every setting, in the order of the configuration file and `--help`.
pub static SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        value_name: "ADDR",
        default: "127.0.0.1:50051",
        about: "Address of the Discovery service, for apps.",
        flag: None,
        field: field!(server.listen),
    },
    Setting {
        key: "admin_listen",
        value_name: "ADDR",
        default: "127.0.0.1:50052",
        about: "Address of the Admin service, for the messenger backend. Keep it \
                private; an address other than loopback needs admin_token_file (or \
                admin_client_ca) and TLS.",
        flag: None,
        field: field!(server.admin_listen),
    },
    Setting {
        key: "admin_token_file",
        value_name: "FILE",
        default: "none",
        about: "File holding the token every Admin call must send as \
                `authorization: Bearer <token>` (from `cds admin new-admin-token`). \
                \"\" for none: Admin is then unauthenticated, allowed on loopback only.",
        flag: None,
        field: field!(server.admin_token_file),
    },
    Setting {
        key: "metrics_listen",
        value_name: "ADDR",
        default: "none",
        about: "Address where Prometheus /metrics is served; \"\" for none. It \
                follows the Admin listener's TLS (and client certificates).",
        flag: None,
        field: field!(server.metrics_listen),
    },
    Setting {
        key: "tls_cert",
        value_name: "PEM",
        default: "none",
        about: "Certificate chain (PEM) the Discovery listener serves over TLS, \
                with tls_key. \"\" for none: plaintext, allowed on loopback only \
                (or with insecure_behind_terminator).",
        flag: None,
        field: field!(server.tls_cert),
    },
    Setting {
        key: "tls_key",
        value_name: "PEM",
        default: "none",
        about: "Private key (PEM) of tls_cert.",
        flag: None,
        field: field!(server.tls_key),
    },
    Setting {
        key: "admin_tls_cert",
        value_name: "PEM",
        default: "none",
        about: "Certificate chain (PEM) of the Admin listener and /metrics, with \
                admin_tls_key. \"\" for none: plaintext, allowed on loopback only \
                (or with insecure_behind_terminator).",
        flag: None,
        field: field!(server.admin_tls_cert),
    },
    Setting {
        key: "admin_tls_key",
        value_name: "PEM",
        default: "none",
        about: "Private key (PEM) of admin_tls_cert.",
        flag: None,
        field: field!(server.admin_tls_key),
    },
    Setting {
        key: "admin_client_ca",
        value_name: "PEM",
        default: "none",
        about: "CA certificate(s) (PEM) whose client certificates the Admin \
                listener requires (mutual TLS), instead of or beside the admin \
                token. Needs admin_tls_cert.",
        flag: None,
        field: field!(server.admin_client_ca),
    },
    Setting {
        key: "insecure_behind_terminator",
        value_name: "BOOL",
        default: "false",
        about: "Serve plaintext beyond loopback because a TLS terminator in front \
                of cds does TLS. Without a terminator, credentials and records \
                cross the network in clear text.",
        flag: None,
        field: field!(server.insecure_behind_terminator),
    },
    Setting {
        key: "data_dir",
        value_name: "DIR",
        default: "./cds-data",
        about: "Directory of the registry and the OPRF key, created if missing \
                (relative to the working directory).",
        flag: None,
        field: field!(server.data_dir),
    },
    Setting {
        key: "bucket_bits",
        value_name: "BITS",
        default: "8",
        about: "The record table has 2^bucket_bits buckets, from 0 (one bucket) to \
                24; see docs/threat-model.md for what clients reveal per bit.",
        flag: None,
        field: field!(server.bucket_bits),
    },
    Setting {
        key: "max_elements_per_request",
        value_name: "N",
        default: "4096",
        about: "The most blinded elements (contacts) one Discover request may carry.",
        flag: Some("max-elements"),
        field: field!(server.max_elements_per_request),
    },
    Setting {
        key: "max_response_bytes",
        value_name: "BYTES",
        default: "268435456",
        about: "The largest encoded response the server sends, in bytes (the records \
                of many buckets can be large).",
        flag: None,
        field: field!(server.max_response_bytes),
    },
    Setting {
        key: "max_response_memory",
        value_name: "BYTES",
        default: "1073741824",
        about: "Memory, in bytes, that all Discover responses not yet sent may \
                hold together (a slow reader holds its response until it has \
                read it). Each response counts its own part (its evaluated \
                elements; with ids, its copy of those buckets); the encoding \
                of every bucket that all `all` responses of one table version \
                share counts once, while the table or any response holds it. \
                Beyond it, requests are shed with UNAVAILABLE and a \
                retry-after. At least max_response_bytes.",
        flag: None,
        field: field!(server.max_response_memory),
    },
    Setting {
        key: "request_timeout",
        value_name: "DURATION",
        default: "30s",
        about: "How long one request may take before it is cancelled.",
        flag: None,
        field: field!(server.request_timeout),
    },
    Setting {
        key: "shutdown_timeout",
        value_name: "DURATION",
        default: "30s",
        about: "How long requests in flight may run after SIGTERM or SIGINT before \
                they are cut off.",
        flag: None,
        field: field!(server.shutdown_timeout),
    },
    Setting {
        key: "change_log_retention",
        value_name: "DURATION",
        default: "30days",
        about: "How long entries of the registry's change feed (numbers, labels, \
                flags of every admin write) are kept. \"0s\" logs no changes at all.",
        flag: None,
        field: field!(server.change_log_retention),
    },
    Setting {
        key: "budgets",
        value_name: "URL",
        default: "none",
        about: "Where account budgets live: \"\" in this server's memory, saved to its \
                registry; redis://host:port/db in Redis, one budget per account shared \
                by every replica pointing at it. While Redis cannot be reached, \
                discovery is refused with UNAVAILABLE and a retry-after (fail closed).",
        flag: None,
        field: field!(server.budgets),
    },
    Setting {
        key: "registry",
        value_name: "URL",
        default: "none",
        about: "Where the registry lives: \"\" in the data directory (redb, one server); \
                postgres://user:password@host:5432/database in PostgreSQL, shared by every \
                replica pointing at it, each following its change feed; the OPRF keys \
                then live there too, wrapped under key_encryption_key_file, and a rotation \
                started on any replica rotates them all.",
        flag: None,
        field: field!(server.registry),
    },
    Setting {
        key: "registry_schema",
        value_name: "NAME",
        default: "none",
        about: "With registry = postgres://...: the schema holding the registry's tables \
                (created if missing), so several deployments can share one database.",
        flag: None,
        field: field!(server.registry_schema),
    },
    Setting {
        key: "budgets_key_prefix",
        value_name: "TEXT",
        default: "cds:budget:",
        about: "Prefix of every Redis key of the budgets (with budgets = redis://...), \
                so several deployments can share one Redis.",
        flag: None,
        field: field!(server.budgets_key_prefix),
    },
    Setting {
        key: "key_encryption_key_file",
        value_name: "FILE",
        default: "none",
        about: "File of 64 hex digits (mode 0600, from `cds admin new-key-encryption-key`) \
                whose key wraps the OPRF keys in the registry database; every replica \
                needs a copy and it never enters the database. Required with registry.",
        flag: None,
        field: field!(server.key_encryption_key_file),
    },
    Setting {
        key: "issuer_public_key",
        value_name: "HEX",
        default: "none",
        about: "The messenger backend's credential public key, 64 hex digits (from \
                `cds admin issuer-keygen`). Required unless dev is set; \"\" is no key.",
        flag: None,
        field: field!(server.issuer),
    },
    Setting {
        key: "contacts_issuer_public_key",
        value_name: "HEX",
        default: "none",
        about: "The contacts issuer's public key, 288 hex digits (from `cds admin \
                contacts-issuer`): turns on allow-list uploads for contacts-only users. \
                \"\" is no key (uploads refused).",
        flag: None,
        field: field!(server.contacts_issuer),
    },
    Setting {
        key: "max_credential_lifetime",
        value_name: "DURATION",
        default: "7days",
        about: "The longest validity accepted in a credential, from its issue time \
                to its expiry (old credentials without an issue time: from now). \
                Longer ones are refused: this bounds how long a stolen credential \
                is usable.",
        flag: None,
        field: field!(server.max_credential_lifetime),
    },
    Setting {
        key: "dev",
        value_name: "BOOL",
        default: "false",
        about: "Development mode, instead of issuer_public_key: keep an issuer key in \
                the data directory (issuer.key) and accept the credentials `cds admin \
                token` makes with it. Not for production: whoever reads the data \
                directory can mint credentials.",
        flag: None,
        field: field!(server.dev),
    },
    Setting {
        key: "log_format",
        value_name: "FORMAT",
        default: "human",
        about: "Log format, \"human\" or \"json\"; the level is set with CDS_LOG \
                (default info).",
        flag: None,
        field: field!(log_format),
    },
    Setting {
        key: "quota.burst",
        value_name: "N",
        default: "10000",
        about: "Evaluations (new contacts) an account may spend at once.",
        flag: None,
        field: field!(server.quota.burst),
    },
    Setting {
        key: "quota.refill_per_hour",
        value_name: "N",
        default: "6.0",
        about: "Evaluations given back to each account per hour.",
        flag: None,
        field: field!(server.quota.refill_per_hour),
    },
    Setting {
        key: "quota.max_in_flight",
        value_name: "N",
        default: "2",
        about: "Discover requests one account may have in flight at once.",
        flag: None,
        field: field!(server.quota.max_in_flight),
    },
    Setting {
        key: "peer.max_connections",
        value_name: "N",
        default: "64",
        about: "Open connections per client address (IPv4, or IPv6 /64). Behind a \
                proxy every client shares its address: raise this there.",
        flag: None,
        field: field!(server.peer.max_connections),
    },
    Setting {
        key: "peer.requests_per_second",
        value_name: "N",
        default: "20.0",
        about: "Sustained requests per second per client address.",
        flag: None,
        field: field!(server.peer.requests_per_second),
    },
    Setting {
        key: "peer.request_burst",
        value_name: "N",
        default: "100",
        about: "Requests per client address in a burst.",
        flag: None,
        field: field!(server.peer.request_burst),
    },
    Setting {
        key: "overload.max_concurrent",
        value_name: "N",
        default: "2 per CPU core",
        about: "Discover requests evaluating at once.",
        flag: None,
        field: field!(server.overload.max_concurrent),
    },
    Setting {
        key: "overload.max_queued",
        value_name: "N",
        default: "16 per CPU core",
        about: "Discover requests waiting for an evaluation slot; beyond this they \
                are shed with UNAVAILABLE.",
        flag: None,
        field: field!(server.overload.max_queued),
    },
    Setting {
        key: "overload.max_queue_wait",
        value_name: "DURATION",
        default: "2s",
        about: "Longest wait for an evaluation slot before a request is shed.",
        flag: None,
        field: field!(server.overload.max_queue_wait),
    },
];
