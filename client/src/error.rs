//! The client's error type.

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
    #[error(
        "cannot connect to the discovery server: {0}; check the URL and that the server is running"
    )]
    Connect(#[source] tonic::transport::Error),
    /// The server answered with an error status. Server messages never
    /// contain user data.
    #[error("the server refused the request ({code:?}): {message}")]
    Rpc {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's explanation.
        message: String,
    },
    /// The server offers a ciphersuite this client does not speak.
    #[error(
        "the server uses ciphersuite {0:?}, this client speaks ristretto255-SHA512 only: upgrade the client"
    )]
    UnsupportedSuite(String),
    /// The server's configuration is unusable.
    #[error("the server's configuration is invalid: {0}")]
    InvalidConfig(&'static str),
    /// The server's public key is not the one the app pinned.
    #[error(
        "the server's public key differs from the pinned key: refusing to use this server; check the pinned key or the server address"
    )]
    PublicKeyMismatch,
    /// The server's proof does not verify: its answers were not computed
    /// with the key the client trusts, and are discarded.
    #[error("the server's proof does not verify against the trusted public key: results discarded")]
    ProofVerification,
    /// The server's response is malformed.
    #[error("malformed response from the server: {0}")]
    MalformedResponse(&'static str),
    /// A record under a contact's match tag does not open: the server sent
    /// a corrupt record.
    #[error("a record matching a contact does not open: the server sent a corrupt record")]
    RecordOpen,
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        ClientError::Rpc {
            code: s.code(),
            message: s.message().to_owned(),
        }
    }
}
