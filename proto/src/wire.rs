//! The parts of the wire contract that are not protobuf messages: metadata
//! keys and their formats, the limit codes a refusal names, the suite name
//! and the request-size rule. Client and server both import them from here,
//! so the two sides cannot drift apart. `docs/protocol.md` §8–§9 describes
//! them for other implementations.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use cds_core::{BUCKET_DIGEST_LEN, ELEMENT_LEN};

/// Metadata key of the caller's credential (Discovery) or admin token
/// (Admin), written `Bearer <token>` ([`bearer`]).
pub const AUTHORIZATION: &str = "authorization";

/// The scheme prefix of an [`AUTHORIZATION`] value, with its space.
const BEARER_PREFIX: &str = "Bearer ";

/// The [`AUTHORIZATION`] value that carries `token` (surrounding whitespace
/// removed).
pub fn bearer(token: &str) -> String {
    format!("{BEARER_PREFIX}{}", token.trim())
}

/// The token of an [`AUTHORIZATION`] value, or `None` if it does not use
/// the Bearer scheme.
pub fn strip_bearer(value: &str) -> Option<&str> {
    value.strip_prefix(BEARER_PREFIX)
}

/// Metadata key of a refusal's retry hint: whole seconds, as in HTTP's
/// `Retry-After`. Absent when retrying will not help.
pub const RETRY_AFTER: &str = "retry-after";

/// Metadata key naming the limit that refused a request (a [`Limit`]).
pub const LIMIT: &str = "cds-limit";

/// The `retry-after` value for `wait`: whole seconds rounded up, at least 1.
pub fn retry_after_value(wait: Duration) -> String {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1).to_string()
}

/// Parse a `retry-after` value.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The limit a RESOURCE_EXHAUSTED refusal names in [`LIMIT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// The account's evaluation budget is spent (`account-budget`).
    AccountBudget,
    /// The account has the most Discover requests in flight
    /// (`account-concurrency`).
    AccountConcurrency,
    /// The caller's address sends requests too fast (`peer-rate`).
    PeerRate,
}

impl Limit {
    /// Every limit, for tables and tests.
    pub const ALL: [Limit; 3] = [
        Limit::AccountBudget,
        Limit::AccountConcurrency,
        Limit::PeerRate,
    ];

    /// The code sent in [`LIMIT`].
    pub const fn as_str(self) -> &'static str {
        match self {
            Limit::AccountBudget => "account-budget",
            Limit::AccountConcurrency => "account-concurrency",
            Limit::PeerRate => "peer-rate",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`LIMIT`] value this version does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownLimit;

impl fmt::Display for UnknownLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a limit code of cds v1")
    }
}

impl std::error::Error for UnknownLimit {}

impl FromStr for Limit {
    type Err = UnknownLimit;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Limit::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or(UnknownLimit)
    }
}

/// The cipher suite of cds v1, as `GetConfig` announces it (RFC 9497's
/// identifier of ristretto255-SHA512).
pub const SUITE: &str = "ristretto255-SHA512";

/// The bucket scheme of this version (`Config.bucket_scheme`,
/// `BucketIds.scheme`): a record's bucket is the first `bucket_bits` bits of
/// its match tag.
pub const BUCKET_SCHEME_TAG: u32 = 2;

/// The record format of this version (`Config.record_format`,
/// `DiscoverRequest.record_format`, `UploadAllowListRequest.record_format`):
/// `docs/protocol.md` §5. Absent on the wire (0) means format 1, from
/// before these fields.
pub const RECORD_FORMAT: u32 = cds_core::RECORD_FORMAT;

/// The most bytes one bucket id takes in a request (a varint of a `u32`).
const MAX_BUCKET_ID_LEN: usize = 5;

/// Allowance for the fields' tags, lengths and the epoch.
const REQUEST_FRAMING: usize = 4096;

/// The largest `DiscoverRequest` a server with a batch limit of `max`
/// elements accepts: each element (32 bytes) may come with one bucket id
/// and its 16-byte digest, plus framing. `53 · max + 4096`.
pub const fn max_discover_request_bytes(max: usize) -> usize {
    max * (ELEMENT_LEN + MAX_BUCKET_ID_LEN + BUCKET_DIGEST_LEN) + REQUEST_FRAMING
}

/// The largest `DiscoverRequest` servers that predate bucket digests
/// accept: `37 · max + 4096` (an element and a bucket id each). A client
/// sends digests only when the request stays within this, so that every
/// cds v1 server takes it ([`fits_every_server`]).
pub const fn max_discover_request_bytes_without_digests(max: usize) -> usize {
    max * (ELEMENT_LEN + MAX_BUCKET_ID_LEN) + REQUEST_FRAMING
}

/// The most request metadata a server takes, in bytes of the HTTP/2 header
/// list (RFC 9113 §6.5.2: per header, pseudo-headers included, the length
/// of its name and value plus 32), advertised in
/// `SETTINGS_MAX_HEADER_LIST_SIZE`. A larger request is refused by the
/// HTTP/2 layer before any cds code sees it: HTTP status 431 and no
/// `grpc-status` (protocol.md §9).
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Whether a request of `elements` blinded elements and `ids` bucket ids,
/// each with a digest, stays within
/// [`max_discover_request_bytes_without_digests`]. Each id is counted at
/// its largest, the fields' framing at 64 bytes.
pub const fn fits_every_server(elements: usize, ids: usize, max: usize) -> bool {
    let size = elements * ELEMENT_LEN + ids * (MAX_BUCKET_ID_LEN + BUCKET_DIGEST_LEN) + 64;
    size <= max_discover_request_bytes_without_digests(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suite_name_is_the_rfc_identifier_core_hashes() {
        assert_eq!(SUITE.as_bytes(), cds_core::IDENTIFIER);
    }

    #[test]
    fn every_limit_code_parses_back_and_unknown_codes_do_not() {
        for limit in Limit::ALL {
            assert_eq!(limit.as_str().parse::<Limit>(), Ok(limit));
        }
        assert_eq!("account_budget".parse::<Limit>(), Err(UnknownLimit));
        assert_eq!("".parse::<Limit>(), Err(UnknownLimit));
    }

    #[test]
    fn bearer_values_round_trip_and_other_schemes_do_not_parse() {
        assert_eq!(strip_bearer(&bearer("  abc \n")), Some("abc"));
        assert_eq!(strip_bearer("Basic abc"), None);
        assert_eq!(strip_bearer("bearer abc"), None);
        assert_eq!(strip_bearer("abc"), None);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_parses_back() {
        assert_eq!(retry_after_value(Duration::from_millis(1)), "1");
        assert_eq!(retry_after_value(Duration::ZERO), "1");
        assert_eq!(retry_after_value(Duration::from_millis(2001)), "3");
        assert_eq!(parse_retry_after("42"), Some(Duration::from_secs(42)));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn request_limits_are_the_documented_formulas() {
        assert_eq!(max_discover_request_bytes(4096), 53 * 4096 + 4096);
        assert_eq!(
            max_discover_request_bytes_without_digests(4096),
            37 * 4096 + 4096
        );
        assert!(fits_every_server(4096, 1167, 4096));
        assert!(!fits_every_server(4096, 1168, 4096));
    }
}
