//! Contacts-only discoverability: a user is found only by the numbers it
//! listed, and the cds server cannot tell which numbers those are.
//!
//! Sakai–Ohgishi–Kasahara identity-based key agreement on BLS12-381:
//!
//! - An issuer (the messenger backend, never the cds server) holds a master
//!   secret `s` ([`IssuerSecret`]) and publishes `P1 = s·g1`, `P2 = s·g2`
//!   ([`IssuerPublicKey`]). To the verified holder of number `N` it gives
//!   `s·H1(N)` in G1 and `s·H2(N)` in G2 ([`IdentityKeys`]), where `H1`,
//!   `H2` are RFC 9380 hash-to-curve (`BLS12381G1_XMD:SHA-256_SSWU_RO_`,
//!   `BLS12381G2_XMD:SHA-256_SSWU_RO_`) with the DSTs [`H1_DST`], [`H2_DST`].
//! - Two numbers `lo < hi` (numeric order of their digits) share
//!   `K = e(H1(lo), H2(hi))^s`. The holder of `lo` computes it as
//!   `e(s·H1(lo), H2(hi))`, the holder of `hi` as `e(H1(lo), s·H2(hi))`:
//!   one pairing each, no message exchanged ([`PairKey`]).
//! - From `K`, the issuer epoch and the direction (owner → finder) come a
//!   16-byte match tag and a label key ([`PairKey::record_keys`]); the
//!   record format is the normal one (`crate::Record`), so a pair record
//!   sits in a bucket beside normal records and looks like one.
//! - An upload of an allow-list is signed with the uploader's identity key
//!   (Cha–Cheon identity-based signature, [`UploadSignature`]), so the cds
//!   server can check, with `P2` alone, that the uploader holds the number
//!   it uploads for.
//!
//! Why ordinary OPRF evaluations do not help: the OPRF key `k` (ristretto255)
//! and `s` (BLS12-381) are independent secrets in unrelated groups, and no
//! value here is a combination of `k·H(X)`. Evaluating `k·H(X)` for any `X`
//! gives no information on `s`, `s·H1(X)` or any `K`.

mod identity;
mod issuer;
mod pair;
mod points;
mod upload;

pub use identity::{IDENTITY_KEYS_LEN_MAX, IdentityKeys};
pub use issuer::{ISSUER_PUBLIC_KEY_LEN, IssuerPublicKey, IssuerSecret};
pub use pair::PairKey;
pub use upload::{
    AllowList, MAX_ALLOW_LIST, UPLOAD_SIGNATURE_LEN, UploadSignature, upload_message,
};

/// RFC 9380 DST of `H1`, numbers into G1.
pub const H1_DST: &[u8] = b"cds-v1-contacts-H1_BLS12381G1_XMD:SHA-256_SSWU_RO_";
/// RFC 9380 DST of `H2`, numbers into G2.
pub const H2_DST: &[u8] = b"cds-v1-contacts-H2_BLS12381G2_XMD:SHA-256_SSWU_RO_";
/// Who may find a user by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Discoverability {
    /// Anyone who has the number (a normal record).
    Everybody,
    /// Only the numbers the user listed (pair records).
    Contacts,
    /// Nobody: nothing is served.
    Nobody,
}

#[cfg(test)]
mod tests;
