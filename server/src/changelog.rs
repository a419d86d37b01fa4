//! The per-version changes of one record table, kept for a bounded amount
//! of memory, and the digest of the whole record set, both maintained as
//! changes are applied. Sync-mode clients ask for what changed since the
//! version of their copy (`discovery::sync`).
//!
//! Each batch of changes the table applies becomes one entry: the ids
//! ([`RecordId`]: unique per record, where two records may share a match
//! tag) of the records it removed and the records it added (a changed
//! record is both: the old record's id is removed, the new one added; a
//! record sealed again unchanged keeps its id and is only added). Entries
//! are dropped oldest first once they hold more than
//! [`CHANGE_LOG_MAX_BYTES`]; a client whose version is older than the
//! oldest change still held must download the table again.

use std::collections::{HashMap, VecDeque};

use cds_core::{RECORD_ID_LEN, Record, RecordId, RecordRef, SetDigest};

/// Memory the change log of one table may hold: 8 MiB, about 130,000 added
/// records of 33 bytes (or 335,000 removals) with their bookkeeping.
pub const CHANGE_LOG_MAX_BYTES: usize = 8 * 1024 * 1024;

/// What an entry costs beside its records: the entry itself and its two
/// vectors.
const ENTRY_OVERHEAD: usize = 64;
/// What one added record costs beside its bytes: its boxed slice.
const RECORD_OVERHEAD: usize = 32;

#[derive(Debug)]
struct Entry {
    version: u64,
    removed: Vec<RecordId>,
    added: Vec<Record>,
}

impl Entry {
    fn cost(&self) -> usize {
        ENTRY_OVERHEAD
            + self.removed.len() * RECORD_ID_LEN
            + self
                .added
                .iter()
                .map(|r| r.as_bytes().len() + RECORD_OVERHEAD)
                .sum::<usize>()
    }
}

/// The net changes between a version and the current one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// The version the changes bring a copy to.
    pub version: u64,
    /// Ids of the records to remove, in id order.
    pub removed: Vec<RecordId>,
    /// Records to add (each replacing one with its id), in id order.
    pub added: Vec<Record>,
    /// The digest of the whole set at `version`.
    pub digest: SetDigest,
}

/// The change log and set digest of one table.
#[derive(Debug)]
pub struct ChangeLog {
    entries: VecDeque<Entry>,
    bytes: usize,
    max_bytes: usize,
    /// The oldest version a delta can start from.
    floor: u64,
    /// The version of the last entry (or of the table's start).
    current: u64,
    digest: SetDigest,
}

impl ChangeLog {
    /// A log at `version`, for a set whose digest is `digest`, keeping at
    /// most `max_bytes` of changes.
    pub fn new(version: u64, digest: SetDigest, max_bytes: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes,
            floor: version,
            current: version,
            digest,
        }
    }

    /// Record the batch that makes version `current + 1`: `dropped` are
    /// the records it took out of the table (each removed or replaced),
    /// `removed` the ids of those no longer in it, `added` the new records.
    pub fn push(&mut self, dropped: &[RecordRef<'_>], removed: Vec<RecordId>, added: Vec<Record>) {
        for r in dropped {
            self.digest.remove(*r);
        }
        for r in &added {
            self.digest.add(r.as_ref());
        }
        self.current += 1;
        let entry = Entry {
            version: self.current,
            removed,
            added,
        };
        self.bytes += entry.cost();
        self.entries.push_back(entry);
        while self.bytes > self.max_bytes {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.cost();
            self.floor = old.version;
        }
    }

    /// The version of the latest batch.
    pub fn current(&self) -> u64 {
        self.current
    }

    /// The digest of the whole set now.
    pub fn digest(&self) -> SetDigest {
        self.digest
    }

    /// Bytes of changes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// What changed after version `since`, merged (the last change of a
    /// record id wins), or `None` if those changes are no longer all held or
    /// `since` is not a version of this table.
    pub fn since(&self, since: u64) -> Option<Delta> {
        if since < self.floor || since > self.current {
            return None;
        }
        let start = self.entries.partition_point(|e| e.version <= since);
        let mut last: HashMap<RecordId, Option<&Record>> = HashMap::new();
        for e in self.entries.range(start..) {
            for id in &e.removed {
                last.insert(*id, None);
            }
            for r in &e.added {
                last.insert(r.as_ref().id(), Some(r));
            }
        }
        let mut removed = Vec::new();
        let mut added = Vec::new();
        for (id, record) in last {
            match record {
                None => removed.push(id),
                Some(r) => added.push(r.clone()),
            }
        }
        removed.sort_unstable();
        added.sort_unstable_by_key(|r| r.as_ref().id());
        Some(Delta {
            version: self.current,
            removed,
            added,
            digest: self.digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cds_core::{Label, OUTPUT_LEN, Output, RecordKeys};

    fn record(seed: u8, label: &[u8]) -> Record {
        RecordKeys::derive(&Output::from_bytes([seed; OUTPUT_LEN]))
            .seal(&Label::new(label.to_vec()).expect("short"))
    }

    #[test]
    fn a_delta_merges_the_batches_after_its_version() {
        let mut log = ChangeLog::new(1, SetDigest::EMPTY, 1 << 20);
        let a = record(1, b"a");
        let b = record(2, b"b");
        log.push(&[], vec![], vec![a.clone(), b.clone()]);
        let a2 = record(1, b"a2");
        // A new label: a new record id, the old one removed.
        log.push(&[a.as_ref()], vec![a.as_ref().id()], vec![a2.clone()]);
        log.push(&[b.as_ref()], vec![b.as_ref().id()], vec![]);
        assert_eq!(log.current(), 4);
        assert_eq!(log.digest(), SetDigest::of([a2.as_ref()]));
        let from_start = log.since(1).expect("held");
        assert_eq!(from_start.added, vec![a2.clone()]);
        let mut gone = vec![a.as_ref().id(), b.as_ref().id()];
        gone.sort_unstable();
        assert_eq!(from_start.removed, gone);
        let last = log.since(3).expect("held");
        assert!(last.added.is_empty());
        assert_eq!(last.removed, vec![b.as_ref().id()]);
        let none = log.since(4).expect("current");
        assert!(none.added.is_empty() && none.removed.is_empty());
        assert_eq!(none.version, 4);
        assert!(log.since(5).is_none(), "a version from the future");
        assert!(log.since(0).is_none(), "before the log began");
    }

    #[test]
    fn old_changes_are_dropped_past_the_memory_bound() {
        let mut log = ChangeLog::new(1, SetDigest::EMPTY, 1_000);
        for i in 0..40 {
            log.push(&[], vec![], vec![record(i, b"label")]);
        }
        assert!(log.bytes() <= 1_000);
        assert!(log.since(1).is_none(), "too old");
        assert!(log.since(log.current() - 3).is_some());
        assert_eq!(log.since(log.current() - 3).expect("held").added.len(), 3);
    }
}
