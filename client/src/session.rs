//! One Discover round trip without any I/O: build the request, then check
//! and unblind the response. `prepare` consumes nothing but returns
//! `{ state, message }`; the state is consumed by [`PendingBatch::finish`],
//! so a response can be processed at most once.

use bytes::Bytes;
use cds_core::{BucketBits, E164, EvaluatedElement, Output, Proof, PublicKey, VoprfClient};
use cds_proto::v1::discover_request::Buckets;
use cds_proto::v1::{BucketIds, DiscoverRequest, DiscoverResponse};
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
}

/// What one verified response yields.
#[derive(Debug)]
pub struct BatchResult {
    /// The PRF output of each number of the batch.
    pub outputs: Vec<(E164, Output)>,
    /// Packed records by bucket.
    pub records: Vec<(u32, Bytes)>,
}

/// Blind `numbers` and build the request for them.
pub fn prepare<R: CryptoRng + ?Sized>(
    numbers: Vec<E164>,
    params: &ServerParams,
    selection: BucketSelection,
    rng: &mut R,
) -> Result<PreparedBatch, ClientError> {
    if numbers.len() > params.max_elements_per_request {
        return Err(ClientError::InvalidConfig(
            "batch size outside the server's limits",
        ));
    }
    let inputs: Vec<&[u8]> = numbers.iter().map(E164::as_bytes).collect();
    // An E.164 number is short and hashes to a non-identity point except
    // with negligible probability. Additive blinding: the same messages and
    // outputs as RFC 9497 blinding for less work (see its documentation).
    let blinded = VoprfClient::blind_batch_additive(&inputs, rng)
        .map_err(|_| ClientError::InvalidConfig("input cannot be blinded"))?;
    let mut packed = Vec::with_capacity(numbers.len() * cds_core::ELEMENT_LEN);
    let mut states = Vec::with_capacity(numbers.len());
    for b in blinded {
        packed.extend_from_slice(b.message.as_bytes());
        states.push(b.state);
    }
    let buckets = match &selection {
        BucketSelection::All => Buckets::All(Default::default()),
        BucketSelection::Ids(ids) => Buckets::Ids(BucketIds { ids: ids.clone() }),
    };
    Ok(PreparedBatch {
        message: DiscoverRequest {
            epoch: params.epoch,
            blinded_elements: packed.into(),
            buckets: Some(buckets),
        },
        state: PendingBatch {
            numbers,
            states,
            epoch: params.epoch,
            public_key: params.public_key,
            selection,
            bucket_count: params.bucket_bits.count(),
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
        let records = response
            .buckets
            .into_iter()
            .map(|b| (b.bucket, b.records))
            .collect();
        Ok(BatchResult {
            outputs: self.numbers.into_iter().zip(outputs).collect(),
            records,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cds_core::{BlindedElement, KeyPair, VoprfServer};

    fn setup() -> (VoprfServer, ServerParams) {
        let server = VoprfServer::new(KeyPair::generate(&mut rand::rng()));
        let params = ServerParams {
            epoch: 7,
            public_key: *server.public_key(),
            bucket_bits: BucketBits::new(2).expect("valid"),
            max_elements_per_request: 10,
        };
        (server, params)
    }

    /// An honest server's answer, with every requested bucket empty.
    fn respond(server: &VoprfServer, req: &DiscoverRequest) -> DiscoverResponse {
        let blinded = BlindedElement::decode_packed(&req.blinded_elements).expect("canonical");
        let eval = server
            .blind_evaluate_batch(&blinded, &mut rand::rng())
            .expect("evaluates");
        let mut buckets = match &req.buckets {
            Some(Buckets::All(_)) => (0..4).collect(),
            Some(Buckets::Ids(ids)) => ids.ids.clone(),
            None => vec![],
        };
        buckets.sort_unstable();
        buckets.dedup();
        DiscoverResponse {
            epoch: req.epoch,
            evaluated_elements: EvaluatedElement::encode_packed(&eval.messages).into(),
            proof: eval.proof.to_bytes().to_vec().into(),
            buckets: buckets
                .into_iter()
                .map(|bucket| cds_proto::v1::BucketRecords {
                    bucket,
                    records: Bytes::new(),
                })
                .collect(),
        }
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
        server: &VoprfServer,
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
            assert_eq!(out, server.evaluate(n.as_bytes()).expect("evaluates"));
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
