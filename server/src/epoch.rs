//! One key epoch as it serves: its identifier, its key and its table.

use cds_core::{KeyPair, VoprfServer};

use crate::discovery::AllBucketsCache;
use crate::table::RecordTable;

/// One key epoch as it serves. Requests hold it for their whole duration,
/// so a rotation never changes the key or the table under a request; the
/// key is wiped when the last request of a retired epoch drops it.
#[derive(Debug)]
pub struct ServingEpoch {
    /// Identifier clients name in requests.
    pub(crate) id: u64,
    /// The epoch's key.
    pub(crate) oprf: VoprfServer,
    /// Every discoverable user's record under that key.
    pub(crate) table: RecordTable,
    /// The encoding of every bucket that `all` responses share, for the
    /// table's current version once one was asked for.
    pub(crate) all_buckets: AllBucketsCache,
}

impl ServingEpoch {
    /// Epoch `id`, serving `table` under `key` (the table must have been
    /// sealed under the same key).
    pub fn new(id: u64, key: KeyPair, table: RecordTable) -> Self {
        Self::with_server(id, VoprfServer::new(key), table)
    }

    pub(crate) fn with_server(id: u64, oprf: VoprfServer, table: RecordTable) -> Self {
        Self {
            id,
            oprf,
            table,
            all_buckets: AllBucketsCache::default(),
        }
    }

    /// The identifier clients name in requests.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The epoch's key, as a VOPRF server.
    pub fn oprf(&self) -> &VoprfServer {
        &self.oprf
    }

    /// The sealed records of this epoch.
    pub fn table(&self) -> &RecordTable {
        &self.table
    }
}
