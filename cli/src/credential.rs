//! `--token-file` and `--token`: the account credential of `cds discover`
//! and `cds bench`.
//!
//! A credential given as `--token` shows in the process list (`ps`,
//! `/proc/<pid>/cmdline`) to every local user; one in a file readable only
//! by its owner does not.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context, bail};
use clap::Args;
use zeroize::Zeroizing;

use crate::admin::TokenFile;

/// The largest credential file read: tokens are at most 256 characters.
const MAX_FILE_LEN: u64 = 4096;

/// Where the account credential comes from.
#[derive(Args, Clone)]
pub struct CredentialArgs {
    /// File holding the account credential (from `cds admin token`), readable
    /// only by you (mode 0600). Preferred over --token, which other local
    /// users can read in the process list. "" for none.
    #[arg(
        long,
        value_name = "FILE",
        env = "CDS_TOKEN_FILE",
        value_parser = crate::admin::parse_token_file
    )]
    token_file: Option<TokenFile>,
    /// The account credential itself. Visible in the process list: prefer
    /// --token-file.
    #[arg(long, value_name = "TOKEN", env = "CDS_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl core::fmt::Debug for CredentialArgs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CredentialArgs")
            .field("token_file", &self.token_file)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl CredentialArgs {
    /// The credential to send, if one was given: the contents of
    /// `--token-file` (surrounding whitespace trimmed), or `--token`; not
    /// both (either may come from the environment).
    pub fn load(&self) -> anyhow::Result<Option<String>> {
        match (
            self.token_file.as_ref().and_then(TokenFile::path),
            &self.token,
        ) {
            (Some(_), Some(_)) => bail!(
                "both a credential file (--token-file or CDS_TOKEN_FILE) and a credential \
                 (--token or CDS_TOKEN) are given: use one, preferably the file"
            ),
            (Some(path), None) => read_token_file(path).map(Some),
            (None, token) => Ok(token.clone()),
        }
    }
}

/// The credential in `path`, trimmed. Errors name the file, never its
/// contents.
pub fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the credential file {}", path.display()))?;
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_FILE_LEN + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read the credential file {}", path.display()))?;
    if text.len() as u64 > MAX_FILE_LEN {
        bail!(
            "the credential file {} is too large to hold a credential: write only the token from `cds admin token` into it",
            path.display()
        );
    }
    let token = text.trim();
    if token.is_empty() {
        bail!(
            "the credential file {} is empty: write the token from `cds admin token` into it",
            path.display()
        );
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_trimmed_and_its_errors_name_the_file_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("me.token");
        std::fs::write(&file, "  secret-token\n\n").expect("writes");
        assert_eq!(read_token_file(&file).expect("reads"), "secret-token");

        std::fs::write(&file, " \n").expect("writes");
        let empty = format!("{:#}", read_token_file(&file).expect_err("empty"));
        assert!(
            empty.contains("me.token") && empty.contains("empty"),
            "{empty}"
        );

        std::fs::write(&file, format!("secret-token{}", " ".repeat(5000))).expect("writes");
        let large = format!("{:#}", read_token_file(&file).expect_err("too large"));
        assert!(
            large.contains("too large") && !large.contains("secret"),
            "{large}"
        );

        let missing = dir.path().join("missing.token");
        let error = format!("{:#}", read_token_file(&missing).expect_err("missing"));
        assert!(error.contains("missing.token"), "{error}");

        std::fs::write(&file, b"secret\xff\n").expect("writes");
        let binary = format!("{:#}", read_token_file(&file).expect_err("not UTF-8"));
        assert!(
            binary.contains("me.token") && !binary.contains("secret"),
            "{binary}"
        );
    }

    #[test]
    fn debug_output_hides_the_token() {
        let args = CredentialArgs {
            token_file: None,
            token: Some("secret-token".into()),
        };
        assert!(!format!("{args:?}").contains("secret"));
        let both = CredentialArgs {
            token_file: Some(TokenFile(Some("me.token".into()))),
            token: Some("secret-token".into()),
        };
        let error = format!("{:#}", both.load().expect_err("ambiguous"));
        assert!(
            error.contains("use one") && !error.contains("secret"),
            "{error}"
        );
    }
}
