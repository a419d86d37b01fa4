//! The three protocol variants of RFC 9497 §3.3: clients that blind and
//! finalize, servers that evaluate. Each protocol step returns the state the
//! caller keeps and the message it sends, as `{ state, message }`.
//!
//! One file per mode: [`OprfClient`]/[`OprfServer`] (base), [`VoprfClient`]/
//! [`VoprfServer`] (verifiable) and [`PoprfClient`]/[`PoprfServer`]
//! (partially oblivious). This file holds what they share: the output,
//! hashing inputs to the group, blinding, batch unblinding and the
//! `Finalize` hash.

use curve25519_dalek::traits::IsIdentity;
use curve25519_dalek::{RistrettoPoint, Scalar};

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};
use crate::group::{BlindedElement, EvaluatedElement, Proof};
use crate::hash::{hash_to_group, sha512};
use crate::suite::{MAX_INPUT_LEN, Mode, OUTPUT_LEN, len2};

mod base;
mod partial;
mod verifiable;

pub use base::{OprfClient, OprfServer};
pub use partial::{PoprfClient, PoprfServer};
pub use verifiable::{VoprfClient, VoprfServer};

/// The PRF output for one input: 64 bytes that only someone who holds the
/// input and talked to the server (or holds the key) can compute.
///
/// Treat it as a secret: it opens the input's record. Wiped on drop,
/// compared in constant time, redacted in `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Output(pub(crate) [u8; OUTPUT_LEN]);

impl Output {
    /// The 64 output bytes.
    pub fn as_bytes(&self) -> &[u8; OUTPUT_LEN] {
        &self.0
    }

    /// Rebuild an output from bytes kept earlier (for example a client cache).
    pub fn from_bytes(bytes: [u8; OUTPUT_LEN]) -> Self {
        Self(bytes)
    }
}

crate::secret::secret_traits!(Output);

/// What a blinding step returns: the `state` the client keeps until the
/// response arrives, and the `message` it sends to the server.
#[derive(Debug)]
pub struct BlindResult<S> {
    /// Client state to keep (holds the secret blind).
    pub state: S,
    /// The blinded element to send.
    pub message: BlindedElement,
}

/// What a verifiable batch evaluation returns: one evaluated element per
/// blinded element, in order, and one proof covering all of them.
#[derive(Debug, Clone)]
pub struct BatchEvaluation {
    /// The evaluated elements, in request order.
    pub messages: Vec<EvaluatedElement>,
    /// The batched DLEQ proof.
    pub proof: Proof,
}

fn check_input(input: &[u8]) -> Result<()> {
    if input.len() > MAX_INPUT_LEN {
        return Err(Error::InputTooLong { max: MAX_INPUT_LEN });
    }
    Ok(())
}

/// RFC 9497 `HashToGroup(input)` of `mode`, encoded: the point a client
/// blinds. Public for benchmarks and interoperability tests.
pub fn hash_to_group_encoded(mode: Mode, input: &[u8]) -> Result<[u8; 32]> {
    Ok(input_element(mode, input)?.compress().to_bytes())
}

/// `HashToGroup(input)`, rejecting the identity (`InvalidInputError`).
fn input_element(mode: Mode, input: &[u8]) -> Result<RistrettoPoint> {
    check_input(input)?;
    let p = hash_to_group(&[input], &mode.context_string());
    if p.is_identity() {
        return Err(Error::InvalidInput);
    }
    Ok(p)
}

/// [`input_element`] of every input, or the first error.
fn input_elements(mode: Mode, inputs: &[&[u8]]) -> Result<Vec<RistrettoPoint>> {
    inputs
        .iter()
        .map(|input| input_element(mode, input))
        .collect()
}

/// `compress(s[i] · P[i])` for every `i`, as `(s[i]/2) · P[i]` doubled
/// inside one batched compression: one shared field inversion instead of
/// one per point. Returns the products too.
fn mul_compress_batch(
    pairs: impl ExactSizeIterator<Item = (Scalar, RistrettoPoint)>,
) -> Vec<(RistrettoPoint, [u8; 32])> {
    let half = Scalar::from(2u8).invert();
    let mut halves: Vec<RistrettoPoint> = pairs
        .map(|(mut s, p)| {
            let mut h = s * half;
            let product = h * p;
            s.zeroize();
            h.zeroize();
            product
        })
        .collect();
    let out = RistrettoPoint::double_and_compress_batch(&halves)
        .into_iter()
        .zip(&halves)
        .map(|(c, h)| (h + h, c.to_bytes()))
        .collect();
    // Half an unblinded element is as good as the element: wipe them.
    halves.zeroize();
    out
}

/// The `Finalize` hash: `Hash(len || input [|| len || info] || len || element || "Finalize")`.
fn finalize_hash(input: &[u8], info: Option<&[u8]>, unblinded: &[u8; 32]) -> Output {
    let out = match info {
        None => sha512(&[
            &len2(input),
            input,
            &len2(unblinded),
            unblinded,
            b"Finalize",
        ]),
        Some(info) => sha512(&[
            &len2(input),
            input,
            &len2(info),
            info,
            &len2(unblinded),
            unblinded,
            b"Finalize",
        ]),
    };
    Output(out)
}

/// The secret blind of one input, wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct Blind(Scalar);

fn blind_input(mode: Mode, input: &[u8], blind: Scalar) -> Result<(Blind, BlindedElement)> {
    let p = input_element(mode, input)?;
    Ok((Blind(blind), BlindedElement::from_point(blind * p)))
}

fn check_lengths(inputs: usize, states: usize, evaluated: usize) -> Result<()> {
    if inputs != states || states != evaluated {
        return Err(Error::Batch(
            "inputs, client states and evaluated elements must have the same length",
        ));
    }
    Ok(())
}

/// Unblind `blind^-1 * evaluated` for a batch and compress, with one
/// shared scalar inversion and one shared field inversion.
fn unblind_batch<'a>(
    blinds: impl Iterator<Item = &'a Blind>,
    evaluated: &[EvaluatedElement],
) -> Vec<[u8; 32]> {
    let mut inverses: Vec<Scalar> = blinds.map(|b| b.0).collect();
    // Blinds are nonzero by construction, so batch inversion is defined.
    Scalar::invert_batch_alloc(&mut inverses);
    let out = mul_compress_batch(
        inverses
            .iter()
            .zip(evaluated)
            .map(|(inv, z)| (*inv, z.point)),
    )
    .into_iter()
    .map(|(_, bytes)| bytes)
    .collect();
    inverses.zeroize();
    out
}
