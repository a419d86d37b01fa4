//! Server keys: the secret scalar and its key pair, derived as in RFC 9497
//! §3.2.1 or generated at random.

use curve25519_dalek::{RistrettoPoint, Scalar};
use rand_core::CryptoRng;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};
use crate::group::PublicKey;
use crate::hash::hash_to_scalar;
use crate::suite::{Mode, SCALAR_LEN, len2};

/// A server's secret OPRF key `skS`: a nonzero scalar.
///
/// It is wiped from memory when dropped, compares in constant time, and its
/// `Debug` output reveals nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(pub(crate) Scalar);

impl SecretKey {
    /// Parse a canonical, nonzero 32-byte little-endian scalar.
    pub fn from_bytes(bytes: &[u8; SCALAR_LEN]) -> Result<Self> {
        let s = crate::group::decode_scalar(bytes)?;
        if s == Scalar::ZERO {
            return Err(Error::ZeroScalar);
        }
        Ok(Self(s))
    }

    /// The canonical 32-byte encoding. Handle with care: this is the secret.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; SCALAR_LEN]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key `skS * G`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_point(RistrettoPoint::mul_base(&self.0))
    }
}

crate::secret::secret_traits!(SecretKey);

/// A server key pair: the secret key and its public key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyPair {
    secret: SecretKey,
    public: PublicKey,
}

impl KeyPair {
    /// Build the pair from a secret key.
    pub fn from_secret(secret: SecretKey) -> Self {
        let public = secret.public_key();
        Self { secret, public }
    }

    /// `DeriveKeyPair(seed, info)` of RFC 9497 §3.2.1 for the given mode.
    ///
    /// Deterministic: the same seed, info and mode always give the same key.
    pub fn derive(mode: Mode, seed: &[u8; 32], info: &[u8]) -> Result<Self> {
        if info.len() > u16::MAX as usize {
            return Err(Error::InputTooLong {
                max: u16::MAX as usize,
            });
        }
        let context = mode.context_string();
        for counter in 0u8..=255 {
            let sk = hash_to_scalar(
                &[seed, &len2(info), info, &[counter]],
                &[b"DeriveKeyPair", &context],
            );
            if sk != Scalar::ZERO {
                return Ok(Self::from_secret(SecretKey(sk)));
            }
        }
        Err(Error::DeriveKeyPair)
    }

    /// A fresh random key pair.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret(SecretKey(random_nonzero_scalar(rng)))
    }

    /// The secret key.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// The public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }
}

/// RFC 9497 `RandomScalar`: uniform and nonzero.
pub(crate) fn random_nonzero_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
    loop {
        let mut wide = zeroize::Zeroizing::new([0u8; 64]);
        rng.fill_bytes(wide.as_mut());
        let s = Scalar::from_bytes_mod_order_wide(&wide);
        if s != Scalar::ZERO {
            return s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_debug_reveals_nothing() {
        let kp = KeyPair::derive(Mode::Voprf, &[7u8; 32], b"k").expect("derives");
        let shown = format!("{:?}", kp);
        let hex: String = kp
            .secret()
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&hex[..8]));
    }

    #[test]
    fn zero_secret_key_is_rejected() {
        assert_eq!(SecretKey::from_bytes(&[0u8; 32]), Err(Error::ZeroScalar));
    }

    #[test]
    fn derivation_is_mode_separated() {
        let a = KeyPair::derive(Mode::Oprf, &[1u8; 32], b"").expect("derives");
        let b = KeyPair::derive(Mode::Voprf, &[1u8; 32], b"").expect("derives");
        assert_ne!(a.secret(), b.secret());
    }
}
