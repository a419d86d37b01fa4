//! Building a [`Client`]: where the server is, how to reach it, what to
//! trust about it, and the credential and cache to start with.

use cds_core::{PublicKey, ServerProfile};
use cds_proto::v1::discovery_client::DiscoveryClient;
use cds_proto::wire;
use tonic::metadata::MetadataValue;

use crate::cache::DiscoveryCache;
use crate::client::{BucketMode, Client, DiscoveryReport, MAX_RESPONSE_BYTES, fetch_config};
use crate::config_check::DEFAULT_CEILING;
use crate::error::ClientError;
use crate::transport::ChannelOptions;

/// Builder for a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    pub(crate) url: String,
    /// What the app trusts about the server, if it said ([`ClientBuilder::profile`]).
    pub(crate) pinned: Option<ServerProfile>,
    bucket_mode: BucketMode,
    credential: Option<String>,
    cache: DiscoveryCache,
    channel: ChannelOptions,
}

/// Options that weaken what the client protects, each named for what it
/// gives up; from [`ClientBuilder::dangerous`].
#[derive(Debug)]
pub struct DangerousClientBuilder(ClientBuilder);

impl DangerousClientBuilder {
    /// Allow an `http://` URL to a host other than loopback: the
    /// credential and every blinded element cross the network in clear
    /// text, and a man in the middle can replay the credential. Only for a
    /// TLS terminator on a network path you trust.
    pub fn allow_remote_plaintext(mut self) -> ClientBuilder {
        self.0.channel = self.0.channel.dangerous_allow_remote_plaintext();
        self.0
    }
}

impl ClientBuilder {
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            pinned: None,
            bucket_mode: BucketMode::default(),
            credential: None,
            cache: DiscoveryCache::new(),
            channel: ChannelOptions::default(),
        }
    }

    /// For `https://` URLs: trust only the CA certificate(s) in `pem` (a
    /// private CA) instead of the public web CAs.
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.channel = self.channel.ca_certificate(pem);
        self
    }

    /// Reach the server with these channel options (CA, plaintext opt-in),
    /// replacing any set before.
    pub fn channel(mut self, options: ChannelOptions) -> Self {
        self.channel = options;
        self
    }

    /// Options that weaken the client's protection.
    pub fn dangerous(self) -> DangerousClientBuilder {
        DangerousClientBuilder(self)
    }

    /// Trust only this public key, instead of the one the server announces:
    /// the same as a [`ClientBuilder::profile`] listing this key alone, with
    /// the default ceiling [`crate::DEFAULT_MAX_BUCKET_BITS`]. Replaces an earlier
    /// profile. A single pinned key stops working at the server's next key
    /// rotation; a profile can list the announced next key too.
    pub fn pin_public_key(mut self, key: PublicKey) -> Self {
        self.pinned = Some(ServerProfile::one_key(key, DEFAULT_CEILING));
        self
    }

    /// Trust only what `profile` allows: its suite, its public keys, and at
    /// most its ceiling of bucket bits. Every configuration the client
    /// fetches (at connect, and after a key rotation) is checked against it
    /// before any request that carries contact data is sent; a server
    /// outside the profile is refused ([`ClientError::UnsupportedSuite`],
    /// [`ClientError::PublicKeyMismatch`],
    /// [`ClientError::BucketBitsAboveCeiling`]). Replaces an earlier pinned
    /// key. Without a profile, any key is trusted and the ceiling is
    /// [`crate::DEFAULT_MAX_BUCKET_BITS`].
    pub fn profile(mut self, profile: ServerProfile) -> Self {
        self.pinned = Some(profile);
        self
    }

    /// Choose how many buckets to download.
    pub fn bucket_mode(mut self, mode: BucketMode) -> Self {
        self.bucket_mode = mode;
        self
    }

    /// The account credential the messenger backend issued (required by
    /// servers that authenticate discovery, which is the default).
    pub fn credential(mut self, token: impl Into<String>) -> Self {
        self.credential = Some(token.into());
        self
    }

    /// Start from a cache saved earlier ([`Client::cache`]), so known
    /// contacts cost no evaluation.
    pub fn cache(mut self, cache: DiscoveryCache) -> Self {
        self.cache = cache;
        self
    }

    /// Connect and fetch the server's configuration.
    pub async fn connect(self) -> Result<Client, ClientError> {
        let authorization = self
            .credential
            .map(|t| {
                MetadataValue::try_from(wire::bearer(&t))
                    .map_err(|_| ClientError::InvalidCredential)
            })
            .transpose()?;
        let channel = self.channel.connect(&self.url).await?;
        let mut rpc = DiscoveryClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES);
        let params = fetch_config(&mut rpc, self.pinned.as_ref()).await?;
        Ok(Client {
            rpc,
            pinned: self.pinned,
            bucket_mode: self.bucket_mode,
            params,
            stale: false,
            authorization,
            cache: self.cache,
            last_report: DiscoveryReport::default(),
        })
    }
}

impl Client {
    /// Start building a client for `url`: `https://host:port` in production
    /// (TLS, checked against the public web CAs or
    /// [`ClientBuilder::ca_certificate`]), or `http://127.0.0.1:50051` for a
    /// server on this machine; `http://` to other hosts is refused unless
    /// [`DangerousClientBuilder::allow_remote_plaintext`].
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url.into())
    }

    /// Connect with the defaults: trust the announced key, download every bucket.
    pub async fn connect(url: impl Into<String>) -> Result<Self, ClientError> {
        Self::builder(url).connect().await
    }
}
