//! The one error type of the protocol core.

/// Everything that can go wrong in the protocol core.
///
/// Messages name the failing check and what to do about it; they never
/// contain phone numbers, labels or other user data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A 32-byte value is not the canonical encoding of a ristretto255 point.
    #[error(
        "invalid group element: not a canonical ristretto255 encoding; the peer sent corrupt or malicious data"
    )]
    InvalidElement,
    /// A 32-byte value encodes the identity element, which the protocol forbids.
    #[error(
        "invalid group element: the identity element is not allowed; the peer sent a degenerate value"
    )]
    IdentityElement,
    /// A 32-byte value is not a canonical scalar (it is not reduced modulo the group order).
    #[error("invalid scalar: not canonically reduced modulo the group order")]
    InvalidScalar,
    /// A scalar that must be nonzero is zero.
    #[error("invalid scalar: zero is not allowed here")]
    ZeroScalar,
    /// A byte string has the wrong length for the value it should hold.
    #[error("wrong length for {what}: expected {expected} bytes, got {actual}")]
    Length {
        /// What was being decoded.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length supplied.
        actual: usize,
    },
    /// The input hashed to the identity element (RFC 9497 `InvalidInputError`);
    /// this happens with negligible probability, choose another input.
    #[error("the input maps to the identity element; this input cannot be evaluated")]
    InvalidInput,
    /// An input or public info string is longer than the protocol can frame.
    #[error("input too long: at most {max} bytes are allowed")]
    InputTooLong {
        /// The maximum length.
        max: usize,
    },
    /// A batch is empty, too large for one proof, or its parts disagree in length.
    #[error("invalid batch: {0}")]
    Batch(&'static str),
    /// The server's DLEQ proof does not verify: the response was not computed
    /// with the key behind the expected public key. Do not use the results;
    /// refresh the server configuration or report a misbehaving server.
    #[error("proof verification failed: the server did not use the expected key")]
    ProofVerification,
    /// POPRF: the public info tweaks the key to zero (RFC 9497 `InverseError`).
    #[error("the public info cannot be used with this key; choose other info")]
    Inverse,
    /// Key derivation exhausted its 256 attempts (RFC 9497 `DeriveKeyPairError`).
    #[error("key derivation failed for this seed and info; use another seed")]
    DeriveKeyPair,
    /// A label is longer than a record can hold.
    #[error("label too long: at most {max} bytes are allowed")]
    LabelTooLong {
        /// The maximum length.
        max: usize,
    },
    /// A sealed record does not open under the key derived for it.
    #[error("record does not open: it is corrupt or belongs to another key epoch")]
    RecordOpen,
    /// A packed record list is malformed.
    #[error("malformed record list: {0}")]
    RecordEncoding(&'static str),
    /// A phone number is not in canonical E.164 form (`+` and 7 to 15 digits, no leading zero).
    #[error(
        "not a canonical E.164 number: expected '+' followed by 7 to 15 digits, the first not zero"
    )]
    InvalidE164,
    /// Contacts-only: the two halves of an issuer public key carry
    /// different secrets.
    #[error("contacts issuer public key is inconsistent: P1 and P2 do not carry the same secret")]
    IssuerKeyMismatch,
    /// Contacts-only: identity keys that do not parse or do not verify.
    #[error("identity keys refused: {0}")]
    IdentityKeys(&'static str),
    /// Contacts-only: a number cannot share a pair key with itself.
    #[error("a number has no pair key with itself")]
    SelfPair,
    /// Contacts-only: record keys asked for a number outside the pair.
    #[error("the owner is not one of the pair's numbers")]
    NotInPair,
    /// Contacts-only: an upload's signature does not verify.
    #[error(
        "upload signature does not verify: it was not made with the identity keys of this number under the server's issuer key"
    )]
    UploadSignature,
    /// Contacts-only: a malformed allow-list.
    #[error("malformed allow-list: {0}")]
    AllowList(&'static str),
    /// Bucket bits outside the supported range.
    #[error("bucket bits must be between 0 and {max}")]
    BucketBits {
        /// The largest supported value.
        max: u8,
    },
}

/// Shorthand for results of the protocol core.
pub type Result<T, E = Error> = core::result::Result<T, E>;
