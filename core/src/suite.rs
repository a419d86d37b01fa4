//! The ciphersuite constants of RFC 9497 for ristretto255-SHA512, and the
//! length-prefix helper every transcript uses.

/// The protocol variant of RFC 9497 §3. The mode is part of every domain
/// separation tag, so the same key answers differently in different modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// Base OPRF: no proof, no public input.
    Oprf,
    /// Verifiable OPRF: the server proves it used the key behind its public key.
    Voprf,
    /// Partially oblivious PRF: verifiable, with a public `info` input.
    Poprf,
}

impl Mode {
    /// The mode's single-byte identifier (RFC 9497 §3.1).
    pub const fn id(self) -> u8 {
        match self {
            Mode::Oprf => 0x00,
            Mode::Voprf => 0x01,
            Mode::Poprf => 0x02,
        }
    }

    /// `contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier`.
    pub(crate) fn context_string(self) -> [u8; CONTEXT_LEN] {
        let mut out = [0u8; CONTEXT_LEN];
        out[..7].copy_from_slice(b"OPRFV1-");
        out[7] = self.id();
        out[8] = b'-';
        out[9..].copy_from_slice(IDENTIFIER);
        out
    }
}

/// The ciphersuite identifier of RFC 9497 §4.1.
pub const IDENTIFIER: &[u8] = b"ristretto255-SHA512";

const CONTEXT_LEN: usize = 9 + IDENTIFIER.len();

/// Size of a serialized group element (`Ne`).
pub const ELEMENT_LEN: usize = 32;
/// Size of a serialized scalar (`Ns`).
pub const SCALAR_LEN: usize = 32;
/// Size of the PRF output (`Nh`).
pub const OUTPUT_LEN: usize = 64;
/// Size of a serialized DLEQ proof: two scalars.
pub const PROOF_LEN: usize = 2 * SCALAR_LEN;

/// The largest batch a DLEQ proof can cover: the composite transcript
/// encodes the element index in two bytes (RFC 9497 §2.2.1).
pub const MAX_BATCH: usize = u16::MAX as usize;

/// `I2OSP(len(x), 2)`: the two-byte big-endian length prefix.
///
/// Every caller passes a protocol value whose length is bounded by the API
/// (elements, scalars, DSTs, or user input checked against [`MAX_INPUT_LEN`]).
pub(crate) fn len2(x: &[u8]) -> [u8; 2] {
    debug_assert!(x.len() <= u16::MAX as usize);
    (x.len() as u16).to_be_bytes()
}

/// The longest private or public input the protocol accepts (it is
/// length-prefixed with two bytes in the `Finalize` transcript).
pub const MAX_INPUT_LEN: usize = u16::MAX as usize;
