//! Errors that stop the server from starting or an admin change from landing.

use std::path::PathBuf;

/// What went wrong in the server outside of a single request's validation.
///
/// Messages name the file or address involved and what to do; they never
/// contain phone numbers, labels or peer addresses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A file or directory could not be created, read or written.
    #[error("{what} at {path}: {source}")]
    Io {
        /// What the server was doing.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file exists but is not a valid cds key file.
    #[error(
        "the key file {path} is corrupt ({reason}); restore it from backup; deleting it loses the key and every client cache"
    )]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The announced next key file exists but is not a valid cds key file.
    #[error(
        "the announced key file {path} is corrupt ({reason}); restore it from backup, or delete it and announce a new key (apps that shipped the old announcement then need a new profile before the rotation)"
    )]
    AnnouncedKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The data directory can be read or written by group or others.
    #[error(
        "the data directory {} is open to group or others (mode {mode:o}): run `chmod 700 {}` and start again; it holds the OPRF key and the registry",
        .path.display(),
        .path.display()
    )]
    DataDirOpen {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file holding a secret can be read or written by group or others.
    #[error(
        "{what} {} is readable or writable by group or others (mode {mode:o}): run `chmod 600 {}` and start again; if anyone else may have read it, replace it",
        .path.display(),
        .path.display()
    )]
    SecretOpen {
        /// What the file holds, as errors name it.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The admin token file does not hold a usable token.
    #[error(
        "the admin token file {path} {reason}; a token is 32 to 256 visible ASCII characters on one line (`cds admin new-admin-token --out FILE` writes one)"
    )]
    AdminTokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A TLS certificate, key or CA file is unusable.
    #[error("the TLS file {path} {reason}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry database failed.
    #[error("registry database: {0}; check the data directory's disk and permissions")]
    Store(#[from] redb::Error),
    /// The PostgreSQL registry failed (it could not be reached, or a
    /// statement failed).
    #[error(
        "PostgreSQL registry, {what}: {detail}; check that the database named by --registry is reachable and that its user may create tables in the schema"
    )]
    Postgres {
        /// What the server was doing.
        what: &'static str,
        /// The cause (never a stored value).
        detail: String,
    },
    /// A replica cannot follow the shared change feed from where it is.
    #[error(
        "this replica has applied the change feed up to {position} but the feed continues at {oldest_retained} (pruned or out of order); the replica rebuilds its table from a snapshot of the registry and follows the feed from there (keep change_log_retention longer than any replica's downtime to spare it the rebuild)"
    )]
    FeedBehind {
        /// The last feed number applied here.
        position: u64,
        /// The next number the feed holds.
        oldest_retained: u64,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}; is another server running there?")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A background task died.
    #[error("internal task failed: {0}")]
    Task(String),
    /// The server has not finished building its record table.
    #[error("the server is still building its record table; retry shortly")]
    Starting,
    /// A change log entry cannot be decoded.
    #[error(
        "change log entry {seq} cannot be decoded; the registry file may be damaged: restore it from backup"
    )]
    CorruptChange {
        /// Its sequence number.
        seq: u64,
    },
    /// The server is shutting down.
    #[error("the server is shutting down; nothing was changed")]
    ShuttingDown,
    /// A key rotation was asked for while another one runs.
    #[error("a key rotation is already running; wait for it to finish")]
    RotationInProgress,
    /// The key-encryption key file is missing, open to others or malformed.
    #[error(
        "the key-encryption key file {path} {reason}; create one with `cds admin new-key-encryption-key --out FILE` and give every replica a copy"
    )]
    KeyEncryptionKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key-encryption key does not open a key stored in the database.
    #[error(
        "the key-encryption key does not open the OPRF key of epoch {epoch:016x} stored in the database: start this replica with the same --key-encryption-key-file as the others (the key was wrapped under another one, or the row was altered)"
    )]
    WrongKeyEncryptionKey {
        /// The epoch whose key could not be unwrapped.
        epoch: u64,
    },
    /// Replicas did not all build the next epoch in time: the rotation was
    /// abandoned and the current epoch keeps serving.
    #[error(
        "{waiting} live replica(s) did not build the next key epoch within {waited_s} s; the rotation was abandoned and the current epoch keeps serving: check those replicas and rotate again"
    )]
    ReplicasNotReady {
        /// Live replicas that were not ready.
        waiting: i64,
        /// Seconds waited.
        waited_s: u64,
    },
}

macro_rules! store_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for ServerError {
            fn from(e: $t) -> Self {
                ServerError::Store(e.into())
            }
        }
    )*};
}
store_error_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
