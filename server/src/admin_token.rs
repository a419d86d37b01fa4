//! The Admin token: a shared secret the messenger backend sends as
//! `authorization: Bearer <token>` on every Admin call, when the server is
//! given one (`admin_token_file`).
//!
//! The file holds the token on one line: 32 to 256 visible ASCII
//! characters. [`create`] writes a fresh one (64 hex digits, 256 bits).
//! The server keeps only its SHA-512 digest and compares digests in
//! constant time, so neither the token nor its length leaks through timing.

use std::path::Path;

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::metadata::MetadataMap;
use zeroize::Zeroizing;

use crate::error::ServerError;
use crate::private_files::NewFileErrors;
use cds_proto::wire::{self, AUTHORIZATION};

/// The shortest token accepted.
pub const MIN_LEN: usize = 32;
/// The longest token accepted.
pub const MAX_LEN: usize = 256;

/// The digest of the Admin token the server was given.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 64],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

fn digest(token: &[u8]) -> [u8; 64] {
    Sha512::new()
        .chain_update(b"cds-v1-admin-token")
        .chain_update(token)
        .finalize()
        .into()
}

impl AdminToken {
    /// Parse the token text (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let token = text.trim();
        if token.len() < MIN_LEN {
            return Err("holds fewer than 32 characters");
        }
        if token.len() > MAX_LEN {
            return Err("holds more than 256 characters");
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("holds characters other than visible ASCII on one line");
        }
        Ok(Self {
            digest: digest(token.as_bytes()),
        })
    }

    /// Read the token from `path`.
    pub fn read(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|source| ServerError::Io {
                what: "cannot read the admin token file",
                path: path.to_owned(),
                source,
            })?;
        Self::parse(&text).map_err(|reason| ServerError::AdminTokenFile {
            path: path.to_owned(),
            reason,
        })
    }

    /// Whether `metadata` carries this token, or UNAUTHENTICATED.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let presented = metadata
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(wire::strip_bearer);
        match presented {
            Some(token) if bool::from(digest(token.as_bytes()).ct_eq(&self.digest)) => Ok(()),
            Some(_) => Err(Status::unauthenticated(
                "wrong admin token: send the token of the server's admin_token_file",
            )),
            None => Err(Status::unauthenticated(
                "this server requires the admin token: send `authorization: Bearer <token>` \
                 (cds admin --admin-token-file FILE)",
            )),
        }
    }
}

/// Write a fresh token (64 hex digits) to a new file at `path`, readable by
/// its owner only. Refuses if anything (a file, a link) is there already.
pub fn create(path: &Path) -> Result<(), ServerError> {
    crate::private_files::create_hex_secret(
        path,
        NewFileErrors {
            exists: "an admin token is never written over an existing file; choose another path or remove the file",
            create: "cannot create the admin token file",
            write: "cannot write the admin token file",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tonic::metadata::MetadataValue;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn with_authorization(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert(
            AUTHORIZATION,
            MetadataValue::try_from(value).expect("ASCII"),
        );
        m
    }

    #[test]
    fn the_right_token_passes_and_any_other_is_unauthenticated() {
        let token = AdminToken::parse(&format!("  {TOKEN}\n")).expect("valid");
        assert!(
            token
                .check(&with_authorization(&format!("Bearer {TOKEN}")))
                .is_ok()
        );
        for refused in [
            with_authorization(&format!("Bearer {TOKEN}x")),
            with_authorization(&format!("Bearer {}", &TOKEN[1..])),
            with_authorization(TOKEN),
            with_authorization(&format!("bearer {TOKEN}")),
            MetadataMap::new(),
        ] {
            let status = token.check(&refused).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
            assert!(!status.message().contains(TOKEN));
        }
    }

    #[test]
    fn short_long_and_multi_line_tokens_are_refused() {
        assert!(AdminToken::parse(&TOKEN[1..]).is_err());
        assert!(AdminToken::parse(&"a".repeat(MAX_LEN + 1)).is_err());
        assert!(AdminToken::parse(&format!("{TOKEN}\n{TOKEN}")).is_err());
        assert!(AdminToken::parse(&format!("{TOKEN} {TOKEN}")).is_err());
        assert!(AdminToken::parse(&"a".repeat(MAX_LEN)).is_ok());
    }

    #[test]
    fn debug_shows_nothing_of_the_token() {
        let token = AdminToken::parse(TOKEN).expect("valid");
        assert_eq!(format!("{token:?}"), "AdminToken(..)");
    }

    #[test]
    fn a_created_file_reads_back_is_private_and_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.token");
        create(&path).expect("creates");
        let text = std::fs::read_to_string(&path).expect("reads");
        assert_eq!(text.len(), 65);
        let token = AdminToken::read(&path).expect("valid");
        assert!(
            token
                .check(&with_authorization(&format!("Bearer {}", text.trim())))
                .is_ok()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(create(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).expect("reads"), text);
    }

    proptest! {
        #[test]
        fn parsing_any_text_never_panics_and_accepts_only_valid_tokens(text in ".{0,300}") {
            let trimmed = text.trim();
            let valid = (MIN_LEN..=MAX_LEN).contains(&trimmed.len())
                && trimmed.bytes().all(|b| b.is_ascii_graphic());
            prop_assert_eq!(AdminToken::parse(&text).is_ok(), valid);
        }
    }
}
