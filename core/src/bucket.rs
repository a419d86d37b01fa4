//! Buckets: the records of the table fall into `2^b` buckets by the first
//! `b` bits of their match tag, so a client can download the records of its
//! contacts' buckets instead of the whole table.
//!
//! The match tag comes from the number's PRF output, so only the key holder
//! and a client who had the number evaluated know a number's bucket. Someone
//! who downloads the whole table learns how many records each bucket holds,
//! and nothing about which numbers fall into the empty or full ones.
//!
//! What it costs: a client that asks only for its contacts' buckets tells the
//! server `b` bits of each contact's match tag, which the key holder can
//! compute for any number it tries (not which blinded element belongs to
//! which bucket). New contacts need a second request: their buckets are
//! known only once they are evaluated. With `b = 0` there is a single
//! bucket and nothing leaks. See `docs/threat-model.md` for figures.

use crate::error::{Error, Result};
use crate::hash::sha512;
use crate::record::MatchTag;

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

    /// The bucket of the record under `tag`: the first `bits` bits of the
    /// tag, read big-endian. Sorting records by tag sorts them by bucket.
    pub fn bucket_of(self, tag: &MatchTag) -> u32 {
        if self.0 == 0 {
            return 0;
        }
        let t = tag.as_bytes();
        u32::from_be_bytes([t[0], t[1], t[2], t[3]]) >> (32 - u32::from(self.0))
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

    fn tag(first: [u8; 4]) -> MatchTag {
        let mut t = [0xAB; crate::record::TAG_LEN];
        t[..4].copy_from_slice(&first);
        MatchTag(t)
    }

    #[test]
    fn zero_bits_is_one_bucket() {
        let b = BucketBits::new(0).expect("valid");
        assert_eq!(b.count(), 1);
        assert_eq!(b.bucket_of(&tag([0xFF; 4])), 0);
    }

    #[test]
    fn the_bucket_is_the_tags_first_bits() {
        let tag = tag([0b1011_0111, 0b0101_0000, 0x12, 0x34]);
        for (bits, bucket) in [
            (1, 1),
            (4, 0b1011),
            (8, 0b1011_0111),
            (12, 0b1011_0111_0101),
        ] {
            let b = BucketBits::new(bits).expect("valid");
            assert_eq!(b.bucket_of(&tag), bucket, "{bits} bits");
            assert!(b.bucket_of(&tag) < b.count());
        }
        let b = BucketBits::new(24).expect("valid");
        assert_eq!(b.bucket_of(&tag), 0xB75012);
    }

    #[test]
    fn too_many_bits_are_rejected() {
        assert!(BucketBits::new(MAX_BUCKET_BITS + 1).is_err());
    }

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
