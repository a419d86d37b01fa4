//! Batched discrete-log-equality proofs (RFC 9497 §2.2): the server proves
//! that `D[i] = k * C[i]` for every `i` and `B = k * A`, without revealing `k`.

use curve25519_dalek::traits::VartimeMultiscalarMul;
use curve25519_dalek::{RistrettoPoint, Scalar};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::group::{Proof, PublicKey};
use crate::hash::{hash_to_scalar_default, sha512};
use crate::key::random_nonzero_scalar;
use crate::suite::{MAX_BATCH, len2};

/// The composite weights `d[i]` of `ComputeComposites`, derived from the
/// public transcript. `c` and `d` hold the serialized `C[i]` and `D[i]`.
fn composite_weights(b: &[u8; 32], c: &[[u8; 32]], d: &[[u8; 32]], context: &[u8]) -> Vec<Scalar> {
    // seedTranscript = I2OSP(len(Bm), 2) || Bm || I2OSP(len(seedDST), 2) || seedDST
    let seed_dst_len = ((b"Seed-".len() + context.len()) as u16).to_be_bytes();
    let seed = sha512(&[&len2(b), b, &seed_dst_len, b"Seed-", context]);

    c.iter()
        .zip(d)
        .enumerate()
        .map(|(i, (ci, di))| {
            let index = (i as u16).to_be_bytes();
            hash_to_scalar_default(
                &[
                    &len2(&seed),
                    &seed,
                    &index,
                    &len2(ci),
                    ci,
                    &len2(di),
                    di,
                    b"Composite",
                ],
                context,
            )
        })
        .collect()
}

/// `M = sum(d[i] * C[i])` in variable time (all inputs are public).
fn composite_m_vartime(weights: &[Scalar], c: &[RistrettoPoint]) -> RistrettoPoint {
    RistrettoPoint::vartime_multiscalar_mul(weights, c)
}

/// The Fiat-Shamir challenge over `(B, M, Z, t2, t3)`.
fn challenge(
    b: &[u8; 32],
    m: &RistrettoPoint,
    z: &RistrettoPoint,
    t2: &RistrettoPoint,
    t3: &RistrettoPoint,
    context: &[u8],
) -> Scalar {
    let a0 = m.compress().to_bytes();
    let a1 = z.compress().to_bytes();
    let a2 = t2.compress().to_bytes();
    let a3 = t3.compress().to_bytes();
    hash_to_scalar_default(
        &[
            &len2(b),
            b,
            &len2(&a0),
            &a0,
            &len2(&a1),
            &a1,
            &len2(&a2),
            &a2,
            &len2(&a3),
            &a3,
            b"Challenge",
        ],
        context,
    )
}

fn check_batch(c: usize, d: usize) -> Result<()> {
    if c == 0 {
        return Err(Error::Batch("a proof needs at least one element"));
    }
    if c != d {
        return Err(Error::Batch(
            "the number of evaluated elements differs from the number of blinded elements",
        ));
    }
    if c > MAX_BATCH {
        return Err(Error::Batch(
            "more than 65535 elements cannot share one proof",
        ));
    }
    Ok(())
}

/// One side of a DLEQ statement: points and their canonical encodings.
pub(crate) struct Elements {
    pub(crate) points: Vec<RistrettoPoint>,
    pub(crate) bytes: Vec<[u8; 32]>,
}

impl Elements {
    pub(crate) fn collect<'a>(
        items: impl Iterator<Item = (&'a RistrettoPoint, &'a [u8; 32])>,
    ) -> Self {
        let (points, bytes) = items.map(|(p, b)| (*p, *b)).unzip();
        Self { points, bytes }
    }
}

/// The prover's nonce `r` of one proof. It is as secret as the key: with
/// the proof it gives `k = (r - s) / c`. [`Zeroizing`] wipes it when it is
/// dropped, on every path (an error, a panic), and [`generate_proof`]
/// takes nothing else.
pub(crate) type Nonce = Zeroizing<Scalar>;

/// RFC 9497 `RandomScalar` for a proof nonce: uniform, nonzero, wiped on drop.
pub(crate) fn random_nonce<R: CryptoRng + ?Sized>(rng: &mut R) -> Nonce {
    Zeroizing::new(random_nonzero_scalar(rng))
}

/// `GenerateProof(k, G, B, C, D)` with the prover's nonce `r`, using
/// `ComputeCompositesFast` (`Z = k * M`).
pub(crate) fn generate_proof(
    k: &Scalar,
    b: &[u8; 32],
    c: &Elements,
    d_bytes: &[[u8; 32]],
    r: &Nonce,
    context: &[u8],
) -> Result<Proof> {
    check_batch(c.bytes.len(), d_bytes.len())?;
    let weights = composite_weights(b, &c.bytes, d_bytes, context);
    let m = composite_m_vartime(&weights, &c.points);
    let z = k * m;
    let t2 = RistrettoPoint::mul_base(r);
    let t3 = **r * m;
    let c = challenge(b, &m, &z, &t2, &t3, context);
    // `c * k` reveals the key as surely as `r` does: wiped as well.
    let ck = Zeroizing::new(c * k);
    let s = **r - *ck;
    Ok(Proof { c, s })
}

/// `VerifyProof(G, B, C, D, proof)`, in variable time: every input is public.
pub(crate) fn verify_proof_vartime(
    b: &PublicKey,
    c: &Elements,
    d: &Elements,
    proof: &Proof,
    context: &[u8],
) -> Result<()> {
    check_batch(c.bytes.len(), d.bytes.len())?;
    let weights = composite_weights(&b.bytes, &c.bytes, &d.bytes, context);
    let m = composite_m_vartime(&weights, &c.points);
    let z = composite_m_vartime(&weights, &d.points);
    let t2 = RistrettoPoint::vartime_double_scalar_mul_basepoint(&proof.c, &b.point, &proof.s);
    let t3 = RistrettoPoint::vartime_multiscalar_mul([&proof.s, &proof.c], [&m, &z]);
    let expected = challenge(&b.bytes, &m, &z, &t2, &t3, context);
    // Public values: a plain comparison leaks nothing secret.
    if expected == proof.c {
        Ok(())
    } else {
        Err(Error::ProofVerification)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles only for types that wipe themselves when dropped.
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>(_: &T) {}

    #[test]
    fn a_proof_nonce_is_random_nonzero_and_wiped_on_drop() {
        let mut rng = rand::rng();
        let (a, b) = (random_nonce(&mut rng), random_nonce(&mut rng));
        wiped_on_drop(&a);
        assert_ne!(*a, Scalar::ZERO);
        assert_ne!(*a, *b, "a fresh nonce for every proof");
    }
}
