//! Account credentials: the messenger backend vouches for an account, the
//! cds server checks the voucher without a database and without being able
//! to mint one itself.
//!
//! The backend holds an Ed25519 signing key ([`CredentialIssuer`]); cds
//! holds only the matching public key ([`CredentialVerifier`]). A
//! credential names one account, when it was issued and when it expires.
//! It is sent as text:
//!
//! ```text
//! token     = base64url_nopad(body || signature)
//! body (v2) = version (1 byte, 0x02) || issued_at (8 bytes, big-endian Unix seconds)
//!             || expires_at (8 bytes, big-endian Unix seconds)
//!             || account_len (1 byte, 1..=64) || account (account_len bytes)
//! body (v1) = version (1 byte, 0x01) || expires_at (8 bytes, big-endian Unix seconds)
//!             || account_len (1 byte, 1..=64) || account (account_len bytes)
//! signature = Ed25519(issuer key, "cds-v1-credential" || body)   (64 bytes)
//! ```
//!
//! [`CredentialIssuer::issue`] writes version 2. The verifier enforces a
//! maximum lifetime, so that a stolen credential is usable for a bounded
//! time whatever the backend chose: a v2 credential is refused when
//! `expires_at - issued_at` exceeds the maximum, when it was issued in the
//! future (beyond [`CLOCK_SKEW_SECS`]) or expires before it was issued.
//! Version 1 carries no issue time; it is still accepted, but only while
//! `expires_at <= now + max_lifetime`, so its remaining validity is bounded
//! the same way.
//!
//! No clock is read here: callers pass the current time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// Longest account id a credential can carry.
pub const MAX_ACCOUNT_LEN: usize = 64;
/// Longest token text accepted (anything longer is refused unread).
pub const MAX_TOKEN_LEN: usize = 256;
/// Version 1: expiry only (still verified, no longer issued).
const VERSION_1: u8 = 1;
/// Version 2: issue time and expiry.
const VERSION_2: u8 = 2;
const DOMAIN: &[u8] = b"cds-v1-credential";
const SIGNATURE_LEN: usize = 64;
/// Clock skew tolerated between the issuer and the verifier, in seconds.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Why a credential was refused. Messages never contain the account id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The token is not a well-formed cds credential.
    #[error(
        "malformed credential: expected the token the messenger backend issued (base64url, version 1 or 2)"
    )]
    Malformed,
    /// The signature does not verify under the configured issuer key.
    #[error(
        "credential signature does not verify: it was not issued by this server's configured issuer"
    )]
    BadSignature,
    /// The credential's expiry has passed.
    #[error("credential expired: ask the messenger backend for a new one")]
    Expired,
    /// The credential is valid for longer than the verifier accepts: its
    /// lifetime (v2: `expires_at - issued_at`; v1: `expires_at - now`)
    /// exceeds `max_secs`.
    #[error(
        "credential valid for longer than this server accepts (at most {max_secs} s): ask the messenger backend for a credential that expires sooner"
    )]
    LifetimeTooLong {
        /// The longest lifetime accepted, in seconds.
        max_secs: u64,
    },
    /// The credential's issue time is later than now plus the clock skew.
    #[error(
        "credential issued in the future (more than 60 s ahead of this server's clock): check the clocks of the messenger backend and the server"
    )]
    IssuedInFuture,
    /// The credential expires before it was issued.
    #[error(
        "credential expires before it was issued: the messenger backend issued it wrongly; ask for a new one"
    )]
    ExpiresBeforeIssued,
    /// An account id is empty or longer than 64 bytes.
    #[error("account id must be 1 to 64 bytes")]
    AccountLength,
    /// A key is not a valid Ed25519 key encoding.
    #[error("not a valid Ed25519 public key")]
    InvalidKey,
}

/// An account, as named by a verified credential. User data: `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(Vec<u8>);

impl AccountId {
    /// Check the length and wrap the id.
    pub fn new(id: impl Into<Vec<u8>>) -> Result<Self, CredentialError> {
        let id = id.into();
        if id.is_empty() || id.len() > MAX_ACCOUNT_LEN {
            return Err(CredentialError::AccountLength);
        }
        Ok(Self(id))
    }

    /// The id bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl core::fmt::Debug for AccountId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AccountId(<redacted>)")
    }
}

/// The account a token names, read **without** checking its signature or
/// times: for a client that signs something bound to its own account (a
/// contacts-only upload), never for deciding who someone is.
pub fn unverified_account(token: &str) -> Result<AccountId, CredentialError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(CredentialError::Malformed);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| CredentialError::Malformed)?;
    Ok(AccountId(decode(&raw)?.account.to_vec()))
}

/// A verified credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The account it names.
    pub account: AccountId,
    /// Unix seconds at which it was issued; `None` for a version 1
    /// credential, which does not say.
    pub issued_at: Option<u64>,
    /// Unix seconds after which it is no longer accepted.
    pub expires_at: u64,
}

/// The signed body: version, times, account.
fn body(account: &AccountId, issued_at: Option<u64>, expires_at: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(18 + account.0.len());
    match issued_at {
        Some(issued_at) => {
            b.push(VERSION_2);
            b.extend_from_slice(&issued_at.to_be_bytes());
        }
        None => b.push(VERSION_1),
    }
    b.extend_from_slice(&expires_at.to_be_bytes());
    b.push(account.0.len() as u8);
    b.extend_from_slice(&account.0);
    b
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + body.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(body);
    m
}

fn be64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes);
    u64::from_be_bytes(b)
}

/// A token's fields, before its signature is checked.
struct Decoded<'a> {
    /// Everything the signature covers.
    body: &'a [u8],
    signature: &'a [u8],
    issued_at: Option<u64>,
    expires_at: u64,
    account: &'a [u8],
}

/// Split the raw token bytes into their fields, or `Malformed`.
fn decode(raw: &[u8]) -> Result<Decoded<'_>, CredentialError> {
    // Bytes before `account_len`: the version and the times.
    let times_end = match raw.first() {
        Some(&VERSION_1) => 1 + 8,
        Some(&VERSION_2) => 1 + 8 + 8,
        _ => return Err(CredentialError::Malformed),
    };
    let account_len = usize::from(*raw.get(times_end).ok_or(CredentialError::Malformed)?);
    let body_len = times_end + 1 + account_len;
    if account_len == 0 || account_len > MAX_ACCOUNT_LEN || raw.len() != body_len + SIGNATURE_LEN {
        return Err(CredentialError::Malformed);
    }
    let (body, signature) = raw.split_at(body_len);
    Ok(Decoded {
        body,
        signature,
        issued_at: (times_end == 17).then(|| be64(&body[1..9])),
        expires_at: be64(&body[times_end - 8..times_end]),
        account: &body[times_end + 1..],
    })
}

/// The time rules, checked after the signature (§6.1 of the protocol).
fn check_times(
    issued_at: Option<u64>,
    expires_at: u64,
    now: u64,
    max_lifetime_secs: u64,
) -> Result<(), CredentialError> {
    let too_long = CredentialError::LifetimeTooLong {
        max_secs: max_lifetime_secs,
    };
    match issued_at {
        Some(issued_at) => {
            let lifetime = expires_at
                .checked_sub(issued_at)
                .ok_or(CredentialError::ExpiresBeforeIssued)?;
            if lifetime > max_lifetime_secs {
                return Err(too_long);
            }
            if issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
                return Err(CredentialError::IssuedInFuture);
            }
        }
        // No issue time: bound what is left of its validity instead.
        None if expires_at > now.saturating_add(max_lifetime_secs) => return Err(too_long),
        None => {}
    }
    if now > expires_at.saturating_add(CLOCK_SKEW_SECS) {
        return Err(CredentialError::Expired);
    }
    Ok(())
}

/// The messenger backend's credential signing key. Wiped on drop; `Debug`
/// reveals nothing.
pub struct CredentialIssuer {
    key: SigningKey,
}

impl CredentialIssuer {
    /// A fresh random issuer key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// Rebuild from the 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The 32-byte seed, for storing the key. Handle with care.
    pub fn to_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The public key to configure on cds servers.
    pub fn verifier(&self) -> CredentialVerifier {
        CredentialVerifier {
            key: self.key.verifying_key(),
        }
    }

    /// Issue a version 2 credential for `account`, issued at `issued_at`
    /// and valid until `expires_at` (Unix seconds). Servers refuse it if
    /// `expires_at - issued_at` exceeds their maximum lifetime (7 days by
    /// default), or if `expires_at < issued_at`.
    pub fn issue(&self, account: &AccountId, issued_at: u64, expires_at: u64) -> String {
        self.sign(&body(account, Some(issued_at), expires_at))
    }

    /// Issue a version 1 credential (no issue time): only for tests of
    /// compatibility, through [`crate::dangerous`].
    pub(crate) fn issue_v1(&self, account: &AccountId, expires_at: u64) -> String {
        self.sign(&body(account, None, expires_at))
    }

    fn sign(&self, body: &[u8]) -> String {
        let sig = self.key.sign(&signed_message(body));
        let mut token = body.to_vec();
        token.extend_from_slice(&sig.to_bytes());
        URL_SAFE_NO_PAD.encode(token)
    }
}

impl core::fmt::Debug for CredentialIssuer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CredentialIssuer(<redacted>)")
    }
}

/// What a cds server holds: the issuer's public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredentialVerifier {
    key: VerifyingKey,
}

impl CredentialVerifier {
    /// Parse a 32-byte Ed25519 public key. Weak (small-order) keys are refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CredentialError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| CredentialError::InvalidKey)?;
        if key.is_weak() {
            return Err(CredentialError::InvalidKey);
        }
        Ok(Self { key })
    }

    /// The 32-byte public key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Verify `token` at time `now` (Unix seconds), accepting lifetimes of
    /// at most `max_lifetime_secs`. Strict Ed25519 verification: no
    /// malleable signatures, no small-order keys. Then, for version 2:
    /// `expires_at >= issued_at`, `expires_at - issued_at <=
    /// max_lifetime_secs`, `issued_at <= now + CLOCK_SKEW_SECS`; for
    /// version 1: `expires_at <= now + max_lifetime_secs`; for both,
    /// `now <= expires_at + CLOCK_SKEW_SECS`.
    pub fn verify(
        &self,
        token: &str,
        now: u64,
        max_lifetime_secs: u64,
    ) -> Result<Credential, CredentialError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(CredentialError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| CredentialError::Malformed)?;
        let decoded = decode(&raw)?;
        let sig =
            Signature::from_slice(decoded.signature).map_err(|_| CredentialError::Malformed)?;
        self.key
            .verify_strict(&signed_message(decoded.body), &sig)
            .map_err(|_| CredentialError::BadSignature)?;
        check_times(
            decoded.issued_at,
            decoded.expires_at,
            now,
            max_lifetime_secs,
        )?;
        Ok(Credential {
            account: AccountId(decoded.account.to_vec()),
            issued_at: decoded.issued_at,
            expires_at: decoded.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Maximum lifetime of these tests: one day.
    const MAX: u64 = 86_400;

    fn issuer() -> CredentialIssuer {
        CredentialIssuer::from_seed(&[5u8; 32])
    }

    fn account(s: &str) -> AccountId {
        AccountId::new(s.as_bytes().to_vec()).expect("valid")
    }

    fn verify(token: &str, now: u64) -> Result<Credential, CredentialError> {
        issuer().verifier().verify(token, now, MAX)
    }

    #[test]
    fn the_unverified_account_is_the_one_the_token_names() {
        let token = issuer().issue(&account("alice"), 500, 1_000);
        assert_eq!(unverified_account(&token), Ok(account("alice")));
        assert_eq!(unverified_account("!!"), Err(CredentialError::Malformed));
    }

    #[test]
    fn issued_credential_verifies_until_it_expires() {
        let token = issuer().issue(&account("alice"), 500, 1_000);
        let c = verify(&token, 900).expect("valid");
        assert_eq!(c.account, account("alice"));
        assert_eq!(c.issued_at, Some(500));
        assert_eq!(c.expires_at, 1_000);
        assert!(verify(&token, 1_000 + CLOCK_SKEW_SECS).is_ok());
        assert_eq!(
            verify(&token, 1_001 + CLOCK_SKEW_SECS),
            Err(CredentialError::Expired)
        );
    }

    #[test]
    fn a_lifetime_of_exactly_the_maximum_is_accepted_one_second_more_is_not() {
        let now = 10_000_000;
        let exact = issuer().issue(&account("alice"), now, now + MAX);
        assert!(verify(&exact, now).is_ok());
        let longer = issuer().issue(&account("alice"), now, now + MAX + 1);
        let refused = verify(&longer, now);
        assert_eq!(
            refused,
            Err(CredentialError::LifetimeTooLong { max_secs: MAX })
        );
        let message = refused.expect_err("refused").to_string();
        assert!(message.contains("86400 s"), "{message}");
        assert!(message.contains("ask the messenger backend"), "{message}");
        // Even long after issue, when little validity is left.
        assert_eq!(
            verify(&longer, now + MAX),
            Err(CredentialError::LifetimeTooLong { max_secs: MAX })
        );
        // A zero lifetime is a lifetime: valid within the skew.
        let instant = issuer().issue(&account("alice"), now, now);
        assert!(verify(&instant, now).is_ok());
    }

    #[test]
    fn issue_times_up_to_the_clock_skew_ahead_are_accepted_beyond_are_not() {
        let now = 10_000_000;
        let ahead = |secs: u64| issuer().issue(&account("alice"), now + secs, now + secs + 3_600);
        assert!(verify(&ahead(CLOCK_SKEW_SECS), now).is_ok());
        assert_eq!(
            verify(&ahead(CLOCK_SKEW_SECS + 1), now),
            Err(CredentialError::IssuedInFuture)
        );
        assert!(verify(&ahead(CLOCK_SKEW_SECS + 1), now + 1).is_ok());
    }

    #[test]
    fn a_credential_expiring_before_its_issue_is_refused() {
        let token = issuer().issue(&account("alice"), 1_000, 999);
        assert_eq!(
            verify(&token, 999),
            Err(CredentialError::ExpiresBeforeIssued)
        );
        assert!(verify(&issuer().issue(&account("alice"), 1_000, 1_000), 999).is_ok());
    }

    #[test]
    fn version_1_is_accepted_while_its_remaining_validity_is_within_the_maximum() {
        let now = 10_000_000;
        let v1 = |expires_at| {
            crate::dangerous::issue_v1_credential(&issuer(), &account("alice"), expires_at)
        };
        let c = verify(&v1(now + MAX), now).expect("exactly the maximum left");
        assert_eq!(c.issued_at, None);
        assert_eq!(c.expires_at, now + MAX);
        assert_eq!(c.account, account("alice"));
        assert_eq!(
            verify(&v1(now + MAX + 1), now),
            Err(CredentialError::LifetimeTooLong { max_secs: MAX })
        );
        // The same token becomes acceptable once enough of it has passed.
        assert!(verify(&v1(now + MAX + 1), now + 1).is_ok());
        assert!(verify(&v1(now), now + CLOCK_SKEW_SECS).is_ok());
        assert_eq!(
            verify(&v1(now), now + CLOCK_SKEW_SECS + 1),
            Err(CredentialError::Expired)
        );
    }

    #[test]
    fn versions_are_not_interchangeable() {
        // A v1 signature over the same account and expiry does not verify
        // once relabelled as v2, nor the reverse: the version is signed.
        let v2 = issuer().issue(&account("alice"), 0, 1_000);
        let mut raw = URL_SAFE_NO_PAD.decode(&v2).expect("base64");
        raw[0] = VERSION_1;
        assert!(verify(&URL_SAFE_NO_PAD.encode(&raw), 0).is_err());
        for version in [0u8, 3, 0xff] {
            raw[0] = version;
            assert_eq!(
                verify(&URL_SAFE_NO_PAD.encode(&raw), 0),
                Err(CredentialError::Malformed)
            );
        }
    }

    #[test]
    fn credential_from_another_issuer_is_refused() {
        let other = CredentialIssuer::from_seed(&[6u8; 32]);
        let token = other.issue(&account("alice"), 0, 1_000);
        assert_eq!(verify(&token, 0), Err(CredentialError::BadSignature));
    }

    #[test]
    fn changing_the_account_breaks_the_signature() {
        let token = issuer().issue(&account("alice"), 0, 1_000);
        let mut raw = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        raw[18] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(verify(&forged, 0), Err(CredentialError::BadSignature));
    }

    #[test]
    fn errors_do_not_name_the_account() {
        for e in [
            CredentialError::Malformed,
            CredentialError::BadSignature,
            CredentialError::Expired,
            CredentialError::LifetimeTooLong { max_secs: MAX },
            CredentialError::IssuedInFuture,
            CredentialError::ExpiresBeforeIssued,
        ] {
            assert!(!e.to_string().contains("alice"));
        }
        assert!(!format!("{:?}", account("alice")).contains("alice"));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The worked example of docs/protocol.md §10, version 1.
    #[test]
    fn token_matches_the_specification_example() {
        let issuer = CredentialIssuer::from_seed(&[7u8; 32]);
        assert_eq!(
            hex(&issuer.verifier().to_bytes()),
            "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        );
        let token =
            crate::dangerous::issue_v1_credential(&issuer, &account("alice"), 1_893_456_000);
        assert_eq!(
            token,
            "AQAAAABw29iABWFsaWNlJCu25Jf6OdO__lidbnb3I1qHpXEXUPi0kTS2XViry6IRg_0x8johWvXj2NxCS7q06i11jZM5t-OPlsS-ENQsDQ"
        );
        // Within 7 days of its expiry it is accepted, until 60 s after it.
        let week = 7 * 86_400;
        let verify = |now| issuer.verifier().verify(&token, now, week);
        assert!(verify(1_893_456_000 - week).is_ok());
        assert_eq!(
            verify(1_893_456_000 - week - 1),
            Err(CredentialError::LifetimeTooLong { max_secs: week })
        );
        assert!(verify(1_893_456_060).is_ok());
        assert_eq!(verify(1_893_456_061), Err(CredentialError::Expired));
    }

    /// The worked example of docs/protocol.md §10, version 2.
    #[test]
    fn version_2_token_matches_the_specification_example() {
        let issuer = CredentialIssuer::from_seed(&[7u8; 32]);
        let (issued_at, expires_at) = (1_893_369_600, 1_893_456_000);
        let token = issuer.issue(&account("alice"), issued_at, expires_at);
        let raw = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        assert_eq!(
            hex(&raw[..23]),
            "020000000070da87000000000070dbd88005616c696365"
        );
        assert_eq!(
            hex(&raw[23..]),
            "abfe63b17a1b9e9b4bb95167e8fcb62fc0ae223bc4dbdeab47c64f23af029c9d\
             ea4a844fcbef76ef3eba806559218b8df050a0fff8e2d1292d0a28594e33e00c"
        );
        assert_eq!(
            token,
            "AgAAAABw2ocAAAAAAHDb2IAFYWxpY2Wr_mOxehuem0u5UWfo_LYvwK4iO8Tb3qtHxk8jrwKcnepKhE_L73bvPrqAZVkhi43wUKD_-OLRKS0KKFlOM-AM"
        );
        let week = 7 * 86_400;
        let verify = |now| issuer.verifier().verify(&token, now, week);
        let c = verify(issued_at).expect("valid");
        assert_eq!(c.issued_at, Some(issued_at));
        assert_eq!(c.expires_at, expires_at);
        assert!(verify(issued_at - 60).is_ok());
        assert_eq!(verify(issued_at - 61), Err(CredentialError::IssuedInFuture));
        assert!(verify(1_893_456_060).is_ok());
        assert_eq!(verify(1_893_456_061), Err(CredentialError::Expired));
        assert_eq!(
            issuer.verifier().verify(&token, issued_at, 86_399),
            Err(CredentialError::LifetimeTooLong { max_secs: 86_399 })
        );
    }

    #[test]
    fn account_ids_are_one_to_sixty_four_bytes() {
        assert!(AccountId::new(Vec::new()).is_err());
        assert!(AccountId::new(vec![1u8; 65]).is_err());
        assert!(AccountId::new(vec![1u8; 64]).is_ok());
    }

    proptest! {
        #[test]
        fn token_decoding_never_panics_and_never_accepts_noise(s in "\\PC{0,300}") {
            prop_assert!(verify(&s, 0).is_err());
        }

        #[test]
        fn decoding_any_bytes_never_panics_and_never_accepts_them(
            version in prop_oneof![Just(VERSION_1), Just(VERSION_2), any::<u8>()],
            rest in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut raw = vec![version];
            raw.extend_from_slice(&rest);
            prop_assert!(verify(&URL_SAFE_NO_PAD.encode(&raw), 0).is_err());
        }

        #[test]
        fn well_shaped_tokens_with_made_up_signatures_are_refused(
            v2 in any::<bool>(),
            times in any::<[u8; 16]>(),
            id in proptest::collection::vec(any::<u8>(), 1..=MAX_ACCOUNT_LEN),
            signature in any::<[u8; 64]>(),
        ) {
            let mut raw = vec![if v2 { VERSION_2 } else { VERSION_1 }];
            raw.extend_from_slice(&times[..if v2 { 16 } else { 8 }]);
            raw.push(id.len() as u8);
            raw.extend_from_slice(&id);
            raw.extend_from_slice(&signature);
            let refused = verify(&URL_SAFE_NO_PAD.encode(&raw), 0);
            prop_assert!(
                matches!(refused, Err(CredentialError::BadSignature | CredentialError::Malformed)),
                "{:?}", refused
            );
        }

        #[test]
        fn issued_tokens_round_trip(
            id in proptest::collection::vec(any::<u8>(), 1..=MAX_ACCOUNT_LEN),
            issued_at in 0u64..=u64::MAX / 2,
            lifetime in 0u64..=MAX,
            elapsed in 0u64..=MAX,
        ) {
            let account = AccountId::new(id).expect("1 to 64 bytes");
            let expires_at = issued_at + lifetime;
            let token = issuer().issue(&account, issued_at, expires_at);
            prop_assert!(token.len() <= MAX_TOKEN_LEN);
            let now = issued_at + elapsed.min(lifetime);
            let c = verify(&token, now).expect("valid");
            prop_assert_eq!(c, Credential { account: account.clone(), issued_at: Some(issued_at), expires_at });
            let v1 = crate::dangerous::issue_v1_credential(&issuer(), &account, expires_at);
            let c = verify(&v1, now).expect("valid");
            prop_assert_eq!(c, Credential { account, issued_at: None, expires_at });
        }

        #[test]
        fn flipping_any_bit_invalidates_a_token(bit in 0usize..(8 * (18 + 5 + 64))) {
            let token = issuer().issue(&account("alice"), 0, 1_000);
            let mut raw = URL_SAFE_NO_PAD.decode(&token).expect("base64");
            raw[bit / 8] ^= 1 << (bit % 8);
            let tampered = URL_SAFE_NO_PAD.encode(raw);
            prop_assert!(verify(&tampered, 0).is_err());
        }
    }
}
