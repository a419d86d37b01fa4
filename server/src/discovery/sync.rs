//! `SyncRecords` without I/O: a page of the whole table, or the changes
//! since a version, for clients that keep their own copy of every record
//! (sync mode, `docs/protocol.md` §6.6).
//!
//! A full download is paged by position: a cursor names a bucket and the
//! id of the last record sent in it (records lie in byte order, so in id
//! order, within a bucket; an id is unique where a match tag may be
//! shared), so a page starts after it whatever changed meanwhile. Each page
//! names the table version read before it; the pages of one download may
//! come from several versions, and the client then asks for the changes
//! since the first page's version. Those changes are merged per record id
//! (the last one wins), so applying them to a copy that already has some of
//! them leaves it exactly at the current version, and their digest proves
//! it.

use bytes::Bytes;
use cds_core::{BucketBits, RECORD_ID_LEN, RecordId, RecordRef};
use cds_proto::v1::{SyncRequest, SyncResponse};
use prost::Message;

use crate::epoch::ServingEpoch;

/// The most record bytes one page carries (less when the server's response
/// limit is below twice this).
pub const SYNC_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Bytes of a cursor that starts at a bucket.
const BUCKET_CURSOR_LEN: usize = 4;
/// Bytes of a cursor that starts after a record (named by its id) in a
/// bucket.
const RECORD_CURSOR_LEN: usize = BUCKET_CURSOR_LEN + RECORD_ID_LEN;

/// Why a `SyncRecords` request is refused. Messages hold only what the
/// caller sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The request names an epoch that is not serving.
    #[error(
        "unknown key epoch: fetch the configuration again (GetConfig) and download the records again"
    )]
    WrongEpoch {
        /// The epoch the request named.
        requested: u64,
    },
    /// The cursor is not one this server hands out.
    #[error(
        "the cursor is not one a page of this table returned: start the download again with an empty cursor"
    )]
    BadCursor,
    /// A cursor came with a delta request.
    #[error("a cursor goes only with since_version 0 (a page of the whole table)")]
    CursorWithDelta,
}

/// The page size for a server whose responses are at most `max_response_bytes`.
pub fn page_bytes(max_response_bytes: usize) -> usize {
    SYNC_PAGE_BYTES.min(max_response_bytes / 2).max(1)
}

/// Where a page starts: a bucket, and the record after which to continue
/// in it.
fn parse_cursor(cursor: &[u8], bits: BucketBits) -> Result<(u32, Option<RecordId>), SyncError> {
    let bucket_of = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (bucket, after) = match cursor.len() {
        0 => (0, None),
        BUCKET_CURSOR_LEN => (bucket_of(cursor), None),
        RECORD_CURSOR_LEN => {
            let id = RecordId::from_slice(&cursor[BUCKET_CURSOR_LEN..])
                .map_err(|_| SyncError::BadCursor)?;
            (bucket_of(cursor), Some(id))
        }
        _ => return Err(SyncError::BadCursor),
    };
    if bucket >= bits.count() {
        return Err(SyncError::BadCursor);
    }
    Ok((bucket, after))
}

fn cursor_after(bucket: u32, id: &RecordId) -> Bytes {
    let mut c = Vec::with_capacity(RECORD_CURSOR_LEN);
    c.extend_from_slice(&bucket.to_be_bytes());
    c.extend_from_slice(id.as_bytes());
    c.into()
}

/// Answer `request` from `epoch`: a page of at most about `page` record
/// bytes, or a delta, or `restart` when the delta cannot be had or would
/// not fit in `max_response_bytes`.
pub fn answer_sync(
    epoch: &ServingEpoch,
    request: &SyncRequest,
    page: usize,
    max_response_bytes: usize,
) -> Result<SyncResponse, SyncError> {
    if request.epoch != epoch.id {
        return Err(SyncError::WrongEpoch {
            requested: request.epoch,
        });
    }
    let table = &epoch.table;
    if request.since_version != 0 {
        if !request.cursor.is_empty() {
            return Err(SyncError::CursorWithDelta);
        }
        let restart = SyncResponse {
            epoch: epoch.id,
            restart: true,
            ..Default::default()
        };
        let Some(delta) = table.changes_since(request.since_version) else {
            return Ok(restart);
        };
        let mut records = Vec::with_capacity(delta.added.iter().map(|r| r.as_bytes().len()).sum());
        for r in &delta.added {
            records.extend_from_slice(r.as_bytes());
        }
        let removed: Vec<u8> = delta
            .removed
            .iter()
            .flat_map(|id| id.as_bytes().iter().copied())
            .collect();
        let response = SyncResponse {
            epoch: epoch.id,
            version: delta.version,
            records: records.into(),
            removed_ids: removed.into(),
            next_cursor: Bytes::new(),
            set_digest: Bytes::copy_from_slice(&delta.digest.to_bytes()),
            restart: false,
        };
        if response.encoded_len() > max_response_bytes {
            return Ok(restart);
        }
        return Ok(response);
    }
    let (mut bucket, mut after) = parse_cursor(&request.cursor, table.bits())?;
    let version = table.version();
    let mut out: Vec<u8> = Vec::with_capacity(page.min(table.record_bytes()) + 128);
    let mut next = Bytes::new();
    'buckets: while bucket < table.bits().count() {
        let held = table.bucket(bucket).records;
        // The table holds only well-formed records; a bucket that is not
        // would be sent as nothing rather than as garbage.
        let records = RecordRef::decode_packed(&held).unwrap_or_default();
        let start = after.map_or(0, |id| records.partition_point(|r| r.id() <= id));
        for r in &records[start..] {
            out.extend_from_slice(r.as_bytes());
            if out.len() >= page {
                next = cursor_after(bucket, &r.id());
                break 'buckets;
            }
        }
        after = None;
        bucket += 1;
    }
    Ok(SyncResponse {
        epoch: epoch.id,
        version,
        records: out.into(),
        removed_ids: Bytes::new(),
        next_cursor: next,
        set_digest: Bytes::new(),
        restart: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::User;
    use crate::table::RecordTable;
    use cds_core::{E164, KeyPair, Label, Record, SetDigest};
    use proptest::prelude::*;

    fn epoch(bits: u8, users: u64) -> ServingEpoch {
        let epoch = ServingEpoch::new(
            3,
            KeyPair::generate(&mut rand::rng()),
            RecordTable::new(BucketBits::new(bits).expect("valid")),
        );
        let changes = (0..users)
            .map(|i| epoch.table.change_for(&epoch.oprf, &user(i, true)))
            .collect();
        epoch.table.apply_changes(changes);
        epoch
    }

    fn user(i: u64, discoverable: bool) -> User {
        User {
            number: E164::from_u64(12015550100 + i).expect("valid"),
            label: Label::new(format!("label-{i}").into_bytes()).expect("short"),
            discoverable,
        }
    }

    fn request(epoch: &ServingEpoch, since: u64, cursor: Bytes) -> SyncRequest {
        SyncRequest {
            epoch: epoch.id,
            since_version: since,
            cursor,
        }
    }

    /// Every page from `cursor` on, concatenated, and the first version.
    fn download(epoch: &ServingEpoch, page: usize) -> (Vec<u8>, u64, usize) {
        let (mut all, mut cursor, mut first, mut pages) = (Vec::new(), Bytes::new(), None, 0);
        loop {
            let r = answer_sync(epoch, &request(epoch, 0, cursor), page, 1 << 30).expect("ok");
            first.get_or_insert(r.version);
            all.extend_from_slice(&r.records);
            pages += 1;
            if r.next_cursor.is_empty() {
                return (all, first.expect("set"), pages);
            }
            cursor = r.next_cursor;
        }
    }

    fn digest_of(packed: &[u8]) -> SetDigest {
        SetDigest::of(RecordRef::decode_packed(packed).expect("well-formed"))
    }

    #[test]
    fn paged_download_holds_every_record_once_at_any_page_size() {
        let e = epoch(3, 120);
        let (whole, _, one) = download(&e, 1 << 20);
        assert_eq!(one, 1);
        assert_eq!(whole.len(), e.table.record_bytes());
        for page in [1, 60, 500, 2_000] {
            let (paged, _, pages) = download(&e, page);
            assert_eq!(paged, whole, "page size {page}");
            assert!(pages > 1);
        }
        assert_eq!(digest_of(&whole), e.table.set_digest().1);
    }

    #[test]
    fn a_delta_brings_a_copy_to_the_current_digest() {
        let e = epoch(2, 40);
        let (copy, version, _) = download(&e, 1 << 20);
        // An opt-out, a new label, a newcomer.
        e.table.apply(&e.oprf, &user(1, false));
        e.table.apply(&e.oprf, &user(2, true));
        e.table.apply(&e.oprf, &user(500, true));
        let d = answer_sync(&e, &request(&e, version, Bytes::new()), 100, 1 << 20).expect("ok");
        assert!(!d.restart);
        assert_eq!(d.version, e.table.version());
        let mut set: std::collections::BTreeMap<RecordId, Record> = RecordRef::decode_packed(&copy)
            .expect("ok")
            .into_iter()
            .map(|r| (r.id(), Record::from_bytes(r.as_bytes()).expect("ok")))
            .collect();
        for id in cds_core::sync::decode_ids(&d.removed_ids).expect("ids") {
            set.remove(&id);
        }
        for r in RecordRef::decode_packed(&d.records).expect("records") {
            set.insert(r.id(), Record::from_bytes(r.as_bytes()).expect("ok"));
        }
        let digest = SetDigest::of(set.values().map(Record::as_ref));
        assert_eq!(digest.to_bytes().as_slice(), &d.set_digest[..]);
        assert_eq!(set.len(), 40);
    }

    #[test]
    fn other_epochs_old_versions_and_bad_cursors_are_refused() {
        let e = epoch(1, 5);
        let mut other = request(&e, 0, Bytes::new());
        other.epoch ^= 1;
        assert!(matches!(
            answer_sync(&e, &other, 100, 1 << 20),
            Err(SyncError::WrongEpoch { .. })
        ));
        let future = answer_sync(&e, &request(&e, 99, Bytes::new()), 100, 1 << 20).expect("ok");
        assert!(future.restart && future.records.is_empty() && future.set_digest.is_empty());
        // A 12-byte cursor (bucket and tag, before record ids) is refused too.
        let mut label_too_long = vec![0; 29];
        label_too_long[4 + cds_core::TAG_LEN] = 65;
        for bad in [
            vec![0; 3],
            vec![0, 0, 0, 9],
            vec![0; 12],
            vec![0; 21],
            label_too_long,
        ] {
            assert!(matches!(
                answer_sync(&e, &request(&e, 0, bad.into()), 100, 1 << 20),
                Err(SyncError::BadCursor)
            ));
        }
        assert!(matches!(
            answer_sync(&e, &request(&e, 1, vec![0; 4].into()), 100, 1 << 20),
            Err(SyncError::CursorWithDelta)
        ));
    }

    #[test]
    fn records_sharing_a_tag_are_paged_one_by_one_and_removed_alone() {
        // Two users whose 8-byte tags collide (about n²/2^65 pairs of n users).
        let e = epoch(2, 10);
        let bits = e.table.bits();
        let keys = |k: u8| cds_core::dangerous::record_keys_from_parts([0x42; 8], [k; 64]);
        let label = |l: &[u8]| Label::new(l.to_vec()).expect("short");
        let a = keys(1).seal(&label(b"a"));
        let b = keys(2).seal(&label(b"b"));
        e.table.apply_changes(vec![
            crate::table::Change::owned(bits, keys(1), Some(a.clone())),
            crate::table::Change::owned(bits, keys(2), Some(b.clone())),
        ]);
        // A page per record: the cursor between the two names the first
        // one, and the next page starts at the second.
        let (whole, version, _) = download(&e, 1 << 20);
        let (paged, _, pages) = download(&e, 1);
        assert_eq!(paged, whole);
        let held = RecordRef::decode_packed(&paged).expect("well-formed");
        // Each record on its own page, then an empty last one.
        assert_eq!((held.len(), pages), (12, 13));
        assert!(held.contains(&a.as_ref()) && held.contains(&b.as_ref()));
        assert_eq!(digest_of(&paged), e.table.set_digest().1);
        // One of the two leaves: the delta names its record id only.
        e.table
            .apply_changes(vec![crate::table::Change::owned(bits, keys(1), None)]);
        let d = answer_sync(&e, &request(&e, version, Bytes::new()), 100, 1 << 20).expect("ok");
        assert!(d.records.is_empty());
        assert_eq!(&d.removed_ids[..], a.as_ref().id().as_bytes());
        let left: Vec<RecordRef<'_>> = held.into_iter().filter(|r| *r != a.as_ref()).collect();
        assert_eq!(SetDigest::of(left).to_bytes().as_slice(), &d.set_digest[..]);
        // A new label for the other: its old record id goes, the new record comes.
        let b2 = keys(2).seal(&label(b"b2"));
        let now = e.table.version();
        e.table.apply_changes(vec![crate::table::Change::owned(
            bits,
            keys(2),
            Some(b2.clone()),
        )]);
        let d = answer_sync(&e, &request(&e, now, Bytes::new()), 100, 1 << 20).expect("ok");
        assert_eq!(&d.removed_ids[..], b.as_ref().id().as_bytes());
        assert_eq!(&d.records[..], b2.as_bytes());
    }

    proptest! {
        #[test]
        fn cursor_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let bits = BucketBits::new(4).expect("valid");
            if let Ok((bucket, _)) = parse_cursor(&bytes, bits) {
                prop_assert!(bucket < 16);
                prop_assert!([0, 4, 29].contains(&bytes.len()));
            }
        }
    }
}
