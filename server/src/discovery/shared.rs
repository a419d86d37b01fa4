//! The encoding of every bucket of one table version, which all `all`
//! responses of that version share.
//!
//! An `all` response is the request's own fields (epoch, evaluated
//! elements, proof) followed by field 4, `buckets`, for every bucket of the
//! table. That second part is the same for every request while the table
//! does not change, and at 1M users it is about 33 MB (8-byte labels): it is encoded once
//! per table version, held as [`Bytes`], and every response hands slices of
//! it to the transport without copying.
//!
//! It is built lazily, by the first `all` request after a change, rather
//! than by the change itself: admin writes arrive one user at a time and
//! would each re-encode the whole table, and a server whose clients use
//! contacts-only buckets never needs it. Concurrent `all` requests of a new
//! version wait for one build instead of each making its own.
//!
//! Its memory is reserved from the response budget before it is built, and
//! the reservation is owned by the buffer itself: it is given back when the
//! last reference goes, whether the epoch's cache, a response body or a
//! piece the transport has not written yet.

use std::sync::Arc;

use bytes::Bytes;
use cds_proto::v1::BucketRecords;
use tonic::Status;

use super::plan::all_buckets_bound;
use crate::epoch::ServingEpoch;
use crate::exec::on_cpu_pool;
use crate::limits::response_memory::{Reservation, ResponseMemory};
use crate::table::RecordTable;

/// The protobuf field number of `DiscoverResponse.buckets`.
const BUCKETS_FIELD: u32 = 4;

/// The cached encoding of one epoch's table, with the version it encodes.
#[derive(Debug, Default)]
pub(crate) struct AllBucketsCache {
    slot: Arc<tokio::sync::Mutex<Option<Encoded>>>,
}

#[derive(Debug)]
struct Encoded {
    version: u64,
    bytes: Bytes,
}

/// Why the shared encoding could not be had.
#[derive(Debug)]
pub(crate) enum SharedError {
    /// The response budget does not have room for it now.
    NoMemory,
    /// The table grew past the size reserved while it was being encoded.
    TableChanged,
    /// The encoding job panicked.
    Internal(Status),
}

/// The buffer of an encoding, holding its reservation for as long as any
/// slice of it lives.
struct Owned {
    buf: Vec<u8>,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

/// Field 4 of a `DiscoverResponse` for every bucket of `table`, in bucket
/// order, exactly as prost encodes `DiscoverResponse.buckets`. Written
/// after the other fields of a response, it makes the same bytes as the
/// whole message encoded at once (prost writes fields in number order).
/// `None` if it would exceed `cap` bytes (the table grew meanwhile).
pub(crate) fn encode_all_buckets(table: &RecordTable, cap: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(cap);
    for bucket in 0..table.bits().count() {
        let entry = BucketRecords {
            bucket,
            records: table.bucket(bucket).records,
            unchanged: false,
        };
        prost::encoding::message::encode(BUCKETS_FIELD, &entry, &mut buf);
        if buf.len() > cap {
            return None;
        }
    }
    Some(buf)
}

impl AllBucketsCache {
    /// The encoding of every bucket of `epoch`'s table at its current
    /// version: the cached one, or a new one, built on the CPU pool within
    /// a reservation from `memory`. A stale encoding leaves the cache
    /// before the new one is reserved, so it is counted only while
    /// responses still send it. The build finishes and is cached even if
    /// the caller goes away.
    pub(crate) async fn get(
        &self,
        epoch: &Arc<ServingEpoch>,
        memory: &ResponseMemory,
    ) -> Result<Bytes, SharedError> {
        let mut slot = Arc::clone(&self.slot).lock_owned().await;
        let version = epoch.table.version();
        if let Some(encoded) = slot.as_ref()
            && encoded.version == version
        {
            return Ok(encoded.bytes.clone());
        }
        *slot = None;
        let cap = all_buckets_bound(&epoch.table);
        let reservation = memory.try_reserve(cap).ok_or(SharedError::NoMemory)?;
        let epoch = Arc::clone(epoch);
        on_cpu_pool(move || {
            let mut slot = slot;
            let buf = encode_all_buckets(&epoch.table, cap).ok_or(SharedError::TableChanged)?;
            let bytes = Bytes::from_owner(Owned {
                buf,
                _reservation: reservation,
            });
            *slot = Some(Encoded {
                version,
                bytes: bytes.clone(),
            });
            Ok(bytes)
        })
        .await
        .map_err(SharedError::Internal)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::User;
    use cds_core::{BucketBits, E164, KeyPair, Label, MatchTag, RecordRef};
    use cds_proto::v1::DiscoverResponse;
    use prost::Message;

    fn user(n: u64) -> User {
        User {
            number: E164::from_u64(n).expect("valid"),
            label: Label::new(format!("label-{n}").into_bytes()).expect("short"),
            discoverable: true,
        }
    }

    fn epoch(bits: u8, users: u64) -> Arc<ServingEpoch> {
        let epoch = ServingEpoch::new(
            1,
            KeyPair::generate(&mut rand::rng()),
            RecordTable::new(BucketBits::new(bits).expect("valid")),
        );
        let changes = (0..users)
            .map(|i| epoch.table.change_for(&epoch.oprf, &user(12015550100 + i)))
            .collect();
        epoch.table.apply_changes(changes);
        Arc::new(epoch)
    }

    /// The buckets an encoding carries, decoded as a client does.
    fn decode(bytes: &[u8]) -> Vec<BucketRecords> {
        DiscoverResponse::decode(bytes).expect("decodes").buckets
    }

    /// Each bucket's records in ascending tag order, in their own bucket.
    fn assert_tag_order(buckets: &[BucketRecords], bits: BucketBits) {
        for b in buckets {
            let tags: Vec<MatchTag> = RecordRef::decode_packed(&b.records)
                .expect("well-formed")
                .iter()
                .map(RecordRef::tag)
                .collect();
            assert!(tags.is_sorted(), "bucket {} is not in tag order", b.bucket);
            assert!(tags.iter().all(|t| bits.bucket_of(t) == b.bucket));
        }
    }

    #[tokio::test]
    async fn one_table_version_is_encoded_once_and_counted_once() {
        let epoch = epoch(3, 200);
        let memory = ResponseMemory::new(1 << 20);
        let cache = AllBucketsCache::default();
        let first = cache.get(&epoch, &memory).await.expect("built");
        let held = memory.held();
        assert_eq!(held, all_buckets_bound(&epoch.table));
        assert!(first.len() <= held);
        let second = cache.get(&epoch, &memory).await.expect("cached");
        assert_eq!(first.as_ptr(), second.as_ptr(), "the same buffer");
        assert_eq!(memory.held(), held, "counted once");
        let buckets = decode(&first);
        assert_eq!(buckets.len(), 8);
        assert!(
            buckets
                .iter()
                .enumerate()
                .all(|(i, b)| b.bucket == i as u32)
        );
        let records: usize = buckets.iter().map(|b| b.records.len()).sum();
        assert_eq!(records, epoch.table.record_bytes());
    }

    #[tokio::test]
    async fn a_table_change_yields_a_fresh_encoding_of_the_new_records_in_tag_order() {
        let epoch = epoch(2, 100);
        let bits = epoch.table.bits();
        let memory = ResponseMemory::new(1 << 20);
        let cache = AllBucketsCache::default();
        let old = cache.get(&epoch, &memory).await.expect("built");
        let old_held = memory.held();
        // A newcomer, and a user who stops being discoverable.
        let newcomer = user(12015560000);
        epoch.table.apply(&epoch.oprf, &newcomer);
        epoch.table.apply(
            &epoch.oprf,
            &User {
                discoverable: false,
                ..user(12015550100)
            },
        );
        let new = cache.get(&epoch, &memory).await.expect("rebuilt");
        assert_ne!(old.as_ptr(), new.as_ptr());
        let buckets = decode(&new);
        assert_tag_order(&buckets, bits);
        for (b, encoded) in buckets.iter().enumerate() {
            assert_eq!(encoded.records, epoch.table.bucket(b as u32).records);
        }
        let tags = |bytes: &Bytes| -> Vec<MatchTag> {
            decode(bytes)
                .iter()
                .flat_map(|b| {
                    RecordRef::decode_packed(&b.records)
                        .expect("well-formed")
                        .iter()
                        .map(RecordRef::tag)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let newcomer_tag = crate::table::tag_of(&epoch.oprf, &newcomer.number);
        let gone_tag = crate::table::tag_of(&epoch.oprf, &user(12015550100).number);
        assert!(tags(&new).contains(&newcomer_tag));
        assert!(!tags(&new).contains(&gone_tag));
        assert!(tags(&old).contains(&gone_tag));
        // The stale encoding is counted while a response still holds it,
        // and given back with its last slice.
        let piece = old.slice(0..10);
        drop(old);
        assert_eq!(memory.held(), old_held + all_buckets_bound(&epoch.table));
        drop(piece);
        assert_eq!(memory.held(), all_buckets_bound(&epoch.table));
    }

    #[tokio::test]
    async fn without_room_in_the_budget_nothing_is_built() {
        let epoch = epoch(1, 50);
        let memory = ResponseMemory::new(1024);
        let cache = AllBucketsCache::default();
        assert!(matches!(
            cache.get(&epoch, &memory).await,
            Err(SharedError::NoMemory)
        ));
        assert_eq!(memory.held(), 0);
    }

    #[test]
    fn an_encoding_that_outgrows_its_cap_is_abandoned() {
        let epoch = epoch(0, 20);
        let bound = all_buckets_bound(&epoch.table);
        assert!(encode_all_buckets(&epoch.table, bound).is_some());
        assert!(encode_all_buckets(&epoch.table, bound / 2).is_none());
    }
}
