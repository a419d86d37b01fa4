//! Wire values: newtypes for group elements and the DLEQ proof, each parsed
//! from bytes exactly once. A value of these types is always a canonical,
//! non-identity point (parse, don't validate).

use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::traits::IsIdentity;
use curve25519_dalek::{RistrettoPoint, Scalar};

use crate::error::{Error, Result};
use crate::suite::{ELEMENT_LEN, PROOF_LEN, SCALAR_LEN};

/// Decode a canonical, non-identity ristretto255 element (RFC 9497
/// `DeserializeElement`). Non-canonical encodings fail to decompress.
pub(crate) fn decode_element(bytes: &[u8; ELEMENT_LEN]) -> Result<RistrettoPoint> {
    let point = CompressedRistretto(*bytes)
        .decompress()
        .ok_or(Error::InvalidElement)?;
    if point.is_identity() {
        return Err(Error::IdentityElement);
    }
    Ok(point)
}

/// Decode a canonical scalar (RFC 9497 `DeserializeScalar`).
pub(crate) fn decode_scalar(bytes: &[u8; SCALAR_LEN]) -> Result<Scalar> {
    Option::from(Scalar::from_canonical_bytes(*bytes)).ok_or(Error::InvalidScalar)
}

fn to_array<const N: usize>(bytes: &[u8], what: &'static str) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| Error::Length {
        what,
        expected: N,
        actual: bytes.len(),
    })
}

macro_rules! element_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            pub(crate) point: RistrettoPoint,
            pub(crate) bytes: [u8; ELEMENT_LEN],
        }

        impl $name {
            /// Parse a 32-byte canonical encoding; rejects non-canonical
            /// encodings and the identity element.
            pub fn from_bytes(bytes: &[u8; ELEMENT_LEN]) -> Result<Self> {
                Ok(Self {
                    point: decode_element(bytes)?,
                    bytes: *bytes,
                })
            }

            /// Parse from a slice that must be exactly 32 bytes long.
            pub fn from_slice(bytes: &[u8]) -> Result<Self> {
                Self::from_bytes(&to_array(bytes, $what)?)
            }

            /// Parse a packed sequence of 32-byte encodings.
            pub fn decode_packed(packed: &[u8]) -> Result<Vec<Self>> {
                if packed.len() % ELEMENT_LEN != 0 {
                    return Err(Error::Length {
                        what: concat!("packed ", $what, "s (a multiple of 32)"),
                        expected: packed.len() - packed.len() % ELEMENT_LEN,
                        actual: packed.len(),
                    });
                }
                packed
                    .chunks_exact(ELEMENT_LEN)
                    .map(Self::from_slice)
                    .collect()
            }

            /// Pack a sequence of elements into concatenated 32-byte encodings.
            pub fn encode_packed(elements: &[Self]) -> Vec<u8> {
                let mut out = Vec::with_capacity(elements.len() * ELEMENT_LEN);
                for e in elements {
                    out.extend_from_slice(&e.bytes);
                }
                out
            }

            /// The canonical 32-byte encoding.
            pub fn to_bytes(&self) -> [u8; ELEMENT_LEN] {
                self.bytes
            }

            /// Borrow the canonical 32-byte encoding.
            pub fn as_bytes(&self) -> &[u8; ELEMENT_LEN] {
                &self.bytes
            }

            pub(crate) fn from_point(point: RistrettoPoint) -> Self {
                Self {
                    bytes: point.compress().to_bytes(),
                    point,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                // Public protocol values, but blinded and evaluated elements of
                // one user should not end up in logs either: show a prefix only.
                write!(f, concat!(stringify!($name), "({:02x}{:02x}{:02x}{:02x}..)"),
                    self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3])
            }
        }
    };
}

element_newtype!(
    /// A client's blinded input, `blind * HashToGroup(input)`, as sent to the server.
    BlindedElement,
    "blinded element"
);
element_newtype!(
    /// The server's evaluation of one blinded element, as sent to the client.
    EvaluatedElement,
    "evaluated element"
);
element_newtype!(
    /// A server public key `pkS = skS * G`, used to verify proofs.
    PublicKey,
    "public key"
);

/// A batched DLEQ proof `(c, s)` that every evaluated element of a response
/// was computed with the secret key behind the server's public key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Proof {
    pub(crate) c: Scalar,
    pub(crate) s: Scalar,
}

impl Proof {
    /// Parse `SerializeScalar(c) || SerializeScalar(s)`; both scalars must be canonical.
    pub fn from_bytes(bytes: &[u8; PROOF_LEN]) -> Result<Self> {
        let mut c = [0u8; SCALAR_LEN];
        let mut s = [0u8; SCALAR_LEN];
        c.copy_from_slice(&bytes[..SCALAR_LEN]);
        s.copy_from_slice(&bytes[SCALAR_LEN..]);
        Ok(Self {
            c: decode_scalar(&c)?,
            s: decode_scalar(&s)?,
        })
    }

    /// Parse from a slice that must be exactly 64 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        Self::from_bytes(&to_array(bytes, "proof")?)
    }

    /// The 64-byte encoding `c || s`.
    pub fn to_bytes(&self) -> [u8; PROOF_LEN] {
        let mut out = [0u8; PROOF_LEN];
        out[..SCALAR_LEN].copy_from_slice(self.c.as_bytes());
        out[SCALAR_LEN..].copy_from_slice(self.s.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    use proptest::prelude::*;

    #[test]
    fn identity_encoding_is_rejected() {
        assert_eq!(
            BlindedElement::from_bytes(&[0u8; 32]),
            Err(Error::IdentityElement)
        );
    }

    #[test]
    fn non_canonical_field_encoding_is_rejected() {
        // p = 2^255 - 19 encodes zero non-canonically.
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert_eq!(BlindedElement::from_bytes(&p), Err(Error::InvalidElement));
        // A set high bit is never canonical.
        let mut g = RISTRETTO_BASEPOINT_POINT.compress().to_bytes();
        g[31] |= 0x80;
        assert_eq!(EvaluatedElement::from_bytes(&g), Err(Error::InvalidElement));
    }

    #[test]
    fn packed_length_must_be_a_multiple_of_32() {
        assert!(matches!(
            BlindedElement::decode_packed(&[1u8; 33]),
            Err(Error::Length { .. })
        ));
        assert_eq!(BlindedElement::decode_packed(&[]), Ok(vec![]));
    }

    #[test]
    fn non_canonical_proof_scalar_is_rejected() {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&[0xff; 32]);
        assert_eq!(Proof::from_bytes(&bytes), Err(Error::InvalidScalar));
    }

    proptest! {
        #[test]
        fn element_decoding_round_trips_or_rejects(bytes in any::<[u8; 32]>()) {
            match BlindedElement::from_bytes(&bytes) {
                Ok(e) => {
                    prop_assert_eq!(e.to_bytes(), bytes);
                    prop_assert_eq!(e.point.compress().to_bytes(), bytes);
                }
                Err(err) => prop_assert!(matches!(err, Error::InvalidElement | Error::IdentityElement)),
            }
        }

        #[test]
        fn valid_points_always_decode(seed in any::<[u8; 64]>()) {
            let p = RistrettoPoint::from_uniform_bytes(&seed);
            let bytes = p.compress().to_bytes();
            prop_assume!(bytes != [0u8; 32]);
            let e = EvaluatedElement::from_bytes(&bytes).expect("canonical point decodes");
            prop_assert_eq!(e.point, p);
        }

        #[test]
        fn packed_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(v) = BlindedElement::decode_packed(&bytes) {
                prop_assert_eq!(BlindedElement::encode_packed(&v), bytes);
            }
        }

        #[test]
        fn proof_decoding_round_trips_or_rejects(bytes in any::<[u8; 64]>()) {
            if let Ok(p) = Proof::from_bytes(&bytes) {
                prop_assert_eq!(p.to_bytes(), bytes);
            }
        }
    }
}
