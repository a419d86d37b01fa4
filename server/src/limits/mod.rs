//! Everything that keeps one client, one address or a crowd from taking
//! more than its share: token buckets, per-account evaluation quotas,
//! per-peer connection and request limits, and the evaluation gate that
//! sheds load under overload.

pub mod budget_store;
pub mod gate;
pub mod peer;
pub mod quota;
pub mod response_memory;
pub mod shared_budget;
pub mod token_bucket;

use std::time::Duration;

use cds_proto::wire::{self, Limit};
use tonic::Status;

/// RESOURCE_EXHAUSTED for `limit`, named in the `cds-limit` metadata, with
/// a retry hint.
pub fn limit_status(
    limit: Limit,
    message: impl Into<String>,
    retry_after: Option<Duration>,
) -> Status {
    let mut status = Status::resource_exhausted(message);
    status.metadata_mut().insert(
        wire::LIMIT,
        tonic::metadata::MetadataValue::from_static(limit.as_str()),
    );
    with_retry_after(status, retry_after)
}

/// A status with a `retry-after` hint in its metadata (whole seconds,
/// rounded up), or without one if retrying will never help.
pub fn with_retry_after(mut status: Status, retry_after: Option<Duration>) -> Status {
    if let Some(d) = retry_after
        && let Ok(v) = wire::retry_after_value(d).parse()
    {
        status.metadata_mut().insert(wire::RETRY_AFTER, v);
    }
    status
}
