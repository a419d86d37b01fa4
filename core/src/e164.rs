//! Phone numbers in canonical E.164 form, the only form the protocol hashes.
//!
//! This type checks syntax only (`+`, then 7 to 15 digits, the first not
//! zero). Turning what people type into E.164 is the client's job; checking a
//! number against the numbering plan is the backend's.

use crate::error::{Error, Result};

/// The fewest digits (country code included) a number may have.
pub const MIN_DIGITS: usize = 7;
/// The most digits E.164 allows.
pub const MAX_DIGITS: usize = 15;

/// A phone number in canonical E.164 form, such as `+14155550132`.
///
/// User data: its `Debug` output is redacted. Use [`E164::as_str`] where the
/// number must really be shown, never in logs.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164 {
    digits: u64,
    text: String,
}

impl E164 {
    /// Parse the canonical text form; anything else (spaces, dashes, a
    /// missing `+`, a leading zero) is rejected.
    pub fn parse(s: &str) -> Result<Self> {
        let digits = s.strip_prefix('+').ok_or(Error::InvalidE164)?;
        let len = digits.len();
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&len)
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err(Error::InvalidE164);
        }
        let value = digits.parse::<u64>().map_err(|_| Error::InvalidE164)?;
        Ok(Self {
            digits: value,
            text: s.to_owned(),
        })
    }

    /// Rebuild from the numeric value of the digits (as stored by the server).
    pub fn from_u64(value: u64) -> Result<Self> {
        Self::parse(&format!("+{value}"))
    }

    /// The digits as a number: a compact key for storage and maps.
    pub fn to_u64(&self) -> u64 {
        self.digits
    }

    /// The canonical text, `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The bytes that are the OPRF's private input.
    pub fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }
}

impl core::fmt::Debug for E164 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("E164(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_numbers_parse() {
        let n = E164::parse("+14155550132").expect("valid");
        assert_eq!(n.to_u64(), 14155550132);
        assert_eq!(n.as_str(), "+14155550132");
        assert_eq!(E164::from_u64(14155550132), Ok(n));
    }

    #[test]
    fn non_canonical_forms_are_rejected() {
        for bad in [
            "14155550132",
            "+1 415 555 0132",
            "+0123456789",
            "+123456",
            "+1234567890123456",
            "",
            "+",
            "+1415555013a",
            "++14155550132",
        ] {
            assert_eq!(E164::parse(bad), Err(Error::InvalidE164), "{bad:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_number() {
        let n = E164::parse("+14155550132").expect("valid");
        assert!(!format!("{n:?}").contains("415"));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in "\\PC{0,20}") {
            if let Ok(n) = E164::parse(&s) {
                prop_assert_eq!(n.as_str(), s.as_str());
                prop_assert_eq!(E164::from_u64(n.to_u64()), Ok(n));
            }
        }

        #[test]
        fn every_valid_number_parses(v in 1_000_000u64..=999_999_999_999_999u64) {
            let n = E164::from_u64(v).expect("in range");
            prop_assert_eq!(n.to_u64(), v);
        }
    }
}
