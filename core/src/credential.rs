//! Account credentials: the messenger backend vouches for an account, the
//! cds server checks the voucher without a database and without being able
//! to mint one itself.
//!
//! The backend holds an Ed25519 signing key ([`CredentialIssuer`]); cds
//! holds only the matching public key ([`CredentialVerifier`]). A
//! credential names one account and an expiry. It is sent as text:
//!
//! ```text
//! token   = base64url_nopad(body || signature)
//! body    = version (1 byte, 0x01) || expires_at (8 bytes, big-endian Unix seconds)
//!           || account_len (1 byte, 1..=64) || account (account_len bytes)
//! signature = Ed25519(issuer key, "cds-v1-credential" || body)   (64 bytes)
//! ```
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
const VERSION: u8 = 1;
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
        "malformed credential: expected the token the messenger backend issued (base64url, version 1)"
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

/// A verified credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The account it names.
    pub account: AccountId,
    /// Unix seconds after which it is no longer accepted.
    pub expires_at: u64,
}

fn body(account: &AccountId, expires_at: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(10 + account.0.len());
    b.push(VERSION);
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

    /// Issue a credential for `account`, valid until `expires_at` (Unix seconds).
    pub fn issue(&self, account: &AccountId, expires_at: u64) -> String {
        let body = body(account, expires_at);
        let sig = self.key.sign(&signed_message(&body));
        let mut token = body;
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

    /// Verify `token` at time `now` (Unix seconds). Strict Ed25519
    /// verification: no malleable signatures, no small-order keys.
    pub fn verify(&self, token: &str, now: u64) -> Result<Credential, CredentialError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(CredentialError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| CredentialError::Malformed)?;
        if raw.len() < 10 + 1 + SIGNATURE_LEN || raw[0] != VERSION {
            return Err(CredentialError::Malformed);
        }
        let account_len = usize::from(raw[9]);
        if account_len == 0
            || account_len > MAX_ACCOUNT_LEN
            || raw.len() != 10 + account_len + SIGNATURE_LEN
        {
            return Err(CredentialError::Malformed);
        }
        let (body, sig) = raw.split_at(10 + account_len);
        let sig = Signature::from_slice(sig).map_err(|_| CredentialError::Malformed)?;
        self.key
            .verify_strict(&signed_message(body), &sig)
            .map_err(|_| CredentialError::BadSignature)?;
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&body[1..9]);
        let expires_at = u64::from_be_bytes(expiry);
        if now > expires_at.saturating_add(CLOCK_SKEW_SECS) {
            return Err(CredentialError::Expired);
        }
        Ok(Credential {
            account: AccountId(body[10..].to_vec()),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn issuer() -> CredentialIssuer {
        CredentialIssuer::from_seed(&[5u8; 32])
    }

    fn account(s: &str) -> AccountId {
        AccountId::new(s.as_bytes().to_vec()).expect("valid")
    }

    #[test]
    fn issued_credential_verifies_until_it_expires() {
        let token = issuer().issue(&account("alice"), 1_000);
        let c = issuer().verifier().verify(&token, 900).expect("valid");
        assert_eq!(c.account, account("alice"));
        assert_eq!(c.expires_at, 1_000);
        assert!(
            issuer()
                .verifier()
                .verify(&token, 1_000 + CLOCK_SKEW_SECS)
                .is_ok()
        );
        assert_eq!(
            issuer().verifier().verify(&token, 1_001 + CLOCK_SKEW_SECS),
            Err(CredentialError::Expired)
        );
    }

    #[test]
    fn credential_from_another_issuer_is_refused() {
        let other = CredentialIssuer::from_seed(&[6u8; 32]);
        let token = other.issue(&account("alice"), 1_000);
        assert_eq!(
            issuer().verifier().verify(&token, 0),
            Err(CredentialError::BadSignature)
        );
    }

    #[test]
    fn changing_the_account_breaks_the_signature() {
        let token = issuer().issue(&account("alice"), 1_000);
        let mut raw = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        raw[10] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(
            issuer().verifier().verify(&forged, 0),
            Err(CredentialError::BadSignature)
        );
    }

    #[test]
    fn errors_do_not_name_the_account() {
        for e in [
            CredentialError::Malformed,
            CredentialError::BadSignature,
            CredentialError::Expired,
        ] {
            assert!(!e.to_string().contains("alice"));
        }
        assert!(!format!("{:?}", account("alice")).contains("alice"));
    }

    /// The worked example of docs/protocol.md §10.
    #[test]
    fn token_matches_the_specification_example() {
        let issuer = CredentialIssuer::from_seed(&[7u8; 32]);
        let hex: String = issuer
            .verifier()
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        );
        let token = issuer.issue(&account("alice"), 1_893_456_000);
        assert_eq!(
            token,
            "AQAAAABw29iABWFsaWNlJCu25Jf6OdO__lidbnb3I1qHpXEXUPi0kTS2XViry6IRg_0x8johWvXj2NxCS7q06i11jZM5t-OPlsS-ENQsDQ"
        );
        assert!(issuer.verifier().verify(&token, 1_893_456_060).is_ok());
        assert_eq!(
            issuer.verifier().verify(&token, 1_893_456_061),
            Err(CredentialError::Expired)
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
            prop_assert!(issuer().verifier().verify(&s, 0).is_err());
        }

        #[test]
        fn flipping_any_bit_invalidates_a_token(bit in 0usize..(8 * (10 + 5 + 64))) {
            let token = issuer().issue(&account("alice"), 1_000);
            let mut raw = URL_SAFE_NO_PAD.decode(&token).expect("base64");
            raw[bit / 8] ^= 1 << (bit % 8);
            let tampered = URL_SAFE_NO_PAD.encode(raw);
            prop_assert!(issuer().verifier().verify(&tampered, 0).is_err());
        }
    }
}
