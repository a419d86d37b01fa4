//! Entry points for the fuzz targets in `fuzz/` and for tests only: not
//! part of the API (hidden from the docs, free to change). They drive the
//! sync-mode copy ([`RecordCopy`]) as `Client::discover` does, without a
//! server.

use cds_proto::v1::{SyncRequest, SyncResponse};

use crate::sync::{RecordCopy, SyncApplyError};

/// An empty copy of `epoch`, about to be downloaded.
pub fn start_copy(epoch: u64) -> RecordCopy {
    RecordCopy::start(epoch)
}

/// The request the client sends next for `copy`.
pub fn next_request(copy: &RecordCopy) -> SyncRequest {
    copy.next_request()
}

/// Apply a server's answer to `copy`: `Ok(true)` when current, `Ok(false)`
/// when more pages follow; on an error `copy` is unchanged.
pub fn apply(copy: &mut RecordCopy, response: &SyncResponse) -> Result<bool, SyncApplyError> {
    copy.apply(response)
}

/// Whether the digest `copy` keeps equals the digest of its records.
pub fn digest_is_consistent(copy: &RecordCopy) -> bool {
    copy.digest == copy.recompute_digest()
}
