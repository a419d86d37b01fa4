//! Allow-list uploads: the pair records an owner publishes, and the
//! identity-based signature that proves the uploader holds the number.
//!
//! Signature (Cha–Cheon, PKC 2003), with `Q = H1(N)`, `d1 = s·Q`:
//! sign: `r` random, `U = r·Q`, `h = HashToScalar("cds-v1-contacts-upload-h" || m || U)`,
//! `V = (r + h)·d1`; signature `U || V` (96 bytes). Verify:
//! `e(V, g2) = e(U + h·Q, P2)`. Forging one for a number without its
//! identity key is as hard as CDH in the pairing groups (random oracle).

use std::collections::HashSet;

use blstrs::{G1Affine, G1Projective, G2Affine, pairing};
use group::Curve as _;
use group::prime::PrimeCurveAffine as _;
use rand_core::CryptoRng;

use super::points::{G1_LEN, decode_g1, h1, hash_to_scalar, scalar_from_uniform};
use super::{IdentityKeys, IssuerPublicKey, PairKey};
use crate::E164;
use crate::error::{Error, Result};
use crate::hash::sha512;
use crate::record::{Label, MatchTag, Record, RecordRef};

/// Length of an [`UploadSignature`].
pub const UPLOAD_SIGNATURE_LEN: usize = 2 * G1_LEN;
/// The most records one allow-list may hold.
pub const MAX_ALLOW_LIST: usize = 10_000;

/// The message an upload signs:
/// `"cds-v1-contacts-upload" || epoch (BE64) || account_len (1) || account
/// || number digits (BE64) || issued_at (BE64) || SHA-512(records)`.
pub fn upload_message(
    epoch: u64,
    account: &[u8],
    number: &E164,
    issued_at: u64,
    records: &[u8],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(22 + 1 + account.len() + 24 + 64);
    m.extend_from_slice(b"cds-v1-contacts-upload");
    m.extend_from_slice(&epoch.to_be_bytes());
    m.push(u8::try_from(account.len()).unwrap_or(u8::MAX));
    m.extend_from_slice(account);
    m.extend_from_slice(&number.to_u64().to_be_bytes());
    m.extend_from_slice(&issued_at.to_be_bytes());
    m.extend_from_slice(&sha512(&[records]));
    m
}

/// A Cha–Cheon signature `U || V` by the holder of a number's identity key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct UploadSignature {
    u: G1Affine,
    v: G1Affine,
}

fn challenge(message: &[u8], u: &G1Affine) -> blstrs::Scalar {
    hash_to_scalar(b"cds-v1-contacts-upload-h", &[message, &u.to_compressed()])
}

impl UploadSignature {
    /// Sign `message` (see [`upload_message`]) with `keys`.
    pub fn sign<R: CryptoRng + ?Sized>(keys: &IdentityKeys, message: &[u8], rng: &mut R) -> Self {
        let r = loop {
            let mut wide = zeroize::Zeroizing::new([0u8; 48]);
            rng.fill_bytes(&mut *wide);
            if let Some(r) = scalar_from_uniform(&wide) {
                break r;
            }
        };
        let u = (h1(keys.number()) * r).to_affine();
        let h = challenge(message, &u);
        let v = (G1Projective::from(keys.d1) * (r + h)).to_affine();
        Self { u, v }
    }

    /// Parse `U || V`: both compressed G1 points, canonical, in the
    /// subgroup, not the identity.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != UPLOAD_SIGNATURE_LEN {
            return Err(Error::Length {
                what: "upload signature",
                expected: UPLOAD_SIGNATURE_LEN,
                actual: bytes.len(),
            });
        }
        Ok(Self {
            u: decode_g1(bytes[..G1_LEN].try_into().expect("48 bytes"))?,
            v: decode_g1(bytes[G1_LEN..].try_into().expect("48 bytes"))?,
        })
    }

    /// The 96-byte encoding.
    pub fn to_bytes(&self) -> [u8; UPLOAD_SIGNATURE_LEN] {
        let mut out = [0u8; UPLOAD_SIGNATURE_LEN];
        out[..G1_LEN].copy_from_slice(&self.u.to_compressed());
        out[G1_LEN..].copy_from_slice(&self.v.to_compressed());
        out
    }

    /// Check that the holder of `number`'s identity key under `issuer`
    /// signed `message`.
    pub fn verify(&self, issuer: &IssuerPublicKey, number: &E164, message: &[u8]) -> Result<()> {
        let q = h1(number);
        let h = challenge(message, &self.u);
        let rhs = (G1Projective::from(self.u) + q * h).to_affine();
        if pairing(&self.v, &G2Affine::generator()) == pairing(&rhs, &issuer.p2) {
            Ok(())
        } else {
            Err(Error::UploadSignature)
        }
    }
}

/// The pair records of one owner, as uploaded: well-formed records
/// (`docs/protocol.md` §5), at most [`MAX_ALLOW_LIST`], no tag twice,
/// in tag order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AllowList {
    packed: Vec<u8>,
    count: usize,
}

impl AllowList {
    /// Parse a packed record list as an allow-list.
    pub fn decode(packed: &[u8]) -> Result<Self> {
        let records = RecordRef::decode_packed(packed)?;
        if records.len() > MAX_ALLOW_LIST {
            return Err(Error::AllowList("more records than an allow-list may hold"));
        }
        let mut seen = HashSet::with_capacity(records.len());
        let mut previous: Option<MatchTag> = None;
        for r in &records {
            let tag = r.tag();
            if !seen.insert(tag) {
                return Err(Error::AllowList("a tag appears twice"));
            }
            if previous.is_some_and(|p| p > tag) {
                return Err(Error::AllowList("records are not in tag order"));
            }
            previous = Some(tag);
        }
        Ok(Self {
            packed: packed.to_vec(),
            count: records.len(),
        })
    }

    /// Seal `label` for every number of `finders` with `owner`'s identity
    /// keys: one pairing per finder. The owner's own number and repeated
    /// numbers are skipped. Records come in tag order, which says nothing
    /// about the address book's order.
    pub fn seal(owner: &IdentityKeys, label: &Label, finders: &[E164]) -> Result<Self> {
        let mut numbers: Vec<&E164> = finders.iter().filter(|n| *n != owner.number()).collect();
        numbers.sort();
        numbers.dedup();
        if numbers.len() > MAX_ALLOW_LIST {
            return Err(Error::AllowList("more records than an allow-list may hold"));
        }
        let mut records: Vec<Record> = Vec::with_capacity(numbers.len());
        for finder in numbers {
            let keys = PairKey::derive(owner, finder)?.record_keys(owner.number())?;
            records.push(keys.seal(label));
        }
        records.sort_unstable_by_key(|r| r.as_ref().tag());
        // 8-byte tags: two finders collide with probability about
        // m^2 / 2^65 for m finders; a server refuses such a list.
        if records
            .windows(2)
            .any(|w| w[0].as_ref().tag() == w[1].as_ref().tag())
        {
            return Err(Error::AllowList(
                "two finders' pair records share a tag: leave one of them out",
            ));
        }
        let mut packed = Vec::with_capacity(records.iter().map(|r| r.as_bytes().len()).sum());
        for r in &records {
            packed.extend_from_slice(r.as_bytes());
        }
        Ok(Self {
            packed,
            count: records.len(),
        })
    }

    /// The packed records.
    pub fn as_bytes(&self) -> &[u8] {
        &self.packed
    }

    /// The records.
    pub fn records(&self) -> Vec<RecordRef<'_>> {
        RecordRef::decode_packed(&self.packed).expect("checked when built")
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it allows nobody.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}
