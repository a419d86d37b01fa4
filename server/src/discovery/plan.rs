//! A Discover request parsed and checked against the serving epoch, with
//! its response laid out and sized, before anything is evaluated.

use std::time::Duration;

use bytes::Bytes;
use cds_core::{BUCKET_DIGEST_LEN, BucketDigest, ELEMENT_LEN, PROOF_LEN};
use cds_proto::v1::discover_request::Buckets;
use cds_proto::v1::{BucketIds, BucketRecords, DiscoverRequest, DiscoverResponse};
use cds_proto::wire;
use rand::CryptoRng;

use super::evaluate::evaluate;
use crate::epoch::ServingEpoch;

/// Upper bound of the protobuf framing of an empty `BucketRecords` entry:
/// the entry's tag and length (2) and the bucket id's tag and varint (at
/// most 5 for ids below 2^24).
const EMPTY_BUCKET_FRAMING: usize = 7;
/// What a bucket with records (or marked unchanged) adds to that: the
/// records' tag and length varint (at most 6), the `unchanged` flag (2).
const RECORDS_FRAMING: usize = 8;
/// Upper bound of the protobuf framing of the response's other fields:
/// `epoch` (9), the tags and length varints of `evaluated_elements` (at
/// most 6) and `proof` (2), and the gRPC message prefix (5).
const HEAD_FRAMING: usize = 22;

/// An upper bound of the encoded `buckets` field of an `all` response from
/// `table` as it is now: its records plus each entry's framing.
pub(crate) fn all_buckets_bound(table: &crate::table::RecordTable) -> usize {
    let count = table.bits().count() as usize;
    table.record_bytes() + count.min(table.len()) * RECORDS_FRAMING + count * EMPTY_BUCKET_FRAMING
}

/// The request limits a server enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscoverLimits {
    /// The most blinded elements per request, and the most bucket ids.
    pub max_elements: u32,
    /// The largest encoded response.
    pub max_response_bytes: usize,
}

/// Why a Discover request is refused before or during evaluation. Messages
/// say what to change; they hold sizes and bucket ids the caller sent,
/// never anything of other users.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    /// The request names an epoch that is not serving.
    #[error("unknown key epoch: fetch the configuration again (GetConfig) and retry")]
    WrongEpoch {
        /// The epoch the request named.
        requested: u64,
    },
    /// The client reads another record format (0: a client from before
    /// record format 2, which would misread every record).
    #[error(
        "this client reads record format {format}, but this server serves record format {serves} (docs/protocol.md §5): upgrade the client"
    )]
    RecordFormat {
        /// The format the request named (0: none, an older client).
        format: u32,
        /// The format this server serves.
        serves: u32,
    },
    /// The packed elements are not whole 32-byte elements.
    #[error(
        "blinded_elements is {len} bytes, not a multiple of 32: each element is exactly 32 bytes"
    )]
    RaggedElements {
        /// Bytes received.
        len: usize,
    },
    /// More elements than the server takes in one request.
    #[error("{count} blinded elements exceed the limit of {max} per request: split the batch")]
    TooManyElements {
        /// Elements received.
        count: usize,
        /// The limit.
        max: u32,
    },
    /// No bucket selection.
    #[error("choose buckets: set `all`, or `ids` with the buckets wanted")]
    NoBuckets,
    /// More bucket ids than elements a request may carry.
    #[error(
        "{count} bucket ids exceed the limit of {max} per request: ask for all buckets instead"
    )]
    TooManyBucketIds {
        /// Ids received.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A bucket id the table does not have.
    #[error("bucket id {id} is out of range: this server has {count} buckets")]
    BucketOutOfRange {
        /// The id.
        id: u32,
        /// Buckets of the table.
        count: u32,
    },
    /// The ids were computed with another bucket scheme (an older client
    /// that places records by number): they would name the wrong buckets.
    #[error(
        "bucket ids of scheme {scheme} name the wrong buckets on this server, which places records by match tag (scheme 2): upgrade the client, or ask for all buckets"
    )]
    BucketScheme {
        /// The scheme the request named (0: none, an older client).
        scheme: u32,
    },
    /// `known_digests` does not pair with the ids.
    #[error(
        "known_digests is {len} bytes: send none, or 16 bytes for each of the {ids} bucket ids"
    )]
    DigestsMismatch {
        /// Bytes received.
        len: usize,
        /// Ids received.
        ids: usize,
    },
    /// The response would exceed the server's limit.
    #[error(
        "the response would be {size} bytes, over this server's limit of {max}: ask for fewer buckets"
    )]
    ResponseTooLarge {
        /// The response's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The selected buckets grew past the size the request was admitted
    /// with while it waited (admin writes); nothing was evaluated or charged.
    #[error("the records changed while the request waited: retry")]
    TableChanged,
    /// An element is not a canonical, non-identity ristretto255 encoding.
    #[error("blinded element {index}: {source}")]
    InvalidElement {
        /// Its position in the request.
        index: usize,
        /// What is wrong with it.
        source: cds_core::Error,
    },
    /// The proof could not be made (the batch is empty or too large).
    #[error("{0}")]
    Proof(cds_core::Error),
}

/// Which buckets a request asks for, sorted and distinct.
#[derive(Debug, PartialEq, Eq)]
enum Selection {
    /// Every bucket of the table.
    All,
    /// These buckets, each with the digest the client holds for it.
    Ids(Vec<(u32, Option<BucketDigest>)>),
}

/// A request that passed every check that costs neither evaluation nor
/// memory in proportion to the table: the elements to evaluate (not decoded
/// yet), the buckets of the response and an upper bound of its size. The
/// response's buckets are gathered only by [`DiscoverPlan::answer`], after
/// the caller has admitted the request.
#[derive(Debug)]
pub struct DiscoverPlan {
    epoch: u64,
    packed: Bytes,
    elements: usize,
    selection: Selection,
    buckets: usize,
    /// Bytes of records the response was sized with.
    payload: usize,
    /// Evaluated elements and proof.
    head_bytes: usize,
    response_bytes: usize,
}

impl DiscoverPlan {
    /// Check `request` against `epoch` and `limits` and bound its response.
    /// Costs at most one read per requested bucket id (never per bucket of
    /// the table), and no evaluation.
    pub fn new(
        request: DiscoverRequest,
        epoch: &ServingEpoch,
        limits: &DiscoverLimits,
    ) -> Result<Self, DiscoverError> {
        // First: a client that would misread the records gets nothing,
        // whatever else its request says.
        if request.record_format != wire::RECORD_FORMAT {
            return Err(DiscoverError::RecordFormat {
                format: request.record_format,
                serves: wire::RECORD_FORMAT,
            });
        }
        if request.epoch != epoch.id {
            return Err(DiscoverError::WrongEpoch {
                requested: request.epoch,
            });
        }
        let elements = batch_size(&request.blinded_elements, limits.max_elements)?;
        let table = &epoch.table;
        let selection = select_buckets(
            request.buckets,
            table.bits().count(),
            limits.max_elements as usize,
        )?;
        let head_bytes = elements * ELEMENT_LEN + PROOF_LEN;
        let mut response_bytes = head_bytes;
        let mut payload = 0;
        // Payload plus protobuf framing (tags and varint lengths).
        let buckets = match &selection {
            Selection::All => {
                payload = table.record_bytes();
                response_bytes += all_buckets_bound(table) - payload;
                table.bits().count() as usize
            }
            Selection::Ids(ids) => {
                for &(b, known) in ids {
                    let current = table.bucket(b);
                    if known != Some(current.digest) {
                        payload += current.records.len();
                    }
                }
                response_bytes += ids.len() * (RECORDS_FRAMING + EMPTY_BUCKET_FRAMING);
                ids.len()
            }
        };
        response_bytes += payload;
        if response_bytes > limits.max_response_bytes {
            return Err(DiscoverError::ResponseTooLarge {
                size: response_bytes,
                max: limits.max_response_bytes,
            });
        }
        Ok(Self {
            epoch: epoch.id,
            packed: request.blinded_elements,
            elements,
            selection,
            buckets,
            payload,
            head_bytes,
            response_bytes,
        })
    }

    /// Blinded elements to evaluate (each costs the account one evaluation).
    pub fn elements(&self) -> usize {
        self.elements
    }

    /// Buckets in the response.
    pub fn buckets(&self) -> usize {
        self.buckets
    }

    /// The response's size, bounded above (framing counted at its largest).
    pub fn response_bytes(&self) -> usize {
        self.response_bytes
    }

    /// Whether the request asks for every bucket: its response is the
    /// request's own fields followed by the encoding of every bucket that
    /// all such responses of one table version share.
    pub fn is_all(&self) -> bool {
        self.selection == Selection::All
    }

    /// The memory answering holds until the response is sent, besides the
    /// shared encoding of all buckets: the response's own encoding (with
    /// `ids`, its buckets are copied into it) and, with `ids`, one handle
    /// per bucket while it is built.
    pub fn held_bytes(&self) -> usize {
        match self.selection {
            Selection::All => self.head_bytes + HEAD_FRAMING,
            Selection::Ids(_) => {
                self.response_bytes
                    + HEAD_FRAMING
                    + self.buckets * std::mem::size_of::<BucketRecords>()
            }
        }
    }

    /// The buckets of the response, as the table holds them now.
    fn gather(selection: Selection, epoch: &ServingEpoch) -> Vec<BucketRecords> {
        let table = &epoch.table;
        let entry = |bucket: u32, known: Option<BucketDigest>| {
            let current = table.bucket(bucket);
            let unchanged = known == Some(current.digest);
            BucketRecords {
                bucket,
                records: if unchanged {
                    Bytes::new()
                } else {
                    current.records
                },
                unchanged,
            }
        };
        match selection {
            Selection::All => (0..table.bits().count()).map(|b| entry(b, None)).collect(),
            Selection::Ids(ids) => ids.into_iter().map(|(b, known)| entry(b, known)).collect(),
        }
    }

    /// Evaluate and prove (nothing when the request has no elements) and
    /// build the response. `cpu` is told the thread CPU time of each piece
    /// of work.
    pub fn answer<R: CryptoRng + ?Sized>(
        self,
        epoch: &ServingEpoch,
        rng: &mut R,
        cpu: &(dyn Fn(Duration) + Sync),
    ) -> Result<DiscoverResponse, DiscoverError> {
        self.respond(epoch, true, rng, cpu)
    }

    /// As [`DiscoverPlan::answer`], but without the buckets of an `all`
    /// request: the caller appends the shared encoding of every bucket
    /// ([`super::shared`]). A response for `ids` is whole.
    pub(crate) fn answer_without_all<R: CryptoRng + ?Sized>(
        self,
        epoch: &ServingEpoch,
        rng: &mut R,
        cpu: &(dyn Fn(Duration) + Sync),
    ) -> Result<DiscoverResponse, DiscoverError> {
        self.respond(epoch, false, rng, cpu)
    }

    fn respond<R: CryptoRng + ?Sized>(
        self,
        epoch: &ServingEpoch,
        gather_all: bool,
        rng: &mut R,
        cpu: &(dyn Fn(Duration) + Sync),
    ) -> Result<DiscoverResponse, DiscoverError> {
        debug_assert_eq!(self.epoch, epoch.id, "a plan is answered by its epoch");
        let buckets = if gather_all || self.selection != Selection::All {
            // Admin writes may have grown the selected buckets since the
            // plan was sized (and its memory reserved): refuse rather than
            // exceed it, before anything is evaluated or charged.
            let buckets = Self::gather(self.selection, epoch);
            let payload: usize = buckets.iter().map(|b| b.records.len()).sum();
            if payload > self.payload {
                return Err(DiscoverError::TableChanged);
            }
            buckets
        } else {
            Vec::new()
        };
        let (evaluated_elements, proof) = if self.elements == 0 {
            (Bytes::new(), Bytes::new())
        } else {
            evaluate(&epoch.oprf, &self.packed, rng, cpu)?
        };
        Ok(DiscoverResponse {
            epoch: self.epoch,
            evaluated_elements,
            proof,
            buckets,
        })
    }
}

/// The number of packed blinded elements, checked before any decoding
/// work. Zero is allowed: the client refreshes records only.
fn batch_size(packed: &[u8], max: u32) -> Result<usize, DiscoverError> {
    if !packed.len().is_multiple_of(ELEMENT_LEN) {
        return Err(DiscoverError::RaggedElements { len: packed.len() });
    }
    let count = packed.len() / ELEMENT_LEN;
    if count > max as usize {
        return Err(DiscoverError::TooManyElements { count, max });
    }
    Ok(count)
}

/// The sorted, distinct bucket ids a request asks for. A batch of `n`
/// contacts needs at most `n` buckets; a longer list is refused (a client
/// that wants more asks for `all`). Each comes with the digest the client
/// holds for it, if it sent one (the first, for a bucket listed twice).
fn select_buckets(
    selection: Option<Buckets>,
    count: u32,
    max_ids: usize,
) -> Result<Selection, DiscoverError> {
    match selection {
        None => Err(DiscoverError::NoBuckets),
        Some(Buckets::All(_)) => Ok(Selection::All),
        Some(Buckets::Ids(BucketIds {
            ids,
            known_digests,
            scheme,
        })) => {
            if scheme != wire::BUCKET_SCHEME_TAG {
                return Err(DiscoverError::BucketScheme { scheme });
            }
            if ids.len() > max_ids {
                return Err(DiscoverError::TooManyBucketIds {
                    count: ids.len(),
                    max: max_ids,
                });
            }
            if let Some(&id) = ids.iter().find(|&&b| b >= count) {
                return Err(DiscoverError::BucketOutOfRange { id, count });
            }
            let digests: Vec<Option<BucketDigest>> = if known_digests.is_empty() {
                vec![None; ids.len()]
            } else if known_digests.len() == ids.len() * BUCKET_DIGEST_LEN {
                known_digests
                    .chunks_exact(BUCKET_DIGEST_LEN)
                    .map(|d| {
                        // All zeros: the client holds nothing for this id.
                        let held = d.iter().any(|&b| b != 0);
                        held.then(|| BucketDigest::from_slice(d))
                            .and_then(Result::ok)
                    })
                    .collect()
            } else {
                return Err(DiscoverError::DigestsMismatch {
                    len: known_digests.len(),
                    ids: ids.len(),
                });
            };
            let mut selected: Vec<(u32, Option<BucketDigest>)> =
                ids.into_iter().zip(digests).collect();
            // Stable: the first listing of a bucket stays first, and is kept.
            selected.sort_by_key(|&(b, _)| b);
            selected.dedup_by_key(|&mut (b, _)| b);
            Ok(Selection::Ids(selected))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cds_proto::v1::AllBuckets;

    #[test]
    fn batch_size_checks_allow_empty_and_reject_ragged_and_oversized() {
        assert_eq!(batch_size(&[], 10).expect("records only"), 0);
        assert!(matches!(
            batch_size(&[0; 33], 10),
            Err(DiscoverError::RaggedElements { len: 33 })
        ));
        assert!(matches!(
            batch_size(&[0; 64], 1),
            Err(DiscoverError::TooManyElements { count: 2, max: 1 })
        ));
        assert_eq!(batch_size(&[0; 64], 2).expect("fits"), 2);
    }

    fn ids(v: Vec<u32>) -> Option<Buckets> {
        Some(Buckets::Ids(BucketIds {
            ids: v,
            known_digests: Bytes::new(),
            scheme: wire::BUCKET_SCHEME_TAG,
        }))
    }

    #[test]
    fn bucket_selection_is_sorted_deduplicated_and_bounded() {
        let all = Some(Buckets::All(AllBuckets {}));
        assert_eq!(
            select_buckets(ids(vec![3, 1, 3]), 4, 8).expect("valid"),
            Selection::Ids(vec![(1, None), (3, None)])
        );
        assert!(matches!(
            select_buckets(ids(vec![4]), 4, 8),
            Err(DiscoverError::BucketOutOfRange { id: 4, count: 4 })
        ));
        assert!(matches!(
            select_buckets(ids(vec![0, 1, 2]), 4, 2),
            Err(DiscoverError::TooManyBucketIds { count: 3, max: 2 })
        ));
        assert!(matches!(
            select_buckets(None, 4, 8),
            Err(DiscoverError::NoBuckets)
        ));
        assert_eq!(select_buckets(all, 2, 1).expect("valid"), Selection::All);
        assert_eq!(
            select_buckets(ids(vec![]), 4, 8).expect("valid"),
            Selection::Ids(vec![])
        );
    }

    #[test]
    fn ids_of_another_bucket_scheme_are_refused() {
        for scheme in [0, 1, 3] {
            let old = Some(Buckets::Ids(BucketIds {
                ids: vec![1],
                known_digests: Bytes::new(),
                scheme,
            }));
            assert!(matches!(
                select_buckets(old, 4, 8),
                Err(DiscoverError::BucketScheme { scheme: s }) if s == scheme
            ));
        }
    }

    #[test]
    fn known_digests_pair_with_ids_zero_means_none_and_the_first_listing_counts() {
        let a = BucketDigest::of(b"a");
        let b = BucketDigest::of(b"b");
        let mut packed = Vec::new();
        for d in [a.as_bytes(), &[0; 16], b.as_bytes()] {
            packed.extend_from_slice(d);
        }
        let with = |v: Vec<u32>, digests: &[u8]| {
            Some(Buckets::Ids(BucketIds {
                ids: v,
                known_digests: Bytes::copy_from_slice(digests),
                scheme: wire::BUCKET_SCHEME_TAG,
            }))
        };
        assert_eq!(
            select_buckets(with(vec![3, 1, 3], &packed), 4, 8).expect("valid"),
            Selection::Ids(vec![(1, None), (3, Some(a))])
        );
        for bad in [
            &packed[..32],
            &packed[..47],
            &[packed.clone(), packed.clone()].concat()[..],
        ] {
            assert!(matches!(
                select_buckets(with(vec![3, 1, 3], bad), 4, 8),
                Err(DiscoverError::DigestsMismatch { ids: 3, .. })
            ));
        }
    }

    #[test]
    fn records_added_after_the_plan_was_sized_refuse_the_answer_before_any_evaluation() {
        use crate::registry::User;
        use crate::table::RecordTable;
        use cds_core::{E164, KeyPair, Label};
        let bits = cds_core::BucketBits::new(0).expect("valid");
        let epoch = ServingEpoch::new(
            1,
            KeyPair::generate(&mut rand::rng()),
            RecordTable::new(bits),
        );
        let limits = DiscoverLimits {
            max_elements: 8,
            max_response_bytes: 1 << 20,
        };
        let request = || DiscoverRequest {
            epoch: 1,
            blinded_elements: Bytes::new(),
            buckets: Some(Buckets::All(AllBuckets {})),
            record_format: wire::RECORD_FORMAT,
        };
        let plan = DiscoverPlan::new(request(), &epoch, &limits).expect("valid");
        epoch.table.apply(
            &epoch.oprf,
            &User {
                number: E164::parse("+12015550123").expect("valid"),
                label: Label::new(b"late".to_vec()).expect("short"),
                discoverable: true,
            },
        );
        assert!(matches!(
            plan.answer(&epoch, &mut rand::rng(), &|_| {}),
            Err(DiscoverError::TableChanged)
        ));
        // A plan made now is answered.
        let plan = DiscoverPlan::new(request(), &epoch, &limits).expect("valid");
        let response = plan
            .answer(&epoch, &mut rand::rng(), &|_| {})
            .expect("answered");
        assert_eq!(response.buckets.len(), 1);
        assert!(!response.buckets[0].records.is_empty());
    }
}
