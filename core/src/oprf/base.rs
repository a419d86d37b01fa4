//! The base mode of RFC 9497 (`modeOPRF`): the client learns the PRF
//! output, the server learns nothing, and nobody proves anything.

use curve25519_dalek::Scalar;
use rand_core::CryptoRng;
use zeroize::ZeroizeOnDrop;

use super::{Blind, BlindResult, Output, blind_input, check_input, finalize_hash, input_element};
use crate::error::Result;
use crate::group::{BlindedElement, EvaluatedElement};
use crate::key::{SecretKey, random_nonzero_scalar};
use crate::suite::Mode;

/// Client of the base OPRF mode (no proof).
#[derive(Clone, ZeroizeOnDrop)]
pub struct OprfClient {
    blind: Blind,
}

impl OprfClient {
    /// Blind `input` with a fresh random blind.
    pub fn blind<R: CryptoRng + ?Sized>(input: &[u8], rng: &mut R) -> Result<BlindResult<Self>> {
        Self::blind_with(input, random_nonzero_scalar(rng))
    }

    pub(crate) fn blind_with(input: &[u8], blind: Scalar) -> Result<BlindResult<Self>> {
        let (blind, message) = blind_input(Mode::Oprf, input, blind)?;
        Ok(BlindResult {
            state: Self { blind },
            message,
        })
    }

    /// Unblind the server's answer and hash it into the PRF output.
    pub fn finalize(&self, input: &[u8], evaluated: &EvaluatedElement) -> Result<Output> {
        check_input(input)?;
        let n = self.blind.0.invert() * evaluated.point;
        Ok(finalize_hash(input, None, &n.compress().to_bytes()))
    }
}

impl core::fmt::Debug for OprfClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("OprfClient(<redacted>)")
    }
}

/// Server of the base OPRF mode.
#[derive(Clone, Debug)]
pub struct OprfServer {
    key: SecretKey,
}

impl OprfServer {
    /// A server holding `key`.
    pub fn new(key: SecretKey) -> Self {
        Self { key }
    }

    /// `BlindEvaluate`: `skS * blinded`.
    pub fn blind_evaluate(&self, blinded: &BlindedElement) -> EvaluatedElement {
        EvaluatedElement::from_point(self.key.0 * blinded.point)
    }

    /// `Evaluate`: the PRF output for `input`, computed directly with the key.
    pub fn evaluate(&self, input: &[u8]) -> Result<Output> {
        let p = input_element(Mode::Oprf, input)?;
        Ok(finalize_hash(
            input,
            None,
            &(self.key.0 * p).compress().to_bytes(),
        ))
    }
}
