//! Entry points for the fuzz targets in `fuzz/` and for tests only: not
//! part of the API (hidden from the docs, free to change). Each reaches one
//! decoder of the server that a remote party or a damaged file feeds,
//! without listeners.

use std::sync::Arc;

use cds_proto::v1::admin_server::{Admin, AdminServer};

use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::registry::{LoggedChange, User};

/// A stored user as the registry reads it back: `key` is the number's
/// digits, `value` the flags byte and the label.
pub fn decode_stored_user(key: u64, value: &[u8]) -> Option<User> {
    User::decode(key, value)
}

/// A change-log entry as the change feed reads it back.
pub fn decode_logged_change(seq: u64, value: &[u8]) -> Option<LoggedChange> {
    LoggedChange::decode(seq, value)
}

/// The real Admin gRPC service (without the token check) over the data
/// directory of `config`: the store is opened and the record table built
/// as [`crate::start`] does, but no listener is bound and no background
/// task runs. Blocking; call it outside an async runtime. Its handlers need
/// a tokio runtime.
pub fn admin_service(config: ServerConfig) -> Result<AdminServer<impl Admin>, ServerError> {
    config
        .validate()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let opened = crate::bind::open_store(&config)?;
    let state = Arc::new(crate::bind::new_state(
        &config,
        opened.registry,
        opened.shared,
        opened.verifier,
    )?);
    let epoch = opened.epoch.ok_or_else(|| {
        ServerError::Config("the fuzzing Admin service keeps its key in the data directory".into())
    })?;
    crate::lifecycle::build_first_table(&state, epoch, None)?;
    Ok(crate::listeners::admin_server(&state))
}
