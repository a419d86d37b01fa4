//! The running counts of one `Import` call and its log line. Chunks are
//! applied as they arrive, so a call that ends early has still changed the
//! registry: however it ends (finished, failed, or dropped because the
//! server cut it off) it leaves exactly one line, with counts only.

use cds_proto::v1::{ImportResponse, RowError};
use tonic::Status;

use crate::registry::{Upserted, User};

/// At most this many row errors are reported back from one import.
const MAX_REPORTED_ROW_ERRORS: usize = 1000;

/// The counts of one import so far.
#[derive(Debug)]
pub(super) struct ImportProgress {
    summary: ImportResponse,
    /// Chunks whose valid rows were written.
    chunks_applied: u64,
    /// Rows of the chunk being written now (its outcome is unknown until
    /// the write returns).
    rows_in_flight: usize,
    /// The end of the call was logged.
    logged: bool,
}

impl ImportProgress {
    pub(super) fn new() -> Self {
        Self {
            summary: ImportResponse::default(),
            chunks_applied: 0,
            rows_in_flight: 0,
            logged: false,
        }
    }

    /// Count and parse the rows of one chunk with `parse`; the valid ones
    /// are returned, the invalid ones counted (and the first reported).
    pub(super) fn take_chunk<R>(
        &mut self,
        rows: Vec<R>,
        parse: impl Fn(R) -> Result<User, &'static str>,
    ) -> Vec<User> {
        let mut valid = Vec::with_capacity(rows.len());
        for r in rows {
            let row = self.summary.received;
            self.summary.received += 1;
            match parse(r) {
                Ok(user) => valid.push(user),
                Err(reason) => {
                    self.summary.rejected += 1;
                    if self.summary.errors.len() < MAX_REPORTED_ROW_ERRORS {
                        self.summary.errors.push(RowError {
                            row,
                            reason: reason.to_owned(),
                        });
                    }
                }
            }
        }
        self.rows_in_flight = valid.len();
        valid
    }

    /// The chunk taken last was written with these outcomes.
    pub(super) fn applied(&mut self, outcomes: &[Upserted]) {
        for outcome in outcomes {
            match outcome {
                Upserted::Created => self.summary.created += 1,
                Upserted::Updated => self.summary.updated += 1,
            }
        }
        self.chunks_applied += 1;
        self.rows_in_flight = 0;
    }

    /// The stream ended and every chunk was applied: log it and answer.
    pub(super) fn finished(mut self) -> ImportResponse {
        let s = &self.summary;
        tracing::info!(
            received = s.received,
            created = s.created,
            updated = s.updated,
            rejected = s.rejected,
            chunks_applied = self.chunks_applied,
            "import finished"
        );
        self.logged = true;
        std::mem::take(&mut self.summary)
    }

    /// The call fails with `status`: log what was applied before.
    pub(super) fn failed(mut self, status: &Status) {
        let s = &self.summary;
        // A write that failed applied nothing (one transaction per chunk).
        tracing::warn!(
            code = ?status.code(),
            received = s.received,
            created = s.created,
            updated = s.updated,
            rejected = s.rejected,
            chunks_applied = self.chunks_applied,
            "import failed midway: the rows counted as created or updated stay applied; the rest were not written"
        );
        self.logged = true;
    }
}

impl Drop for ImportProgress {
    /// The handler was dropped before the call ended: cut off (at
    /// shutdown, say) while it waited for a chunk or a write.
    fn drop(&mut self) {
        if self.logged {
            return;
        }
        let s = &self.summary;
        tracing::warn!(
            received = s.received,
            created = s.created,
            updated = s.updated,
            rejected = s.rejected,
            chunks_applied = self.chunks_applied,
            rows_in_flight = self.rows_in_flight,
            "import cut off before it ended: the rows counted as created or updated stay applied; rows in flight may or may not have been written"
        );
    }
}
