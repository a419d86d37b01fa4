//! Buckets: a public map from a phone number to one of `2^b` buckets, so a
//! client can download the records of its contacts' buckets instead of the
//! whole table.
//!
//! What it costs: a client that asks only for its contacts' buckets tells the
//! server `b` bits of a hash of each contact number it looks up (not which
//! blinded element belongs to which bucket). With `b = 0` there is a single
//! bucket and nothing leaks. See `docs/threat-model.md` for figures.

use crate::e164::E164;
use crate::error::{Error, Result};
use crate::hash::sha512;

/// The most bucket bits supported (16.7 million buckets).
pub const MAX_BUCKET_BITS: u8 = 24;

/// Number of bucket bits, checked to be in `0..=MAX_BUCKET_BITS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BucketBits(u8);

impl BucketBits {
    /// Check `bits` is within the supported range (usable in constants).
    pub const fn new(bits: u8) -> Result<Self> {
        if bits > MAX_BUCKET_BITS {
            return Err(Error::BucketBits {
                max: MAX_BUCKET_BITS,
            });
        }
        Ok(Self(bits))
    }

    /// The number of bits.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// How many buckets there are: `2^bits`.
    pub fn count(self) -> u32 {
        1u32 << self.0
    }

    /// The bucket of `number`: the first `bits` bits of
    /// `SHA-512("cds-v1-bucket" || number)` read big-endian.
    pub fn bucket_of(self, number: &E164) -> u32 {
        if self.0 == 0 {
            return 0;
        }
        let h = sha512(&[b"cds-v1-bucket", number.as_bytes()]);
        u32::from_be_bytes([h[0], h[1], h[2], h[3]]) >> (32 - u32::from(self.0))
    }
}

/// Size of a [`BucketDigest`].
pub const BUCKET_DIGEST_LEN: usize = 16;

/// A digest of one bucket's packed records, exactly as a response carried
/// them: `SHA-512("cds-v1-bucket-digest" || records)[..16]`. A client that
/// kept a bucket's records sends their digest, and the server leaves out
/// the records if the bucket still holds exactly those bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BucketDigest([u8; BUCKET_DIGEST_LEN]);

impl BucketDigest {
    /// The digest of `records` (packed, as sent).
    pub fn of(records: &[u8]) -> Self {
        let h = sha512(&[b"cds-v1-bucket-digest", records]);
        let mut d = [0u8; BUCKET_DIGEST_LEN];
        d.copy_from_slice(&h[..BUCKET_DIGEST_LEN]);
        Self(d)
    }

    /// Parse a digest of exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        bytes.try_into().map(Self).map_err(|_| Error::Length {
            what: "a bucket digest",
            expected: BUCKET_DIGEST_LEN,
            actual: bytes.len(),
        })
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; BUCKET_DIGEST_LEN] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> E164 {
        E164::parse(s).expect("valid")
    }

    #[test]
    fn zero_bits_is_one_bucket() {
        let b = BucketBits::new(0).expect("valid");
        assert_eq!(b.count(), 1);
        assert_eq!(b.bucket_of(&n("+14155550132")), 0);
    }

    #[test]
    fn buckets_are_in_range_and_spread() {
        let b = BucketBits::new(4).expect("valid");
        let mut seen = [0u32; 16];
        for i in 0..1600u64 {
            let k = b.bucket_of(&E164::from_u64(14155550000 + i).expect("valid"));
            seen[k as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (50..=150).contains(&c)), "{seen:?}");
    }

    #[test]
    fn too_many_bits_are_rejected() {
        assert!(BucketBits::new(MAX_BUCKET_BITS + 1).is_err());
    }

    #[test]
    fn bucket_function_is_pinned() {
        // Known answer, so other implementations can check theirs.
        let b = BucketBits::new(8).expect("valid");
        assert_eq!(b.bucket_of(&n("+14155550132")), KNOWN_BUCKET);
    }
    // python3: hashlib.sha512(b"cds-v1-bucket+14155550132").digest()[0]
    const KNOWN_BUCKET: u32 = 183;

    #[test]
    fn bucket_digest_is_pinned_and_follows_every_byte() {
        // python3: hashlib.sha512(b"cds-v1-bucket-digest").hexdigest()[:32]
        assert_eq!(
            hex::encode(BucketDigest::of(b"").as_bytes()),
            KNOWN_EMPTY_DIGEST
        );
        let a = BucketDigest::of(&[1, 2, 3]);
        assert_ne!(a, BucketDigest::of(&[1, 2, 4]));
        assert_ne!(a, BucketDigest::of(&[1, 2, 3, 0]));
        assert_eq!(BucketDigest::from_slice(a.as_bytes()), Ok(a));
        assert!(BucketDigest::from_slice(&[0; 15]).is_err());
        assert!(BucketDigest::from_slice(&[0; 17]).is_err());
    }
    const KNOWN_EMPTY_DIGEST: &str = "e1e56c087c72c05fb368743ef243b727";
}
