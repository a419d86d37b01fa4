//! The partially-oblivious mode of RFC 9497 (`modePOPRF`): a public `info`
//! string, known to both sides, is bound into the output and into the key
//! the server's proof is checked against.

use curve25519_dalek::traits::IsIdentity;
use curve25519_dalek::{RistrettoPoint, Scalar};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{
    BatchEvaluation, Blind, BlindResult, Output, blind_input, check_input, check_lengths,
    finalize_hash, input_element, unblind_batch,
};
use crate::dleq::{Elements, Nonce, generate_proof, random_nonce, verify_proof_vartime};
use crate::error::{Error, Result};
use crate::group::{BlindedElement, EvaluatedElement, Proof, PublicKey};
use crate::hash::hash_to_scalar_default;
use crate::key::{KeyPair, random_nonzero_scalar};
use crate::suite::{Mode, len2};

fn framed_info_scalar(info: &[u8]) -> Result<Scalar> {
    check_input(info)?;
    Ok(hash_to_scalar_default(
        &[b"Info", &len2(info), info],
        &Mode::Poprf.context_string(),
    ))
}

/// Client of the partially-oblivious mode: the public `info` is bound into
/// the output and into the key the proof is checked against.
#[derive(Clone, ZeroizeOnDrop)]
pub struct PoprfClient {
    blind: Blind,
    #[zeroize(skip)]
    blinded: BlindedElement,
    #[zeroize(skip)]
    tweaked_key: PublicKey,
}

impl PoprfClient {
    /// Blind `input` for evaluation under `info` by the server with `public_key`.
    pub fn blind<R: CryptoRng + ?Sized>(
        input: &[u8],
        info: &[u8],
        public_key: &PublicKey,
        rng: &mut R,
    ) -> Result<BlindResult<Self>> {
        Self::blind_with(input, info, public_key, random_nonzero_scalar(rng))
    }

    pub(crate) fn blind_with(
        input: &[u8],
        info: &[u8],
        public_key: &PublicKey,
        blind: Scalar,
    ) -> Result<BlindResult<Self>> {
        let m = framed_info_scalar(info)?;
        let tweaked = RistrettoPoint::mul_base(&m) + public_key.point;
        if tweaked.is_identity() {
            return Err(Error::InvalidInput);
        }
        let (blind, message) = blind_input(Mode::Poprf, input, blind)?;
        Ok(BlindResult {
            state: Self {
                blind,
                blinded: message,
                tweaked_key: PublicKey::from_point(tweaked),
            },
            message,
        })
    }

    /// Verify the batch proof, then unblind and hash every evaluated element.
    pub fn batch_finalize(
        inputs: &[&[u8]],
        info: &[u8],
        states: &[Self],
        evaluated: &[EvaluatedElement],
        proof: &Proof,
    ) -> Result<Vec<Output>> {
        check_lengths(inputs.len(), states.len(), evaluated.len())?;
        let first = states
            .first()
            .ok_or(Error::Batch("a proof needs at least one element"))?;
        if states.iter().any(|s| s.tweaked_key != first.tweaked_key) {
            return Err(Error::Batch(
                "all states of a batch must share one public key and info",
            ));
        }
        check_input(info)?;
        // The roles of C and D are swapped in POPRF: blinded = t * evaluated.
        verify_proof_vartime(
            &first.tweaked_key,
            &Elements::collect(evaluated.iter().map(|e| (&e.point, &e.bytes))),
            &Elements::collect(states.iter().map(|s| (&s.blinded.point, &s.blinded.bytes))),
            proof,
            &Mode::Poprf.context_string(),
        )?;
        for input in inputs {
            check_input(input)?;
        }
        let unblinded = unblind_batch(states.iter().map(|s| &s.blind), evaluated);
        Ok(inputs
            .iter()
            .zip(&unblinded)
            .map(|(input, n)| finalize_hash(input, Some(info), n))
            .collect())
    }
}

impl core::fmt::Debug for PoprfClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PoprfClient(<redacted>)")
    }
}

/// Server of the partially-oblivious mode.
#[derive(Clone, Debug)]
pub struct PoprfServer {
    key: KeyPair,
}

impl PoprfServer {
    /// A server holding `key`.
    pub fn new(key: KeyPair) -> Self {
        Self { key }
    }

    /// The public key (before tweaking with `info`).
    pub fn public_key(&self) -> &PublicKey {
        self.key.public()
    }

    /// `t = skS + HashToScalar(framedInfo)`, which must be invertible.
    fn tweak(&self, info: &[u8]) -> Result<Scalar> {
        let t = self.key.secret().0 + framed_info_scalar(info)?;
        if t == Scalar::ZERO {
            return Err(Error::Inverse);
        }
        Ok(t)
    }

    /// `BlindEvaluateBatch` under `info`.
    pub fn blind_evaluate_batch<R: CryptoRng + ?Sized>(
        &self,
        blinded: &[BlindedElement],
        info: &[u8],
        rng: &mut R,
    ) -> Result<BatchEvaluation> {
        self.blind_evaluate_batch_with(blinded, info, &random_nonce(rng))
    }

    pub(crate) fn blind_evaluate_batch_with(
        &self,
        blinded: &[BlindedElement],
        info: &[u8],
        r: &Nonce,
    ) -> Result<BatchEvaluation> {
        let mut t = self.tweak(info)?;
        let t_inv = t.invert();
        let messages: Vec<_> = blinded
            .iter()
            .map(|b| EvaluatedElement::from_point(t_inv * b.point))
            .collect();
        let tweaked_key = PublicKey::from_point(RistrettoPoint::mul_base(&t));
        let d_bytes: Vec<_> = blinded.iter().map(|b| b.bytes).collect();
        let proof = generate_proof(
            &t,
            &tweaked_key.bytes,
            &Elements::collect(messages.iter().map(|e| (&e.point, &e.bytes))),
            &d_bytes,
            r,
            &Mode::Poprf.context_string(),
        );
        t.zeroize();
        Ok(BatchEvaluation {
            messages,
            proof: proof?,
        })
    }

    /// `Evaluate` under `info`, computed directly with the key.
    pub fn evaluate(&self, input: &[u8], info: &[u8]) -> Result<Output> {
        let mut t = self.tweak(info)?;
        let p = input_element(Mode::Poprf, input)?;
        let out = finalize_hash(input, Some(info), &(t.invert() * p).compress().to_bytes());
        t.zeroize();
        Ok(out)
    }
}
