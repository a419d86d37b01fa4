//! Server profiles: what an app trusts about its cds server, compiled in.
//!
//! Without a profile a client believes whatever `GetConfig` announces: any
//! public key, and any bucket bits, which in contacts-only mode is how many
//! bits of each contact the server learns. A [`ServerProfile`] fixes the
//! suite, lists the public keys the app accepts (the current one and the
//! next one or more the operator has announced, so a key rotation does not
//! break the app) and caps the bucket bits.
//!
//! The text form is one line an app can embed:
//!
//! ```text
//! cds-profile-v1:<base64url, no padding, of the bytes below>
//!
//! version (1 byte, 0x01) || max_bucket_bits (1 byte, 0..=24)
//!     || key_count (1 byte, 1..=4) || keys (32 bytes each, key_count of them)
//! ```
//!
//! Version 1 means the suite ristretto255-SHA512 (RFC 9497 VOPRF); another
//! suite will get another version. Every key is a canonical ristretto255
//! encoding, not the identity, and no key is listed twice.
//!
//! ```
//! use cds_core::{BucketBits, KeyPair, ServerProfile};
//!
//! let current = *KeyPair::generate(&mut rand::rng()).public();
//! let next = *KeyPair::generate(&mut rand::rng()).public();
//! let profile = ServerProfile::new([current, next], BucketBits::new(8)?)?;
//! let text = profile.to_string();
//! assert!(text.starts_with("cds-profile-v1:"));
//! let parsed: ServerProfile = text.parse()?;
//! assert_eq!(parsed, profile);
//! assert!(parsed.accepts(&next));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::bucket::{BucketBits, MAX_BUCKET_BITS};
use crate::error::Error;
use crate::group::PublicKey;
use crate::suite::ELEMENT_LEN;

/// The text every profile starts with.
pub const PROFILE_PREFIX: &str = "cds-profile-v1:";

/// The version byte of the profiles this crate reads and writes.
pub const PROFILE_VERSION: u8 = 1;

/// The most public keys one profile lists (the current key and up to three
/// announced ones).
pub const MAX_PROFILE_KEYS: usize = 4;

/// Bytes before the keys: version, max bucket bits, key count.
const HEADER_LEN: usize = 3;

/// The longest profile text: the prefix and the base64url of four keys.
const MAX_TEXT_LEN: usize =
    PROFILE_PREFIX.len() + (HEADER_LEN + MAX_PROFILE_KEYS * ELEMENT_LEN).div_ceil(3) * 4;

/// The ciphersuite a profile names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// RFC 9497 VOPRF (mode 1) with ristretto255-SHA512: the suite of cds v1.
    Ristretto255Sha512,
}

impl Suite {
    /// The name `GetConfig` announces for this suite (RFC 9497 §4.1).
    pub fn name(self) -> &'static str {
        match self {
            Suite::Ristretto255Sha512 => "ristretto255-SHA512",
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a profile was refused. Each message says what to do; a profile is
/// public data, but no message repeats the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The text does not start with [`PROFILE_PREFIX`].
    #[error(
        "not a cds server profile: it must start with `cds-profile-v1:`; copy the whole line `cds admin profile` printed"
    )]
    Prefix,
    /// The text is longer than any profile can be.
    #[error(
        "the server profile is too long ({len} characters, at most {max}): copy the line `cds admin profile` printed, nothing more"
    )]
    TooLong {
        /// Characters given (after the surrounding whitespace).
        len: usize,
        /// The longest valid profile.
        max: usize,
    },
    /// What follows the prefix is not base64url without padding.
    #[error(
        "the server profile is not base64url without padding after `cds-profile-v1:`: copy it unchanged, without quotes or line breaks"
    )]
    Encoding,
    /// The bytes end before the header or a key is complete.
    #[error(
        "the server profile is cut short ({len} bytes, at least {needed} needed): copy the whole line again"
    )]
    Truncated {
        /// Bytes decoded.
        len: usize,
        /// Bytes the header and the announced keys need.
        needed: usize,
    },
    /// The version byte is not [`PROFILE_VERSION`].
    #[error(
        "server profile version {0} is not supported: this app reads version 1; update the app, or produce a version 1 profile"
    )]
    Version(u8),
    /// The ceiling on bucket bits is above [`MAX_BUCKET_BITS`].
    #[error(
        "the server profile allows {bits} bucket bits, more than the protocol's {max}: produce the profile again with `cds admin profile --max-bucket-bits N`"
    )]
    BucketBits {
        /// The value found.
        bits: u8,
        /// The largest valid value.
        max: u8,
    },
    /// The profile lists no key.
    #[error(
        "the server profile lists no public key: a profile needs the server's current key; produce it again with `cds admin profile`"
    )]
    NoKeys,
    /// The profile lists more keys than [`MAX_PROFILE_KEYS`].
    #[error(
        "the server profile lists {count} public keys, at most {max} are allowed: keep the current key and the announced next ones"
    )]
    TooManyKeys {
        /// Keys listed.
        count: usize,
        /// The most allowed.
        max: usize,
    },
    /// A key is not a canonical ristretto255 encoding.
    #[error(
        "public key {index} of the server profile is not a canonical ristretto255 element: the profile is corrupt; produce it again with `cds admin profile`"
    )]
    InvalidKey {
        /// Its position, from 0.
        index: usize,
    },
    /// A key is the identity element, which no server key can be.
    #[error(
        "public key {index} of the server profile is the identity element, which is never a server key: the profile is corrupt; produce it again"
    )]
    IdentityKey {
        /// Its position, from 0.
        index: usize,
    },
    /// A key is listed twice.
    #[error("public key {index} of the server profile repeats an earlier one: list each key once")]
    DuplicateKey {
        /// The position of the repeat, from 0.
        index: usize,
    },
    /// Bytes follow the last key.
    #[error(
        "the server profile has {extra} bytes after its last key: it is corrupt or not version 1; copy it again"
    )]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

/// What an app trusts about its cds server: the suite, the public keys it
/// accepts (1 to [`MAX_PROFILE_KEYS`], each distinct), and the most bucket
/// bits it lets the server announce. Built only by [`ServerProfile::new`] or
/// by parsing, so every value is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerProfile {
    suite: Suite,
    keys: Vec<PublicKey>,
    max_bucket_bits: BucketBits,
}

impl ServerProfile {
    /// A profile of the v1 suite accepting `keys` (in this order), with
    /// `max_bucket_bits` as the ceiling. Refuses no key, more than
    /// [`MAX_PROFILE_KEYS`], or a key listed twice.
    pub fn new(
        keys: impl IntoIterator<Item = PublicKey>,
        max_bucket_bits: BucketBits,
    ) -> Result<Self, ProfileError> {
        let keys: Vec<PublicKey> = keys.into_iter().collect();
        check_count(keys.len())?;
        if let Some(index) = first_duplicate(&keys) {
            return Err(ProfileError::DuplicateKey { index });
        }
        Ok(Self {
            suite: Suite::Ristretto255Sha512,
            keys,
            max_bucket_bits,
        })
    }

    /// A profile accepting `key` only (what pinning one key means).
    pub fn one_key(key: PublicKey, max_bucket_bits: BucketBits) -> Self {
        Self {
            suite: Suite::Ristretto255Sha512,
            keys: vec![key],
            max_bucket_bits,
        }
    }

    /// Parse the text form (`cds-profile-v1:` and base64url). Whitespace
    /// around it is ignored; nothing else is.
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let text = text.trim();
        if text.len() > MAX_TEXT_LEN {
            return Err(ProfileError::TooLong {
                len: text.chars().count(),
                max: MAX_TEXT_LEN,
            });
        }
        let body = text
            .strip_prefix(PROFILE_PREFIX)
            .ok_or(ProfileError::Prefix)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| ProfileError::Encoding)?;
        Self::from_bytes(&bytes)
    }

    /// Parse the binary form (what the text form encodes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProfileError> {
        let [version, bits, count, rest @ ..] = bytes else {
            return Err(ProfileError::Truncated {
                len: bytes.len(),
                needed: HEADER_LEN,
            });
        };
        if *version != PROFILE_VERSION {
            return Err(ProfileError::Version(*version));
        }
        let max_bucket_bits = BucketBits::new(*bits).map_err(|_| ProfileError::BucketBits {
            bits: *bits,
            max: MAX_BUCKET_BITS,
        })?;
        let count = usize::from(*count);
        check_count(count)?;
        let needed = count * ELEMENT_LEN;
        if rest.len() < needed {
            return Err(ProfileError::Truncated {
                len: bytes.len(),
                needed: HEADER_LEN + needed,
            });
        }
        if rest.len() > needed {
            return Err(ProfileError::TrailingBytes {
                extra: rest.len() - needed,
            });
        }
        let keys = rest
            .chunks_exact(ELEMENT_LEN)
            .enumerate()
            .map(|(index, k)| {
                PublicKey::from_slice(k).map_err(|e| match e {
                    Error::IdentityElement => ProfileError::IdentityKey { index },
                    _ => ProfileError::InvalidKey { index },
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys, max_bucket_bits)
    }

    /// The binary form: `version || max_bucket_bits || key_count || keys`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.keys.len() * ELEMENT_LEN);
        out.push(PROFILE_VERSION);
        out.push(self.max_bucket_bits.get());
        // At most MAX_PROFILE_KEYS, checked at construction.
        out.push(self.keys.len() as u8);
        for k in &self.keys {
            out.extend_from_slice(k.as_bytes());
        }
        out
    }

    /// The suite the server must announce.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The accepted public keys, in the profile's order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Whether `key` is one of the accepted public keys.
    pub fn accepts(&self, key: &PublicKey) -> bool {
        self.keys.contains(key)
    }

    /// The most bucket bits the server may announce.
    pub fn max_bucket_bits(&self) -> BucketBits {
        self.max_bucket_bits
    }
}

fn check_count(count: usize) -> Result<(), ProfileError> {
    match count {
        0 => Err(ProfileError::NoKeys),
        n if n > MAX_PROFILE_KEYS => Err(ProfileError::TooManyKeys {
            count: n,
            max: MAX_PROFILE_KEYS,
        }),
        _ => Ok(()),
    }
}

fn first_duplicate(keys: &[PublicKey]) -> Option<usize> {
    (1..keys.len()).find(|&i| keys[..i].contains(&keys[i]))
}

impl fmt::Display for ServerProfile {
    /// The text form: `cds-profile-v1:` and the base64url of the bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PROFILE_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.to_bytes())
        )
    }
}

impl FromStr for ServerProfile {
    type Err = ProfileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyPair;
    use crate::suite::IDENTIFIER;

    fn key(hex_key: &str) -> PublicKey {
        PublicKey::from_slice(&hex::decode(hex_key).expect("hex")).expect("canonical")
    }

    /// The RFC 9497 A.1.2 VOPRF public key and cds's specification example key
    /// (docs/protocol.md §10).
    const RFC_KEY: &str = "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e";
    const CDS_KEY: &str = "2c851d795bc12f994e2e9c4d21ea98ed7300fe673a446a2e272c47212ebfb875";

    fn bits(b: u8) -> BucketBits {
        BucketBits::new(b).expect("valid")
    }

    fn encode(bytes: &[u8]) -> String {
        format!("{PROFILE_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    fn valid_bytes() -> Vec<u8> {
        let mut b = vec![1, 8, 2];
        b.extend(hex::decode(CDS_KEY).expect("hex"));
        b.extend(hex::decode(RFC_KEY).expect("hex"));
        b
    }

    #[test]
    fn text_form_is_pinned() {
        // python3: "cds-profile-v1:" + base64.urlsafe_b64encode(bytes([1, 8, 1]) + pk).rstrip(b"=")
        let p = ServerProfile::new([key(CDS_KEY)], bits(8)).expect("valid");
        assert_eq!(p.to_string(), KNOWN_ONE_KEY);
        let two = ServerProfile::from_bytes(&valid_bytes()).expect("valid");
        assert_eq!(two.to_string(), KNOWN_TWO_KEYS);
        assert_eq!(two.keys(), [key(CDS_KEY), key(RFC_KEY)]);
        assert_eq!(two.max_bucket_bits(), bits(8));
        assert_eq!(two.suite(), Suite::Ristretto255Sha512);
        assert_eq!(two.suite().name().as_bytes(), IDENTIFIER);
    }
    const KNOWN_ONE_KEY: &str = "cds-profile-v1:AQgBLIUdeVvBL5lOLpxNIeqY7XMA_mc6RGouJyxHIS6_uHU";
    const KNOWN_TWO_KEYS: &str = "cds-profile-v1:AQgCLIUdeVvBL5lOLpxNIeqY7XMA_mc6RGouJyxHIS6_uHXIA-LMawX8FQZFSbWSBlnKSneyzKbwT2s1cAkzVHatTg";

    #[test]
    fn round_trips_through_text_and_bytes() {
        let keys: Vec<PublicKey> = (0..4)
            .map(|_| *KeyPair::generate(&mut rand::rng()).public())
            .collect();
        for n in 1..=4 {
            for b in [0, 16, MAX_BUCKET_BITS] {
                let p = ServerProfile::new(keys[..n].iter().copied(), bits(b)).expect("valid");
                assert_eq!(ServerProfile::parse(&p.to_string()), Ok(p.clone()));
                assert_eq!(ServerProfile::from_bytes(&p.to_bytes()), Ok(p.clone()));
                assert!(keys[..n].iter().all(|k| p.accepts(k)));
                assert_eq!(p.accepts(&keys[3]), n == 4);
            }
        }
    }

    #[test]
    fn surrounding_whitespace_is_ignored_and_nothing_else() {
        let text = format!("  {KNOWN_ONE_KEY}\n");
        assert!(ServerProfile::parse(&text).is_ok());
        let inner = KNOWN_ONE_KEY.replacen(':', ": ", 1);
        assert_eq!(ServerProfile::parse(&inner), Err(ProfileError::Encoding));
    }

    #[test]
    fn each_defect_has_its_own_error() {
        let good = valid_bytes();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            ServerProfile::parse(&encode(&b))
        };
        assert_eq!(
            ServerProfile::parse(&KNOWN_ONE_KEY.replace("v1", "v2")),
            Err(ProfileError::Prefix)
        );
        assert_eq!(ServerProfile::parse(""), Err(ProfileError::Prefix));
        assert_eq!(
            ServerProfile::parse(&format!("{KNOWN_ONE_KEY}=")),
            Err(ProfileError::Encoding)
        );
        assert_eq!(
            ServerProfile::parse(&KNOWN_ONE_KEY.replace('_', "/")),
            Err(ProfileError::Encoding)
        );
        assert!(matches!(
            ServerProfile::parse(&format!("{KNOWN_TWO_KEYS}{}", "A".repeat(200))),
            Err(ProfileError::TooLong { .. })
        ));
        assert_eq!(
            with(&|b| b.truncate(2)),
            Err(ProfileError::Truncated { len: 2, needed: 3 })
        );
        assert_eq!(with(&|b| b[0] = 2), Err(ProfileError::Version(2)));
        assert_eq!(with(&|b| b[0] = 0), Err(ProfileError::Version(0)));
        assert_eq!(
            with(&|b| b[1] = 25),
            Err(ProfileError::BucketBits { bits: 25, max: 24 })
        );
        assert_eq!(
            with(&|b| {
                b[2] = 0;
                b.truncate(3)
            }),
            Err(ProfileError::NoKeys)
        );
        assert_eq!(
            with(&|b| b[2] = 5),
            Err(ProfileError::TooManyKeys { count: 5, max: 4 })
        );
        assert_eq!(
            with(&|b| b[2] = 3),
            Err(ProfileError::Truncated {
                len: 67,
                needed: 99
            })
        );
        assert_eq!(
            with(&|b| b.truncate(66)),
            Err(ProfileError::Truncated {
                len: 66,
                needed: 67
            })
        );
        assert_eq!(
            with(&|b| b.push(0)),
            Err(ProfileError::TrailingBytes { extra: 1 })
        );
        assert_eq!(
            with(&|b| b[2] = 1),
            Err(ProfileError::TrailingBytes { extra: 32 })
        );
        assert_eq!(
            with(&|b| b[35..67].fill(0)),
            Err(ProfileError::IdentityKey { index: 1 })
        );
        // 2^255 - 1 is not a canonical field element.
        assert_eq!(
            with(&|b| {
                b[3..35].fill(0xff);
                b[34] = 0x7f
            }),
            Err(ProfileError::InvalidKey { index: 0 })
        );
        assert_eq!(
            with(&|b| {
                let first = b[3..35].to_vec();
                b[35..67].copy_from_slice(&first)
            }),
            Err(ProfileError::DuplicateKey { index: 1 })
        );
    }

    #[test]
    fn construction_checks_what_parsing_checks() {
        let k = key(CDS_KEY);
        assert_eq!(
            ServerProfile::one_key(k, bits(8)).to_string(),
            KNOWN_ONE_KEY
        );
        assert_eq!(ServerProfile::new([], bits(8)), Err(ProfileError::NoKeys));
        assert_eq!(
            ServerProfile::new([k, k], bits(8)),
            Err(ProfileError::DuplicateKey { index: 1 })
        );
        let five: Vec<PublicKey> = (0..5)
            .map(|_| *KeyPair::generate(&mut rand::rng()).public())
            .collect();
        assert_eq!(
            ServerProfile::new(five, bits(8)),
            Err(ProfileError::TooManyKeys { count: 5, max: 4 })
        );
    }

    #[test]
    fn messages_say_what_to_do() {
        for e in [
            ProfileError::Prefix,
            ProfileError::Encoding,
            ProfileError::NoKeys,
            ProfileError::Version(2),
            ProfileError::DuplicateKey { index: 1 },
        ] {
            let m = e.to_string();
            assert!(
                ["copy", "produce", "update", "list each"]
                    .iter()
                    .any(|w| m.contains(w)),
                "{m}"
            );
        }
    }

    mod decoder {
        use super::*;
        use proptest::prelude::*;

        fn arb_profile() -> impl Strategy<Value = ServerProfile> {
            (
                proptest::collection::vec(any::<[u8; 64]>(), 1..=MAX_PROFILE_KEYS),
                0..=MAX_BUCKET_BITS,
            )
                .prop_filter_map("distinct keys", |(seeds, b)| {
                    let keys = seeds.iter().map(|s| {
                        let point = curve25519_dalek::RistrettoPoint::from_uniform_bytes(s);
                        PublicKey::from_slice(point.compress().as_bytes())
                    });
                    let keys: Vec<PublicKey> = keys.collect::<Result<_, _>>().ok()?;
                    ServerProfile::new(keys, BucketBits::new(b).ok()?).ok()
                })
        }

        proptest! {
            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
                let _ = ServerProfile::parse(&text);
            }

            #[test]
            fn arbitrary_bytes_never_panic_and_valid_ones_round_trip(
                bytes in proptest::collection::vec(any::<u8>(), 0..160)
            ) {
                if let Ok(p) = ServerProfile::from_bytes(&bytes) {
                    prop_assert_eq!(p.to_bytes(), bytes.clone());
                }
                if let Ok(p) = ServerProfile::parse(&encode(&bytes)) {
                    prop_assert_eq!(p.to_bytes(), bytes);
                }
            }

            #[test]
            fn near_valid_bytes_never_panic(
                header in (0u8..3, 0u8..30, 0u8..6),
                keys in proptest::collection::vec(any::<[u8; 32]>(), 0..6),
                extra in proptest::collection::vec(any::<u8>(), 0..3),
            ) {
                let mut bytes = vec![header.0, header.1, header.2];
                for k in &keys {
                    bytes.extend_from_slice(k);
                }
                bytes.extend(extra);
                if let Ok(p) = ServerProfile::parse(&encode(&bytes)) {
                    prop_assert_eq!(p.to_bytes(), bytes);
                }
            }

            #[test]
            fn valid_profiles_round_trip(p in arb_profile()) {
                let text = p.to_string();
                prop_assert!(text.len() <= MAX_TEXT_LEN);
                prop_assert_eq!(ServerProfile::parse(&text), Ok(p.clone()));
                prop_assert_eq!(ServerProfile::from_bytes(&p.to_bytes()), Ok(p));
            }
        }
    }
}
