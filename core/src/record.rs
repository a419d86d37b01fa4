//! Records: what the server publishes for each discoverable user, and what a
//! client that evaluated the user's number can find and open.
//!
//! From the PRF output of a number two values are derived: a 16-byte match
//! tag (how the client finds the record) and a 32-byte key that seals the
//! user's label with ChaCha20-Poly1305. Without the output, a record is a
//! random-looking string: neither the number nor the label can be read.
//!
//! Encoding of one record (all lengths in bytes):
//!
//! ```text
//! tag (16) || nonce (12) || label_len (1, 0..=64) || ciphertext (label_len + 16)
//! ```
//!
//! A packed record list is records back to back.

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::hash::sha512;
use crate::oprf::Output;

/// Size of a match tag.
pub const TAG_LEN: usize = 16;
/// Size of the AEAD nonce.
pub const NONCE_LEN: usize = 12;
/// Size of the AEAD authentication tag.
pub const AEAD_TAG_LEN: usize = 16;
/// The longest label a record can hold.
pub const MAX_LABEL_LEN: usize = 64;
/// Bytes of a record besides the label itself.
pub const RECORD_OVERHEAD: usize = TAG_LEN + NONCE_LEN + 1 + AEAD_TAG_LEN;
const HEADER_LEN: usize = TAG_LEN + NONCE_LEN + 1;

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

/// How a client finds the record of a number it evaluated: 16 bytes derived
/// from the PRF output.
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

/// The match tag and label key of one PRF output.
pub struct RecordKeys {
    tag: MatchTag,
    key: Zeroizing<[u8; 32]>,
}

impl RecordKeys {
    /// `tag = SHA-512("cds-v1-match-tag" || output)[0..16]`,
    /// `key = SHA-512("cds-v1-label-key" || output)[0..32]`.
    pub fn derive(output: &Output) -> Self {
        let t = Zeroizing::new(sha512(&[b"cds-v1-match-tag", output.as_bytes()]));
        let k = Zeroizing::new(sha512(&[b"cds-v1-label-key", output.as_bytes()]));
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&t[..TAG_LEN]);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&k[..32]);
        Self {
            tag: MatchTag(tag),
            key,
        }
    }

    /// Keys derived elsewhere (contacts-only pair records).
    pub(crate) fn from_parts(tag: [u8; TAG_LEN], key: Zeroizing<[u8; 32]>) -> Self {
        Self {
            tag: MatchTag(tag),
            key,
        }
    }

    /// The match tag.
    pub fn tag(&self) -> &MatchTag {
        &self.tag
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&(*self.key).into())
    }

    /// Seal `label` into a record, with a fresh random nonce (so a label
    /// changed within a key epoch never reuses a nonce under the same key).
    pub fn seal<R: CryptoRng + ?Sized>(&self, label: &Label, rng: &mut R) -> Record {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        self.seal_with_nonce(label, nonce)
    }

    fn seal_with_nonce(&self, label: &Label, nonce: [u8; NONCE_LEN]) -> Record {
        let ciphertext = self
            .cipher()
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: label.as_bytes(),
                    aad: &self.tag.0,
                },
            )
            .expect("ChaCha20-Poly1305 encryption of at most 64 bytes cannot fail");
        let mut bytes = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        bytes.extend_from_slice(&self.tag.0);
        bytes.extend_from_slice(&nonce);
        bytes.push(label.as_bytes().len() as u8);
        bytes.extend_from_slice(&ciphertext);
        Record(bytes.into_boxed_slice())
    }

    /// Open a record found under this tag.
    pub fn open(&self, record: RecordRef<'_>) -> Result<Label> {
        if record.tag() != self.tag {
            return Err(Error::RecordOpen);
        }
        let b = record.0;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&b[TAG_LEN..TAG_LEN + NONCE_LEN]);
        let plain = self
            .cipher()
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: &b[HEADER_LEN..],
                    aad: &self.tag.0,
                },
            )
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
        let total = HEADER_LEN + label_len + AEAD_TAG_LEN;
        if packed.len() < total {
            return Err(Error::RecordEncoding("truncated record body"));
        }
        let (r, rest) = packed.split_at(total);
        Ok((Self(r), rest))
    }

    /// Parse a packed list of records back to back.
    pub fn decode_packed(mut packed: &'a [u8]) -> Result<Vec<Self>> {
        let mut out = Vec::with_capacity(packed.len() / (RECORD_OVERHEAD + 16));
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

    #[test]
    fn sealed_label_opens_with_the_same_output_only() {
        let label = Label::new(b"account-42".to_vec()).expect("short");
        let rec = keys(1).seal(&label, &mut rand::rng());
        assert_eq!(rec.as_bytes().len(), RECORD_OVERHEAD + 10);
        assert_eq!(keys(1).open(rec.as_ref()), Ok(label));
        assert_eq!(keys(2).open(rec.as_ref()), Err(Error::RecordOpen));
    }

    #[test]
    fn tampered_record_does_not_open() {
        let label = Label::new(b"x".to_vec()).expect("short");
        let rec = keys(1).seal(&label, &mut rand::rng());
        let mut bytes = rec.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let r = Record::from_bytes(&bytes).expect("well-formed");
        assert_eq!(keys(1).open(r.as_ref()), Err(Error::RecordOpen));
    }

    #[test]
    fn resealing_uses_a_fresh_nonce() {
        let label = Label::new(b"same".to_vec()).expect("short");
        let a = keys(3).seal(&label, &mut rand::rng());
        let b = keys(3).seal(&label, &mut rand::rng());
        assert_ne!(a, b);
    }

    /// The worked example of docs/protocol.md §10.
    #[test]
    fn record_derivation_matches_the_specification_example() {
        let keys = keys(1);
        assert_eq!(
            keys.tag().as_bytes()[..],
            *b"\xf2\x64\x1c\x51\x28\x13\x5b\x29\x18\x8b\x39\x7d\x3a\x55\x4d\x8a"
        );
        let nonce = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        let rec = keys.seal_with_nonce(
            &Label::new(b"alice-account".to_vec()).expect("short"),
            nonce,
        );
        let expected = concat!(
            "f2641c5128135b29188b397d3a554d8a",
            "000102030405060708090a0b",
            "0d",
            "b652c56b9a722a32ff3a6e77c9",
            "e8c260b78f1ba582b05700295f9dda88"
        );
        let hex: String = rec.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn long_labels_are_rejected() {
        assert!(Label::new(vec![0u8; 65]).is_err());
        assert!(Label::new(vec![0u8; 64]).is_ok());
    }

    proptest! {
        #[test]
        fn packed_records_round_trip(labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..=64), 0..8)) {
            let mut packed = Vec::new();
            for (i, l) in labels.iter().enumerate() {
                let rec = keys(i as u8).seal(&Label::new(l.clone()).expect("short"), &mut rand::rng());
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
                prop_assert_eq!(joined, bytes);
            }
        }
    }
}
