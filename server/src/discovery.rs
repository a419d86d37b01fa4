//! The Discovery service: configuration, and batch evaluation with records.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use cds_core::{
    BUCKET_DIGEST_LEN, BlindedElement, BucketDigest, ELEMENT_LEN, EvaluatedElement, VoprfServer,
};
use cds_proto::v1::discover_request::Buckets;
use cds_proto::v1::discovery_server::Discovery;
use cds_proto::v1::{
    BucketIds, BucketRecords, Config, DiscoverRequest, DiscoverResponse, GetConfigRequest,
};
use rayon::prelude::*;
use tonic::{Request, Response, Status};

use crate::auth::authenticate;
use crate::limits::quota::Refusal;
use crate::limits::{limit_status, with_retry_after};
use crate::state::{State, observed, on_cpu_pool};
use cds_proto::wire::{self, Limit};
use prometheus_client::metrics::counter::Counter;
use std::time::Instant;

/// Elements evaluated per rayon task: large enough to amortize scheduling.
const EVAL_CHUNK: usize = 64;

/// Upper bound of the protobuf framing of one `BucketRecords` entry.
const BUCKET_FRAMING: usize = 16;

/// The Discovery gRPC service.
#[derive(Debug, Clone)]
pub(crate) struct DiscoveryService {
    pub(crate) state: Arc<State>,
}

fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg)
}

/// Check the packed blinded elements' length before any decoding work.
/// Zero elements is allowed: the client refreshes records only.
fn check_batch_size(packed: &[u8], max: u32) -> Result<usize, Status> {
    if !packed.len().is_multiple_of(ELEMENT_LEN) {
        return Err(invalid(format!(
            "blinded_elements is {} bytes, not a multiple of 32: each element is exactly 32 bytes",
            packed.len()
        )));
    }
    let n = packed.len() / ELEMENT_LEN;
    if n > max as usize {
        return Err(invalid(format!(
            "{n} blinded elements exceed the limit of {max} per request: split the batch"
        )));
    }
    Ok(n)
}

/// The sorted, distinct bucket ids a request asks for. A batch of `n`
/// contacts needs at most `n` buckets; a longer list is refused (a client
/// that wants more asks for `all`). Each comes with the digest the client
/// holds for it, if it sent one (the first, for a bucket listed twice).
fn select_buckets(
    selection: Option<Buckets>,
    count: u32,
    max_ids: usize,
) -> Result<Vec<(u32, Option<BucketDigest>)>, Status> {
    match selection {
        None => Err(invalid(
            "choose buckets: set `all`, or `ids` with the buckets wanted",
        )),
        Some(Buckets::All(_)) => Ok((0..count).map(|b| (b, None)).collect()),
        Some(Buckets::Ids(BucketIds { ids, known_digests })) => {
            if ids.len() > max_ids {
                return Err(invalid(format!(
                    "{} bucket ids exceed the limit of {max_ids} per request: ask for all buckets instead",
                    ids.len()
                )));
            }
            if let Some(bad) = ids.iter().find(|&&b| b >= count) {
                return Err(invalid(format!(
                    "bucket id {bad} is out of range: this server has {count} buckets"
                )));
            }
            let digests: Vec<Option<BucketDigest>> = if known_digests.is_empty() {
                vec![None; ids.len()]
            } else if known_digests.len() == ids.len() * BUCKET_DIGEST_LEN {
                known_digests
                    .chunks_exact(BUCKET_DIGEST_LEN)
                    .map(|d| {
                        let held = d.iter().any(|&b| b != 0);
                        held.then(|| BucketDigest::from_slice(d).expect("16 bytes"))
                    })
                    .collect()
            } else {
                return Err(invalid(format!(
                    "known_digests is {} bytes: send none, or 16 bytes for each of the {} bucket ids",
                    known_digests.len(),
                    ids.len()
                )));
            };
            let mut selected: Vec<(u32, Option<BucketDigest>)> =
                ids.into_iter().zip(digests).collect();
            // Stable: the first listing of a bucket stays first, and is kept.
            selected.sort_by_key(|&(b, _)| b);
            selected.dedup_by_key(|&mut (b, _)| b);
            Ok(selected)
        }
    }
}

/// CPU seconds spent evaluating, as the metrics count them.
type Busy = Counter<f64, AtomicU64>;

/// Run `f`, adding the CPU time this thread spent in it to `busy`
/// (wall time where the platform has no thread clock).
fn on_the_clock<T>(busy: &Busy, f: impl FnOnce() -> T) -> T {
    let cpu = cpu_time::ThreadTime::try_now().ok();
    let wall = Instant::now();
    let out = f();
    let spent = cpu
        .and_then(|c| c.try_elapsed().ok())
        .unwrap_or_else(|| wall.elapsed());
    busy.inc_by(spent.as_secs_f64());
    out
}

/// Decode every element first (so invalid input costs no evaluation), then
/// evaluate in parallel and prove. Adds the threads' CPU time to `busy`.
fn evaluate(server: &VoprfServer, packed: &[u8], busy: &Busy) -> Result<(Bytes, Bytes), Status> {
    let decoded: Vec<Result<BlindedElement, cds_core::Error>> = packed
        .par_chunks(EVAL_CHUNK * ELEMENT_LEN)
        .map(|chunk| {
            on_the_clock(busy, || {
                chunk
                    .chunks_exact(ELEMENT_LEN)
                    .map(BlindedElement::from_slice)
                    .collect::<Vec<_>>()
            })
        })
        .flatten_iter()
        .collect();
    let blinded = decoded
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.map_err(|err| invalid(format!("blinded element {i}: {err}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let evaluated: Vec<EvaluatedElement> = blinded
        .par_chunks(EVAL_CHUNK)
        .map(|chunk| on_the_clock(busy, || server.evaluate_elements(chunk)))
        .flatten_iter()
        .collect();
    let proof = on_the_clock(busy, || {
        server.prove_batch(&blinded, &evaluated, &mut rand::rng())
    })
    .map_err(|e| invalid(e.to_string()))?;
    Ok((
        EvaluatedElement::encode_packed(&evaluated).into(),
        Bytes::copy_from_slice(&proof.to_bytes()),
    ))
}

#[tonic::async_trait]
impl Discovery for DiscoveryService {
    async fn get_config(
        &self,
        request: Request<GetConfigRequest>,
    ) -> Result<Response<Config>, Status> {
        let s = &self.state;
        observed(s, "GetConfig", async {
            check_peer_rate(s, &request)?;
            let serving = s.serving_or_unavailable()?;
            Ok(Response::new(Config {
                epoch: serving.epoch,
                public_key: Bytes::copy_from_slice(serving.oprf.public_key().as_bytes()),
                bucket_bits: u32::from(serving.table.bits().get()),
                max_elements_per_request: s.max_elements(),
                suite: wire::SUITE.to_owned(),
            }))
        })
        .await
    }

    async fn discover(
        &self,
        request: Request<DiscoverRequest>,
    ) -> Result<Response<DiscoverResponse>, Status> {
        observed(&self.state, "Discover", self.discover_inner(request)).await
    }
}

/// FAILED_PRECONDITION for a request naming another epoch than `current`:
/// the client library refreshes its configuration and retries.
fn epoch_status(state: &State, requested: u64) -> Status {
    if state.is_retired(requested) {
        Status::failed_precondition(format!(
            "key epoch {requested:016x} was retired by a key rotation: fetch the configuration again (GetConfig) and retry"
        ))
    } else {
        Status::failed_precondition(
            "unknown key epoch: fetch the configuration again (GetConfig) and retry",
        )
    }
}

impl DiscoveryService {
    async fn discover_inner(
        &self,
        request: Request<DiscoverRequest>,
    ) -> Result<Response<DiscoverResponse>, Status> {
        let state = Arc::clone(&self.state);
        check_peer_rate(&state, &request)?;
        let account = authenticate(&state.verifier, request.metadata())?;
        let req = request.into_inner();
        // The whole request is served by this one epoch, even if a rotation
        // switches meanwhile.
        let serving = state.serving_or_unavailable()?;
        if req.epoch != serving.epoch {
            return Err(epoch_status(&state, req.epoch));
        }
        let n = check_batch_size(&req.blinded_elements, state.max_elements())?;
        let buckets = select_buckets(
            req.buckets,
            serving.table.bits().count(),
            state.max_elements() as usize,
        )?;

        // Everything that can be refused cheaply is refused before any work:
        // the response size, the account's budget, the evaluation gate.
        let mut size = n * ELEMENT_LEN + cds_core::PROOF_LEN;
        let mut out = Vec::with_capacity(buckets.len());
        for (bucket, known) in buckets {
            let current = serving.table.bucket(bucket);
            let unchanged = known == Some(current.digest);
            let records = if unchanged {
                Bytes::new()
            } else {
                current.records
            };
            // Payload plus protobuf framing (tags and varint lengths).
            size += records.len() + BUCKET_FRAMING;
            out.push(BucketRecords {
                bucket,
                records,
                unchanged,
            });
        }
        if size > state.config.max_response_bytes {
            return Err(Status::resource_exhausted(format!(
                "the response would be {size} bytes, over this server's limit of {}: ask for fewer buckets",
                state.config.max_response_bytes
            )));
        }
        let admission = state
            .quotas
            .admit(&account, n as u32, Instant::now())
            .map_err(quota_status)?;
        let slot = state.gate.enter().await.map_err(|_| {
            state.metrics.shed.inc();
            with_retry_after(
                Status::unavailable("the server is overloaded: retry shortly"),
                Some(state.gate.retry_after()),
            )
        })?;
        let (evaluated, proof) = if n == 0 {
            drop(slot);
            admission.commit();
            (Bytes::new(), Bytes::new())
        } else {
            // The CPU job owns the slot and the charge: if the client goes
            // away, the work still counts against the gate and the account,
            // so cancelling cannot buy free evaluations. Invalid elements
            // are found before anything is evaluated, and refunded.
            let packed = req.blinded_elements;
            let cpu_state = Arc::clone(&state);
            let cpu_serving = Arc::clone(&serving);
            on_cpu_pool(move || {
                let _slot = slot;
                let metrics = &cpu_state.metrics;
                let result = evaluate(&cpu_serving.oprf, &packed, &metrics.evaluation_cpu_seconds);
                if result.is_ok() {
                    admission.commit();
                    metrics.evaluated_elements.inc_by(n as u64);
                }
                result
            })
            .await??
        };
        tracing::debug!(elements = n, buckets = out.len(), "discover served");
        Ok(Response::new(DiscoverResponse {
            epoch: serving.epoch,
            evaluated_elements: evaluated,
            proof,
            buckets: out,
        }))
    }
}

/// Count the request against its peer's rate (both RPCs do).
fn check_peer_rate<T>(state: &State, request: &Request<T>) -> Result<(), Status> {
    let Some(ip) = request.remote_addr().map(|a| a.ip()) else {
        return Ok(());
    };
    state.peers.request(ip, Instant::now()).map_err(|wait| {
        limit_status(
            Limit::PeerRate,
            "too many requests from this address: slow down",
            wait,
        )
    })
}

/// A quota refusal as a status the client can act on.
fn quota_status(refusal: Refusal) -> Status {
    match refusal {
        Refusal::TooManyInFlight => limit_status(
            Limit::AccountConcurrency,
            "this account already has the maximum number of discovery requests in flight: wait for them",
            Some(std::time::Duration::from_secs(1)),
        ),
        Refusal::Exhausted(Some(wait)) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            limit_status(
                Limit::AccountBudget,
                format!(
                    "this account's discovery budget is spent: retry in {} s, or look up fewer new numbers",
                    secs.max(1)
                ),
                Some(wait),
            )
        }
        Refusal::Exhausted(None) => limit_status(
            Limit::AccountBudget,
            "this account's discovery budget is spent and does not refill in any useful time",
            None,
        ),
        Refusal::TooLarge => limit_status(
            Limit::AccountBudget,
            "this request needs more evaluations than the account's whole budget: split it",
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cds_proto::v1::{AllBuckets, BucketIds};

    #[test]
    fn batch_size_checks_allow_empty_and_reject_ragged_and_oversized() {
        assert_eq!(check_batch_size(&[], 10).expect("records only"), 0);
        assert_eq!(
            check_batch_size(&[0; 33], 10).expect_err("ragged").code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            check_batch_size(&[0; 64], 1).expect_err("oversized").code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(check_batch_size(&[0; 64], 2).expect("fits"), 2);
    }

    fn ids(v: Vec<u32>) -> Option<Buckets> {
        Some(Buckets::Ids(BucketIds {
            ids: v,
            known_digests: Bytes::new(),
        }))
    }

    #[test]
    fn bucket_selection_is_sorted_deduplicated_and_bounded() {
        let all = Some(Buckets::All(AllBuckets {}));
        assert_eq!(
            select_buckets(ids(vec![3, 1, 3]), 4, 8).expect("valid"),
            vec![(1, None), (3, None)]
        );
        assert!(select_buckets(ids(vec![4]), 4, 8).is_err());
        assert!(select_buckets(ids(vec![0, 1, 2]), 4, 2).is_err());
        assert!(select_buckets(None, 4, 8).is_err());
        assert_eq!(
            select_buckets(all, 2, 1).expect("valid"),
            vec![(0, None), (1, None)]
        );
        assert!(select_buckets(ids(vec![]), 4, 8).expect("valid").is_empty());
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
            }))
        };
        assert_eq!(
            select_buckets(with(vec![3, 1, 3], &packed), 4, 8).expect("valid"),
            vec![(1, None), (3, Some(a))]
        );
        for bad in [
            &packed[..32],
            &packed[..47],
            &[packed.clone(), packed.clone()].concat()[..],
        ] {
            let status = select_buckets(with(vec![3, 1, 3], bad), 4, 8).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
        }
    }
}
