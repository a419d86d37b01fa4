//! One Discover round trip without any I/O: build the request, then check
//! and unblind the response. `prepare` consumes nothing but returns
//! `{ state, message }`; the state is consumed by [`PendingBatch::finish`],
//! so a response can be processed at most once.

use std::collections::HashMap;

use bytes::Bytes;
use cds_core::{
    BUCKET_DIGEST_LEN, BucketBits, BucketDigest, E164, EvaluatedElement, Output, Proof, PublicKey,
    VoprfClient,
};
use cds_proto::v1::BucketIds;
use cds_proto::v1::discover_request::Buckets;
/// The messages of one round trip, as generated from `proto/cds/v1`.
pub use cds_proto::v1::{DiscoverRequest, DiscoverResponse};
use cds_proto::wire;
use rand::CryptoRng;

use crate::error::ClientError;

/// What the client knows about the server, from `GetConfig`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerParams {
    /// The key epoch.
    pub epoch: u64,
    /// The epoch's public key (fetched, or pinned by the app).
    pub public_key: PublicKey,
    /// The bucket bits of the server's table.
    pub bucket_bits: BucketBits,
    /// The most elements per request.
    pub max_elements_per_request: usize,
    /// How the server places records into buckets
    /// ([`wire::BUCKET_SCHEME_TAG`] for this version).
    pub bucket_scheme: u32,
}

/// Which records a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketSelection {
    /// Every bucket.
    All,
    /// These buckets only (possibly none).
    Ids(Vec<u32>),
}

/// The result of [`prepare`]: the state to keep and the message to send.
#[derive(Debug)]
pub struct PreparedBatch {
    /// Keep this until the response arrives.
    pub state: PendingBatch,
    /// Send this to the server.
    pub message: DiscoverRequest,
}

/// The client's half of one Discover call in flight.
#[derive(Debug)]
pub struct PendingBatch {
    numbers: Vec<E164>,
    states: Vec<VoprfClient>,
    epoch: u64,
    public_key: PublicKey,
    selection: BucketSelection,
    bucket_count: u32,
    /// The held records of requested buckets whose digest was sent.
    held: HashMap<u32, Bytes>,
}

/// What one verified response yields.
#[derive(Debug)]
pub struct BatchResult {
    /// The PRF output of each number of the batch.
    pub outputs: Vec<(E164, Output)>,
    /// Packed records by bucket: every requested bucket, with the held
    /// copy for those the server reported unchanged.
    pub records: Vec<(u32, Bytes)>,
    /// How many buckets the server reported unchanged.
    pub unchanged: usize,
}

/// Blind `numbers` and build the request for them.
pub fn prepare<R: CryptoRng + ?Sized>(
    numbers: Vec<E164>,
    params: &ServerParams,
    selection: BucketSelection,
    rng: &mut R,
) -> Result<PreparedBatch, ClientError> {
    prepare_revalidating(numbers, params, selection, &HashMap::new(), rng)
}

/// [`prepare`], also sending the digest of each requested bucket found in
/// `held` (records received earlier under the same epoch): the server
/// leaves out those still current, and [`PendingBatch::finish`] returns the
/// held copy for them. Only [`BucketSelection::Ids`] can revalidate, and
/// only when the request with its digests stays within the size every
/// cds v1 server accepts ([`wire::fits_every_server`]); otherwise no digest is
/// sent and every bucket comes with its records.
pub fn prepare_revalidating<R: CryptoRng + ?Sized>(
    numbers: Vec<E164>,
    params: &ServerParams,
    selection: BucketSelection,
    held: &HashMap<u32, Bytes>,
    rng: &mut R,
) -> Result<PreparedBatch, ClientError> {
    if numbers.len() > params.max_elements_per_request {
        return Err(ClientError::InvalidInput(
            "more numbers than the server's max_elements_per_request: split the batch",
        ));
    }
    let inputs: Vec<&[u8]> = numbers.iter().map(E164::as_bytes).collect();
    // An E.164 number is short and hashes to a non-identity point except
    // with negligible probability. Additive blinding: the same messages and
    // outputs as RFC 9497 blinding for less work (see its documentation).
    let blinded = VoprfClient::blind_batch_additive(&inputs, rng)
        .map_err(|_| ClientError::InvalidInput("a number cannot be blinded"))?;
    let mut packed = Vec::with_capacity(numbers.len() * cds_core::ELEMENT_LEN);
    let mut states = Vec::with_capacity(numbers.len());
    for b in blinded {
        packed.extend_from_slice(b.message.as_bytes());
        states.push(b.state);
    }
    let mut held_requested = HashMap::new();
    let buckets = match &selection {
        BucketSelection::All => Buckets::All(Default::default()),
        BucketSelection::Ids(ids) => {
            let mut digests = Vec::new();
            let revalidate = ids.iter().any(|id| held.contains_key(id))
                && wire::fits_every_server(
                    numbers.len(),
                    ids.len(),
                    params.max_elements_per_request,
                );
            if revalidate {
                digests.reserve(ids.len() * BUCKET_DIGEST_LEN);
                for id in ids {
                    match held.get(id) {
                        Some(records) => {
                            digests.extend_from_slice(BucketDigest::of(records).as_bytes());
                            held_requested.insert(*id, records.clone());
                        }
                        None => digests.extend_from_slice(&[0; BUCKET_DIGEST_LEN]),
                    }
                }
            }
            Buckets::Ids(BucketIds {
                ids: ids.clone(),
                known_digests: digests.into(),
                scheme: wire::BUCKET_SCHEME_TAG,
            })
        }
    };
    Ok(PreparedBatch {
        message: DiscoverRequest {
            epoch: params.epoch,
            blinded_elements: packed.into(),
            buckets: Some(buckets),
            record_format: wire::RECORD_FORMAT,
        },
        state: PendingBatch {
            numbers,
            states,
            epoch: params.epoch,
            public_key: params.public_key,
            selection,
            bucket_count: params.bucket_bits.count(),
            held: held_requested,
        },
    })
}

impl PendingBatch {
    /// Check the response, verify the proof against the trusted public key,
    /// and unblind. Nothing is returned unless all of it holds.
    pub fn finish(self, response: DiscoverResponse) -> Result<BatchResult, ClientError> {
        if response.epoch != self.epoch {
            return Err(ClientError::MalformedResponse(
                "the response is for another key epoch",
            ));
        }
        let evaluated =
            EvaluatedElement::decode_packed(&response.evaluated_elements).map_err(|_| {
                ClientError::MalformedResponse(
                    "evaluated elements are not canonical ristretto255 encodings",
                )
            })?;
        if evaluated.len() != self.numbers.len() {
            return Err(ClientError::MalformedResponse(
                "the number of evaluated elements differs from the request",
            ));
        }
        let outputs = if self.numbers.is_empty() {
            // A records-only request: nothing was evaluated, nothing to prove.
            if !response.proof.is_empty() {
                return Err(ClientError::MalformedResponse(
                    "a proof came without evaluations",
                ));
            }
            Vec::new()
        } else {
            let proof = Proof::from_slice(&response.proof).map_err(|_| {
                ClientError::MalformedResponse("the proof is not two canonical scalars")
            })?;
            let inputs: Vec<&[u8]> = self.numbers.iter().map(E164::as_bytes).collect();
            VoprfClient::batch_finalize(&inputs, &self.states, &evaluated, &proof, &self.public_key)
                .map_err(|e| match e {
                    cds_core::Error::ProofVerification => ClientError::ProofVerification,
                    _ => ClientError::MalformedResponse("the response does not match the request"),
                })?
        };

        // Exactly the requested buckets, each once, in ascending order: a
        // missing bucket would silently turn registered contacts into
        // "not registered".
        let expected: Vec<u32> = match &self.selection {
            BucketSelection::All => (0..self.bucket_count).collect(),
            BucketSelection::Ids(ids) => {
                let mut ids = ids.clone();
                ids.sort_unstable();
                ids.dedup();
                ids
            }
        };
        let exact = response.buckets.len() == expected.len()
            && response
                .buckets
                .iter()
                .zip(&expected)
                .all(|(b, &want)| b.bucket == want);
        if !exact {
            return Err(ClientError::MalformedResponse(
                "the response does not hold exactly the requested buckets",
            ));
        }
        let mut unchanged = 0;
        let mut records = Vec::with_capacity(response.buckets.len());
        for b in response.buckets {
            if !b.unchanged {
                records.push((b.bucket, b.records));
                continue;
            }
            // Only a bucket whose digest was sent can be unchanged.
            let held = self.held.get(&b.bucket).filter(|_| b.records.is_empty());
            let Some(held) = held else {
                return Err(ClientError::MalformedResponse(
                    "the response calls a bucket unchanged that the client does not hold",
                ));
            };
            records.push((b.bucket, held.clone()));
            unchanged += 1;
        }
        Ok(BatchResult {
            outputs: self.numbers.into_iter().zip(outputs).collect(),
            records,
            unchanged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{sealed_records, server_and_params};

    use cds_server::ServingEpoch;
    use cds_server::discovery::{DiscoverLimits, answer};

    fn setup() -> (ServingEpoch, ServerParams) {
        server_and_params()
    }

    /// The server's answer, from its request core (every bucket is empty).
    fn respond(server: &ServingEpoch, req: &DiscoverRequest) -> DiscoverResponse {
        let limits = DiscoverLimits {
            max_elements: 10,
            max_response_bytes: 1 << 20,
        };
        answer(server, req.clone(), &limits, &mut rand::rng()).expect("a valid request")
    }

    fn held(entries: &[(u32, Bytes)]) -> HashMap<u32, Bytes> {
        entries.iter().cloned().collect()
    }

    #[test]
    fn a_held_bucket_reported_unchanged_yields_the_held_copy() {
        let (server, params) = setup();
        let held = held(&[(1, Bytes::new()), (2, sealed_records())]);
        let p = prepare_revalidating(
            numbers(),
            &params,
            BucketSelection::Ids(vec![2, 1, 3]),
            &held,
            &mut rand::rng(),
        )
        .expect("prepares");
        let Some(Buckets::Ids(ids)) = &p.message.buckets else {
            panic!("ids requested");
        };
        assert_eq!(
            ids.known_digests.len(),
            48,
            "one digest per id, zero for none"
        );
        assert_eq!(&ids.known_digests[32..], &[0; 16]);
        let res = p
            .state
            .finish(respond(&server, &p.message))
            .expect("verifies");
        // Bucket 1 is still empty: unchanged. Bucket 2 changed (the server's
        // copy is empty now): its new records came.
        assert_eq!(res.unchanged, 1);
        assert_eq!(
            res.records,
            vec![(1, Bytes::new()), (2, Bytes::new()), (3, Bytes::new())]
        );
    }

    #[test]
    fn an_unchanged_bucket_yields_exactly_the_held_records() {
        let (server, params) = setup();
        let kept = sealed_records();
        let p = prepare_revalidating(
            numbers(),
            &params,
            BucketSelection::Ids(vec![2]),
            &held(&[(2, kept.clone())]),
            &mut rand::rng(),
        )
        .expect("prepares");
        // A server still holding `kept` in bucket 2 answers `unchanged`.
        let mut resp = respond(&server, &p.message);
        resp.buckets[0].unchanged = true;
        let res = p.state.finish(resp).expect("verifies");
        assert_eq!(res.records, vec![(2, kept)]);
        assert_eq!(res.unchanged, 1);
    }

    #[test]
    fn digests_are_sent_only_when_the_request_fits_every_server() {
        let (_, mut params) = setup();
        params.max_elements_per_request = 4096;
        let ids: Vec<u32> = (0..2000).collect();
        let held: HashMap<u32, Bytes> = ids.iter().map(|&i| (i, Bytes::new())).collect();
        let digests_sent = |n: usize, ids: Vec<u32>| {
            let numbers: Vec<E164> = (0..n as u64)
                .map(|i| E164::from_u64(4915120000000 + i).expect("valid"))
                .collect();
            let p = prepare_revalidating(
                numbers,
                &params,
                BucketSelection::Ids(ids),
                &held,
                &mut rand::rng(),
            )
            .expect("prepares");
            let Some(Buckets::Ids(b)) = p.message.buckets else {
                panic!("ids requested");
            };
            !b.known_digests.is_empty()
        };
        // A re-sync (no elements) of 2,000 buckets fits; so does a full
        // batch with a few buckets; a full batch with 2,000 does not.
        assert!(digests_sent(0, ids.clone()));
        assert!(digests_sent(4096, ids[..100].to_vec()));
        assert!(!digests_sent(4096, ids.clone()));
    }

    #[test]
    fn unchanged_for_a_bucket_not_held_or_with_records_is_refused() {
        let (server, params) = setup();
        let not_held = finish_tampered(&server, &params, BucketSelection::Ids(vec![1]), |r| {
            r.buckets[0].unchanged = true;
        });
        assert!(matches!(not_held, Err(ClientError::MalformedResponse(_))));

        let p = prepare_revalidating(
            numbers(),
            &params,
            BucketSelection::Ids(vec![1]),
            &held(&[(1, Bytes::new())]),
            &mut rand::rng(),
        )
        .expect("prepares");
        let mut resp = respond(&server, &p.message);
        assert!(resp.buckets[0].unchanged);
        resp.buckets[0].records = sealed_records();
        assert!(matches!(
            p.state.finish(resp),
            Err(ClientError::MalformedResponse(_))
        ));
    }

    #[test]
    fn without_held_buckets_no_digests_are_sent() {
        let (_, params) = setup();
        let p = prepare_revalidating(
            numbers(),
            &params,
            BucketSelection::Ids(vec![1, 2]),
            &held(&[(3, Bytes::new())]),
            &mut rand::rng(),
        )
        .expect("prepares");
        let Some(Buckets::Ids(ids)) = &p.message.buckets else {
            panic!("ids requested");
        };
        assert!(ids.known_digests.is_empty());
    }

    fn numbers() -> Vec<E164> {
        vec![
            E164::parse("+12015550123").expect("valid"),
            E164::parse("+4915123456789").expect("valid"),
        ]
    }

    /// Prepare a request for [`numbers`] with `selection`, let `server`
    /// answer it honestly, apply `tamper` to the answer, and finish.
    fn finish_tampered(
        server: &ServingEpoch,
        params: &ServerParams,
        selection: BucketSelection,
        tamper: impl FnOnce(&mut DiscoverResponse),
    ) -> Result<BatchResult, ClientError> {
        let p = prepare(numbers(), params, selection, &mut rand::rng()).expect("prepares");
        let mut resp = respond(server, &p.message);
        tamper(&mut resp);
        p.state.finish(resp)
    }

    #[test]
    fn honest_response_yields_the_server_outputs() {
        let (server, params) = setup();
        let p =
            prepare(numbers(), &params, BucketSelection::All, &mut rand::rng()).expect("prepares");
        let res = p
            .state
            .finish(respond(&server, &p.message))
            .expect("verifies");
        for (n, out) in res.outputs {
            assert_eq!(
                out,
                server.oprf().evaluate(n.as_bytes()).expect("evaluates")
            );
        }
    }

    #[test]
    fn response_under_another_key_is_refused() {
        let (_, params) = setup();
        let (other, _) = setup();
        let p =
            prepare(numbers(), &params, BucketSelection::All, &mut rand::rng()).expect("prepares");
        let err = p
            .state
            .finish(respond(&other, &p.message))
            .expect_err("wrong key");
        assert!(matches!(err, ClientError::ProofVerification));
    }

    #[test]
    fn truncated_or_unrequested_responses_are_refused() {
        let (server, params) = setup();
        let extra_bucket = finish_tampered(&server, &params, BucketSelection::Ids(vec![1]), |r| {
            r.buckets.push(cds_proto::v1::BucketRecords {
                bucket: 2,
                records: Bytes::new(),
                unchanged: false,
            })
        });
        assert!(matches!(
            extra_bucket,
            Err(ClientError::MalformedResponse(_))
        ));

        let truncated = finish_tampered(&server, &params, BucketSelection::All, |r| {
            r.evaluated_elements = r.evaluated_elements.slice(..32)
        });
        assert!(matches!(truncated, Err(ClientError::MalformedResponse(_))));
    }

    #[test]
    fn a_response_missing_or_reordering_requested_buckets_is_refused() {
        let (server, params) = setup();
        let missing = finish_tampered(&server, &params, BucketSelection::All, |r| {
            r.buckets.remove(2);
        });
        assert!(matches!(missing, Err(ClientError::MalformedResponse(_))));

        let reordered = finish_tampered(&server, &params, BucketSelection::Ids(vec![3, 1]), |r| {
            r.buckets.reverse()
        });
        assert!(matches!(reordered, Err(ClientError::MalformedResponse(_))));

        let honest = finish_tampered(&server, &params, BucketSelection::Ids(vec![3, 1]), |_| {});
        assert!(honest.is_ok(), "ascending, complete answers are accepted");
    }
}
