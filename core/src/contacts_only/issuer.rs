//! The issuer of identity keys: the master secret `s` and its public key.
//!
//! Run by the messenger backend (which verifies numbers), never by the cds
//! server: whoever holds `s` can compute every pair's key.

use blstrs::{G1Affine, G1Projective, G2Affine, G2Projective, Scalar, pairing};
use group::Curve;
use group::Group;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::IdentityKeys;
use super::points::{G1_LEN, G2_LEN, decode_g1, decode_g2, h1, h2, hash_to_scalar};
use crate::E164;
use crate::error::{Error, Result};
use crate::hash::sha512;

/// Length of an encoded [`IssuerPublicKey`]: `P1` (48) then `P2` (96).
pub const ISSUER_PUBLIC_KEY_LEN: usize = G1_LEN + G2_LEN;

/// The issuer's master secret `s`, derived from a 32-byte seed
/// (`s = HashToScalar("cds-v1-contacts-issuer-secret" || seed)`).
///
/// Wiped on drop (the seed; the scalar is overwritten, best effort, since
/// blstrs values do not implement `Zeroize`). Deliberately without `Debug`.
pub struct IssuerSecret {
    seed: Zeroizing<[u8; 32]>,
    s: Scalar,
    public: IssuerPublicKey,
}

impl IssuerSecret {
    /// A fresh secret from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *seed);
        Self::from_seed(&seed)
    }

    /// The secret of a stored seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let s = hash_to_scalar(b"cds-v1-contacts-issuer-secret", &[seed]);
        let p1 = (G1Projective::generator() * s).to_affine();
        let p2 = (G2Projective::generator() * s).to_affine();
        Self {
            seed: Zeroizing::new(*seed),
            s,
            public: IssuerPublicKey::from_points(p1, p2),
        }
    }

    /// The seed, to store (mode 0600) and reload with [`IssuerSecret::from_seed`].
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The public key the cds server and the apps are configured with.
    pub fn public_key(&self) -> &IssuerPublicKey {
        &self.public
    }

    /// The identity keys of `number`: call only for the verified holder of
    /// the number (the backend's SMS check or equivalent).
    pub fn issue(&self, number: &E164) -> IdentityKeys {
        IdentityKeys::from_parts(
            self.public.epoch(),
            number.clone(),
            (h1(number) * self.s).to_affine(),
            (h2(number) * self.s).to_affine(),
        )
    }
}

impl Drop for IssuerSecret {
    fn drop(&mut self) {
        self.s = Scalar::from(0u64);
        std::hint::black_box(&self.s);
    }
}

/// The issuer's public key `P1 = s·g1`, `P2 = s·g2`, and its epoch id.
/// Every value of this type passed the consistency check
/// `e(P1, g2) = e(g1, P2)`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IssuerPublicKey {
    pub(crate) p1: G1Affine,
    pub(crate) p2: G2Affine,
    bytes: [u8; ISSUER_PUBLIC_KEY_LEN],
    epoch: u64,
}

impl IssuerPublicKey {
    fn from_points(p1: G1Affine, p2: G2Affine) -> Self {
        let mut bytes = [0u8; ISSUER_PUBLIC_KEY_LEN];
        bytes[..G1_LEN].copy_from_slice(&p1.to_compressed());
        bytes[G1_LEN..].copy_from_slice(&p2.to_compressed());
        let h = sha512(&[b"cds-v1-contacts-epoch", &bytes]);
        let mut e = [0u8; 8];
        e.copy_from_slice(&h[..8]);
        Self {
            p1,
            p2,
            bytes,
            epoch: u64::from_be_bytes(e),
        }
    }

    /// Parse `P1 || P2` (compressed, canonical, in the subgroup, not the
    /// identity) and check that both carry the same secret.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != ISSUER_PUBLIC_KEY_LEN {
            return Err(Error::Length {
                what: "contacts issuer public key",
                expected: ISSUER_PUBLIC_KEY_LEN,
                actual: bytes.len(),
            });
        }
        let p1 = decode_g1(bytes[..G1_LEN].try_into().expect("48 bytes"))?;
        let p2 = decode_g2(bytes[G1_LEN..].try_into().expect("96 bytes"))?;
        if pairing(&p1, &G2Affine::generator()) != pairing(&G1Affine::generator(), &p2) {
            return Err(Error::IssuerKeyMismatch);
        }
        Ok(Self::from_points(p1, p2))
    }

    /// The 144-byte encoding.
    pub fn as_bytes(&self) -> &[u8; ISSUER_PUBLIC_KEY_LEN] {
        &self.bytes
    }

    /// The issuer key epoch: `BE64(SHA-512("cds-v1-contacts-epoch" || P1 || P2)[0..8])`.
    /// Every tag and key derived from this issuer's keys includes it.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl core::fmt::Debug for IssuerPublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "IssuerPublicKey(epoch {:016x})", self.epoch)
    }
}

use group::prime::PrimeCurveAffine as _;
