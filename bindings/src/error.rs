//! The exception every binding call raises: the Rust client's error codes,
//! with messages that never contain a phone number or any other user data.

use std::time::Duration;

use cds_client::{ClientError, Limit};

/// Why a call failed. Each variant is its own exception with the fields
/// below (Python `DiscoveryError.QuotaExceeded`, Kotlin
/// `DiscoveryException.QuotaExceeded`, Swift `DiscoveryError.QuotaExceeded`);
/// `detail` says what failed and what to do.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// What the app passed is unusable: the URL, the region code, the
    /// pinned key or profile, the cache bytes, the credential's characters,
    /// plaintext `http://` to another host, contacts-only identity keys or
    /// issuer key that do not parse or verify, an allow-list upload without
    /// identity keys or credential, or a label too long. Fix the call; do
    /// not retry.
    #[error("{detail}")]
    InvalidInput {
        /// What is wrong and what to pass instead.
        detail: String,
    },
    /// The server refused the credential: get a fresh one from the
    /// messenger backend.
    #[error("{detail}")]
    Unauthenticated {
        /// Which check failed.
        detail: String,
    },
    /// A limit refused the request; nothing was charged. Retry after
    /// `retry_after` when given; without it, split the book (or never).
    #[error("{detail}")]
    QuotaExceeded {
        /// Which limit.
        limit: QuotaLimit,
        /// When the same request can succeed.
        retry_after: Option<Duration>,
        /// The server's explanation.
        detail: String,
    },
    /// The server cannot serve now (starting, shedding load, or the
    /// connection broke). Retry after `retry_after` when given, later
    /// otherwise.
    #[error("{detail}")]
    Unavailable {
        /// When to retry, if the server said.
        retry_after: Option<Duration>,
        /// What happened.
        detail: String,
    },
    /// The server's key epoch changed twice during one call (the client
    /// already refreshes once by itself): retry later.
    #[error("{detail}")]
    EpochChanged {
        /// The server's explanation.
        detail: String,
    },
    /// The server could not be reached (connection or TLS failure).
    #[error("{detail}")]
    Connect {
        /// What the transport reported.
        detail: String,
    },
    /// The server's public key is not the pinned key or in the profile:
    /// nothing was sent to it.
    #[error("{detail}")]
    PublicKeyMismatch {
        /// What to check.
        detail: String,
    },
    /// The server is not one this client can trust or use: another suite,
    /// more bucket bits than the ceiling, an invalid configuration, a proof
    /// that does not verify, a malformed response. Results were discarded.
    #[error("{detail}")]
    UntrustedServer {
        /// Which check failed.
        detail: String,
    },
    /// The server answered with another gRPC status (`code` as gRPC spells
    /// it, such as `"INVALID_ARGUMENT"`).
    #[error("{detail}")]
    Rejected {
        /// The gRPC status code's name.
        code: String,
        /// The server's explanation.
        detail: String,
    },
}

/// The server limit behind [`DiscoveryError::QuotaExceeded`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum QuotaLimit {
    /// The account's budget of new numbers.
    AccountBudget,
    /// The account's concurrent requests.
    AccountConcurrency,
    /// This address's request rate.
    PeerRate,
    /// A limit this version does not know.
    Other,
}

impl From<Limit> for QuotaLimit {
    fn from(limit: Limit) -> Self {
        match limit {
            Limit::AccountBudget => QuotaLimit::AccountBudget,
            Limit::AccountConcurrency => QuotaLimit::AccountConcurrency,
            Limit::PeerRate => QuotaLimit::PeerRate,
            _ => QuotaLimit::Other,
        }
    }
}

impl DiscoveryError {
    /// An [`DiscoveryError::InvalidInput`] saying `detail`.
    pub(crate) fn invalid(detail: impl std::fmt::Display) -> Self {
        DiscoveryError::InvalidInput {
            detail: detail.to_string(),
        }
    }
}

impl From<ClientError> for DiscoveryError {
    fn from(e: ClientError) -> Self {
        // Every `ClientError` message is free of user data (its contract).
        let detail = e.to_string();
        // Every variant this version knows is named; only variants added to
        // the client later fall to the last arm.
        match e {
            ClientError::InvalidUrl
            | ClientError::PlaintextToRemoteHost
            | ClientError::InvalidCredential
            | ClientError::InvalidInput(_)
            | ClientError::ContactsOnly(_) => DiscoveryError::InvalidInput { detail },
            ClientError::Connect { .. } | ClientError::Tls { .. } => {
                DiscoveryError::Connect { detail }
            }
            ClientError::Unauthenticated { .. } => DiscoveryError::Unauthenticated { detail },
            ClientError::QuotaExceeded {
                limit, retry_after, ..
            } => DiscoveryError::QuotaExceeded {
                limit: limit.into(),
                retry_after,
                detail,
            },
            ClientError::Unavailable { retry_after, .. } => DiscoveryError::Unavailable {
                retry_after,
                detail,
            },
            ClientError::EpochChanged { .. } => DiscoveryError::EpochChanged { detail },
            ClientError::Rejected { code, .. } => DiscoveryError::Rejected {
                code: code.as_str().to_owned(),
                detail,
            },
            ClientError::PublicKeyMismatch => DiscoveryError::PublicKeyMismatch { detail },
            ClientError::UnsupportedSuite(_)
            | ClientError::UnsupportedBucketScheme
            | ClientError::ServerMisconfigured(_)
            | ClientError::BucketBitsAboveCeiling { .. }
            | ClientError::ProofVerification
            | ClientError::MalformedResponse(_) => DiscoveryError::UntrustedServer { detail },
            // A kind of failure this version of the bindings does not know:
            // results were not used, as for a server it cannot trust.
            _ => DiscoveryError::UntrustedServer { detail },
        }
    }
}
