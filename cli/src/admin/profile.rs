//! The server profile apps ship, from the Admin `Profile` answer.

use anyhow::{Context, bail};
use cds_core::{BucketBits, PublicKey, ServerProfile};
use cds_proto::v1::ProfileRequest;

use super::{Admin, status};

/// Parse `--max-bucket-bits`.
pub(super) fn parse_bucket_bits(text: &str) -> Result<BucketBits, String> {
    text.trim()
        .parse::<u8>()
        .ok()
        .and_then(|b| BucketBits::new(b).ok())
        .ok_or_else(|| {
            format!(
                "expected a whole number from 0 to {}",
                cds_core::MAX_BUCKET_BITS
            )
        })
}

/// The server's profile from its Admin `Profile` answer: the current key,
/// the announced one if any, and `max_bucket_bits` (default: the server's
/// bucket bits). Also returns whether a next key is announced.
pub async fn server_profile(
    admin: &mut Admin,
    max_bucket_bits: Option<BucketBits>,
) -> anyhow::Result<(ServerProfile, bool)> {
    let p = admin
        .profile(ProfileRequest {})
        .await
        .map_err(status)?
        .into_inner();
    if p.suite != cds_proto::wire::SUITE {
        bail!(
            "the server uses ciphersuite {:?}, this cds speaks {} only",
            p.suite,
            cds_proto::wire::SUITE
        );
    }
    let mut keys =
        vec![PublicKey::from_slice(&p.public_key).context("the server sent an invalid key")?];
    if !p.next_public_key.is_empty() {
        keys.push(
            PublicKey::from_slice(&p.next_public_key)
                .context("the server sent an invalid announced key")?,
        );
    }
    let announced = keys.len() > 1;
    let ceiling = match max_bucket_bits {
        Some(b) => b,
        None => u8::try_from(p.bucket_bits)
            .ok()
            .and_then(|b| BucketBits::new(b).ok())
            .context("the server sent bucket bits out of range")?,
    };
    Ok((ServerProfile::new(keys, ceiling)?, announced))
}
