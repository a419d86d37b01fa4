//! The client object: built once from [`ClientOptions`], then `discover`
//! as often as the app likes.

use std::sync::{Arc, Mutex, PoisonError};

use cds_client::{Client, DiscoveryCache, PublicKey, Region, ServerProfile};

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
    /// Which records each `discover` downloads (see [`BucketMode`]); when
    /// absent, `contacts_only` decides between `All` and `ContactsOnly`.
    #[uniffi(default)]
    pub bucket_mode: Option<BucketMode>,
    /// The older spelling of `bucket_mode = ContactsOnly`, kept for apps
    /// written against it: `true` with a `bucket_mode` other than
    /// `ContactsOnly` is refused (`InvalidInput`).
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

/// Which records a `discover` call downloads (the Rust client's
/// [`cds_client::BucketMode`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, uniffi::Enum)]
pub enum BucketMode {
    /// Every bucket, each call (unchanged ones are not sent again): the
    /// server learns nothing about the contacts.
    #[default]
    All,
    /// Only the contacts' buckets: less traffic, but the server learns a
    /// few bits of a hash of each contact.
    ContactsOnly,
    /// Keep a copy of every record in the cache and bring it up to date
    /// with a delta before each discovery: the server learns nothing about
    /// the contacts but how many new ones were evaluated, and when the copy
    /// was synced. The first call of a key epoch downloads the whole table
    /// (resumable across calls); store [`DiscoveryClient::cache`] so the
    /// next client starts from the copy.
    Sync,
}

impl From<BucketMode> for cds_client::BucketMode {
    fn from(mode: BucketMode) -> Self {
        match mode {
            BucketMode::All => cds_client::BucketMode::All,
            BucketMode::ContactsOnly => cds_client::BucketMode::ContactsOnly,
            BucketMode::Sync => cds_client::BucketMode::Sync,
        }
    }
}

/// The mode `options` ask for: `bucket_mode`, or else the older
/// `contacts_only` flag; both, disagreeing, are refused.
fn bucket_mode(options: &ClientOptions) -> Result<BucketMode, DiscoveryError> {
    match (options.bucket_mode, options.contacts_only) {
        (None, false) => Ok(BucketMode::All),
        (None, true) => Ok(BucketMode::ContactsOnly),
        (Some(mode), false) => Ok(mode),
        (Some(BucketMode::ContactsOnly), true) => Ok(BucketMode::ContactsOnly),
        (Some(_), true) => Err(DiscoveryError::invalid(
            "contacts_only is the older spelling of bucket_mode ContactsOnly: give one bucket mode",
        )),
    }
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
    let mode = bucket_mode(&options)?;
    let mut builder = Client::builder(options.url).bucket_mode(mode.into());
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

#[cfg(test)]
mod tests {
    use super::{BucketMode, ClientOptions, bucket_mode};
    use crate::DiscoveryError;

    fn options(mode: Option<BucketMode>, contacts_only: bool) -> ClientOptions {
        ClientOptions {
            bucket_mode: mode,
            contacts_only,
            ..ClientOptions::default()
        }
    }

    #[test]
    fn bucket_mode_wins_and_the_older_contacts_only_flag_still_selects_contacts_only() {
        assert_eq!(
            bucket_mode(&options(None, false)).ok(),
            Some(BucketMode::All)
        );
        assert_eq!(
            bucket_mode(&options(None, true)).ok(),
            Some(BucketMode::ContactsOnly)
        );
        for mode in [BucketMode::All, BucketMode::ContactsOnly, BucketMode::Sync] {
            assert_eq!(bucket_mode(&options(Some(mode), false)).ok(), Some(mode));
        }
        assert_eq!(
            bucket_mode(&options(Some(BucketMode::ContactsOnly), true)).ok(),
            Some(BucketMode::ContactsOnly)
        );
    }

    #[test]
    fn contacts_only_with_another_bucket_mode_is_invalid_input() {
        for mode in [BucketMode::All, BucketMode::Sync] {
            assert!(matches!(
                bucket_mode(&options(Some(mode), true)),
                Err(DiscoveryError::InvalidInput { .. })
            ));
        }
    }

    #[test]
    fn each_mode_maps_to_the_client_librarys_mode() {
        use cds_client::BucketMode as Rust;
        assert_eq!(Rust::from(BucketMode::All), Rust::All);
        assert_eq!(Rust::from(BucketMode::ContactsOnly), Rust::ContactsOnly);
        assert_eq!(Rust::from(BucketMode::Sync), Rust::Sync);
    }
}
