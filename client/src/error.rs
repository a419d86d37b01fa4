//! The client's error type.

use std::time::Duration;

use cds_proto::wire;

/// What went wrong during discovery.
///
/// Messages say what failed and what to do; they never contain phone
/// numbers, labels or address-book entries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server URL is not a valid URI.
    #[error("invalid server URL: expected something like http://127.0.0.1:50051")]
    InvalidUrl,
    /// The connection could not be established.
    #[error("cannot connect to the server: {reason}; check the URL and that the server is running")]
    Connect {
        /// What the transport reported.
        reason: String,
    },
    /// TLS with the server failed: its certificate is from a CA this client
    /// does not trust, names another host, has expired, or the server does
    /// not speak TLS at all. Nothing was sent.
    #[error(
        "TLS with the server failed ({reason}): check the URL's host name, the server's certificate and the CA this client trusts (ClientBuilder::ca_certificate, --ca-file)"
    )]
    Tls {
        /// What TLS reported.
        reason: String,
    },
    /// A plaintext `http://` URL names a host other than this machine:
    /// credentials would cross the network in clear text.
    #[error(
        "refusing plaintext http:// to a host other than loopback: use https://, or opt in explicitly if a TLS terminator you trust is in front"
    )]
    PlaintextToRemoteHost,
    /// The server answered with an error status. Server messages never
    /// contain user data.
    #[error("the server refused the request ({code:?}): {message}")]
    Rpc {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's explanation.
        message: String,
    },
    /// The server announces a ciphersuite other than the profile's, which
    /// is the only one this client speaks. Nothing was sent.
    #[error(
        "the server uses ciphersuite {0:?}, but the app's server profile and this client speak {suite} only: check the server address, or upgrade the app", suite = wire::SUITE
    )]
    UnsupportedSuite(String),
    /// The server places records by number (a cds server before bucket
    /// scheme 2), so asking for the contacts' buckets would miss registered
    /// contacts.
    #[error(
        "this server is too old for contacts-only buckets (it places records by number): use all buckets, or upgrade the server"
    )]
    UnsupportedBucketScheme,
    /// The server's configuration is unusable.
    #[error("the server's configuration is invalid: {0}")]
    InvalidConfig(&'static str),
    /// The server's public key is not one of the keys the app trusts (its
    /// server profile, or the pinned key). Nothing was sent.
    #[error(
        "the server's public key is not in the app's server profile (or is not the pinned key): refusing to use this server; check the server address, or ship a profile that lists the server's current key (`cds admin profile`)"
    )]
    PublicKeyMismatch,
    /// The server announces more bucket bits than the app's ceiling (its
    /// profile's, or [`crate::DEFAULT_MAX_BUCKET_BITS`]): in contacts-only
    /// mode it would learn that many bits of each contact. Nothing was sent.
    #[error(
        "the server announces {announced} bucket bits, more than the {ceiling} this app accepts (a contacts-only lookup would reveal {announced} bits of each contact): refusing to use this server; check the server address, or ship a profile with a higher ceiling if the operator really uses more buckets"
    )]
    BucketBitsAboveCeiling {
        /// The bucket bits the server announced.
        announced: u8,
        /// The most the app accepts.
        ceiling: u8,
    },
    /// The server's proof does not verify: its answers were not computed
    /// with the key the client trusts, and are discarded.
    #[error("the server's proof does not verify against the trusted public key: results discarded")]
    ProofVerification,
    /// The server's response is malformed.
    #[error("malformed response from the server: {0}")]
    MalformedResponse(&'static str),
    /// The credential cannot be sent (it is not printable ASCII).
    #[error(
        "the credential is not a valid token: use the token the messenger backend issued, unchanged"
    )]
    InvalidCredential,
    /// Contacts-only mode cannot run as asked (no identity keys, no
    /// credential, or keys that do not fit); the message says what to give.
    #[error("contacts-only mode: {0}")]
    ContactsOnly(&'static str),
    /// The server refused the credential (missing, forged, expired or malformed).
    #[error("the server refused the credential: {0}")]
    Unauthenticated(String),
    /// A limit of the server refused the request: the account's discovery
    /// budget, its concurrent requests, or this address's request rate.
    /// Nothing was charged for the refused request.
    #[error("{} exceeded{}: {message}", describe(.limit), retry_hint(.retry_after))]
    QuotaExceeded {
        /// Which limit.
        limit: Limit,
        /// When the request can succeed, if ever (`None`: split it, or never).
        retry_after: Option<Duration>,
        /// The server's explanation.
        message: String,
    },
    /// The server is shedding load; retry after the hint.
    #[error("the server is overloaded{}", retry_hint(.retry_after))]
    Overloaded {
        /// When to retry.
        retry_after: Option<Duration>,
    },
}

/// The server limits a request can run into (metadata `cds-limit`).
pub use cds_proto::wire::Limit;

/// How an error message names `limit`.
fn describe(limit: &Limit) -> &'static str {
    match limit {
        Limit::AccountBudget => "the account's discovery budget",
        Limit::AccountConcurrency => "the account's concurrent requests",
        Limit::PeerRate => "this address's request rate",
        _ => "a server limit",
    }
}

fn retry_hint(d: &Option<Duration>) -> String {
    match d {
        Some(d) => format!(" (retry in {} s)", d.as_secs().max(1)),
        None => String::new(),
    }
}

/// The `retry-after` hint of a status, in seconds.
fn retry_after(s: &tonic::Status) -> Option<Duration> {
    wire::parse_retry_after(s.metadata().get(wire::RETRY_AFTER)?.to_str().ok()?)
}

/// Which limit refused the request, from the `cds-limit` metadata.
fn limit(s: &tonic::Status) -> Option<Limit> {
    s.metadata().get(wire::LIMIT)?.to_str().ok()?.parse().ok()
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        match s.code() {
            tonic::Code::Unauthenticated => ClientError::Unauthenticated(s.message().to_owned()),
            tonic::Code::ResourceExhausted if limit(&s).is_some() => ClientError::QuotaExceeded {
                limit: limit(&s).unwrap_or(Limit::AccountBudget),
                retry_after: retry_after(&s),
                message: s.message().to_owned(),
            },
            // Shedding says when to come back; other UNAVAILABLEs (server
            // down, connection refused) are plain transport failures.
            tonic::Code::Unavailable if retry_after(&s).is_some() => ClientError::Overloaded {
                retry_after: retry_after(&s),
            },
            code => ClientError::Rpc {
                code,
                message: s.message().to_owned(),
            },
        }
    }
}
