//! BLS12-381 encodings and hashing for contacts-only mode: canonical
//! compressed points (subgroup-checked, never the identity), hash-to-curve,
//! scalars from uniform bytes, and the target group's byte encoding.

use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective, Gt, Scalar};
use group::Group;
use group::prime::PrimeCurveAffine;

use super::{H1_DST, H2_DST};
use crate::E164;
use crate::error::{Error, Result};
use crate::hash::sha512;

/// A compressed G1 point.
pub(crate) const G1_LEN: usize = 48;
/// A compressed G2 point.
pub(crate) const G2_LEN: usize = 96;

/// `H1(N)`: the number's canonical E.164 text hashed into G1.
pub(crate) fn h1(number: &E164) -> G1Projective {
    G1Projective::hash_to_curve(number.as_bytes(), H1_DST, &[])
}

/// `H2(N)`: the number's canonical E.164 text hashed into G2.
pub(crate) fn h2(number: &E164) -> G2Projective {
    G2Projective::hash_to_curve(number.as_bytes(), H2_DST, &[])
}

/// Decode a compressed G1 point: canonical, on the curve, in the prime-order
/// subgroup, and not the identity. The encoding must round-trip.
pub(crate) fn decode_g1(bytes: &[u8; G1_LEN]) -> Result<G1Affine> {
    let p: G1Affine =
        Option::from(G1Affine::from_compressed(bytes)).ok_or(Error::InvalidElement)?;
    if bool::from(p.is_identity()) {
        return Err(Error::IdentityElement);
    }
    if &p.to_compressed() != bytes {
        return Err(Error::InvalidElement);
    }
    Ok(p)
}

/// Decode a compressed G2 point (as [`decode_g1`]).
pub(crate) fn decode_g2(bytes: &[u8; G2_LEN]) -> Result<G2Affine> {
    let p: G2Affine =
        Option::from(G2Affine::from_compressed(bytes)).ok_or(Error::InvalidElement)?;
    if bool::from(p.is_identity()) {
        return Err(Error::IdentityElement);
    }
    if &p.to_compressed() != bytes {
        return Err(Error::InvalidElement);
    }
    Ok(p)
}

/// A scalar from 48 uniform bytes (three 128-bit limbs, each below the
/// group order, combined mod r; bias below 2^-128, as RFC 9380 `hash_to_field`
/// with L = 48). `None` if it is zero.
pub(crate) fn scalar_from_uniform(bytes: &[u8; 48]) -> Option<Scalar> {
    let limb = |i: usize| {
        let mut le = [0u8; 32];
        // Big-endian limbs of 16 bytes, stored little-endian.
        for (j, b) in bytes[16 * i..16 * (i + 1)].iter().rev().enumerate() {
            le[j] = *b;
        }
        let s: Option<Scalar> = Scalar::from_bytes_le(&le).into();
        s.expect("a 128-bit value is below the group order")
    };
    let two_128 = {
        let mut le = [0u8; 32];
        le[16] = 1;
        Option::<Scalar>::from(Scalar::from_bytes_le(&le)).expect("2^128 is below the group order")
    };
    let s = (limb(0) * two_128 + limb(1)) * two_128 + limb(2);
    (!bool::from(ff::Field::is_zero(&s))).then_some(s)
}

/// A scalar hashed from `parts` under `domain` (SHA-512, first 48 bytes).
/// Zero (probability 2^-255) maps to one.
pub(crate) fn hash_to_scalar(domain: &[u8], parts: &[&[u8]]) -> Scalar {
    let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
    all.push(domain);
    all.extend_from_slice(parts);
    let h = sha512(&all);
    let mut wide = [0u8; 48];
    wide.copy_from_slice(&h[..48]);
    scalar_from_uniform(&wide).unwrap_or(Scalar::from(1u64))
}

/// The 288-byte encoding of a non-identity target-group element: its
/// torus compression (Naehrig–Barreto–Schwabe, "On compressible pairings
/// and their computation" §4.1) as blstrs writes it, six Fp coefficients
/// of 48 bytes each, little-endian. `None` for the identity.
pub(crate) fn gt_bytes(gt: &Gt) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    if bool::from(gt.is_identity()) {
        return None;
    }
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(288));
    blstrs::Compress::write_compressed(*gt, &mut *out).expect("writing into a Vec cannot fail");
    Some(out)
}
