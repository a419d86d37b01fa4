//! Everything that keeps one client, one address or a crowd from taking
//! more than its share: token buckets, per-account evaluation quotas,
//! per-peer connection and request limits, and the evaluation gate that
//! sheds load under overload.

pub mod gate;
pub mod peer;
pub mod quota;
pub mod token_bucket;

use std::time::Duration;

use tonic::Status;

/// Metadata key carrying the seconds after which a refused request may be
/// retried (as in HTTP's `Retry-After`).
pub const RETRY_AFTER: &str = "retry-after";

/// Metadata key naming the limit that refused a request:
/// `account-budget`, `account-concurrency` or `peer-rate`.
pub const LIMIT: &str = "cds-limit";

/// RESOURCE_EXHAUSTED for `limit` (see [`LIMIT`]), with a retry hint.
pub fn limit_status(
    limit: &'static str,
    message: impl Into<String>,
    retry_after: Option<Duration>,
) -> Status {
    let mut status = Status::resource_exhausted(message);
    status
        .metadata_mut()
        .insert(LIMIT, tonic::metadata::MetadataValue::from_static(limit));
    with_retry_after(status, retry_after)
}

/// A status with a `retry-after` hint in its metadata (whole seconds,
/// rounded up), or without one if retrying will never help.
pub fn with_retry_after(mut status: Status, retry_after: Option<Duration>) -> Status {
    if let Some(d) = retry_after {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if let Ok(v) = secs.max(1).to_string().parse() {
            status.metadata_mut().insert(RETRY_AFTER, v);
        }
    }
    status
}
