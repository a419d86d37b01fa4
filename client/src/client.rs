//! The networked client: connect, fetch the configuration, discover.

use std::collections::{BTreeSet, HashMap};

use cds_core::{BucketBits, E164, Label, PublicKey, RecordKeys, ServerProfile};
use cds_proto::v1::discovery_client::DiscoveryClient;
use cds_proto::v1::{Config, GetConfigRequest};
use cds_proto::wire;
use prost::Message;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::cache::DiscoveryCache;

use crate::error::ClientError;
use crate::matching::{Lookup, RecordIndex};
use crate::normalize::{InvalidReason, Region, normalize};
use crate::session::{BucketSelection, ServerParams, prepare_revalidating};
use crate::transport::ChannelOptions;

/// Largest response the client accepts (the records of many buckets).
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// The most bucket bits a client without a [`ServerProfile`] accepts from
/// the server (65,536 buckets). In contacts-only mode the server learns
/// this many bits of a hash of every contact looked up; a server announcing
/// more is refused ([`ClientError::BucketBitsAboveCeiling`]). An app whose
/// server legitimately uses more buckets ships a profile with a higher
/// ceiling; `docs/threat-model.md` gives the figures.
pub const DEFAULT_MAX_BUCKET_BITS: u8 = 16;

/// How much the client tells the server about which records it needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BucketMode {
    /// Download every bucket: the server learns nothing about the contacts.
    #[default]
    All,
    /// Download only the contacts' buckets: less traffic, but the server
    /// learns `bucket_bits` bits of a hash of each contact.
    ContactsOnly,
}

/// What discovery found for one address-book entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Contact {
    /// Registered and discoverable.
    Registered {
        /// The entry in canonical E.164 form.
        number: E164,
        /// The label the messenger's backend attached to the user.
        label: Label,
    },
    /// A valid number that no discoverable user has.
    NotRegistered {
        /// The entry in canonical E.164 form.
        number: E164,
    },
    /// The entry is not a phone number.
    Invalid {
        /// Why not.
        reason: InvalidReason,
    },
}

/// Builder for a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    url: String,
    /// What the app trusts about the server, if it said ([`ClientBuilder::profile`]).
    pinned: Option<ServerProfile>,
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
        self.0.channel = self.0.channel.allow_remote_plaintext();
        self.0
    }
}

impl ClientBuilder {
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
    /// the default ceiling [`DEFAULT_MAX_BUCKET_BITS`]. Replaces an earlier
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
    /// [`DEFAULT_MAX_BUCKET_BITS`].
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
        let rpc = DiscoveryClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES);
        let mut client = Client {
            rpc,
            pinned: self.pinned,
            bucket_mode: self.bucket_mode,
            params: None,
            authorization,
            cache: self.cache,
            last_report: DiscoveryReport::default(),
        };
        client.refresh_config().await?;
        Ok(client)
    }
}

/// What the last [`Client::discover`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiscoveryReport {
    /// Distinct valid numbers looked up.
    pub contacts: usize,
    /// Of those, how many the server evaluated (each costs quota).
    pub evaluated: usize,
    /// Of those, how many came from the cache (free).
    pub cached: usize,
    /// Discover requests sent.
    pub requests: usize,
    /// Buckets whose records were needed.
    pub buckets: usize,
    /// Of those, how many the server reported unchanged since this client
    /// last received them (their records were not sent again).
    pub unchanged_buckets: usize,
    /// Encoded size of the Discover requests sent (protobuf, without gRPC
    /// and HTTP/2 framing).
    pub bytes_sent: usize,
    /// Encoded size of the Discover responses received.
    pub bytes_received: usize,
    /// Records under a contact's match tag that did not open (never which
    /// contacts). Each such contact was reported as not registered, the
    /// same as if the server had sent no record. An honest server never
    /// sends one: a non-zero count means a corrupt or forged table,
    /// possibly a server probing which numbers address books hold. Show it
    /// to the user at most; never send it to the messenger's servers or
    /// anything the operator reads: to the server that forged a record
    /// under one number's tag, the count says whether the book holds it.
    pub unopenable_records: usize,
}

/// A connection to a cds Discovery service.
#[derive(Debug, Clone)]
pub struct Client {
    rpc: DiscoveryClient<Channel>,
    /// The app's server profile, if it gave one.
    pinned: Option<ServerProfile>,
    bucket_mode: BucketMode,
    params: Option<ServerParams>,
    authorization: Option<MetadataValue<Ascii>>,
    cache: DiscoveryCache,
    last_report: DiscoveryReport,
}

impl Client {
    /// Start building a client for `url`: `https://host:port` in production
    /// (TLS, checked against the public web CAs or
    /// [`ClientBuilder::ca_certificate`]), or `http://127.0.0.1:50051` for a
    /// server on this machine; `http://` to other hosts is refused unless
    /// [`DangerousClientBuilder::allow_remote_plaintext`].
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            pinned: None,
            bucket_mode: BucketMode::default(),
            credential: None,
            cache: DiscoveryCache::new(),
            channel: ChannelOptions::default(),
        }
    }

    /// The cache of evaluated contacts, to save (see [`DiscoveryCache::to_bytes`])
    /// and pass back to [`ClientBuilder::cache`] next time.
    pub fn cache(&self) -> &DiscoveryCache {
        &self.cache
    }

    /// What the last [`Client::discover`] call did.
    pub fn last_report(&self) -> DiscoveryReport {
        self.last_report
    }

    /// Connect with the defaults: trust the announced key, download every bucket.
    pub async fn connect(url: impl Into<String>) -> Result<Self, ClientError> {
        Self::builder(url).connect().await
    }

    /// The server parameters in use.
    pub fn params(&self) -> Option<&ServerParams> {
        self.params.as_ref()
    }

    /// The server profile the client checks every configuration against,
    /// if the app gave one (or pinned a key).
    pub fn profile(&self) -> Option<&ServerProfile> {
        self.pinned.as_ref()
    }

    /// Fetch the server's configuration again (after a key rotation) and
    /// check it against the profile. A refused configuration also forgets
    /// the previous one, so nothing more is sent until a configuration
    /// passes.
    pub async fn refresh_config(&mut self) -> Result<&ServerParams, ClientError> {
        self.params = None;
        let c = self.rpc.get_config(GetConfigRequest {}).await?.into_inner();
        let params = accept_config(c, self.pinned.as_ref())?;
        Ok(self.params.insert(params))
    }

    /// Find out which address-book `entries` belong to discoverable users.
    ///
    /// Entries are normalized to E.164 (`default_region` applies to numbers
    /// written without a country code) and deduplicated; only blinded values
    /// leave the device. Contacts already in the cache are not evaluated
    /// again (they cost no quota), but their records are fetched afresh, so
    /// a contact who registered or opted out since is seen correctly. The
    /// result has one [`Contact`] per entry, in order.
    ///
    /// A record under a contact's match tag that does not open makes that
    /// contact [`Contact::NotRegistered`], as if there were no record, and
    /// the call still succeeds; [`DiscoveryReport::unopenable_records`]
    /// counts such records. Failing the call instead would let a server
    /// that forges one record under a number's tag learn whether this
    /// address book holds that number.
    pub async fn discover<S: AsRef<str>>(
        &mut self,
        entries: &[S],
        default_region: Region,
    ) -> Result<Vec<Contact>, ClientError> {
        let normalized: Vec<Result<E164, InvalidReason>> = entries
            .iter()
            .map(|e| normalize(e.as_ref(), default_region))
            .collect();
        let unique: Vec<E164> = normalized
            .iter()
            .filter_map(|n| n.as_ref().ok().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();

        let index = if unique.is_empty() {
            self.last_report = DiscoveryReport::default();
            RecordIndex::new()
        } else {
            match self.run(&unique).await {
                // The key epoch changed under us: learn the new one and retry once.
                Err(ClientError::Rpc {
                    code: tonic::Code::FailedPrecondition,
                    ..
                }) => {
                    self.refresh_config().await?;
                    self.run(&unique).await?
                }
                other => other?,
            }
        };

        // Each distinct number is looked up once. A record that does not
        // open counts as no record: the call goes on exactly as if the
        // server had sent none, so a forged record cannot tell the server
        // whether this book holds the number (see `matching`).
        let mut found: HashMap<&E164, Option<Label>> = HashMap::with_capacity(unique.len());
        let mut unopenable = 0;
        for number in &unique {
            let output = self
                .cache
                .get(number)
                .ok_or(ClientError::MalformedResponse(
                    "a contact was not evaluated",
                ))?;
            let lookup = index.lookup(output);
            if lookup == Lookup::Unopenable {
                unopenable += 1;
            }
            found.insert(number, lookup.label());
        }
        // Not logged: an app may ship its logs to the operator, and for the
        // server that forged a record the count answers its question.
        self.last_report.unopenable_records = unopenable;

        Ok(normalized
            .into_iter()
            .map(|n| match n {
                Err(reason) => Contact::Invalid { reason },
                Ok(number) => match found.get(&number).cloned().flatten() {
                    Some(label) => Contact::Registered { number, label },
                    None => Contact::NotRegistered { number },
                },
            })
            .collect())
    }

    /// Evaluate the numbers the cache lacks, in batches, and fetch each
    /// needed bucket once. New outputs go into the cache.
    ///
    /// With all buckets, the first request carries them. With the contacts'
    /// buckets only, a bucket is known once its contact is evaluated (it is
    /// a prefix of the match tag): the buckets of cached contacts go with
    /// the evaluation requests, and those of new contacts follow in
    /// records-only requests.
    async fn run(&mut self, numbers: &[E164]) -> Result<RecordIndex, ClientError> {
        let params = match &self.params {
            Some(p) => p.clone(),
            None => self.refresh_config().await?.clone(),
        };
        let contacts_only = self.bucket_mode == BucketMode::ContactsOnly;
        if contacts_only && params.bucket_scheme != wire::BUCKET_SCHEME_TAG {
            return Err(ClientError::UnsupportedBucketScheme);
        }
        self.cache.bind(params.epoch, params.public_key);
        let fresh: Vec<E164> = numbers
            .iter()
            .filter(|n| self.cache.get(n).is_none())
            .cloned()
            .collect();
        let max = params.max_elements_per_request;
        let batches: Vec<&[E164]> = fresh.chunks(max).collect();
        let known_buckets = self.buckets_of(numbers, &params);
        let bucket_plan: Vec<BucketSelection> = if contacts_only {
            ids_in_chunks(&known_buckets, max)
        } else {
            vec![BucketSelection::All]
        };
        let mut round = Round {
            index: RecordIndex::new(),
            fetched: BTreeSet::new(),
            report: DiscoveryReport {
                contacts: numbers.len(),
                evaluated: fresh.len(),
                cached: numbers.len() - fresh.len(),
                ..DiscoveryReport::default()
            },
        };
        for i in 0..batches.len().max(bucket_plan.len()).max(1) {
            let batch = batches.get(i).map(|b| b.to_vec()).unwrap_or_default();
            let selection = bucket_plan
                .get(i)
                .cloned()
                .unwrap_or(BucketSelection::Ids(vec![]));
            self.request(batch, selection, &params, &mut round).await?;
        }
        if contacts_only {
            // The new contacts' buckets, now that their tags are known.
            let missing: BTreeSet<u32> = self
                .buckets_of(numbers, &params)
                .difference(&round.fetched)
                .copied()
                .collect();
            for selection in ids_in_chunks(&missing, max) {
                self.request(Vec::new(), selection, &params, &mut round)
                    .await?;
            }
        }
        // Keep the buckets of every contact the cache knows (not only this
        // call's): a call for one new contact must not discard the rest.
        let needed: BTreeSet<u32> = if contacts_only {
            let all: Vec<E164> = self.cache.numbers().cloned().collect();
            self.buckets_of(&all, &params)
        } else {
            BTreeSet::new()
        };
        self.cache.retain_buckets(|b| needed.contains(&b));
        self.last_report = round.report;
        tracing::debug!(
            contacts = numbers.len(),
            evaluated = fresh.len(),
            records = round.index.len(),
            "discovery round finished"
        );
        Ok(round.index)
    }

    /// The buckets of those `numbers` whose outputs the cache holds.
    fn buckets_of(&self, numbers: &[E164], params: &ServerParams) -> BTreeSet<u32> {
        numbers
            .iter()
            .filter_map(|n| self.cache.get(n))
            .map(|output| {
                params
                    .bucket_bits
                    .bucket_of(RecordKeys::derive(output).tag())
            })
            .collect()
    }

    /// One Discover request: evaluate `batch` and fetch `selection`, adding
    /// outputs to the cache and records to `round`.
    async fn request(
        &mut self,
        batch: Vec<E164>,
        selection: BucketSelection,
        params: &ServerParams,
        round: &mut Round,
    ) -> Result<(), ClientError> {
        let prepared = prepare_revalidating(
            batch,
            params,
            selection,
            self.cache.buckets(),
            &mut rand::rng(),
        )?;
        round.report.requests += 1;
        round.report.bytes_sent += prepared.message.encoded_len();
        let mut request = tonic::Request::new(prepared.message);
        if let Some(auth) = &self.authorization {
            request
                .metadata_mut()
                .insert(wire::AUTHORIZATION, auth.clone());
        }
        let response = self.rpc.discover(request).await?.into_inner();
        round.report.bytes_received += response.encoded_len();
        let result = prepared.state.finish(response)?;
        for (number, output) in result.outputs {
            self.cache.insert(number, output);
        }
        round.report.buckets += result.records.len();
        round.report.unchanged_buckets += result.unchanged;
        let keep_buckets = self.bucket_mode == BucketMode::ContactsOnly;
        for (bucket, packed) in result.records {
            round.fetched.insert(bucket);
            round.index.add(packed.clone())?;
            if keep_buckets {
                self.cache.put_bucket(bucket, packed);
            }
        }
        Ok(())
    }
}

/// What the requests of one [`Client::discover`] call gathered.
struct Round {
    index: RecordIndex,
    /// Buckets whose records came (or were confirmed unchanged).
    fetched: BTreeSet<u32>,
    report: DiscoveryReport,
}

/// `ids` as bucket selections of at most `max` ids each.
fn ids_in_chunks(ids: &BTreeSet<u32>, max: usize) -> Vec<BucketSelection> {
    let ids: Vec<u32> = ids.iter().copied().collect();
    ids.chunks(max)
        .map(|c| BucketSelection::Ids(c.to_vec()))
        .collect()
}

/// The ceiling of a client without a profile (checked at compile time).
const DEFAULT_CEILING: BucketBits = match BucketBits::new(DEFAULT_MAX_BUCKET_BITS) {
    Ok(bits) => bits,
    Err(_) => panic!("DEFAULT_MAX_BUCKET_BITS is above MAX_BUCKET_BITS"),
};

/// Check a `GetConfig` answer against the app's profile (or, without one,
/// the default ceiling) and the protocol's rules: the suite, the public
/// key, the bucket bits and the batch limit (docs/protocol.md §7).
fn accept_config(c: Config, profile: Option<&ServerProfile>) -> Result<ServerParams, ClientError> {
    // In v1 a profile's suite is the one suite this client speaks.
    let suite = profile.map_or(wire::SUITE, |p| p.suite().name());
    if c.suite != suite {
        return Err(ClientError::UnsupportedSuite(c.suite));
    }
    let public_key = PublicKey::from_slice(&c.public_key).map_err(|_| {
        ClientError::InvalidConfig("the public key is not a canonical ristretto255 element")
    })?;
    if profile.is_some_and(|p| !p.accepts(&public_key)) {
        return Err(ClientError::PublicKeyMismatch);
    }
    let bucket_bits = u8::try_from(c.bucket_bits)
        .ok()
        .and_then(|b| BucketBits::new(b).ok())
        .ok_or(ClientError::InvalidConfig("bucket bits out of range"))?;
    let ceiling = profile.map_or(DEFAULT_CEILING, ServerProfile::max_bucket_bits);
    if bucket_bits.get() > ceiling.get() {
        return Err(ClientError::BucketBitsAboveCeiling {
            announced: bucket_bits.get(),
            ceiling: ceiling.get(),
        });
    }
    let max = (c.max_elements_per_request as usize).min(cds_core::MAX_BATCH);
    if max == 0 {
        return Err(ClientError::InvalidConfig("the server accepts no elements"));
    }
    Ok(ServerParams {
        epoch: c.epoch,
        public_key,
        bucket_bits,
        max_elements_per_request: max,
        bucket_scheme: c.bucket_scheme,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cds_core::KeyPair;

    fn key() -> PublicKey {
        *KeyPair::generate(&mut rand::rng()).public()
    }

    fn config(public_key: &PublicKey, bucket_bits: u32) -> Config {
        Config {
            epoch: 7,
            public_key: public_key.to_bytes().to_vec().into(),
            bucket_bits,
            max_elements_per_request: 100,
            suite: wire::SUITE.to_owned(),
            bucket_scheme: wire::BUCKET_SCHEME_TAG,
        }
    }

    fn profile(keys: &[PublicKey], ceiling: u8) -> ServerProfile {
        ServerProfile::new(
            keys.iter().copied(),
            BucketBits::new(ceiling).expect("valid"),
        )
        .expect("valid profile")
    }

    #[test]
    fn a_config_inside_the_profile_is_accepted() {
        let (current, next) = (key(), key());
        let p = profile(&[current, next], 8);
        for k in [current, next] {
            let params = accept_config(config(&k, 8), Some(&p)).expect("accepted");
            assert_eq!(params.public_key, k);
            assert_eq!(params.bucket_bits.get(), 8);
        }
    }

    #[test]
    fn each_way_out_of_the_profile_has_its_own_error() {
        let (trusted, other) = (key(), key());
        let p = profile(&[trusted], 8);
        let mut wrong_suite = config(&trusted, 8);
        wrong_suite.suite = "P256-SHA256".into();
        assert!(matches!(
            accept_config(wrong_suite, Some(&p)),
            Err(ClientError::UnsupportedSuite(_))
        ));
        assert!(matches!(
            accept_config(config(&other, 8), Some(&p)),
            Err(ClientError::PublicKeyMismatch)
        ));
        assert!(matches!(
            accept_config(config(&trusted, 9), Some(&p)),
            Err(ClientError::BucketBitsAboveCeiling {
                announced: 9,
                ceiling: 8
            })
        ));
        assert!(matches!(
            accept_config(config(&trusted, 25), Some(&p)),
            Err(ClientError::InvalidConfig(_))
        ));
    }

    #[test]
    fn without_a_profile_any_key_and_the_default_ceiling() {
        assert!(accept_config(config(&key(), 16), None).is_ok());
        let err = accept_config(config(&key(), 17), None).expect_err("above 16");
        assert!(matches!(
            err,
            ClientError::BucketBitsAboveCeiling {
                announced: 17,
                ceiling: DEFAULT_MAX_BUCKET_BITS
            }
        ));
        let message = err.to_string();
        assert!(
            message.contains("17") && message.contains("16"),
            "{message}"
        );
    }

    #[test]
    fn a_pinned_key_is_a_profile_of_that_key_with_the_default_ceiling() {
        let k = key();
        let builder = Client::builder("http://127.0.0.1:1").pin_public_key(k);
        let p = builder.pinned.expect("pinned");
        assert_eq!(p.keys(), [k]);
        assert_eq!(p.max_bucket_bits().get(), DEFAULT_MAX_BUCKET_BITS);
    }
}
