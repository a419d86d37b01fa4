//! The networked client: connect, fetch the configuration, discover.

use std::collections::{BTreeSet, HashMap};

use cds_core::{E164, Label, RecordKeys, ServerProfile};
use cds_proto::v1::GetConfigRequest;
use cds_proto::v1::discovery_client::DiscoveryClient;
use cds_proto::wire;
use prost::Message;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::cache::DiscoveryCache;

use crate::config_check::accept_config;
use crate::error::ClientError;
use crate::matching::{FindRecord, Lookup, RecordIndex};
use crate::normalize::{InvalidReason, Region, normalize};
use crate::session::{BucketSelection, ServerParams, prepare_revalidating};
use crate::sync::{RecordCopy, SyncApplyError};

/// Largest response the client accepts (the records of many buckets).
pub(crate) const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// How much the client tells the server about which records it needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BucketMode {
    /// Download every bucket: the server learns nothing about the contacts.
    #[default]
    All,
    /// Download only the contacts' buckets: less traffic, but the server
    /// learns `bucket_bits` bits of a hash of each contact.
    ContactsOnly,
    /// Keep a copy of every record (in the cache) and bring it up to date
    /// with a delta before each discovery; requests carry only the new
    /// contacts' blinded elements. The server learns nothing about the
    /// contacts but how many new ones were evaluated, and when and from
    /// which version the client synced. The first call of an epoch
    /// downloads the whole table (resumable across calls).
    Sync,
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
    /// Pairings computed to look contacts up among contacts-only users'
    /// allow-lists (one per distinct contact not found by its normal
    /// record, with identity keys; 0 without).
    pub pairings: usize,
    /// Of the contacts found, how many through a contacts-only allow-list.
    pub found_by_allow_list: usize,
    /// Sync mode: `SyncRecords` calls made (pages and deltas).
    pub sync_requests: usize,
    /// Sync mode: encoded size of the `SyncRecords` requests sent (not in
    /// `bytes_sent`).
    pub sync_bytes_sent: usize,
    /// Sync mode: encoded size of the `SyncRecords` responses received
    /// (not in `bytes_received`).
    pub sync_bytes_received: usize,
    /// Sync mode: whether the copy was (re-)downloaded whole in this call.
    pub full_download: bool,
}

/// A connection to a cds Discovery service.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) rpc: DiscoveryClient<Channel>,
    /// The app's server profile, if it gave one.
    pub(crate) pinned: Option<ServerProfile>,
    pub(crate) bucket_mode: BucketMode,
    /// The configuration last accepted.
    pub(crate) params: ServerParams,
    /// Whether `params` must be fetched (and checked) again before the next
    /// request: a refresh failed or was refused since it was accepted.
    pub(crate) stale: bool,
    pub(crate) authorization: Option<MetadataValue<Ascii>>,
    pub(crate) cache: DiscoveryCache,
    pub(crate) last_report: DiscoveryReport,
    /// Contacts-only identity keys, if the app gave them.
    pub(crate) identity: Option<std::sync::Arc<cds_core::contacts_only::IdentityKeys>>,
    /// The account the credential names (read unverified, for signing uploads).
    pub(crate) account: Option<cds_core::AccountId>,
}

impl Client {
    /// The cache of evaluated contacts, to save (see [`DiscoveryCache::to_bytes`])
    /// and pass back to [`crate::ClientBuilder::cache`] next time.
    pub fn cache(&self) -> &DiscoveryCache {
        &self.cache
    }

    /// What the last [`Client::discover`] call did.
    pub fn last_report(&self) -> DiscoveryReport {
        self.last_report
    }

    /// The server configuration last accepted (at connect, or by the
    /// latest [`Client::refresh_config`] that succeeded).
    pub fn params(&self) -> &ServerParams {
        &self.params
    }

    /// The server profile the client checks every configuration against,
    /// if the app gave one (or pinned a key).
    pub fn profile(&self) -> Option<&ServerProfile> {
        self.pinned.as_ref()
    }

    /// Fetch the server's configuration again (after a key rotation) and
    /// check it against the profile. After a refused (or failed) refresh,
    /// nothing more is sent until a configuration passes: the next
    /// [`Client::discover`] fetches it again first.
    pub async fn refresh_config(&mut self) -> Result<&ServerParams, ClientError> {
        self.stale = true;
        self.params = fetch_config(&mut self.rpc, self.pinned.as_ref()).await?;
        self.stale = false;
        Ok(&self.params)
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
                Err(ClientError::EpochChanged { .. }) => {
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
        // In sync mode the copy of every record is the index (kept with
        // it, never rebuilt per call); otherwise what this call fetched.
        let records: &dyn FindRecord = match self.cache.record_copy() {
            Some(copy) if self.bucket_mode == BucketMode::Sync => copy,
            _ => &index,
        };
        let mut found: HashMap<&E164, Option<Label>> = HashMap::with_capacity(unique.len());
        let mut unopenable = 0;
        let (mut pairings, mut by_list) = (0, 0);
        for number in &unique {
            let output = self
                .cache
                .get(number)
                .ok_or(ClientError::MalformedResponse(
                    "a contact was not evaluated",
                ))?;
            let mut lookup = records.find(&RecordKeys::derive(output));
            if lookup == Lookup::NotFound {
                // A contacts-only user who listed this user's number has a
                // pair record in the same bucket (see `contacts_only`).
                if let Some(pair) =
                    crate::contacts_only::lookup(self.identity.as_deref(), records, number)
                {
                    pairings += 1;
                    if matches!(pair, Lookup::Registered(_)) {
                        by_list += 1;
                    }
                    lookup = pair;
                }
            }
            if lookup == Lookup::Unopenable {
                unopenable += 1;
            }
            found.insert(number, lookup.label());
        }
        self.last_report.pairings = pairings;
        self.last_report.found_by_allow_list = by_list;
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
        let params = if self.stale {
            self.refresh_config().await?.clone()
        } else {
            self.params.clone()
        };
        let contacts_only = self.bucket_mode == BucketMode::ContactsOnly;
        let sync_mode = self.bucket_mode == BucketMode::Sync;
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
        } else if sync_mode {
            Vec::new()
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
        let mut sync_report = DiscoveryReport::default();
        if sync_mode {
            self.sync_copy(&params, &mut sync_report).await?;
        }
        // In sync mode nothing but the new contacts' elements is asked for,
        // and a call with none sends no Discover request at all.
        let rounds = if sync_mode {
            batches.len()
        } else {
            batches.len().max(bucket_plan.len()).max(1)
        };
        for i in 0..rounds {
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
        round.report.sync_requests = sync_report.sync_requests;
        round.report.sync_bytes_sent = sync_report.sync_bytes_sent;
        round.report.sync_bytes_received = sync_report.sync_bytes_received;
        round.report.full_download = sync_report.full_download;
        self.last_report = round.report;
        tracing::debug!(
            contacts = numbers.len(),
            evaluated = fresh.len(),
            records = if sync_mode {
                self.cache.record_copy().map_or(0, RecordCopy::len)
            } else {
                round.index.len()
            },
            "discovery round finished"
        );
        Ok(round.index)
    }

    /// Sync mode: bring the cache's copy of the records up to the server's
    /// current version: continue or start a full download if there is no
    /// copy of this epoch, else apply the delta since its version. A delta
    /// the server no longer has, or one that does not yield the server's
    /// digest, discards the copy and downloads it again, once.
    async fn sync_copy(
        &mut self,
        params: &ServerParams,
        report: &mut DiscoveryReport,
    ) -> Result<(), ClientError> {
        let mut restarted = false;
        loop {
            let mut copy = match self.cache.copy.take() {
                Some(c) if c.epoch() == params.epoch => c,
                _ => RecordCopy::start(params.epoch),
            };
            if copy.is_downloading() {
                report.full_download = true;
            }
            let outcome = loop {
                let message = copy.next_request();
                report.sync_requests += 1;
                report.sync_bytes_sent += message.encoded_len();
                let mut request = tonic::Request::new(message);
                if let Some(auth) = &self.authorization {
                    request
                        .metadata_mut()
                        .insert(wire::AUTHORIZATION, auth.clone());
                }
                let response = match self.rpc.sync_records(request).await {
                    Ok(r) => r.into_inner(),
                    // A cursor this server refuses (one from a server
                    // before record ids, or from another deployment):
                    // start the download over, once.
                    Err(status)
                        if status.code() == tonic::Code::InvalidArgument
                            && copy.is_resuming()
                            && !restarted =>
                    {
                        break Err(SyncApplyError::Restart);
                    }
                    Err(status) => {
                        // Keep what was downloaded: the next call resumes.
                        self.cache.copy = Some(copy);
                        return Err(status.into());
                    }
                };
                report.sync_bytes_received += response.encoded_len();
                match copy.apply(&response) {
                    Ok(true) => break Ok(()),
                    Ok(false) => {}
                    Err(e) => break Err(e),
                }
            };
            match outcome {
                Ok(()) => {
                    self.cache.copy = Some(copy);
                    return Ok(());
                }
                Err(SyncApplyError::WrongEpoch) => {
                    return Err(ClientError::MalformedResponse(
                        "a sync response names another key epoch than requested",
                    ));
                }
                Err(e @ SyncApplyError::Malformed(_)) => return Err(e.into()),
                Err(e) if restarted => return Err(e.into()),
                Err(_) => {
                    // Restart or digest mismatch: the copy is dropped and
                    // downloaded again.
                    tracing::debug!("record copy discarded: downloading it again");
                    restarted = true;
                }
            }
        }
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

/// The server's configuration, checked against `profile` (or, without one,
/// the default ceiling).
pub(crate) async fn fetch_config(
    rpc: &mut DiscoveryClient<Channel>,
    profile: Option<&ServerProfile>,
) -> Result<ServerParams, ClientError> {
    let c = rpc.get_config(GetConfigRequest {}).await?.into_inner();
    accept_config(c, profile)
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
