//! The in-memory table of sealed records, one per discoverable user,
//! grouped into `2^b` buckets.
//!
//! Built in parallel at start, then kept current by every admin change.
//! Each bucket caches its encoded record list, so serving a bucket is a
//! reference-count increment until the bucket next changes.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};

use bytes::Bytes;
use cds_core::{BucketBits, E164, Label, Record, RecordKeys, VoprfServer};
use rayon::prelude::*;

use crate::registry::User;

#[derive(Default)]
struct Slot {
    records: RwLock<HashMap<u64, Record>>,
    /// The encoded records of this bucket; `None` after a change.
    encoded: Mutex<Option<Bytes>>,
}

/// Sealed records of every discoverable user under one key.
pub struct RecordTable {
    bits: BucketBits,
    slots: Vec<Slot>,
}

impl std::fmt::Debug for RecordTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordTable")
            .field("bits", &self.bits)
            .field("records", &self.len())
            .finish()
    }
}

/// Seal the record of `number` with `label` under `server`'s key.
pub fn seal_record(server: &VoprfServer, number: &E164, label: &Label) -> Record {
    let output = server
        .evaluate(number.as_bytes())
        .expect("an E.164 number is short and hashes to a non-identity point");
    RecordKeys::derive(&output).seal(label, &mut rand::rng())
}

impl RecordTable {
    /// An empty table.
    pub fn new(bits: BucketBits) -> Self {
        Self {
            bits,
            slots: (0..bits.count()).map(|_| Slot::default()).collect(),
        }
    }

    /// Build the table for `users` (the discoverable ones), using every core.
    pub fn build(bits: BucketBits, server: &VoprfServer, users: &[User]) -> Self {
        let table = Self::new(bits);
        let sealed: Vec<(u32, u64, Record)> = users
            .par_iter()
            .filter(|u| u.discoverable)
            .map(|u| {
                (
                    bits.bucket_of(&u.number),
                    u.number.to_u64(),
                    seal_record(server, &u.number, &u.label),
                )
            })
            .collect();
        for (bucket, key, record) in sealed {
            table
                .slot(bucket)
                .records
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key, record);
        }
        table
    }

    fn slot(&self, bucket: u32) -> &Slot {
        &self.slots[bucket as usize]
    }

    /// The bucket bits the table was built with.
    pub fn bits(&self) -> BucketBits {
        self.bits
    }

    /// Make the table reflect `user`: a sealed record if discoverable, none otherwise.
    pub fn apply(&self, server: &VoprfServer, user: &User) {
        if user.discoverable {
            let record = seal_record(server, &user.number, &user.label);
            self.insert(&user.number, record);
        } else {
            self.remove(&user.number);
        }
    }

    /// Put a record sealed earlier (see [`seal_record`]) into its bucket.
    pub fn insert(&self, number: &E164, record: Record) {
        let slot = self.slot(self.bits.bucket_of(number));
        slot.records
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(number.to_u64(), record);
        *slot.encoded.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Drop the record of `number`, if there is one.
    pub fn remove(&self, number: &E164) {
        let slot = self.slot(self.bits.bucket_of(number));
        let removed = slot
            .records
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&number.to_u64());
        if removed.is_some() {
            *slot.encoded.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// The packed records of `bucket` (which must be below `2^bits`).
    pub fn bucket_records(&self, bucket: u32) -> Bytes {
        let slot = self.slot(bucket);
        // Hold the cache lock while encoding so a concurrent change either
        // lands before (and is encoded) or invalidates after.
        let mut cached = slot.encoded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = cached.as_ref() {
            return b.clone();
        }
        let records = slot.records.read().unwrap_or_else(PoisonError::into_inner);
        let mut buf = Vec::with_capacity(records.values().map(|r| r.as_bytes().len()).sum());
        for r in records.values() {
            buf.extend_from_slice(r.as_bytes());
        }
        let bytes = Bytes::from(buf);
        *cached = Some(bytes.clone());
        bytes
    }

    /// How many records the table holds.
    pub fn len(&self) -> usize {
        self.slots
            .iter()
            .map(|s| {
                s.records
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len()
            })
            .sum()
    }

    /// Whether the table holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of encoded records held.
    pub fn record_bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|s| {
                s.records
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .map(|r| r.as_bytes().len())
                    .sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cds_core::{KeyPair, RecordRef};

    fn user(n: u64, discoverable: bool) -> User {
        User {
            number: E164::from_u64(n).expect("valid"),
            label: Label::new(format!("label-{n}").into_bytes()).expect("short"),
            discoverable,
        }
    }

    fn find(table: &RecordTable, server: &VoprfServer, u: &User) -> Option<Vec<u8>> {
        let keys = RecordKeys::derive(&server.evaluate(u.number.as_bytes()).expect("evaluates"));
        let bytes = table.bucket_records(table.bits().bucket_of(&u.number));
        let records = RecordRef::decode_packed(&bytes).expect("well-formed");
        let found = records.into_iter().find(|r| r.tag() == *keys.tag())?;
        Some(keys.open(found).expect("opens").into_bytes())
    }

    #[test]
    fn build_holds_exactly_the_discoverable_users() {
        let server = VoprfServer::new(KeyPair::generate(&mut rand::rng()));
        let users: Vec<User> = (0..50).map(|i| user(12015550100 + i, i % 2 == 0)).collect();
        let table = RecordTable::build(BucketBits::new(3).expect("valid"), &server, &users);
        assert_eq!(table.len(), 25);
        for u in &users {
            assert_eq!(find(&table, &server, u).is_some(), u.discoverable);
        }
    }

    #[test]
    fn changes_invalidate_the_cached_bucket() {
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
        u.discoverable = false;
        table.apply(&server, &u);
        assert_eq!(find(&table, &server, &u), None);
        assert!(table.is_empty());
    }
}
