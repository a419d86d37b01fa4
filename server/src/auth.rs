//! Authentication of Discover calls: a credential from the messenger
//! backend in the `authorization: Bearer <token>` metadata.

use std::time::{SystemTime, UNIX_EPOCH};

use cds_core::{AccountId, CredentialError, CredentialVerifier};
use cds_proto::wire::{self, AUTHORIZATION};
use tonic::Status;
use tonic::metadata::MetadataMap;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The account named by the request's credential, or UNAUTHENTICATED.
/// Credentials valid for longer than `max_lifetime_secs` are refused.
pub fn authenticate(
    verifier: &CredentialVerifier,
    max_lifetime_secs: u64,
    metadata: &MetadataMap,
) -> Result<AccountId, Status> {
    let value = metadata.get(AUTHORIZATION).ok_or_else(|| {
        Status::unauthenticated(
            "missing credential: send `authorization: Bearer <token>` with a token from the messenger backend",
        )
    })?;
    let token = value
        .to_str()
        .ok()
        .and_then(wire::strip_bearer)
        .ok_or_else(|| Status::unauthenticated(CredentialError::Malformed.to_string()))?;
    verifier
        .verify(token, unix_now(), max_lifetime_secs)
        .map(|c| c.account)
        .map_err(|e| Status::unauthenticated(e.to_string()))
}
