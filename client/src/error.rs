//! The client's error type, and the server's status codes in its own terms
//! (no transport types leak into the public API).

use std::time::Duration;

use cds_proto::wire;

/// What went wrong during discovery.
///
/// Each variant says whose move it is: the caller's (a mistake in what the
/// app passed), the network's, the server's refusal (with what to do), or a
/// server this client does not trust. Messages say what failed and what to
/// do; they never contain phone numbers, labels or address-book entries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    // --- The caller's mistakes: fix the call, do not retry unchanged.
    /// The server URL is not a valid `http://` or `https://` URL.
    #[error(
        "invalid server URL: expected something like https://cds.example.com or http://127.0.0.1:50051"
    )]
    InvalidUrl,
    /// A plaintext `http://` URL names a host other than this machine:
    /// credentials would cross the network in clear text.
    #[error(
        "refusing plaintext http:// to a host other than loopback: use https://, or opt in explicitly if a TLS terminator you trust is in front"
    )]
    PlaintextToRemoteHost,
    /// The credential cannot be sent (it is not printable ASCII).
    #[error(
        "the credential is not a valid token: use the token the messenger backend issued, unchanged"
    )]
    InvalidCredential,
    /// What the caller passed cannot be sent as it is (for example, a batch
    /// larger than the server's limit given to [`crate::session::prepare`]).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// Contacts-only mode cannot run as asked (no identity keys, no
    /// credential, or keys that do not fit); the message says what to give.
    #[error("contacts-only mode: {0}")]
    ContactsOnly(&'static str),

    // --- Reaching the server.
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

    // --- The server refused the request. Server messages never contain
    // user data.
    /// The server refused the credential (missing, forged, expired or
    /// malformed): get a fresh one from the messenger backend.
    #[error("the server refused the credential: {message}")]
    Unauthenticated {
        /// The server's explanation (which check failed).
        message: String,
    },
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
    /// The server cannot serve now: it is starting, shedding load, or the
    /// connection broke. Retry after `retry_after` when it is given (the
    /// server said when), later otherwise.
    #[error("the server is unavailable{}: {message}", retry_hint(.retry_after))]
    Unavailable {
        /// When to retry, if the server said.
        retry_after: Option<Duration>,
        /// The server's (or the transport's) explanation.
        message: String,
    },
    /// The server's key epoch changed again while the client retried after
    /// a key rotation (the client already refreshes once by itself).
    /// Retry the call later.
    #[error("the server's key epoch changed during the call, twice: retry later ({message})")]
    EpochChanged {
        /// The server's explanation.
        message: String,
    },
    /// The server answered with another error status.
    #[error("the server refused the request ({code}): {message}")]
    Rejected {
        /// The gRPC status code.
        code: StatusCode,
        /// The server's explanation.
        message: String,
    },

    // --- A server this client does not trust, or that misbehaves. Nothing
    // contact-derived was sent, or the results were discarded.
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
    /// The server serves another record format (0: a cds server before
    /// record format 2), which this client would misread. Nothing was sent.
    #[error(
        "the server serves record format {server}, but this client reads record format {client} only (docs/protocol.md §5): upgrade the server, or use a client of its version", client = wire::RECORD_FORMAT
    )]
    UnsupportedRecordFormat {
        /// The format the server announced (0: none, an older server).
        server: u32,
    },
    /// The server's configuration is unusable (an invalid public key,
    /// bucket bits out of range, no elements per request). Nothing was sent.
    #[error("the server's configuration is invalid: {0}; report it to the server's operator")]
    ServerMisconfigured(&'static str),
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
    /// Sync mode: the copy of the records could not be brought up to date,
    /// even by downloading it again (the server's deltas and digest keep
    /// disagreeing). Retry later; report it to the server's operator if it
    /// persists.
    #[error("the record copy could not be synced: {0}")]
    Sync(#[from] crate::sync::SyncApplyError),
}

impl ClientError {
    /// When the server said the request can succeed, for
    /// [`ClientError::QuotaExceeded`] and [`ClientError::Unavailable`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::QuotaExceeded { retry_after, .. }
            | ClientError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The server limits a request can run into (metadata `cds-limit`).
pub use cds_proto::wire::Limit;

/// A gRPC status code, as [`ClientError::Rejected`] reports it
/// (docs/protocol.md §9 says which the server sends, and when).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusCode {
    /// `CANCELLED` (1): the server's timeout cut the request off.
    Cancelled,
    /// `UNKNOWN` (2), also for a code outside gRPC's.
    Unknown,
    /// `INVALID_ARGUMENT` (3): the request is malformed (a client bug).
    InvalidArgument,
    /// `DEADLINE_EXCEEDED` (4).
    DeadlineExceeded,
    /// `NOT_FOUND` (5).
    NotFound,
    /// `ALREADY_EXISTS` (6).
    AlreadyExists,
    /// `PERMISSION_DENIED` (7).
    PermissionDenied,
    /// `RESOURCE_EXHAUSTED` (8) without a known limit: the response would
    /// exceed the server's size limit.
    ResourceExhausted,
    /// `FAILED_PRECONDITION` (9).
    FailedPrecondition,
    /// `ABORTED` (10).
    Aborted,
    /// `OUT_OF_RANGE` (11): a message over the size limit.
    OutOfRange,
    /// `UNIMPLEMENTED` (12): the method is not served on this listener.
    Unimplemented,
    /// `INTERNAL` (13).
    Internal,
    /// `UNAVAILABLE` (14).
    Unavailable,
    /// `DATA_LOSS` (15).
    DataLoss,
    /// `UNAUTHENTICATED` (16).
    Unauthenticated,
}

impl StatusCode {
    /// The code's name as gRPC spells it (`"INVALID_ARGUMENT"`).
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Cancelled => "CANCELLED",
            StatusCode::Unknown => "UNKNOWN",
            StatusCode::InvalidArgument => "INVALID_ARGUMENT",
            StatusCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            StatusCode::NotFound => "NOT_FOUND",
            StatusCode::AlreadyExists => "ALREADY_EXISTS",
            StatusCode::PermissionDenied => "PERMISSION_DENIED",
            StatusCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            StatusCode::FailedPrecondition => "FAILED_PRECONDITION",
            StatusCode::Aborted => "ABORTED",
            StatusCode::OutOfRange => "OUT_OF_RANGE",
            StatusCode::Unimplemented => "UNIMPLEMENTED",
            StatusCode::Internal => "INTERNAL",
            StatusCode::Unavailable => "UNAVAILABLE",
            StatusCode::DataLoss => "DATA_LOSS",
            StatusCode::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    fn from_tonic(code: tonic::Code) -> Self {
        use tonic::Code as C;
        match code {
            C::Cancelled => StatusCode::Cancelled,
            C::InvalidArgument => StatusCode::InvalidArgument,
            C::DeadlineExceeded => StatusCode::DeadlineExceeded,
            C::NotFound => StatusCode::NotFound,
            C::AlreadyExists => StatusCode::AlreadyExists,
            C::PermissionDenied => StatusCode::PermissionDenied,
            C::ResourceExhausted => StatusCode::ResourceExhausted,
            C::FailedPrecondition => StatusCode::FailedPrecondition,
            C::Aborted => StatusCode::Aborted,
            C::OutOfRange => StatusCode::OutOfRange,
            C::Unimplemented => StatusCode::Unimplemented,
            C::Internal => StatusCode::Internal,
            C::Unavailable => StatusCode::Unavailable,
            C::DataLoss => StatusCode::DataLoss,
            C::Unauthenticated => StatusCode::Unauthenticated,
            // `OK` as an error is not a success either.
            C::Ok | C::Unknown => StatusCode::Unknown,
        }
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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

impl ClientError {
    /// A status of `UploadAllowList`, classified: there
    /// `FAILED_PRECONDITION` means the upload cannot be taken as it stands
    /// (the number is not in contacts-only mode, another issuer epoch, a
    /// newer list stored), not a key rotation, so it is
    /// [`ClientError::Rejected`]; other codes as for discovery.
    pub(crate) fn from_upload_status(s: tonic::Status) -> Self {
        match s.code() {
            tonic::Code::FailedPrecondition => ClientError::Rejected {
                code: StatusCode::FailedPrecondition,
                message: s.message().to_owned(),
            },
            _ => ClientError::from(s),
        }
    }
}

/// A status from the Discovery service's discovery calls, classified
/// (docs/protocol.md §9). `FAILED_PRECONDITION` is
/// [`ClientError::EpochChanged`]: it is the only reason discovery sends it
/// (uploads classify it as `Rejected`, see `upload_allow_list`).
impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        let message = s.message().to_owned();
        match s.code() {
            tonic::Code::Unauthenticated => ClientError::Unauthenticated { message },
            tonic::Code::ResourceExhausted => match limit(&s) {
                Some(limit) => ClientError::QuotaExceeded {
                    limit,
                    retry_after: retry_after(&s),
                    message,
                },
                None => ClientError::Rejected {
                    code: StatusCode::ResourceExhausted,
                    message,
                },
            },
            tonic::Code::Unavailable => ClientError::Unavailable {
                retry_after: retry_after(&s),
                message,
            },
            tonic::Code::FailedPrecondition => ClientError::EpochChanged { message },
            code => ClientError::Rejected {
                code: StatusCode::from_tonic(code),
                message,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: tonic::Code, metadata: &[(&'static str, &'static str)]) -> tonic::Status {
        let mut s = tonic::Status::new(code, "why");
        for (k, v) in metadata {
            s.metadata_mut()
                .insert(*k, v.parse().expect("ascii metadata"));
        }
        s
    }

    #[test]
    fn each_refusal_the_protocol_names_has_its_own_variant() {
        let quota = ClientError::from(status(
            tonic::Code::ResourceExhausted,
            &[(wire::LIMIT, "account-budget"), (wire::RETRY_AFTER, "30")],
        ));
        assert!(matches!(
            quota,
            ClientError::QuotaExceeded {
                limit: Limit::AccountBudget,
                retry_after: Some(d),
                ..
            } if d == Duration::from_secs(30)
        ));
        assert_eq!(quota.retry_after(), Some(Duration::from_secs(30)));
        assert!(matches!(
            ClientError::from(status(tonic::Code::Unauthenticated, &[])),
            ClientError::Unauthenticated { .. }
        ));
        assert!(matches!(
            ClientError::from(status(tonic::Code::FailedPrecondition, &[])),
            ClientError::EpochChanged { .. }
        ));
        let shed = ClientError::from(status(
            tonic::Code::Unavailable,
            &[(wire::RETRY_AFTER, "2")],
        ));
        assert_eq!(shed.retry_after(), Some(Duration::from_secs(2)));
        assert!(matches!(
            ClientError::from(status(tonic::Code::Unavailable, &[])),
            ClientError::Unavailable {
                retry_after: None,
                ..
            }
        ));
        // Too large a response is not a quota: no limit names it.
        assert!(matches!(
            ClientError::from(status(tonic::Code::ResourceExhausted, &[])),
            ClientError::Rejected {
                code: StatusCode::ResourceExhausted,
                ..
            }
        ));
        let bug = ClientError::from(status(tonic::Code::InvalidArgument, &[]));
        assert!(matches!(
            bug,
            ClientError::Rejected {
                code: StatusCode::InvalidArgument,
                ..
            }
        ));
        assert!(bug.to_string().contains("INVALID_ARGUMENT"), "{bug}");
    }

    #[test]
    fn an_upload_refused_as_a_failed_precondition_is_rejected_not_an_epoch_change() {
        let refused = ClientError::from_upload_status(status(tonic::Code::FailedPrecondition, &[]));
        assert!(matches!(
            refused,
            ClientError::Rejected {
                code: StatusCode::FailedPrecondition,
                ..
            }
        ));
        assert!(matches!(
            ClientError::from_upload_status(status(tonic::Code::Unauthenticated, &[])),
            ClientError::Unauthenticated { .. }
        ));
    }

    #[test]
    fn every_grpc_code_maps_to_a_code_of_its_own_name() {
        for code in 1..=16 {
            let tonic = tonic::Code::from_i32(code);
            let ours = StatusCode::from_tonic(tonic);
            assert_eq!(
                ours.as_str().replace('_', "").to_ascii_lowercase(),
                format!("{tonic:?}").to_ascii_lowercase(),
            );
        }
    }
}
