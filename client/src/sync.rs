//! Sync mode without I/O: the client's own copy of every sealed record of
//! one key epoch, and how pages and deltas from `SyncRecords` are applied
//! to it (`docs/protocol.md` §6.6).
//!
//! A full download is a run of pages (resumable: the copy remembers the
//! next cursor and the version of the first page), and always ends with a
//! delta since the first page's version, which carries the digest of the
//! whole set: the copy counts as current only once its own digest equals
//! it. A delta is applied to a scratch copy and kept only if the digests
//! agree, so a tampered or mis-applied delta leaves the copy as it was and
//! the caller starts over with a full download.
//!
//! The copy is keyed by [`RecordId`] (a record's first 25 bytes: tag,
//! label length, SIV), unique per record where an 8-byte match tag may be
//! shared by two users of one table. Ids start with the tag, so the copy
//! is also its own match index: the records under a tag are one range of
//! it ([`RecordCopy::lookup_keys`]), found in `O(log n)` with no index to
//! build or keep beside it.

use std::collections::BTreeMap;

use bytes::Bytes;
use cds_core::{Output, Record, RecordId, RecordKeys, RecordRef, SetDigest};
use cds_proto::v1::{SyncRequest, SyncResponse};

use crate::matching::Lookup;

/// Why a sync response was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncApplyError {
    /// The response names another key epoch than the copy's.
    #[error("the sync response is for another key epoch: download the records again")]
    WrongEpoch,
    /// Records or record ids that do not decode, or fields that do not belong to
    /// the kind of response.
    #[error("the sync response is malformed: {0}")]
    Malformed(&'static str),
    /// After applying the delta the copy's digest differs from the
    /// server's: the delta or the copy was wrong.
    #[error(
        "the records after the delta do not match the server's digest: download the records again"
    )]
    DigestMismatch,
    /// The server no longer keeps the changes since the copy's version.
    #[error("the server no longer has the changes since this copy: download the records again")]
    Restart,
}

/// A full download in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The version of the first page: the final delta starts there.
    pub(crate) first_version: u64,
    /// Where the next page starts (empty: the pages are done).
    pub(crate) cursor: Bytes,
}

/// The client's copy of one epoch's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordCopy {
    pub(crate) epoch: u64,
    /// The version the copy is at (meaningful once `pending` is `None`).
    pub(crate) version: u64,
    pub(crate) records: BTreeMap<RecordId, Record>,
    pub(crate) digest: SetDigest,
    pub(crate) pending: Option<Pending>,
}

impl RecordCopy {
    /// An empty copy of `epoch`, about to be downloaded.
    pub(crate) fn start(epoch: u64) -> Self {
        Self {
            epoch,
            version: 0,
            records: BTreeMap::new(),
            digest: SetDigest::EMPTY,
            pending: Some(Pending {
                first_version: 0,
                cursor: Bytes::new(),
            }),
        }
    }

    /// The epoch the copy belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The version the copy was last brought to.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// How many records the copy holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the copy holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether a full download is still under way.
    pub fn is_downloading(&self) -> bool {
        self.pending.is_some()
    }

    /// Bytes of the records held (what the copy costs in the cache file,
    /// beside a few bytes of header).
    pub fn record_bytes(&self) -> usize {
        self.records.values().map(|r| r.as_bytes().len()).sum()
    }

    /// Every record back to back, in id (so tag) order.
    pub fn packed(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.record_bytes());
        for r in self.records.values() {
            out.extend_from_slice(r.as_bytes());
        }
        out.into()
    }

    /// Whether the next request continues a download from a cursor.
    pub(crate) fn is_resuming(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| !p.cursor.is_empty())
    }

    /// The request that brings the copy forward: the next page, or the
    /// delta since its version (or since the first page, after the pages).
    pub(crate) fn next_request(&self) -> SyncRequest {
        match &self.pending {
            Some(p) if p.first_version == 0 || !p.cursor.is_empty() => SyncRequest {
                epoch: self.epoch,
                since_version: 0,
                cursor: p.cursor.clone(),
            },
            Some(p) => SyncRequest {
                epoch: self.epoch,
                since_version: p.first_version,
                cursor: Bytes::new(),
            },
            None => SyncRequest {
                epoch: self.epoch,
                since_version: self.version,
                cursor: Bytes::new(),
            },
        }
    }

    /// Apply the answer to [`RecordCopy::next_request`]. `Ok(true)` when
    /// the copy is current (its digest checked), `Ok(false)` when more
    /// pages follow. On an error the copy is unchanged.
    pub(crate) fn apply(&mut self, response: &SyncResponse) -> Result<bool, SyncApplyError> {
        if response.epoch != self.epoch {
            return Err(SyncApplyError::WrongEpoch);
        }
        if response.restart {
            return Err(SyncApplyError::Restart);
        }
        let delta = self.next_request().since_version != 0;
        if !delta {
            if !response.removed_ids.is_empty() || !response.set_digest.is_empty() {
                return Err(SyncApplyError::Malformed("a page carries delta fields"));
            }
            let records = RecordRef::decode_packed(&response.records)
                .map_err(|_| SyncApplyError::Malformed("a page's records do not decode"))?;
            let first_version = match &self.pending {
                Some(p) if p.first_version != 0 => p.first_version,
                _ if response.version == 0 => {
                    return Err(SyncApplyError::Malformed("a page names no version"));
                }
                _ => response.version,
            };
            self.pending = Some(Pending {
                first_version,
                cursor: response.next_cursor.clone(),
            });
            for r in records {
                insert(&mut self.records, &mut self.digest, r);
            }
            return Ok(false);
        }
        if !response.next_cursor.is_empty() {
            return Err(SyncApplyError::Malformed("a delta carries a cursor"));
        }
        // Version 0 asks for pages: a copy at it would be downloaded over.
        if response.version == 0 {
            return Err(SyncApplyError::Malformed("a delta names no version"));
        }
        let expected = SetDigest::from_slice(&response.set_digest)
            .map_err(|_| SyncApplyError::Malformed("a delta's digest is not 16 bytes"))?;
        let removed = cds_core::sync::decode_ids(&response.removed_ids)
            .map_err(|_| SyncApplyError::Malformed("a delta's removed record ids do not decode"))?;
        let added = RecordRef::decode_packed(&response.records)
            .map_err(|_| SyncApplyError::Malformed("a delta's records do not decode"))?;
        // The digest after the delta, computed before touching the copy.
        let mut digest = self.digest;
        let mut touched: BTreeMap<RecordId, Option<RecordRef<'_>>> = BTreeMap::new();
        for id in removed {
            touched.insert(id, None);
        }
        for r in added {
            touched.insert(r.id(), Some(r));
        }
        for (id, new) in &touched {
            if let Some(old) = self.records.get(id) {
                digest.remove(old.as_ref());
            }
            if let Some(r) = new {
                digest.add(*r);
            }
        }
        if digest != expected {
            return Err(SyncApplyError::DigestMismatch);
        }
        for (id, new) in touched {
            match new {
                None => {
                    self.records.remove(&id);
                }
                Some(r) => {
                    let record = Record::from_bytes(r.as_bytes())
                        .map_err(|_| SyncApplyError::Malformed("a record does not decode"))?;
                    self.records.insert(id, record);
                }
            }
        }
        self.digest = digest;
        self.version = response.version;
        self.pending = None;
        Ok(true)
    }

    /// What the copy holds for the number behind `output` (as
    /// [`crate::matching::RecordIndex::lookup`]).
    pub fn lookup(&self, output: &Output) -> Lookup {
        self.lookup_keys(&RecordKeys::derive(output))
    }

    /// What the copy holds under `keys`: every record under their tag is
    /// tried (two may share it) until one opens. `O(log n)` in the copy's
    /// size: its ids start with the tag.
    pub fn lookup_keys(&self, keys: &RecordKeys) -> Lookup {
        crate::matching::open_first(
            keys,
            self.records
                .range(RecordId::range_of(keys.tag()))
                .map(|(_, r)| r.as_ref()),
        )
    }

    /// The digest of the records held, computed afresh.
    pub(crate) fn recompute_digest(&self) -> SetDigest {
        SetDigest::of(self.records.values().map(Record::as_ref))
    }
}

/// Put `r` in the copy, replacing any record with its id.
fn insert(records: &mut BTreeMap<RecordId, Record>, digest: &mut SetDigest, r: RecordRef<'_>) {
    let Ok(record) = Record::from_bytes(r.as_bytes()) else {
        return;
    };
    if let Some(old) = records.insert(r.id(), record) {
        digest.remove(old.as_ref());
    }
    digest.add(r);
}

#[cfg(test)]
mod tests {
    use super::*;
    use cds_core::{BucketBits, E164, KeyPair, Label};
    use cds_server::ServingEpoch;
    use cds_server::discovery::sync::answer_sync;
    use cds_server::registry::User;
    use cds_server::table::RecordTable;

    fn user(i: u64, discoverable: bool) -> User {
        User {
            number: E164::from_u64(12015550100 + i).expect("valid"),
            label: Label::new(format!("label-{i}").into_bytes()).expect("short"),
            discoverable,
        }
    }

    fn server(users: u64) -> ServingEpoch {
        let epoch = ServingEpoch::new(
            5,
            KeyPair::generate(&mut rand::rng()),
            RecordTable::new(BucketBits::new(2).expect("valid")),
        );
        let changes = (0..users)
            .map(|i| epoch.table().change_for(epoch.oprf(), &user(i, true)))
            .collect();
        epoch.table().apply_changes(changes);
        epoch
    }

    /// Sync `copy` with `server` until current, at `page` bytes a page.
    fn sync(server: &ServingEpoch, copy: &mut RecordCopy, page: usize) {
        loop {
            let r = answer_sync(server, &copy.next_request(), page, 1 << 30).expect("answers");
            if copy.apply(&r).expect("applies") {
                return;
            }
        }
    }

    #[test]
    fn a_download_then_deltas_follow_the_server() {
        let s = server(30);
        let mut copy = RecordCopy::start(5);
        sync(&s, &mut copy, 200);
        assert_eq!(copy.len(), 30);
        assert_eq!(copy.digest, s.table().set_digest().1);
        s.table().apply(s.oprf(), &user(3, false));
        s.table().apply(s.oprf(), &user(99, true));
        sync(&s, &mut copy, 200);
        assert_eq!(copy.len(), 30);
        assert_eq!(copy.recompute_digest(), s.table().set_digest().1);
        assert_eq!(copy.version(), s.table().version());
    }

    #[test]
    fn a_delta_with_one_flipped_byte_is_refused_and_leaves_the_copy_alone() {
        let s = server(10);
        let mut copy = RecordCopy::start(5);
        sync(&s, &mut copy, 1 << 20);
        s.table().apply(s.oprf(), &user(50, true));
        let honest = answer_sync(&s, &copy.next_request(), 1 << 20, 1 << 30).expect("answers");
        let before = copy.clone();
        for i in 0..honest.records.len() {
            let mut tampered = honest.clone();
            let mut bytes = tampered.records.to_vec();
            bytes[i] ^= 0x01;
            tampered.records = bytes.into();
            assert!(copy.apply(&tampered).is_err(), "byte {i}");
            assert_eq!(copy, before);
        }
        assert_eq!(copy.apply(&honest), Ok(true));
    }

    #[test]
    fn a_delta_naming_version_0_is_refused_and_leaves_the_copy_alone() {
        let s = server(3);
        let mut copy = RecordCopy::start(5);
        sync(&s, &mut copy, 1 << 20);
        let before = copy.clone();
        let mut r = answer_sync(&s, &copy.next_request(), 1 << 20, 1 << 30).expect("answers");
        r.version = 0;
        assert!(matches!(copy.apply(&r), Err(SyncApplyError::Malformed(_))));
        assert_eq!(copy, before);
    }

    #[test]
    fn a_response_naming_another_epoch_is_refused() {
        let s = server(3);
        let mut copy = RecordCopy::start(5);
        let mut r = answer_sync(&s, &copy.next_request(), 1 << 20, 1 << 30).expect("answers");
        r.epoch = 6;
        assert_eq!(copy.apply(&r), Err(SyncApplyError::WrongEpoch));
    }

    #[test]
    fn a_resumed_download_equals_an_uninterrupted_one() {
        let s = server(40);
        let mut whole = RecordCopy::start(5);
        sync(&s, &mut whole, 1 << 20);
        let mut resumed = RecordCopy::start(5);
        let first = answer_sync(&s, &resumed.next_request(), 300, 1 << 30).expect("answers");
        assert_eq!(resumed.apply(&first), Ok(false));
        // The copy goes to disk mid-download and comes back.
        let mut cache = crate::cache::DiscoveryCache::new();
        cache.bind(5, *KeyPair::generate(&mut rand::rng()).public());
        cache.copy = Some(resumed);
        let mut back = crate::cache::DiscoveryCache::from_bytes(&cache.to_bytes())
            .expect("reads")
            .copy
            .expect("kept");
        assert!(back.is_downloading());
        sync(&s, &mut back, 300);
        assert_eq!(back.records, whole.records);
        assert_eq!(back.digest, whole.digest);
    }

    /// Keys under one chosen tag: what two users whose 8-byte tags collide
    /// look like.
    fn colliding_keys(k: u8) -> RecordKeys {
        cds_core::dangerous::record_keys_from_parts([0x42; cds_core::TAG_LEN], [k; 64])
    }

    fn sealed(keys: &RecordKeys, label: &[u8]) -> Record {
        keys.seal(&Label::new(label.to_vec()).expect("short"))
    }

    fn packed(records: &[&Record]) -> Bytes {
        let mut out = Vec::new();
        for r in records {
            out.extend_from_slice(r.as_bytes());
        }
        out.into()
    }

    fn digest(records: &[&Record]) -> Bytes {
        Bytes::copy_from_slice(&SetDigest::of(records.iter().map(|r| r.as_ref())).to_bytes())
    }

    #[test]
    fn two_records_sharing_a_tag_survive_a_download_a_delta_and_the_digest_check() {
        let (ka, kb, kc) = (colliding_keys(1), colliding_keys(2), colliding_keys(3));
        let a = sealed(&ka, b"a");
        let b = sealed(&kb, b"b");
        let other = sealed(
            &RecordKeys::derive(&cds_core::Output::from_bytes([7; 64])),
            b"o",
        );
        assert_eq!(a.as_ref().tag(), b.as_ref().tag());
        let mut copy = RecordCopy::start(5);
        // One page per record, as a server with a tiny page would send.
        for (i, r) in [&a, &b, &other].into_iter().enumerate() {
            let page = SyncResponse {
                epoch: 5,
                version: 3,
                records: packed(&[r]),
                next_cursor: if i < 2 {
                    vec![0; 29].into()
                } else {
                    Bytes::new()
                },
                ..Default::default()
            };
            assert_eq!(copy.apply(&page), Ok(false));
        }
        assert_eq!(copy.next_request().since_version, 3);
        let last = SyncResponse {
            epoch: 5,
            version: 3,
            set_digest: digest(&[&a, &b, &other]),
            ..Default::default()
        };
        assert_eq!(copy.apply(&last), Ok(true));
        assert_eq!(copy.len(), 3);
        assert_eq!(
            copy.lookup_keys(&ka),
            Lookup::Registered(Label::new(b"a".to_vec()).expect("short"))
        );
        assert_eq!(
            copy.lookup_keys(&kb),
            Lookup::Registered(Label::new(b"b".to_vec()).expect("short"))
        );
        // A record under the tag that opens with neither: a lookup tries
        // each and reports none.
        assert_eq!(copy.lookup_keys(&kc), Lookup::Unopenable);
        // One of the two leaves, another user under the same tag arrives:
        // the other record of the tag stays.
        let c = sealed(&kc, b"c");
        let delta = SyncResponse {
            epoch: 5,
            version: 4,
            records: packed(&[&c]),
            removed_ids: Bytes::copy_from_slice(a.as_ref().id().as_bytes()),
            set_digest: digest(&[&b, &c, &other]),
            ..Default::default()
        };
        assert_eq!(copy.apply(&delta), Ok(true));
        assert_eq!(copy.len(), 3);
        assert_eq!(copy.recompute_digest(), copy.digest);
        assert_eq!(copy.lookup_keys(&ka), Lookup::Unopenable);
        assert_eq!(
            copy.lookup_keys(&kb),
            Lookup::Registered(Label::new(b"b".to_vec()).expect("short"))
        );
        assert_eq!(
            copy.lookup_keys(&kc),
            Lookup::Registered(Label::new(b"c".to_vec()).expect("short"))
        );
        // And both survive the cache file.
        let mut cache = crate::cache::DiscoveryCache::new();
        cache.bind(5, *KeyPair::generate(&mut rand::rng()).public());
        cache.copy = Some(copy.clone());
        let back = crate::cache::DiscoveryCache::from_bytes(&cache.to_bytes()).expect("reads");
        assert_eq!(back.copy, Some(copy));
    }

    #[test]
    fn removed_ids_that_do_not_decode_are_refused_and_leave_the_copy_alone() {
        let s = server(4);
        let mut copy = RecordCopy::start(5);
        sync(&s, &mut copy, 1 << 20);
        let before = copy.clone();
        let honest = answer_sync(&s, &copy.next_request(), 1 << 20, 1 << 30).expect("answers");
        // 8-byte tags, as a server from before record ids sent them.
        let mut tags = honest.clone();
        tags.removed_ids = vec![0x11; 8].into();
        assert!(matches!(
            copy.apply(&tags),
            Err(SyncApplyError::Malformed(_))
        ));
        // A whole id whose label length no record can have.
        let mut bad_len = honest.clone();
        let mut id = vec![0x11; cds_core::RECORD_ID_LEN];
        id[cds_core::TAG_LEN] = 65;
        bad_len.removed_ids = id.into();
        assert!(matches!(
            copy.apply(&bad_len),
            Err(SyncApplyError::Malformed(_))
        ));
        assert_eq!(copy, before);
    }

    #[test]
    fn lookups_in_the_copy_follow_each_delta() {
        let s = server(20);
        let output = |i: u64| {
            s.oprf()
                .evaluate(user(i, true).number.as_bytes())
                .expect("evaluates")
        };
        let label = |i: u64| Lookup::Registered(user(i, true).label);
        let mut copy = RecordCopy::start(5);
        sync(&s, &mut copy, 1 << 20);
        assert_eq!(copy.lookup(&output(3)), label(3));
        assert_eq!(copy.lookup(&output(77)), Lookup::NotFound);
        // One opts out, one arrives, one changes label.
        s.table().apply(s.oprf(), &user(3, false));
        s.table().apply(s.oprf(), &user(77, true));
        let mut renamed = user(4, true);
        renamed.label = Label::new(b"renamed".to_vec()).expect("short");
        s.table().apply(s.oprf(), &renamed);
        sync(&s, &mut copy, 1 << 20);
        assert_eq!(copy.lookup(&output(3)), Lookup::NotFound);
        assert_eq!(copy.lookup(&output(77)), label(77));
        assert_eq!(copy.lookup(&output(4)), Lookup::Registered(renamed.label));
        assert_eq!(copy.lookup(&output(5)), label(5));
        assert_eq!(copy.len(), 20);
    }
}
