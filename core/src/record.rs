//! Records: what the server publishes for each discoverable user, and what a
//! client that evaluated the user's number can find and open.
//!
//! From the PRF output of a number two values are derived: an 8-byte match
//! tag (how the client finds the record) and a 64-byte key that seals the
//! user's label with AES-256-SIV (RFC 5297), a deterministic authenticated
//! cipher. Without the output, a record is a random-looking string: neither
//! the number nor the label can be read.
//!
//! Record format 2 ([`RECORD_FORMAT`]), all lengths in bytes:
//!
//! ```text
//! tag (8) || label_len (1, 0..=64) || siv (16) || ciphertext (label_len)
//! ```
//!
//! 25 bytes plus the label: 33 for an 8-byte label (format 1, before this
//! one, took 53: a 16-byte tag, a stored 12-byte nonce and ChaCha20-Poly1305).
//! A packed record list is records back to back.
//!
//! Why no nonce: the record key is fixed per (number, key epoch), so a
//! nonce-based cipher would need a stored random nonce (a derived one would
//! repeat when a label changes within the epoch). SIV derives its IV from
//! the key, the tag and the label, so re-sealing a changed label is safe; a
//! record sealed twice with the same label is the same bytes, which tells an
//! observer of two table versions only that this record did not change.
//!
//! Why 8 bytes of tag: the tag only finds the record; the 16-byte SIV
//! authenticates it. A contact whose tag matches a record of someone else
//! (probability at most `n / 2^64` per contact for `n` records searched,
//! about `5.4e-14` at a million records) fails to open it, and a record that
//! does not open never yields a label. Two records may therefore share a
//! tag: whoever looks a tag up tries every record under it, and sync mode
//! names each record by its [`RecordId`] (tag, label length, SIV), which
//! two distinct records never share.

use aes_siv::aead::KeyInit;
use aes_siv::siv::Aes256Siv;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hash::sha512;
use crate::oprf::Output;

/// The record format of this crate: the number a client sends in
/// `DiscoverRequest.record_format` and a server announces in
/// `Config.record_format`. Format 1 (no number on the wire) was
/// `tag (16) || nonce (12) || label_len (1) || ChaCha20-Poly1305 (label_len + 16)`.
pub const RECORD_FORMAT: u32 = 2;
/// Size of a match tag.
pub const TAG_LEN: usize = 8;
/// Size of the synthetic IV, which is also the authentication tag.
pub const SIV_LEN: usize = 16;
/// Size of the AES-256-SIV key: a CMAC key and a CTR key, 32 bytes each.
pub const RECORD_KEY_LEN: usize = 64;
/// The longest label a record can hold.
pub const MAX_LABEL_LEN: usize = 64;
/// Bytes of a record before the SIV: the tag and the label length.
pub const HEADER_LEN: usize = TAG_LEN + 1;
/// Bytes of a record besides the label itself.
pub const RECORD_OVERHEAD: usize = HEADER_LEN + SIV_LEN;
/// The shortest record (an empty label).
pub const MIN_RECORD_LEN: usize = RECORD_OVERHEAD;
/// The longest record (a 64-byte label).
pub const MAX_RECORD_LEN: usize = RECORD_OVERHEAD + MAX_LABEL_LEN;
/// Size of a [`RecordId`]: a record's first 25 bytes (tag, label length,
/// SIV).
pub const RECORD_ID_LEN: usize = HEADER_LEN + SIV_LEN;

/// The encoded length of a record holding a label of `label_len` bytes.
pub const fn record_len(label_len: usize) -> usize {
    RECORD_OVERHEAD + label_len
}

/// The opaque value the backend attaches to a user (an account id, say), at
/// most 64 bytes. User data: `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Label(Vec<u8>);

impl Label {
    /// Check the length and wrap the bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let bytes = bytes.into();
        if bytes.len() > MAX_LABEL_LEN {
            return Err(Error::LabelTooLong { max: MAX_LABEL_LEN });
        }
        Ok(Self(bytes))
    }

    /// The label bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Take the bytes back.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl core::fmt::Debug for Label {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Label(<{} bytes redacted>)", self.0.len())
    }
}

/// How a client finds the record of a number it evaluated: 8 bytes derived
/// from the PRF output. Not unique: see the module documentation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MatchTag(pub(crate) [u8; TAG_LEN]);

impl MatchTag {
    /// The tag bytes.
    pub fn as_bytes(&self) -> &[u8; TAG_LEN] {
        &self.0
    }
}

impl core::fmt::Debug for MatchTag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MatchTag(<redacted>)")
    }
}

/// What names one record among all those of a table, where a [`MatchTag`]
/// may name several: its first 25 bytes, `tag (8) || label_len (1) || siv (16)`.
///
/// Two distinct records have distinct ids: two records with the same tag
/// are of different record keys or labels, and then their synthetic IVs
/// (a PRF of the key, the tag and the label) differ but with probability
/// 2^-128. Sync mode keys the client's copy, the removals of a delta and
/// the page cursor by it (`docs/protocol.md` §6.6). Ids order like the
/// records they start (tag first), so the records of one tag are one
/// range of ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId([u8; RECORD_ID_LEN]);

impl RecordId {
    /// The id bytes.
    pub fn as_bytes(&self) -> &[u8; RECORD_ID_LEN] {
        &self.0
    }

    /// The match tag the id starts with.
    pub fn tag(&self) -> MatchTag {
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&self.0[..TAG_LEN]);
        MatchTag(t)
    }

    /// Parse exactly [`RECORD_ID_LEN`] bytes whose label length is at most
    /// [`MAX_LABEL_LEN`] (the id of some well-formed record).
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let id: [u8; RECORD_ID_LEN] = bytes.try_into().map_err(|_| Error::Length {
            what: "a record id",
            expected: RECORD_ID_LEN,
            actual: bytes.len(),
        })?;
        if usize::from(id[TAG_LEN]) > MAX_LABEL_LEN {
            return Err(Error::RecordEncoding("label length over 64"));
        }
        Ok(Self(id))
    }

    /// The smallest and largest ids a record under `tag` can have: every
    /// record of `tag` lies in `first..=last`.
    pub fn range_of(tag: &MatchTag) -> core::ops::RangeInclusive<Self> {
        let mut first = [0u8; RECORD_ID_LEN];
        first[..TAG_LEN].copy_from_slice(&tag.0);
        let mut last = [0xffu8; RECORD_ID_LEN];
        last[..TAG_LEN].copy_from_slice(&tag.0);
        Self(first)..=Self(last)
    }
}

impl core::fmt::Debug for RecordId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RecordId(<redacted>)")
    }
}

/// The match tag and record key of one PRF output.
pub struct RecordKeys {
    tag: MatchTag,
    key: Zeroizing<[u8; RECORD_KEY_LEN]>,
}

impl RecordKeys {
    /// `tag = SHA-512("cds-v2-match-tag" || output)[0..8]`,
    /// `key = SHA-512("cds-v2-record-key" || output)` (all 64 bytes).
    pub fn derive(output: &Output) -> Self {
        let t = Zeroizing::new(sha512(&[b"cds-v2-match-tag", output.as_bytes()]));
        let key = Zeroizing::new(sha512(&[b"cds-v2-record-key", output.as_bytes()]));
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&t[..TAG_LEN]);
        Self {
            tag: MatchTag(tag),
            key,
        }
    }

    /// Keys derived elsewhere (contacts-only pair records).
    pub(crate) fn from_parts(tag: [u8; TAG_LEN], key: Zeroizing<[u8; RECORD_KEY_LEN]>) -> Self {
        Self {
            tag: MatchTag(tag),
            key,
        }
    }

    /// The match tag.
    pub fn tag(&self) -> &MatchTag {
        &self.tag
    }

    fn cipher(&self) -> Aes256Siv {
        Aes256Siv::new((&*self.key).into())
    }

    /// Seal `label` into a record: AES-256-SIV under the record key, with
    /// the tag as the one associated-data string. Deterministic: the same
    /// label under the same keys gives the same record, and a changed label
    /// is safe to seal under the same keys (SIV needs no nonce).
    pub fn seal(&self, label: &Label) -> Record {
        let sealed = self
            .cipher()
            .encrypt([&self.tag.0[..]], label.as_bytes())
            .expect("AES-SIV with one associated-data string cannot fail");
        let mut bytes = Vec::with_capacity(HEADER_LEN + sealed.len());
        bytes.extend_from_slice(&self.tag.0);
        bytes.push(label.as_bytes().len() as u8);
        bytes.extend_from_slice(&sealed);
        Record(bytes.into_boxed_slice())
    }

    /// Open a record found under this tag. A record of another number that
    /// shares the tag fails here, like a forged or corrupt one.
    pub fn open(&self, record: RecordRef<'_>) -> Result<Label> {
        if record.tag() != self.tag {
            return Err(Error::RecordOpen);
        }
        let plain = self
            .cipher()
            .decrypt([&self.tag.0[..]], &record.0[HEADER_LEN..])
            .map_err(|_| Error::RecordOpen)?;
        Label::new(plain)
    }
}

impl core::fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RecordKeys(<redacted>)")
    }
}

/// An owned, encoded record.
#[derive(Clone, PartialEq, Eq)]
pub struct Record(Box<[u8]>);

impl Record {
    /// Borrow as a [`RecordRef`].
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef(&self.0)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Parse one owned record; the bytes must hold exactly one record.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (r, rest) = RecordRef::split_first(bytes)?;
        if !rest.is_empty() {
            return Err(Error::RecordEncoding("trailing bytes after the record"));
        }
        Ok(Self(r.0.into()))
    }
}

impl core::fmt::Debug for Record {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Record(<{} bytes>)", self.0.len())
    }
}

/// A borrowed, well-formed encoded record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a>(&'a [u8]);

impl<'a> RecordRef<'a> {
    /// The record's match tag.
    pub fn tag(&self) -> MatchTag {
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&self.0[..TAG_LEN]);
        MatchTag(t)
    }

    /// The record's id (its first 25 bytes): unique among distinct
    /// records, unlike the tag.
    pub fn id(&self) -> RecordId {
        let mut id = [0u8; RECORD_ID_LEN];
        id.copy_from_slice(&self.0[..RECORD_ID_LEN]);
        RecordId(id)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Split the first record off a packed list.
    fn split_first(packed: &'a [u8]) -> Result<(Self, &'a [u8])> {
        if packed.len() < HEADER_LEN {
            return Err(Error::RecordEncoding("truncated record header"));
        }
        let label_len = usize::from(packed[HEADER_LEN - 1]);
        if label_len > MAX_LABEL_LEN {
            return Err(Error::RecordEncoding("label length over 64"));
        }
        let total = record_len(label_len);
        if packed.len() < total {
            return Err(Error::RecordEncoding("truncated record body"));
        }
        let (r, rest) = packed.split_at(total);
        Ok((Self(r), rest))
    }

    /// Parse a packed list of records back to back.
    pub fn decode_packed(mut packed: &'a [u8]) -> Result<Vec<Self>> {
        let mut out = Vec::with_capacity(packed.len() / record_len(8));
        while !packed.is_empty() {
            let (r, rest) = Self::split_first(packed)?;
            out.push(r);
            packed = rest;
        }
        Ok(out)
    }
}

impl core::fmt::Debug for RecordRef<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RecordRef(<{} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(seed: u8) -> RecordKeys {
        RecordKeys::derive(&Output::from_bytes([seed; 64]))
    }

    fn label(bytes: &[u8]) -> Label {
        Label::new(bytes.to_vec()).expect("short")
    }

    #[test]
    fn sealed_label_opens_with_the_same_output_only() {
        let label = label(b"account-42");
        let rec = keys(1).seal(&label);
        assert_eq!(rec.as_bytes().len(), RECORD_OVERHEAD + 10);
        assert_eq!(keys(1).open(rec.as_ref()), Ok(label));
        assert_eq!(keys(2).open(rec.as_ref()), Err(Error::RecordOpen));
    }

    #[test]
    fn record_length_is_25_33_and_89_bytes_for_labels_of_0_8_and_64_bytes() {
        for (len, expected) in [(0, 25), (8, 33), (64, 89)] {
            let rec = keys(4).seal(&label(&vec![0x5a; len]));
            assert_eq!(rec.as_bytes().len(), expected, "{len}-byte label");
            assert_eq!(record_len(len), expected);
            assert_eq!(
                keys(4).open(rec.as_ref()).expect("opens").as_bytes().len(),
                len
            );
        }
        assert_eq!(MIN_RECORD_LEN, 25);
        assert_eq!(MAX_RECORD_LEN, 89);
    }

    #[test]
    fn tampered_record_does_not_open() {
        let rec = keys(1).seal(&label(b"x"));
        for at in HEADER_LEN..rec.as_bytes().len() {
            let mut bytes = rec.as_bytes().to_vec();
            bytes[at] ^= 1;
            let r = Record::from_bytes(&bytes).expect("well-formed");
            assert_eq!(
                keys(1).open(r.as_ref()),
                Err(Error::RecordOpen),
                "byte {at}"
            );
        }
    }

    #[test]
    fn a_record_of_another_key_under_the_same_tag_does_not_open() {
        // What a short tag allows: two numbers whose tags collide. The
        // record key tells them apart.
        let tag = *keys(1).tag().as_bytes();
        let mine = RecordKeys::from_parts(tag, Zeroizing::new([1; RECORD_KEY_LEN]));
        let theirs = RecordKeys::from_parts(tag, Zeroizing::new([2; RECORD_KEY_LEN]));
        let rec = theirs.seal(&label(b"theirs"));
        assert_eq!(rec.as_ref().tag(), *mine.tag());
        assert_eq!(mine.open(rec.as_ref()), Err(Error::RecordOpen));
        assert_eq!(theirs.open(rec.as_ref()), Ok(label(b"theirs")));
    }

    #[test]
    fn records_that_share_a_tag_have_distinct_ids_in_the_tags_range() {
        let tag = *keys(1).tag().as_bytes();
        let a = RecordKeys::from_parts(tag, Zeroizing::new([1; RECORD_KEY_LEN])).seal(&label(b"x"));
        let b = RecordKeys::from_parts(tag, Zeroizing::new([2; RECORD_KEY_LEN])).seal(&label(b"x"));
        assert_eq!(a.as_ref().tag(), b.as_ref().tag());
        assert_ne!(a.as_ref().id(), b.as_ref().id());
        let range = RecordId::range_of(&a.as_ref().tag());
        assert!(range.contains(&a.as_ref().id()) && range.contains(&b.as_ref().id()));
        assert!(!range.contains(&keys(2).seal(&label(b"x")).as_ref().id()));
        let id = a.as_ref().id();
        assert_eq!(id.as_bytes()[..], a.as_bytes()[..RECORD_ID_LEN]);
        assert_eq!(id.tag(), a.as_ref().tag());
        assert_eq!(RecordId::from_slice(id.as_bytes()), Ok(id));
        assert!(RecordId::from_slice(&id.as_bytes()[1..]).is_err());
        let mut long = *id.as_bytes();
        long[TAG_LEN] = 65;
        assert!(RecordId::from_slice(&long).is_err());
    }

    #[test]
    fn resealing_is_deterministic_and_a_changed_label_changes_the_whole_record_body() {
        let a = keys(3).seal(&label(b"same"));
        assert_eq!(a, keys(3).seal(&label(b"same")));
        let b = keys(3).seal(&label(b"samf"));
        assert_eq!(a.as_bytes()[..HEADER_LEN], b.as_bytes()[..HEADER_LEN]);
        // A new synthetic IV: the keystream differs too, so the one-byte
        // change of the label does not show as a one-byte change.
        assert_ne!(
            a.as_bytes()[HEADER_LEN..RECORD_OVERHEAD],
            b.as_bytes()[HEADER_LEN..RECORD_OVERHEAD]
        );
        assert_ne!(
            a.as_bytes()[RECORD_OVERHEAD..RECORD_OVERHEAD + 3],
            b.as_bytes()[RECORD_OVERHEAD..RECORD_OVERHEAD + 3]
        );
    }

    /// The worked example of docs/protocol.md §10, cross-checked with an
    /// independent RFC 5297 implementation (Python `cryptography`'s AESSIV).
    #[test]
    fn record_derivation_matches_the_specification_example() {
        let keys = keys(1);
        assert_eq!(
            keys.tag().as_bytes()[..],
            *b"\x61\x02\x81\x7d\xfd\xd5\x0c\x7e"
        );
        let rec = keys.seal(&label(b"alice-account"));
        let expected = concat!(
            "6102817dfdd50c7e",
            "0d",
            "35867703e5b64f22580159691a3ca986",
            "c615bcf254958e35a107b7404c"
        );
        let hex: String = rec.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn long_labels_are_rejected() {
        assert!(Label::new(vec![0u8; 65]).is_err());
        assert!(Label::new(vec![0u8; 64]).is_ok());
    }

    #[test]
    fn malformed_record_lists_are_refused_with_the_failing_check() {
        let rec = keys(1).seal(&label(b"12345678"));
        let b = rec.as_bytes();
        assert!(matches!(
            RecordRef::decode_packed(&b[..HEADER_LEN - 1]),
            Err(Error::RecordEncoding("truncated record header"))
        ));
        assert!(matches!(
            RecordRef::decode_packed(&b[..b.len() - 1]),
            Err(Error::RecordEncoding("truncated record body"))
        ));
        let mut long = b.to_vec();
        long[TAG_LEN] = 65;
        assert!(matches!(
            RecordRef::decode_packed(&long),
            Err(Error::RecordEncoding("label length over 64"))
        ));
        assert!(Record::from_bytes(&[b, &[0][..]].concat()).is_err());
        assert_eq!(RecordRef::decode_packed(&[]), Ok(vec![]));
    }

    proptest! {
        #[test]
        fn packed_records_round_trip(labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..=64), 0..8)) {
            let mut packed = Vec::new();
            for (i, l) in labels.iter().enumerate() {
                let rec = keys(i as u8).seal(&Label::new(l.clone()).expect("short"));
                prop_assert_eq!(rec.as_bytes().len(), record_len(l.len()));
                packed.extend_from_slice(rec.as_bytes());
            }
            let parsed = RecordRef::decode_packed(&packed).expect("well-formed");
            prop_assert_eq!(parsed.len(), labels.len());
            for (i, (r, l)) in parsed.iter().zip(&labels).enumerate() {
                let opened = keys(i as u8).open(*r).expect("opens");
                prop_assert_eq!(opened.as_bytes(), l.as_slice());
            }
        }

        #[test]
        fn record_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(v) = RecordRef::decode_packed(&bytes) {
                let joined: Vec<u8> = v.iter().flat_map(|r| r.as_bytes().iter().copied()).collect();
                prop_assert_eq!(&joined, &bytes);
                for r in &v {
                    let len = r.as_bytes().len();
                    prop_assert!((MIN_RECORD_LEN..=MAX_RECORD_LEN).contains(&len));
                    prop_assert_eq!(len, record_len(usize::from(r.as_bytes()[TAG_LEN])));
                    // Random bytes never open.
                    prop_assert_eq!(keys(9).open(*r), Err(Error::RecordOpen));
                }
            }
        }

        #[test]
        fn a_record_opens_only_under_its_own_keys(seed in any::<u8>(), other in any::<u8>(), l in proptest::collection::vec(any::<u8>(), 0..=64)) {
            prop_assume!(seed != other);
            let rec = keys(seed).seal(&Label::new(l).expect("short"));
            prop_assert_eq!(keys(other).open(rec.as_ref()), Err(Error::RecordOpen));
        }
    }
}
