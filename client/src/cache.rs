//! The client's cache of PRF outputs, so re-discovering a known contact
//! costs no evaluation (and no quota), and of the records of its contacts'
//! buckets, so that a re-sync downloads only the buckets that changed, and
//! in sync mode of the client's copy of every record ([`RecordCopy`]).
//!
//! The cache belongs to one key epoch: outputs and records under another
//! key are useless, so a cache whose epoch or public key differs from the
//! server's is emptied before use. It holds contact numbers and their
//! outputs: keep it where the address book itself is kept (the app's
//! private storage).
//!
//! Encoding ([`DiscoveryCache::to_bytes`]), all integers big-endian:
//!
//! ```text
//! "CDSC" || version (1 byte, 4) || epoch (8) || public key (32) || count (4)
//! || count × ( number digits as u64 (8) || output (64) )
//! || bucket count (4) || bucket count × ( bucket id (4) || length (4) || records (length) )
//! || copy flag (1: 0 none, 1 a record copy follows)
//! || [ copy epoch (8) || version (8) || set digest (16) || pending flag (1)
//!      || [ first page version (8) || cursor length (4) || cursor ]
//!      || records length (8) || records ]
//! ```
//!
//! The records are in record format 2 (`docs/protocol.md` §5). The copy's
//! cursor is the server's (`docs/protocol.md` §6.6: since version 4, a
//! bucket and a 25-byte record id). Versions 1 (no bucket section), 2
//! (buckets of format 1 records, no copy section) and 3 (a copy keyed by
//! match tag, whose cursor names a tag), written by earlier clients, are
//! still read: their outputs are kept (a PRF output does not depend on the
//! record format), the buckets of versions 1 and 2 dropped (the next
//! request downloads them again in the new format) and the copy of version
//! 3 dropped (it may lack one of two records sharing a tag, and its cursor
//! is one a current server refuses): the next sync downloads it again. A
//! copy whose records do not match its digest (a damaged file), or of
//! another epoch than the cache, is dropped on reading too.

use std::collections::HashMap;

use bytes::Bytes;
use cds_core::{E164, OUTPUT_LEN, Output, PublicKey, Record, RecordRef, SET_DIGEST_LEN, SetDigest};

use crate::sync::{Pending, RecordCopy};

const MAGIC: &[u8; 4] = b"CDSC";
const VERSION: u8 = 4;
/// The first version whose buckets hold record format 2 (and which has
/// the copy section).
const FIRST_COMPACT_VERSION: u8 = 3;
/// The first version whose copy is keyed by record id (with cursors that
/// name a record id).
const FIRST_RECORD_ID_VERSION: u8 = 4;
const HEADER_LEN: usize = 4 + 1 + 8 + 32 + 4;
const ENTRY_LEN: usize = 8 + OUTPUT_LEN;

/// Why cache bytes could not be read. Start with an empty cache instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Not a cds cache, or a version this client does not read.
    #[error("not a cds discovery cache (or an unsupported version): start with an empty cache")]
    Format,
    /// The bytes end early or have extra bytes after the entries.
    #[error("the discovery cache is truncated or has trailing bytes: start with an empty cache")]
    Length,
    /// An entry holds an invalid number or the header an invalid key.
    #[error("the discovery cache holds an invalid entry: start with an empty cache")]
    Entry,
}

/// PRF outputs of contacts, under one key epoch.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DiscoveryCache {
    owner: Option<(u64, PublicKey)>,
    outputs: HashMap<E164, Output>,
    buckets: HashMap<u32, Bytes>,
    /// Sync mode: the copy of every record of the epoch.
    pub(crate) copy: Option<RecordCopy>,
}

impl std::fmt::Debug for DiscoveryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DiscoveryCache(<{} entries, {} buckets, {} copied records>)",
            self.outputs.len(),
            self.buckets.len(),
            self.copy.as_ref().map_or(0, RecordCopy::len)
        )
    }
}

impl DiscoveryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many contacts have a cached output.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Empty the cache unless it belongs to `epoch` and `public_key`, then
    /// make it belong to them.
    pub(crate) fn bind(&mut self, epoch: u64, public_key: PublicKey) {
        if self.owner != Some((epoch, public_key)) {
            self.outputs.clear();
            self.buckets.clear();
            self.copy = None;
            self.owner = Some((epoch, public_key));
        }
    }

    /// The numbers with a cached output.
    pub(crate) fn numbers(&self) -> impl Iterator<Item = &E164> {
        self.outputs.keys()
    }

    /// The records of each bucket held, as last received.
    pub(crate) fn buckets(&self) -> &HashMap<u32, Bytes> {
        &self.buckets
    }

    /// Keep `records` as the current copy of `bucket`.
    pub(crate) fn put_bucket(&mut self, bucket: u32, records: Bytes) {
        self.buckets.insert(bucket, records);
    }

    /// Forget the buckets `keep` rejects (no contact needs them any more).
    pub(crate) fn retain_buckets(&mut self, keep: impl Fn(u32) -> bool) {
        self.buckets.retain(|&b, _| keep(b));
    }

    /// The sync-mode copy of every record, if one is held.
    pub fn record_copy(&self) -> Option<&RecordCopy> {
        self.copy.as_ref()
    }

    pub(crate) fn get(&self, number: &E164) -> Option<&Output> {
        self.outputs.get(number)
    }

    pub(crate) fn insert(&mut self, number: E164, output: Output) {
        self.outputs.insert(number, output);
    }

    /// Forget every contact `keep` rejects (for example, contacts deleted
    /// from the address book).
    pub fn retain(&mut self, keep: impl Fn(&E164) -> bool) {
        self.outputs.retain(|n, _| keep(n));
    }

    /// Serialize for the app to store.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (epoch, key) = match &self.owner {
            Some((e, k)) => (*e, k.to_bytes()),
            None => return Vec::new(),
        };
        let bucket_bytes: usize = self.buckets.values().map(|r| 8 + r.len()).sum();
        let mut out =
            Vec::with_capacity(HEADER_LEN + ENTRY_LEN * self.outputs.len() + 4 + bucket_bytes);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&key);
        out.extend_from_slice(&(self.outputs.len() as u32).to_be_bytes());
        let mut entries: Vec<_> = self.outputs.iter().collect();
        entries.sort_by_key(|(n, _)| n.to_u64());
        for (n, o) in entries {
            out.extend_from_slice(&n.to_u64().to_be_bytes());
            out.extend_from_slice(o.as_bytes());
        }
        out.extend_from_slice(&(self.buckets.len() as u32).to_be_bytes());
        let mut buckets: Vec<_> = self.buckets.iter().collect();
        buckets.sort_by_key(|(b, _)| **b);
        for (b, records) in buckets {
            out.extend_from_slice(&b.to_be_bytes());
            out.extend_from_slice(&(records.len() as u32).to_be_bytes());
            out.extend_from_slice(records);
        }
        write_copy(&mut out, self.copy.as_ref());
        out
    }

    /// Parse bytes written by [`DiscoveryCache::to_bytes`]. Empty bytes are
    /// an empty cache.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CacheError> {
        if bytes.is_empty() {
            return Ok(Self::new());
        }
        if bytes.len() < HEADER_LEN {
            return Err(CacheError::Length);
        }
        let version = bytes[4];
        if &bytes[..4] != MAGIC || !(1..=VERSION).contains(&version) {
            return Err(CacheError::Format);
        }
        let epoch = u64::from_be_bytes(bytes[5..13].try_into().map_err(|_| CacheError::Length)?);
        let key = PublicKey::from_slice(&bytes[13..45]).map_err(|_| CacheError::Entry)?;
        let count =
            u32::from_be_bytes(bytes[45..49].try_into().map_err(|_| CacheError::Length)?) as usize;
        let body = &bytes[HEADER_LEN..];
        let entries_len = count.checked_mul(ENTRY_LEN).ok_or(CacheError::Length)?;
        if body.len() < entries_len || (version == 1 && body.len() != entries_len) {
            return Err(CacheError::Length);
        }
        let (entries, rest) = body.split_at(entries_len);
        let (buckets, copy) = match version {
            1 => (HashMap::new(), None),
            // Checked for shape, then dropped: format 1 records.
            v if v < FIRST_COMPACT_VERSION => {
                read_buckets(rest, false).map(|_| (HashMap::new(), None))?
            }
            _ => read_buckets(rest, true)?,
        };
        let copy = copy.filter(|c| c.epoch == epoch && version >= FIRST_RECORD_ID_VERSION);
        let mut outputs = HashMap::with_capacity(count);
        for entry in entries.chunks_exact(ENTRY_LEN) {
            let digits = u64::from_be_bytes(entry[..8].try_into().map_err(|_| CacheError::Length)?);
            let number = E164::from_u64(digits).map_err(|_| CacheError::Entry)?;
            let mut out = [0u8; OUTPUT_LEN];
            out.copy_from_slice(&entry[8..]);
            outputs.insert(number, Output::from_bytes(out));
        }
        Ok(Self {
            owner: Some((epoch, key)),
            outputs,
            buckets,
            copy,
        })
    }
}

fn write_copy(out: &mut Vec<u8>, copy: Option<&RecordCopy>) {
    let Some(c) = copy else {
        out.push(0);
        return;
    };
    out.push(1);
    out.extend_from_slice(&c.epoch.to_be_bytes());
    out.extend_from_slice(&c.version.to_be_bytes());
    out.extend_from_slice(&c.digest.to_bytes());
    match &c.pending {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            out.extend_from_slice(&p.first_version.to_be_bytes());
            out.extend_from_slice(&(p.cursor.len() as u32).to_be_bytes());
            out.extend_from_slice(&p.cursor);
        }
    }
    out.extend_from_slice(&(c.record_bytes() as u64).to_be_bytes());
    for r in c.records.values() {
        out.extend_from_slice(r.as_bytes());
    }
}

/// The bucket section of a version 2, 3 or 4 cache: every byte must belong
/// to it, each bucket once. With `current` (version 3 or 4) each bucket must hold
/// well-formed packed records of format 2 and the copy section follows;
/// version 2 buckets (format 1) are checked only for shape.
fn read_buckets(
    section: &[u8],
    current: bool,
) -> Result<(HashMap<u32, Bytes>, Option<RecordCopy>), CacheError> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], CacheError> {
        let end = at.checked_add(n).ok_or(CacheError::Length)?;
        let part = section.get(at..end).ok_or(CacheError::Length)?;
        at = end;
        Ok(part)
    };
    let u32_of = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let count = u32_of(take(4)?);
    let mut buckets = HashMap::new();
    for _ in 0..count {
        let id = u32_of(take(4)?);
        let len = u32_of(take(4)?) as usize;
        let packed = take(len)?;
        if current {
            RecordRef::decode_packed(packed).map_err(|_| CacheError::Entry)?;
        }
        if buckets.insert(id, Bytes::copy_from_slice(packed)).is_some() {
            return Err(CacheError::Entry);
        }
    }
    let copy = if current { read_copy(&mut take)? } else { None };
    if at != section.len() {
        return Err(CacheError::Length);
    }
    Ok((buckets, copy))
}

/// The copy section; `None` for none, or for a copy whose records do not
/// add up to its digest.
fn read_copy<'a>(
    take: &mut impl FnMut(usize) -> Result<&'a [u8], CacheError>,
) -> Result<Option<RecordCopy>, CacheError> {
    let u64_of = |b: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_be_bytes(a)
    };
    match take(1)?[0] {
        0 => return Ok(None),
        1 => {}
        _ => return Err(CacheError::Entry),
    }
    let epoch = u64_of(take(8)?);
    let version = u64_of(take(8)?);
    let digest = SetDigest::from_slice(take(SET_DIGEST_LEN)?).map_err(|_| CacheError::Length)?;
    let pending = match take(1)?[0] {
        0 => None,
        1 => {
            let first_version = u64_of(take(8)?);
            let b = take(4)?;
            let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let cursor = Bytes::copy_from_slice(take(len)?);
            Some(Pending {
                first_version,
                cursor,
            })
        }
        _ => return Err(CacheError::Entry),
    };
    let len = usize::try_from(u64_of(take(8)?)).map_err(|_| CacheError::Length)?;
    let packed = take(len)?;
    let records = RecordRef::decode_packed(packed).map_err(|_| CacheError::Entry)?;
    let mut map = std::collections::BTreeMap::new();
    for r in records {
        let record = Record::from_bytes(r.as_bytes()).map_err(|_| CacheError::Entry)?;
        map.insert(r.id(), record);
    }
    let mut copy = RecordCopy {
        epoch,
        version,
        records: map,
        digest,
        pending,
    };
    let actual = copy.recompute_digest();
    if copy.pending.is_some() {
        // Mid-download the digest is only a running sum: take the records'.
        copy.digest = actual;
    } else if actual != digest {
        return Ok(None);
    }
    Ok(Some(copy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::sealed_records;
    use cds_core::KeyPair;
    use proptest::prelude::*;

    fn cache_with(n: u64) -> DiscoveryCache {
        let mut c = DiscoveryCache::new();
        c.bind(7, *KeyPair::generate(&mut rand::rng()).public());
        for i in 0..n {
            c.insert(
                E164::from_u64(4915120000000 + i).expect("valid"),
                Output::from_bytes([i as u8; 64]),
            );
        }
        c
    }

    #[test]
    fn cache_round_trips_through_bytes() {
        let mut c = cache_with(5);
        assert_eq!(DiscoveryCache::from_bytes(&c.to_bytes()), Ok(c.clone()));
        c.put_bucket(9, sealed_records());
        c.put_bucket(2, Bytes::new());
        assert_eq!(DiscoveryCache::from_bytes(&c.to_bytes()), Ok(c));
        assert_eq!(DiscoveryCache::from_bytes(&[]), Ok(DiscoveryCache::new()));
    }

    #[test]
    fn a_record_copy_round_trips_and_a_damaged_one_is_dropped() {
        let mut c = cache_with(2);
        let mut copy = crate::sync::RecordCopy::start(7);
        let packed = sealed_records();
        for r in RecordRef::decode_packed(&packed).expect("records") {
            copy.records
                .insert(r.id(), Record::from_bytes(r.as_bytes()).expect("one"));
        }
        copy.digest = copy.recompute_digest();
        copy.pending = None;
        copy.version = 12;
        c.copy = Some(copy);
        let bytes = c.to_bytes();
        assert_eq!(DiscoveryCache::from_bytes(&bytes), Ok(c.clone()));
        // One flipped byte in the last record: the copy goes, the rest stays.
        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        let read = DiscoveryCache::from_bytes(&damaged).expect("reads");
        assert_eq!(read.copy, None);
        assert_eq!(read.len(), 2);
    }

    #[test]
    fn a_version_3_cache_keeps_its_outputs_and_buckets_and_drops_its_tag_keyed_copy() {
        let mut c = cache_with(2);
        c.put_bucket(3, sealed_records());
        let mut with_copy = c.clone();
        let mut copy = crate::sync::RecordCopy::start(7);
        for r in RecordRef::decode_packed(&sealed_records()).expect("records") {
            copy.records
                .insert(r.id(), Record::from_bytes(r.as_bytes()).expect("one"));
        }
        copy.digest = copy.recompute_digest();
        // Mid-download, with a cursor naming a match tag (bucket and tag).
        copy.pending = Some(Pending {
            first_version: 4,
            cursor: vec![0; 12].into(),
        });
        with_copy.copy = Some(copy);
        let mut v3 = with_copy.to_bytes();
        assert_eq!(v3[4], 4);
        assert!(
            DiscoveryCache::from_bytes(&v3)
                .expect("reads")
                .copy
                .is_some()
        );
        v3[4] = 3;
        assert_eq!(DiscoveryCache::from_bytes(&v3), Ok(c));
    }

    #[test]
    fn a_version_1_cache_still_reads_with_no_buckets() {
        let c = cache_with(3);
        let mut v1 = c.to_bytes();
        v1[4] = 1;
        v1.truncate(v1.len() - 5); // the empty bucket and copy sections
        assert_eq!(DiscoveryCache::from_bytes(&v1), Ok(c));
    }

    #[test]
    fn a_version_2_cache_keeps_its_outputs_and_drops_its_format_1_buckets() {
        let c = cache_with(3);
        let mut v2 = c.to_bytes();
        v2[4] = 2;
        v2.truncate(v2.len() - 5); // the empty bucket and copy sections
        // One bucket of a 53-byte format 1 record, which format 2 cannot parse.
        v2.extend_from_slice(&1u32.to_be_bytes());
        v2.extend_from_slice(&5u32.to_be_bytes());
        v2.extend_from_slice(&53u32.to_be_bytes());
        v2.extend_from_slice(&[0x11; 16]);
        v2.extend_from_slice(&[0x22; 12]);
        v2.push(8);
        v2.extend_from_slice(&[0x33; 24]);
        assert_eq!(DiscoveryCache::from_bytes(&v2), Ok(c.clone()));
        // The same bytes as version 3 are refused: not format 2 records.
        v2[4] = 3;
        assert_eq!(DiscoveryCache::from_bytes(&v2), Err(CacheError::Entry));
        // A version 2 bucket section of the wrong shape is still refused.
        v2[4] = 2;
        v2.push(0);
        assert_eq!(DiscoveryCache::from_bytes(&v2), Err(CacheError::Length));
    }

    #[test]
    fn buckets_go_with_the_epoch_and_with_the_contacts_that_need_them() {
        let mut c = cache_with(1);
        let key = c.owner.expect("bound").1;
        c.put_bucket(1, sealed_records());
        c.put_bucket(2, sealed_records());
        c.retain_buckets(|b| b == 2);
        assert_eq!(c.buckets().keys().copied().collect::<Vec<_>>(), vec![2]);
        c.bind(8, key);
        assert!(c.buckets().is_empty());
    }

    #[test]
    fn malformed_bucket_sections_are_refused() {
        let mut c = cache_with(1);
        c.put_bucket(4, sealed_records());
        let bytes = c.to_bytes();
        // Records cut short inside the bucket.
        let mut short = bytes.clone();
        let at = short.len() - 5;
        short.remove(at);
        assert!(DiscoveryCache::from_bytes(&short).is_err());
        // Trailing bytes after the buckets.
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(DiscoveryCache::from_bytes(&long), Err(CacheError::Length));
        // Records that are not records (a length byte beyond the limit).
        let mut garbage = bytes.clone();
        let records_at = bytes.len() - 1 - sealed_records().len();
        garbage[records_at + cds_core::TAG_LEN] = 0xff;
        assert!(DiscoveryCache::from_bytes(&garbage).is_err());
    }

    #[test]
    fn binding_to_another_epoch_empties_the_cache() {
        let mut c = cache_with(3);
        let key = c.owner.expect("bound").1;
        c.bind(7, key);
        assert_eq!(c.len(), 3);
        c.bind(8, key);
        assert!(c.is_empty());
    }

    #[test]
    fn truncated_and_foreign_bytes_are_refused() {
        let bytes = cache_with(2).to_bytes();
        assert_eq!(
            DiscoveryCache::from_bytes(&bytes[..bytes.len() - 1]),
            Err(CacheError::Length)
        );
        let mut foreign = bytes.clone();
        foreign[0] = b'X';
        assert_eq!(
            DiscoveryCache::from_bytes(&foreign),
            Err(CacheError::Format)
        );
    }

    proptest! {
        #[test]
        fn cache_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(c) = DiscoveryCache::from_bytes(&bytes) {
                prop_assert_eq!(DiscoveryCache::from_bytes(&c.to_bytes()), Ok(c));
            }
        }

        #[test]
        fn corrupting_a_header_byte_never_yields_a_different_owner(i in 0usize..49, v in any::<u8>()) {
            let c = cache_with(2);
            let mut bytes = c.to_bytes();
            prop_assume!(bytes[i] != v);
            bytes[i] = v;
            if let Ok(d) = DiscoveryCache::from_bytes(&bytes) {
                // Only the epoch or key can change this way; the cache is then
                // emptied on first use against the real server.
                prop_assert_ne!(d.owner, c.owner);
            }
        }
    }
}
