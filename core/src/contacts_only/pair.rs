//! The key two numbers share, `K = e(H1(lo), H2(hi))^s`, and the record
//! keys of one direction derived from it.

use blstrs::pairing;
use group::Curve as _;
use zeroize::Zeroizing;

use super::IdentityKeys;
use super::points::{gt_bytes, h1, h2};
use crate::E164;
use crate::error::{Error, Result};
use crate::hash::sha512;
use crate::record::{RECORD_KEY_LEN, RecordKeys, TAG_LEN};

/// The key of one pair of numbers under one issuer epoch: 64 bytes,
/// `SHA-512("cds-v1-contacts-pair-key" || epoch || lo || hi || Encode(K))`
/// with the numbers as BE64 of their digits and `Encode` the 288-byte
/// target-group encoding. Secret: redacted `Debug`, wiped on drop.
pub struct PairKey {
    epoch: u64,
    lo: u64,
    hi: u64,
    key: Zeroizing<[u8; 64]>,
}

impl PairKey {
    /// The key `mine`'s holder shares with `other`: one pairing.
    pub fn derive(mine: &IdentityKeys, other: &E164) -> Result<Self> {
        let me = mine.number().to_u64();
        let them = other.to_u64();
        let k = match me.cmp(&them) {
            core::cmp::Ordering::Less => pairing(&mine.d1, &h2(other).to_affine()),
            core::cmp::Ordering::Greater => pairing(&h1(other).to_affine(), &mine.d2),
            core::cmp::Ordering::Equal => return Err(Error::SelfPair),
        };
        let encoded = gt_bytes(&k).ok_or(Error::IdentityElement)?;
        let (lo, hi) = (me.min(them), me.max(them));
        let epoch = mine.epoch();
        let digest = sha512(&[
            b"cds-v1-contacts-pair-key",
            &epoch.to_be_bytes(),
            &lo.to_be_bytes(),
            &hi.to_be_bytes(),
            &encoded,
        ]);
        Ok(Self {
            epoch,
            lo,
            hi,
            key: Zeroizing::new(digest),
        })
    }

    /// The record keys for the record `owner` publishes for the other
    /// number of the pair (its finder):
    /// `tag = SHA-512("cds-v2-contacts-tag" || epoch || owner || finder || key)[0..8]`,
    /// `record key = SHA-512("cds-v2-contacts-record-key" || same)` (64 bytes).
    /// The direction is part of the input, so A's record for B and B's
    /// record for A differ.
    pub fn record_keys(&self, owner: &E164) -> Result<RecordKeys> {
        let owner = owner.to_u64();
        let finder = if owner == self.lo {
            self.hi
        } else if owner == self.hi {
            self.lo
        } else {
            return Err(Error::NotInPair);
        };
        let parts = |domain: &'static [u8]| {
            Zeroizing::new(sha512(&[
                domain,
                &self.epoch.to_be_bytes(),
                &owner.to_be_bytes(),
                &finder.to_be_bytes(),
                &*self.key,
            ]))
        };
        let t = parts(b"cds-v2-contacts-tag");
        let key: Zeroizing<[u8; RECORD_KEY_LEN]> = parts(b"cds-v2-contacts-record-key");
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&t[..TAG_LEN]);
        Ok(RecordKeys::from_parts(tag, key))
    }
}

impl PartialEq for PairKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        self.epoch == other.epoch
            && self.lo == other.lo
            && self.hi == other.hi
            && bool::from(self.key.as_slice().ct_eq(other.key.as_slice()))
    }
}

impl Eq for PairKey {}

impl core::fmt::Debug for PairKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PairKey(<redacted>)")
    }
}
