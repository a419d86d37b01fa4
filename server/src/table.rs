//! The in-memory table of sealed records, one per discoverable user,
//! grouped into `2^b` buckets.
//!
//! Each bucket is one buffer holding its records back to back in their wire
//! encoding, so the table costs the records' own bytes and nothing per
//! user besides (no index: a user's record is found by its match tag, which
//! the server can derive), plus a 16-byte digest per bucket, computed when
//! the bucket changes, for clients that revalidate their copy. Serving a bucket clones a reference-counted
//! handle; a change builds the bucket's new buffer and swaps it in, so
//! readers never wait for a writer's copy. Every batch of changes ends by
//! advancing the table's version ([`RecordTable::version`]), which is how
//! the shared encoding of all buckets knows it is stale.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use bytes::Bytes;
use cds_core::{
    BucketBits, BucketDigest, E164, Label, MatchTag, Record, RecordId, RecordKeys, RecordRef,
    SetDigest, VoprfServer,
};
use rayon::prelude::*;

use crate::changelog::{CHANGE_LOG_MAX_BYTES, ChangeLog, Delta};
use crate::registry::User;

/// Sealed records of every discoverable user under one key.
pub struct RecordTable {
    bits: BucketBits,
    buckets: Vec<RwLock<Bucket>>,
    records: AtomicUsize,
    bytes: AtomicUsize,
    /// Batches of changes applied so far, plus one (a new table is at
    /// version 1, so that 0 never names a version on the wire).
    version: AtomicU64,
    /// The changes of recent versions and the digest of the whole set, for
    /// sync-mode clients. Its lock also orders version advances.
    log: Mutex<ChangeLog>,
}

impl std::fmt::Debug for RecordTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordTable")
            .field("bits", &self.bits)
            .field("records", &self.len())
            .finish()
    }
}

/// One bucket as served: its packed records and their digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// The records back to back, in their wire encoding.
    pub records: Bytes,
    /// [`BucketDigest::of`] the records.
    pub digest: BucketDigest,
}

impl Bucket {
    fn new(records: Bytes) -> Self {
        Self {
            digest: BucketDigest::of(&records),
            records,
        }
    }
}

/// The match tag of `number` under `server`'s key: where its record is.
pub fn tag_of(server: &VoprfServer, number: &E164) -> MatchTag {
    *keys_of(server, number).tag()
}

fn keys_of(server: &VoprfServer, number: &E164) -> RecordKeys {
    let output = server
        .evaluate(number.as_bytes())
        .expect("an E.164 number is short and hashes to a non-identity point");
    RecordKeys::derive(&output)
}

/// Seal the record of `number` with `label` under `server`'s key.
pub fn seal_record(server: &VoprfServer, number: &E164, label: &Label) -> Record {
    keys_of(server, number).seal(label)
}

/// What one user's change does to the table: drop the user's record under
/// `tag`, and add `record` if the user is discoverable.
///
/// Tags are 8 bytes, so two users' records may share one. A change that
/// knows the user's record keys (`owner`) drops only the record under
/// `tag` that opens with them; a placed pair record (no keys on the
/// server) drops every record under its tag, which hits another record
/// with probability about `records in the bucket / 2^64`.
#[derive(Debug)]
pub struct Change {
    bucket: u32,
    tag: MatchTag,
    owner: Option<RecordKeys>,
    record: Option<Record>,
}

impl Change {
    /// Put `record` (or, with `None`, remove the record under `tag`) in
    /// `bucket`, whatever the tag's own prefix: contacts-only pair records
    /// sit in their owner's bucket.
    pub(crate) fn placed(bucket: u32, tag: MatchTag, record: Option<Record>) -> Self {
        Self {
            bucket,
            tag,
            owner: None,
            record,
        }
    }

    /// The change of the user whose record keys are `keys`: replace their
    /// record by `record` (or drop it, with `None`).
    pub(crate) fn owned(bits: BucketBits, keys: RecordKeys, record: Option<Record>) -> Self {
        Self {
            bucket: bits.bucket_of(keys.tag()),
            tag: *keys.tag(),
            owner: Some(keys),
            record,
        }
    }
}

/// Who a batch's changes replace, by tag: the record under the tag that
/// opens with the keys, or (no keys) every record under the tag.
struct Owners(HashMap<MatchTag, Vec<Option<RecordKeys>>>);

impl Owners {
    fn covers(&self, record: RecordRef<'_>) -> bool {
        self.0.get(&record.tag()).is_some_and(|owners| {
            owners
                .iter()
                .any(|o| o.as_ref().is_none_or(|k| k.open(record).is_ok()))
        })
    }
}

/// What rebuilding one bucket did, for the change log.
struct Outcome {
    /// Records taken out (removed or replaced).
    dropped: Vec<Record>,
    /// Ids of the dropped records not in the table any more.
    removed: Vec<RecordId>,
    /// Records put in.
    added: Vec<Record>,
}

impl RecordTable {
    /// An empty table.
    pub fn new(bits: BucketBits) -> Self {
        Self {
            bits,
            buckets: (0..bits.count())
                .map({
                    let empty = Bucket::new(Bytes::new());
                    move |_| RwLock::new(empty.clone())
                })
                .collect(),
            records: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            version: AtomicU64::new(1),
            log: Mutex::new(ChangeLog::new(1, SetDigest::EMPTY, CHANGE_LOG_MAX_BYTES)),
        }
    }

    /// Build the table for `users` (the discoverable ones), using every
    /// core of the current rayon pool. `progress`, if given, counts users
    /// sealed so far. `cancelled` is asked before each user is sealed: once
    /// it says yes, sealing stops within one user per thread and the build
    /// returns `None`.
    pub fn build(
        bits: BucketBits,
        server: &VoprfServer,
        users: &[User],
        progress: Option<&AtomicUsize>,
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Option<Self> {
        let table = Self::new(bits);
        let mut sealed: Vec<(u32, Record)> = users
            .par_iter()
            .filter(|u| u.discoverable)
            .map(|u| {
                if cancelled() {
                    return None;
                }
                let record = seal_record(server, &u.number, &u.label);
                let r = (bits.bucket_of(&record.as_ref().tag()), record);
                if let Some(p) = progress {
                    p.fetch_add(1, Ordering::Relaxed);
                }
                Some(r)
            })
            .while_some()
            .collect();
        if cancelled() {
            return None;
        }
        // In tag order: the bucket is the tag's prefix, so this groups the
        // buckets too, and the order says nothing about the numbers or when
        // they registered.
        // Whole records compare by tag first; equal tags (possible with
        // 8-byte tags) then by the rest, so equal tables are equal bytes.
        sealed.par_sort_unstable_by(|(_, a), (_, b)| a.as_bytes().cmp(b.as_bytes()));
        let digest = sealed
            .par_iter()
            .map(|(_, r)| SetDigest::of([r.as_ref()]))
            .reduce(|| SetDigest::EMPTY, SetDigest::combine);
        *table.log.lock().unwrap_or_else(PoisonError::into_inner) =
            ChangeLog::new(1, digest, CHANGE_LOG_MAX_BYTES);
        let mut start = 0;
        while start < sealed.len() {
            let bucket = sealed[start].0;
            let end = start + sealed[start..].partition_point(|(b, _)| *b == bucket);
            let group = &sealed[start..end];
            let mut buf = Vec::with_capacity(group.iter().map(|(_, r)| r.as_bytes().len()).sum());
            for (_, r) in group {
                buf.extend_from_slice(r.as_bytes());
            }
            table.records.fetch_add(group.len(), Ordering::Relaxed);
            table.bytes.fetch_add(buf.len(), Ordering::Relaxed);
            *table.buckets[bucket as usize]
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Bucket::new(buf.into());
            start = end;
        }
        Some(table)
    }

    /// The bucket bits the table was built with.
    pub fn bits(&self) -> BucketBits {
        self.bits
    }

    /// Work out the change for `user` (evaluates their number once).
    pub fn change_for(&self, server: &VoprfServer, user: &User) -> Change {
        let keys = keys_of(server, &user.number);
        let record = user.discoverable.then(|| keys.seal(&user.label));
        Change::owned(self.bits, keys, record)
    }

    /// The change that removes `number`'s record, if any.
    pub fn removal_for(&self, server: &VoprfServer, number: &E164) -> Change {
        Change::owned(self.bits, keys_of(server, number), None)
    }

    /// Make the table reflect `user`: a sealed record if discoverable, none otherwise.
    pub fn apply(&self, server: &VoprfServer, user: &User) {
        self.apply_changes(vec![self.change_for(server, user)]);
    }

    /// Apply many changes, rebuilding each touched bucket once. Within the
    /// batch, a later change of the same user wins. Callers serialize
    /// their changes (the server holds its write lock).
    pub fn apply_changes(&self, changes: Vec<Change>) {
        let mut by_bucket: HashMap<u32, Vec<Change>> = HashMap::new();
        for c in changes {
            by_bucket.entry(c.bucket).or_default().push(c);
        }
        let mut dropped = Vec::new();
        let mut removed = Vec::new();
        let mut added = Vec::new();
        for (bucket, changes) in by_bucket {
            let outcome = self.rebuild_bucket(bucket, changes);
            dropped.extend(outcome.dropped);
            removed.extend(outcome.removed);
            added.extend(outcome.added);
        }
        // The log and the version advance together, under the log's lock:
        // a delta read under it names exactly the changes up to its version.
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let dropped: Vec<RecordRef<'_>> = dropped.iter().map(Record::as_ref).collect();
        log.push(&dropped, removed, added);
        // After every bucket of the batch is swapped in: whoever reads this
        // version afterwards reads those buckets too.
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Number this table's versions after `previous`'s: for a table that
    /// replaces `previous` under the same key (a replica rebuilt from a
    /// snapshot), so that a sync client's version of the old table is never
    /// taken for a version of this one (a delta from it is answered
    /// `restart`). The changes logged so far are dropped; the digest stays.
    /// Call it before the table serves.
    pub(crate) fn continue_versions_of(&self, previous: &RecordTable) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let version = previous.version().max(log.current()) + 1;
        *log = ChangeLog::new(version, log.digest(), CHANGE_LOG_MAX_BYTES);
        self.version.store(version, Ordering::Release);
    }

    /// What changed after version `since` (see [`ChangeLog::since`]).
    pub fn changes_since(&self, since: u64) -> Option<Delta> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .since(since)
    }

    /// The digest of every record of the table now, and its version.
    pub fn set_digest(&self) -> (u64, SetDigest) {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        (log.current(), log.digest())
    }

    /// Bytes the change log holds now (at most [`CHANGE_LOG_MAX_BYTES`]).
    pub fn change_log_bytes(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes()
    }

    /// The table's version: it advances after each batch of changes has
    /// been applied, so everything read from the table after reading
    /// version `v` includes every change up to `v` (and maybe some of the
    /// next batch, whose end will advance the version again).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn rebuild_bucket(&self, bucket: u32, changes: Vec<Change>) -> Outcome {
        // In batch order, so the last change of a user decides: each change
        // first withdraws what an earlier change of the same user added.
        let mut added: HashMap<MatchTag, Vec<Record>> = HashMap::new();
        let mut owners = Owners(HashMap::new());
        for c in changes {
            let slot = added.entry(c.tag).or_default();
            slot.retain(|r| {
                c.owner
                    .as_ref()
                    .is_some_and(|k| k.open(r.as_ref()).is_err())
            });
            slot.extend(c.record);
            owners.0.entry(c.tag).or_default().push(c.owner);
        }
        let slot = &self.buckets[bucket as usize];
        // Build the new buffer from a snapshot, then swap it in: readers
        // keep being served from the old one meanwhile. Writers are
        // serialized by the caller, so no change is lost between the two.
        let old = slot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .records
            .clone();
        let old_records =
            RecordRef::decode_packed(&old).expect("the table only holds well-formed records");
        let old_count = old_records.len();
        // What leaves the table: the records the batch's owners replace or
        // remove (for the change log and the set digest).
        let dropped: Vec<Record> = old_records
            .iter()
            .copied()
            .filter(|r| owners.covers(*r))
            .filter_map(|r| Record::from_bytes(r.as_bytes()).ok())
            .collect();
        let mut kept: Vec<RecordRef<'_>> = old_records
            .into_iter()
            .filter(|r| !owners.covers(*r))
            .chain(added.values().flatten().map(Record::as_ref))
            .collect();
        // Tag order, as built: where a change lands says nothing about the
        // number or the time of the change.
        kept.sort_unstable_by_key(RecordRef::as_bytes);
        // The records the batch took out and did not put back (by id: two
        // records may share a tag): a sync client drops them from its copy.
        let left: HashSet<RecordId> = kept.iter().map(|r| r.id()).collect();
        let removed: Vec<RecordId> = dropped
            .iter()
            .map(|r| r.as_ref().id())
            .filter(|id| !left.contains(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let count = kept.len();
        let mut buf = Vec::with_capacity(kept.iter().map(|r| r.as_bytes().len()).sum());
        for r in kept {
            buf.extend_from_slice(r.as_bytes());
        }
        let added: Vec<Record> = added.into_values().flatten().collect();
        self.records.fetch_add(count, Ordering::Relaxed);
        self.records.fetch_sub(old_count, Ordering::Relaxed);
        self.bytes.fetch_add(buf.len(), Ordering::Relaxed);
        self.bytes.fetch_sub(old.len(), Ordering::Relaxed);
        *slot.write().unwrap_or_else(PoisonError::into_inner) = Bucket::new(buf.into());
        Outcome {
            dropped,
            removed,
            added,
        }
    }

    /// `bucket` (which must be below `2^bits`): its records and digest.
    pub fn bucket(&self, bucket: u32) -> Bucket {
        self.buckets[bucket as usize]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many records the table holds.
    pub fn len(&self) -> usize {
        self.records.load(Ordering::Relaxed)
    }

    /// Whether the table holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of encoded records held (all of the table's memory but the
    /// bucket handles).
    pub fn record_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cds_core::KeyPair;

    fn user(n: u64, discoverable: bool) -> User {
        User {
            number: E164::from_u64(n).expect("valid"),
            label: Label::new(format!("label-{n}").into_bytes()).expect("short"),
            discoverable,
        }
    }

    fn find(table: &RecordTable, server: &VoprfServer, u: &User) -> Option<Vec<u8>> {
        let keys = RecordKeys::derive(&server.evaluate(u.number.as_bytes()).expect("evaluates"));
        let bytes = table.bucket(table.bits().bucket_of(keys.tag())).records;
        let records = RecordRef::decode_packed(&bytes).expect("well-formed");
        let found: Vec<_> = records
            .into_iter()
            .filter(|r| r.tag() == *keys.tag())
            .collect();
        assert!(found.len() <= 1, "at most one record per user");
        Some(keys.open(*found.first()?).expect("opens").into_bytes())
    }

    #[test]
    fn build_holds_exactly_the_discoverable_users() {
        let server = VoprfServer::new(KeyPair::generate(&mut rand::rng()));
        let users: Vec<User> = (0..50).map(|i| user(12015550100 + i, i % 2 == 0)).collect();
        let progress = AtomicUsize::new(0);
        let table = RecordTable::build(
            BucketBits::new(3).expect("valid"),
            &server,
            &users,
            Some(&progress),
            &never,
        )
        .expect("not cancelled");
        assert_eq!(table.len(), 25);
        assert_eq!(progress.load(Ordering::Relaxed), 25);
        for u in &users {
            assert_eq!(find(&table, &server, u).is_some(), u.discoverable);
        }
        let total: usize = (0..8).map(|b| table.bucket(b).records.len()).sum();
        assert_eq!(table.record_bytes(), total);
    }

    fn never() -> bool {
        false
    }

    #[test]
    fn a_table_continuing_another_never_serves_a_delta_from_the_old_tables_versions() {
        let server = VoprfServer::new(KeyPair::generate(&mut rand::rng()));
        let bits = BucketBits::new(3).expect("valid");
        let users: Vec<User> = (0..10).map(|i| user(12015550100 + i, true)).collect();
        let old = RecordTable::build(bits, &server, &users[..5], None, &never).expect("built");
        for u in &users[5..8] {
            old.apply(&server, u);
        }
        let old_version = old.version();
        let rebuilt = RecordTable::build(bits, &server, &users, None, &never).expect("built");
        rebuilt.continue_versions_of(&old);
        assert!(rebuilt.version() > old_version);
        assert_eq!(rebuilt.set_digest().0, rebuilt.version());
        for since in 1..=old_version {
            assert!(
                rebuilt.changes_since(since).is_none(),
                "version {since} of the old table is answered restart"
            );
        }
        // Its own versions still give deltas, and its digest is its set's.
        let (start, digest) = rebuilt.set_digest();
        let fresh = RecordTable::build(bits, &server, &users, None, &never).expect("built");
        assert_eq!(digest, fresh.set_digest().1);
        rebuilt.apply(&server, &users[0]);
        let delta = rebuilt
            .changes_since(start)
            .expect("a delta from its own version");
        assert_eq!(delta.version, start + 1);
    }

    #[test]
    fn a_build_cancelled_before_it_starts_seals_nothing() {
        let server = VoprfServer::new(KeyPair::generate(&mut rand::rng()));
        let users: Vec<User> = (0..50).map(|i| user(12015550100 + i, true)).collect();
        let progress = AtomicUsize::new(0);
        let built = RecordTable::build(
            BucketBits::new(3).expect("valid"),
            &server,
            &users,
            Some(&progress),
            &|| true,
        );
        assert!(built.is_none());
        assert_eq!(progress.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_build_cancelled_midway_stops_sealing_and_returns_nothing() {
        let server = VoprfServer::new(KeyPair::generate(&mut rand::rng()));
        let users: Vec<User> = (0..2_000).map(|i| user(12015550100 + i, true)).collect();
        let progress = AtomicUsize::new(0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        let built = pool.install(|| {
            RecordTable::build(
                BucketBits::new(3).expect("valid"),
                &server,
                &users,
                Some(&progress),
                &|| progress.load(Ordering::Relaxed) >= 100,
            )
        });
        assert!(built.is_none());
        let sealed = progress.load(Ordering::Relaxed);
        // At most one more user per thread after the cut.
        assert!((100..=102).contains(&sealed), "sealed {sealed}");
    }

    #[test]
    fn updates_replace_hiding_removes_and_counts_follow() {
        let server = VoprfServer::new(KeyPair::generate(&mut rand::rng()));
        let table = RecordTable::new(BucketBits::new(0).expect("valid"));
        let mut u = user(12015550100, true);
        assert_eq!(find(&table, &server, &u), None);
        table.apply(&server, &u);
        assert_eq!(
            find(&table, &server, &u),
            Some(b"label-12015550100".to_vec())
        );
        u.label = Label::new(b"new".to_vec()).expect("short");
        table.apply(&server, &u);
        assert_eq!(find(&table, &server, &u), Some(b"new".to_vec()));
        assert_eq!(table.len(), 1);
        u.discoverable = false;
        table.apply(&server, &u);
        assert_eq!(find(&table, &server, &u), None);
        assert!(table.is_empty());
        assert_eq!(table.record_bytes(), 0);
    }

    #[test]
    fn within_one_batch_the_last_change_of_a_user_wins() {
        let server = VoprfServer::new(KeyPair::generate(&mut rand::rng()));
        let table = RecordTable::new(BucketBits::new(1).expect("valid"));
        let mut a = user(12015550100, true);
        let first = table.change_for(&server, &a);
        a.label = Label::new(b"second".to_vec()).expect("short");
        let second = table.change_for(&server, &a);
        let other = table.change_for(&server, &user(12015550101, true));
        table.apply_changes(vec![first, other, second]);
        assert_eq!(find(&table, &server, &a), Some(b"second".to_vec()));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn a_bucket_digest_is_that_of_its_records_and_changes_with_them() {
        let server = VoprfServer::new(KeyPair::generate(&mut rand::rng()));
        let table = RecordTable::new(BucketBits::new(0).expect("valid"));
        let empty = table.bucket(0);
        assert_eq!(empty.digest, BucketDigest::of(b""));
        let mut u = user(12015550100, true);
        table.apply(&server, &u);
        let one = table.bucket(0);
        assert_eq!(one.digest, BucketDigest::of(&one.records));
        assert_ne!(one.digest, empty.digest);
        u.discoverable = false;
        table.apply(&server, &u);
        assert_eq!(table.bucket(0), empty);
    }

    #[test]
    fn removal_drops_only_that_user() {
        let server = VoprfServer::new(KeyPair::generate(&mut rand::rng()));
        let users: Vec<User> = (0..10).map(|i| user(12015550100 + i, true)).collect();
        let table = RecordTable::build(
            BucketBits::new(0).expect("valid"),
            &server,
            &users,
            None,
            &never,
        )
        .expect("not cancelled");
        table.apply_changes(vec![table.removal_for(&server, &users[3].number)]);
        assert_eq!(table.len(), 9);
        assert_eq!(find(&table, &server, &users[3]), None);
        assert!(find(&table, &server, &users[4]).is_some());
    }

    #[test]
    fn users_whose_tags_collide_keep_their_own_records_through_changes() {
        // 8-byte tags collide among about n²/2^65 pairs of n users: the
        // table must tell such users apart by their record keys.
        let tag = [0x42; cds_core::TAG_LEN];
        let keys = |k: u8| cds_core::dangerous::record_keys_from_parts(tag, [k; 64]);
        let bits = BucketBits::new(2).expect("valid");
        let table = RecordTable::new(bits);
        let label = |l: &[u8]| Label::new(l.to_vec()).expect("short");
        let opened = |k: u8| -> Vec<Vec<u8>> {
            let bytes = table.bucket(bits.bucket_of(keys(k).tag())).records;
            RecordRef::decode_packed(&bytes)
                .expect("well-formed")
                .into_iter()
                .filter_map(|r| keys(k).open(r).ok())
                .map(Label::into_bytes)
                .collect()
        };
        let a = keys(1).seal(&label(b"a"));
        let b = keys(2).seal(&label(b"b"));
        table.apply_changes(vec![
            Change::owned(bits, keys(1), Some(a)),
            Change::owned(bits, keys(2), Some(b)),
        ]);
        assert_eq!(table.len(), 2);
        assert_eq!(
            (opened(1), opened(2)),
            (vec![b"a".to_vec()], vec![b"b".to_vec()])
        );
        // An update of one, then within one batch two updates of the other.
        table.apply_changes(vec![Change::owned(
            bits,
            keys(1),
            Some(keys(1).seal(&label(b"a2"))),
        )]);
        table.apply_changes(vec![
            Change::owned(bits, keys(2), Some(keys(2).seal(&label(b"b2")))),
            Change::owned(bits, keys(2), Some(keys(2).seal(&label(b"b3")))),
        ]);
        assert_eq!(table.len(), 2);
        assert_eq!(
            (opened(1), opened(2)),
            (vec![b"a2".to_vec()], vec![b"b3".to_vec()])
        );
        // Removing one leaves the other.
        table.apply_changes(vec![Change::owned(bits, keys(1), None)]);
        assert_eq!(table.len(), 1);
        assert_eq!((opened(1), opened(2)), (vec![], vec![b"b3".to_vec()]));
    }

    #[test]
    fn the_same_users_give_the_same_bytes_in_every_build() {
        // Records are deterministic (AES-SIV), and sorted whole: a rebuild
        // with no change keeps every bucket digest.
        let server = VoprfServer::new(KeyPair::generate(&mut rand::rng()));
        let users: Vec<User> = (0..100).map(|i| user(12015550100 + i, true)).collect();
        let bits = BucketBits::new(2).expect("valid");
        let a = RecordTable::build(bits, &server, &users, None, &never).expect("built");
        let b = RecordTable::build(bits, &server, &users, None, &never).expect("built");
        for bucket in 0..bits.count() {
            assert_eq!(a.bucket(bucket), b.bucket(bucket));
        }
    }

    /// Every bucket's records, in order, are in ascending tag order and
    /// each sits in the bucket of its tag's prefix.
    fn assert_tag_order(table: &RecordTable) {
        for b in 0..table.bits().count() {
            let bytes = table.bucket(b).records;
            let tags: Vec<MatchTag> = RecordRef::decode_packed(&bytes)
                .expect("well-formed")
                .iter()
                .map(RecordRef::tag)
                .collect();
            assert!(tags.is_sorted(), "bucket {b} is not in tag order");
            assert!(tags.iter().all(|t| table.bits().bucket_of(t) == b));
        }
    }

    #[test]
    fn records_are_in_tag_order_after_the_build_and_after_every_change() {
        let server = VoprfServer::new(KeyPair::generate(&mut rand::rng()));
        // Registered in ascending number order, as an import would.
        let users: Vec<User> = (0..200).map(|i| user(12015550100 + i, true)).collect();
        let bits = BucketBits::new(2).expect("valid");
        let table = RecordTable::build(bits, &server, &users, None, &never).expect("built");
        assert_tag_order(&table);
        // Appending newcomers (in number order) keeps tag order too.
        for i in 0..40 {
            table.apply(&server, &user(12015560000 + i, true));
        }
        table.apply(&server, &user(12015550100, false));
        assert_tag_order(&table);
        assert_eq!(table.len(), 239);
    }
}
