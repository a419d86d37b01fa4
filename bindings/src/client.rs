//! The client object: built once from [`ClientOptions`], then `discover`
//! as often as the app likes.

use std::sync::{Arc, Mutex, PoisonError};

use cds_client::{BucketMode, Client, DiscoveryCache, PublicKey, Region, ServerProfile};

use crate::contact::{Contact, DiscoveryReport};
use crate::error::DiscoveryError;

/// How to reach the server and what to trust about it. Only `url` is
/// required; every other field has a default.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct ClientOptions {
    /// `https://host:port` in production; `http://` only to this machine
    /// (`http://127.0.0.1:50051`).
    pub url: String,
    /// The account credential the messenger backend issued (servers refuse
    /// discovery without one by default).
    #[uniffi(default)]
    pub credential: Option<String>,
    /// Trust only this public key (32 bytes): the server's key from
    /// `cds admin profile`. Stops working at the server's next key rotation;
    /// prefer `profile`. Not together with `profile`.
    #[uniffi(default)]
    pub pinned_public_key: Option<Vec<u8>>,
    /// Trust only what this server profile allows (the `cds-profile-v1:...`
    /// text `cds admin profile` prints). Not together with
    /// `pinned_public_key`.
    #[uniffi(default)]
    pub profile: Option<String>,
    /// The bytes [`DiscoveryClient::cache`] returned last time: contacts in
    /// it cost no quota again.
    #[uniffi(default)]
    pub cache: Option<Vec<u8>>,
    /// For `https://` URLs: trust only the CA certificate(s) in this PEM
    /// instead of the public web CAs.
    #[uniffi(default)]
    pub ca_certificate_pem: Option<Vec<u8>>,
    /// Download only the buckets of the contacts (less traffic, but the
    /// server learns a few bits of a hash of each contact) instead of all.
    #[uniffi(default)]
    pub contacts_only: bool,
    /// This user's contacts-only identity keys: the bytes the messenger
    /// backend issued for the user's verified number (secret: keep them
    /// with the credential). With them, `discover` also finds contacts-only
    /// users who listed this user's number, and `upload_allow_list` can
    /// publish this user's own list. Needs `contacts_issuer_public_key`.
    #[uniffi(default)]
    pub identity_keys: Option<Vec<u8>>,
    /// The public key of the backend's contacts issuer (144 bytes), which
    /// `identity_keys` are checked against. Only with `identity_keys`.
    #[uniffi(default)]
    pub contacts_issuer_public_key: Option<Vec<u8>>,
}

/// A connection to a cds Discovery service.
#[derive(uniffi::Object)]
pub struct DiscoveryClient {
    pub(crate) client: tokio::sync::Mutex<Client>,
    /// What the app may read while a `discover` runs.
    pub(crate) seen: Mutex<Seen>,
}

/// The state last published by a call.
pub(crate) struct Seen {
    cache: DiscoveryCache,
    report: cds_client::DiscoveryReport,
    epoch: u64,
    public_key: PublicKey,
}

impl std::fmt::Debug for DiscoveryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiscoveryClient")
    }
}

/// Connect to the server, fetch its configuration and check it against the
/// pinned key or profile.
#[uniffi::export(async_runtime = "tokio")]
pub async fn connect(options: ClientOptions) -> Result<Arc<DiscoveryClient>, DiscoveryError> {
    let mut builder = Client::builder(options.url);
    match (options.pinned_public_key, options.profile) {
        (Some(_), Some(_)) => {
            return Err(DiscoveryError::invalid(
                "give pinned_public_key or profile, not both (a profile can list several keys)",
            ));
        }
        (Some(key), None) => {
            let key = PublicKey::from_slice(&key).map_err(|_| {
                DiscoveryError::invalid(
                    "pinned_public_key is not a ristretto255 public key: pass the 32 bytes of the server's key",
                )
            })?;
            builder = builder.pin_public_key(key);
        }
        (None, Some(text)) => {
            let profile = ServerProfile::parse(&text).map_err(DiscoveryError::invalid)?;
            builder = builder.profile(profile);
        }
        (None, None) => {}
    }
    if let Some(token) = options.credential {
        builder = builder.credential(token);
    }
    if let Some(bytes) = options.cache {
        let cache = DiscoveryCache::from_bytes(&bytes).map_err(DiscoveryError::invalid)?;
        builder = builder.cache(cache);
    }
    if let Some(pem) = options.ca_certificate_pem {
        builder = builder.ca_certificate(pem);
    }
    if options.contacts_only {
        builder = builder.bucket_mode(BucketMode::ContactsOnly);
    }
    if let Some(keys) = crate::contacts_only::identity_keys(
        options.identity_keys,
        options.contacts_issuer_public_key,
    )? {
        builder = builder.identity_keys(keys);
    }
    let client = builder.connect().await?;
    let seen = Seen::of(&client);
    Ok(Arc::new(DiscoveryClient {
        client: tokio::sync::Mutex::new(client),
        seen: Mutex::new(seen),
    }))
}

impl Seen {
    pub(crate) fn of(client: &Client) -> Self {
        Seen {
            cache: client.cache().clone(),
            report: client.last_report(),
            epoch: client.params().epoch,
            public_key: client.params().public_key,
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl DiscoveryClient {
    /// Find out which address-book `entries` belong to discoverable users:
    /// one [`Contact`] per entry, in order. `region` (ISO 3166-1, such as
    /// `"US"`) applies to numbers written without a country code. Numbers
    /// in the cache cost no quota; calls on one client run one at a time.
    pub async fn discover(
        &self,
        entries: Vec<String>,
        region: String,
    ) -> Result<Vec<Contact>, DiscoveryError> {
        let region = Region::parse(&region).map_err(DiscoveryError::invalid)?;
        let mut client = self.client.lock().await;
        let result = client.discover(&entries, region).await;
        // Outputs evaluated before a failure stay in the cache: publish
        // them either way.
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Seen::of(&client);
        Ok(result?.into_iter().map(Contact::from).collect())
    }
}

#[uniffi::export]
impl DiscoveryClient {
    /// The cache of evaluated contacts as bytes, to store with the address
    /// book (it holds contact numbers: keep it as private) and pass back as
    /// [`ClientOptions::cache`] next time.
    pub fn cache(&self) -> Vec<u8> {
        self.seen().cache.to_bytes()
    }

    /// How many contacts the cache holds.
    pub fn cached_contacts(&self) -> u64 {
        self.seen().cache.len() as u64
    }

    /// What the last `discover` call did.
    pub fn last_report(&self) -> DiscoveryReport {
        self.seen().report.into()
    }

    /// The server's key epoch in use.
    pub fn epoch(&self) -> u64 {
        self.seen().epoch
    }

    /// The server's public key in use (32 bytes), as accepted at connect or
    /// after the latest key rotation.
    pub fn public_key(&self) -> Vec<u8> {
        self.seen().public_key.to_bytes().to_vec()
    }
}

impl DiscoveryClient {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
