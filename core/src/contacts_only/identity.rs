//! A holder's identity keys `s·H1(N)`, `s·H2(N)`, as the issuer gives them.

use blstrs::{G1Affine, G2Affine, pairing};
use group::Curve as _;
use group::prime::PrimeCurveAffine as _;
use zeroize::Zeroizing;

use super::IssuerPublicKey;
use super::points::{G1_LEN, G2_LEN, decode_g1, decode_g2, h1, h2};
use crate::E164;
use crate::error::{Error, Result};

const VERSION: u8 = 1;
/// Length of encoded identity keys:
/// `0x01 || epoch (BE64) || number digits (BE64) || s·H1(N) (48) || s·H2(N) (96)`.
pub const IDENTITY_KEYS_LEN_MAX: usize = 1 + 8 + 8 + G1_LEN + G2_LEN;

/// The identity keys of one number under one issuer epoch. Every value of
/// this type was either issued here or parsed and checked against the
/// issuer's public key (`e(d1, g2) = e(H1(N), P2)`, `e(g1, d2) = e(P1, H2(N))`).
///
/// Secret: whoever holds them acts as the number's holder. `Debug` is
/// redacted; the points are overwritten on drop (best effort, blstrs values
/// do not implement `Zeroize`).
pub struct IdentityKeys {
    epoch: u64,
    number: E164,
    pub(crate) d1: G1Affine,
    pub(crate) d2: G2Affine,
}

impl IdentityKeys {
    pub(crate) fn from_parts(epoch: u64, number: E164, d1: G1Affine, d2: G2Affine) -> Self {
        Self {
            epoch,
            number,
            d1,
            d2,
        }
    }

    /// Parse encoded keys and check them against `issuer`: the epoch must be
    /// the issuer's, both points canonical, in their subgroups, not the
    /// identity, and issued for the encoded number under that key.
    pub fn from_bytes(bytes: &[u8], issuer: &IssuerPublicKey) -> Result<Self> {
        if bytes.len() != IDENTITY_KEYS_LEN_MAX {
            return Err(Error::Length {
                what: "identity keys",
                expected: IDENTITY_KEYS_LEN_MAX,
                actual: bytes.len(),
            });
        }
        if bytes[0] != VERSION {
            return Err(Error::IdentityKeys("unknown version"));
        }
        let epoch = u64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
        if epoch != issuer.epoch() {
            return Err(Error::IdentityKeys(
                "issued under another issuer key epoch: ask the backend for new keys",
            ));
        }
        let digits = u64::from_be_bytes(bytes[9..17].try_into().expect("8 bytes"));
        let number = E164::from_u64(digits)?;
        let d1 = decode_g1(bytes[17..17 + G1_LEN].try_into().expect("48 bytes"))?;
        let d2 = decode_g2(bytes[17 + G1_LEN..].try_into().expect("96 bytes"))?;
        if pairing(&d1, &G2Affine::generator()) != pairing(&h1(&number).to_affine(), &issuer.p2)
            || pairing(&G1Affine::generator(), &d2) != pairing(&issuer.p1, &h2(&number).to_affine())
        {
            return Err(Error::IdentityKeys(
                "not issued for this number by this issuer",
            ));
        }
        Ok(Self::from_parts(epoch, number, d1, d2))
    }

    /// The encoding [`IdentityKeys::from_bytes`] reads. Secret.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(IDENTITY_KEYS_LEN_MAX));
        out.push(VERSION);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.number.to_u64().to_be_bytes());
        out.extend_from_slice(&self.d1.to_compressed());
        out.extend_from_slice(&self.d2.to_compressed());
        out
    }

    /// The number these keys belong to.
    pub fn number(&self) -> &E164 {
        &self.number
    }

    /// The issuer key epoch they were issued under.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl Drop for IdentityKeys {
    fn drop(&mut self) {
        self.d1 = G1Affine::identity();
        self.d2 = G2Affine::identity();
        std::hint::black_box((&self.d1, &self.d2));
    }
}

impl core::fmt::Debug for IdentityKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("IdentityKeys(<redacted>)")
    }
}
