//! The sync mode's integrity value and record-id lists, without I/O.
//!
//! A client in sync mode keeps its own copy of every sealed record of the
//! epoch and brings it up to date with deltas (`docs/protocol.md` §6.6).
//! After applying one it compares a [`SetDigest`] of its whole copy with the
//! one the server sent for the new version: any record missing, extra or
//! different (a delta applied to the wrong base, a cache file damaged on
//! disk, a server replica whose change log diverged) makes them differ, and
//! the client starts over with a full download.
//!
//! The digest is order-independent, so both sides maintain it
//! incrementally: the sum, modulo 2^128, of
//! `SHA-512("cds-v1-set-digest" || record)[..16]` (read as a little-endian
//! integer) over every record of the set. Adding a record adds its term,
//! removing one subtracts it. Against a party who can choose records this
//! is a checksum, not a commitment (sums of hashes admit crafted
//! collisions, and the server could send any digest anyway): it catches
//! mistakes, not a malicious server.

use crate::error::{Error, Result};
use crate::hash::sha512;
use crate::record::{RECORD_ID_LEN, RecordId, RecordRef};

/// Size of an encoded [`SetDigest`].
pub const SET_DIGEST_LEN: usize = 16;

/// An order-independent digest of a set of records (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SetDigest(u128);

impl SetDigest {
    /// The digest of the empty set.
    pub const EMPTY: Self = Self(0);

    fn term(record: RecordRef<'_>) -> u128 {
        let h = sha512(&[b"cds-v1-set-digest", record.as_bytes()]);
        let mut t = [0u8; SET_DIGEST_LEN];
        t.copy_from_slice(&h[..SET_DIGEST_LEN]);
        u128::from_le_bytes(t)
    }

    /// The digest of `records`.
    pub fn of<'a>(records: impl IntoIterator<Item = RecordRef<'a>>) -> Self {
        let mut d = Self::EMPTY;
        for r in records {
            d.add(r);
        }
        d
    }

    /// Account for `record` joining the set.
    pub fn add(&mut self, record: RecordRef<'_>) {
        self.0 = self.0.wrapping_add(Self::term(record));
    }

    /// Account for `record` leaving the set.
    pub fn remove(&mut self, record: RecordRef<'_>) {
        self.0 = self.0.wrapping_sub(Self::term(record));
    }

    /// The digest of the union of two disjoint sets.
    pub fn combine(self, other: Self) -> Self {
        Self(self.0.wrapping_add(other.0))
    }

    /// The 16 bytes sent on the wire (little-endian).
    pub fn to_bytes(self) -> [u8; SET_DIGEST_LEN] {
        self.0.to_le_bytes()
    }

    /// Parse exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let b: [u8; SET_DIGEST_LEN] = bytes.try_into().map_err(|_| Error::Length {
            what: "a record set digest",
            expected: SET_DIGEST_LEN,
            actual: bytes.len(),
        })?;
        Ok(Self(u128::from_le_bytes(b)))
    }
}

/// Parse record ids sent back to back ([`RECORD_ID_LEN`] bytes each), as a
/// delta lists the records it removes. Each must be the id of some
/// well-formed record (see [`RecordId::from_slice`]).
pub fn decode_ids(packed: &[u8]) -> Result<Vec<RecordId>> {
    if !packed.len().is_multiple_of(RECORD_ID_LEN) {
        return Err(Error::Length {
            what: "a list of record ids",
            expected: packed.len() / RECORD_ID_LEN * RECORD_ID_LEN + RECORD_ID_LEN,
            actual: packed.len(),
        });
    }
    packed
        .chunks_exact(RECORD_ID_LEN)
        .map(RecordId::from_slice)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Output;
    use crate::record::{Label, RecordKeys, TAG_LEN};
    use crate::suite::OUTPUT_LEN;
    use proptest::prelude::*;

    fn record(seed: u8) -> crate::record::Record {
        RecordKeys::derive(&Output::from_bytes([seed; OUTPUT_LEN]))
            .seal(&Label::new(vec![seed]).expect("short"))
    }

    #[test]
    fn the_digest_ignores_order_and_follows_adds_and_removes() {
        let rs: Vec<_> = (0..5).map(record).collect();
        let forward = SetDigest::of(rs.iter().map(|r| r.as_ref()));
        let backward = SetDigest::of(rs.iter().rev().map(|r| r.as_ref()));
        assert_eq!(forward, backward);
        let mut d = forward;
        d.remove(rs[2].as_ref());
        let without: Vec<_> = rs.iter().enumerate().filter(|(i, _)| *i != 2).collect();
        assert_eq!(d, SetDigest::of(without.iter().map(|(_, r)| r.as_ref())));
        assert_ne!(d, forward);
        d.add(rs[2].as_ref());
        assert_eq!(d, forward);
        assert_eq!(SetDigest::of([]), SetDigest::EMPTY);
        assert_eq!(SetDigest::from_slice(&forward.to_bytes()), Ok(forward));
        assert!(SetDigest::from_slice(&[0; 15]).is_err());
    }

    #[test]
    fn the_ids_of_sealed_records_decode_back() {
        let rs: Vec<_> = (0..3).map(record).collect();
        let packed: Vec<u8> = rs
            .iter()
            .flat_map(|r| r.as_ref().id().as_bytes().to_vec())
            .collect();
        let ids = decode_ids(&packed).expect("whole ids");
        assert_eq!(ids, rs.iter().map(|r| r.as_ref().id()).collect::<Vec<_>>());
        assert!(decode_ids(&packed[1..]).is_err());
        assert_eq!(decode_ids(&[]), Ok(vec![]));
    }

    #[test]
    fn one_flipped_byte_of_a_record_changes_the_digest() {
        let r = record(9);
        let mut bytes = r.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let flipped = crate::record::Record::from_bytes(&bytes).expect("still well-formed");
        assert_ne!(
            SetDigest::of([r.as_ref()]),
            SetDigest::of([flipped.as_ref()])
        );
    }

    proptest! {
        #[test]
        fn id_lists_decode_exactly_when_whole_with_valid_label_lengths(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            let whole = bytes.len() % RECORD_ID_LEN == 0
                && bytes.chunks(RECORD_ID_LEN).all(|c| usize::from(c[TAG_LEN]) <= crate::record::MAX_LABEL_LEN);
            match decode_ids(&bytes) {
                Ok(ids) => {
                    prop_assert!(whole);
                    let again: Vec<u8> = ids.iter().flat_map(|t| t.as_bytes().to_vec()).collect();
                    prop_assert_eq!(again, bytes);
                }
                Err(_) => prop_assert!(!whole),
            }
        }

        #[test]
        fn digests_parse_exactly_16_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            match SetDigest::from_slice(&bytes) {
                Ok(d) => prop_assert_eq!(d.to_bytes().to_vec(), bytes),
                Err(_) => prop_assert_ne!(bytes.len(), SET_DIGEST_LEN),
            }
        }
    }
}
