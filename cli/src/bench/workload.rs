//! The client side of the benchmark: concurrent clients, each sending one
//! address book of fresh numbers per request through the real protocol
//! (blind, Discover, verify, unblind, match), measuring every request.

use crate::admin::SendAdminToken;
use std::io::IsTerminal;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::Context;
use cds_client::matching::RecordIndex;
use cds_client::session::{BucketSelection, ServerParams, prepare};
use cds_client::{ChannelOptions, Client, ClientBuilder};
use cds_core::{E164, RecordKeys};
use cds_proto::v1::StatsRequest;
use cds_proto::v1::discovery_client::DiscoveryClient;
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message;
use rand::RngExt;

use super::BenchArgs;
use super::report::Report;
use super::sample::{Measured, Sample, ServerSide};

/// Where the workload goes and what it knows about the server's users.
pub struct Target {
    /// Discovery URL.
    pub url: String,
    /// Credential sent with every request.
    pub token: Option<String>,
    /// How Discovery is reached (TLS options).
    pub channel: ChannelOptions,
    /// What the client trusts about the server (`None`: the defaults).
    pub profile: Option<cds_core::ServerProfile>,
    /// Admin URL, for the server's CPU counters.
    pub admin: Option<String>,
    /// How Admin is reached.
    pub admin_channel: ChannelOptions,
    /// Digits of numbers known to be registered (local mode), so about a
    /// tenth of each address book matches.
    pub registered: Option<Range<u64>>,
    /// The contacts issuer whose public key the server has, for
    /// `--allow-list`.
    pub contacts_issuer: Option<cds_core::contacts_only::IssuerSecret>,
}

impl Target {
    /// A client library builder for this target: its URL, channel,
    /// credential and server profile.
    pub fn client_builder(&self) -> ClientBuilder {
        let mut builder = Client::builder(self.url.clone()).channel(self.channel.clone());
        if let Some(t) = &self.token {
            builder = builder.credential(t.clone());
        }
        if let Some(p) = &self.profile {
            builder = builder.profile(p.clone());
        }
        builder
    }
}

/// Numbers outside any synthetic registered range: German mobiles +4917x.
const UNREGISTERED_BASE: u64 = 4_917_000_000_000;

/// `contacts` distinct numbers, sorted: about a tenth from `registered`
/// (when known), the rest from a range nobody registers.
pub(super) fn address_book(contacts: usize, registered: &Option<Range<u64>>) -> Vec<E164> {
    let mut rng = rand::rng();
    let mut book = Vec::with_capacity(contacts);
    while book.len() < contacts {
        let digits = match registered {
            Some(r) if book.len() % 10 == 0 && !r.is_empty() => rng.random_range(r.clone()),
            _ => UNREGISTERED_BASE + rng.random_range(0..1_000_000_000),
        };
        if let Ok(n) = E164::from_u64(digits) {
            book.push(n);
        }
    }
    book.sort();
    book.dedup();
    book
}

/// One client: requests until `deadline`, returning one sample per request.
async fn client_loop(
    target: &Target,
    mut params: ServerParams,
    contacts: usize,
    contacts_only: bool,
    deadline: Instant,
    progress: ProgressBar,
) -> anyhow::Result<(Vec<Sample>, usize, Duration)> {
    // Connection set-up (TCP, TLS, HTTP/2) is timed apart from requests.
    let connecting = Instant::now();
    let channel = target
        .channel
        .connect(&target.url)
        .await
        .context("cannot connect")?;
    let connect = connecting.elapsed();
    let mut rpc = DiscoveryClient::new(channel).max_decoding_message_size(1 << 30);
    let auth: Option<tonic::metadata::MetadataValue<_>> = match &target.token {
        Some(t) => Some(
            cds_proto::wire::bearer(t)
                .parse()
                .context("the token is not printable")?,
        ),
        None => None,
    };
    let mut samples = Vec::new();
    let mut refused = 0;
    // A request carries at most what the server accepts.
    let contacts = contacts.min(params.max_elements_per_request);
    while Instant::now() < deadline {
        let book = address_book(contacts, &target.registered);
        let n = book.len();
        // Evaluate, with every bucket or none; in contacts-only mode the
        // buckets follow once the tags are known.
        let selection = if contacts_only {
            BucketSelection::Ids(vec![])
        } else {
            BucketSelection::All
        };
        let mut exchange = Exchange::default();
        let t0 = Instant::now();
        let prepared = prepare(book, &params, selection, &mut rand::rng())?;
        exchange.cpu += t0.elapsed();
        let Some(result) = exchange.run(&mut rpc, &auth, prepared).await? else {
            refused += 1;
            exchange.recover(target, &mut params, deadline).await?;
            continue;
        };
        let t1 = Instant::now();
        let mut records = result.records;
        if contacts_only {
            let ids: std::collections::BTreeSet<u32> = result
                .outputs
                .iter()
                .map(|(_, o)| params.bucket_bits.bucket_of(RecordKeys::derive(o).tag()))
                .collect();
            let selection = BucketSelection::Ids(ids.into_iter().collect());
            let prepared = prepare(Vec::new(), &params, selection, &mut rand::rng())?;
            exchange.cpu += t1.elapsed();
            let Some(buckets) = exchange.run(&mut rpc, &auth, prepared).await? else {
                refused += 1;
                exchange.recover(target, &mut params, deadline).await?;
                continue;
            };
            records = buckets.records;
        } else {
            exchange.cpu += t1.elapsed();
        }
        let t2 = Instant::now();
        let mut index = RecordIndex::new();
        for (_, packed) in records {
            index.add(packed)?;
        }
        let mut matched = 0;
        for (_, output) in &result.outputs {
            matched += usize::from(index.lookup(output).label().is_some());
        }
        exchange.cpu += t2.elapsed();
        let Exchange {
            latency,
            cpu: client_cpu,
            bytes_up,
            bytes_down,
            ..
        } = exchange;
        samples.push(Sample {
            latency,
            client_cpu,
            bytes_up,
            bytes_down,
            contacts: n,
            matched,
        });
        progress.inc(1);
    }
    Ok((samples, refused, connect))
}

/// The requests of one discovery, as the client saw them.
#[derive(Default)]
struct Exchange {
    /// Time waiting for responses.
    latency: Duration,
    /// Client work: preparing requests, checking responses, matching.
    cpu: Duration,
    bytes_up: usize,
    bytes_down: usize,
    /// The server refused a request for a retired key epoch.
    epoch_changed: bool,
}

impl Exchange {
    /// Send `prepared` and check its response; `None` when a limit refused
    /// it or the server shed it (a result too: counted, then backed off).
    async fn run(
        &mut self,
        rpc: &mut DiscoveryClient<tonic::transport::Channel>,
        auth: &Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        prepared: cds_client::session::PreparedBatch,
    ) -> anyhow::Result<Option<cds_client::session::BatchResult>> {
        self.bytes_up += prepared.message.encoded_len();
        let mut request = tonic::Request::new(prepared.message);
        if let Some(a) = auth {
            request
                .metadata_mut()
                .insert(cds_proto::wire::AUTHORIZATION, a.clone());
        }
        let sent = Instant::now();
        let response = match rpc.discover(request).await {
            Ok(r) => r.into_inner(),
            Err(status) => match cds_client::ClientError::from(status) {
                cds_client::ClientError::QuotaExceeded { .. }
                | cds_client::ClientError::Unavailable {
                    retry_after: Some(_),
                    ..
                } => return Ok(None),
                // A key rotation switched epochs: fetch the configuration
                // again (`recover`) and go on, as the client library does.
                cds_client::ClientError::EpochChanged { .. } => {
                    self.epoch_changed = true;
                    return Ok(None);
                }
                other => return Err(other.into()),
            },
        };
        let received = Instant::now();
        self.latency += received - sent;
        self.bytes_down += response.encoded_len();
        let result = prepared.state.finish(response)?;
        self.cpu += received.elapsed();
        Ok(Some(result))
    }
}

impl Exchange {
    /// After a refusal: the new epoch's configuration if a key rotation
    /// caused it, otherwise a short wait.
    async fn recover(
        &self,
        target: &Target,
        params: &mut ServerParams,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        if self.epoch_changed {
            *params = server_params(target).await?;
        } else {
            back_off(deadline).await;
        }
        Ok(())
    }
}

/// The server's configuration, fetched the way the client library does.
async fn server_params(target: &Target) -> anyhow::Result<ServerParams> {
    Ok(target
        .client_builder()
        .connect()
        .await
        .context("cannot reach the discovery service")?
        .params()
        .clone())
}

/// Wait a little after a refusal (at most a second, never past `deadline`).
async fn back_off(deadline: Instant) {
    let wait = Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now()));
    tokio::time::sleep(wait).await;
}

/// The server's evaluation counters, if its Admin API is reachable (a
/// refusal is reported on stderr).
pub(super) async fn server_counters(target: &Target, token: &SendAdminToken) -> Option<(u64, u64)> {
    let admin = target.admin.as_deref()?;
    let mut client = crate::admin::connect(admin, &target.admin_channel, token.clone())
        .await
        .ok()?;
    match client.stats(StatsRequest {}).await {
        Ok(s) => {
            let s = s.into_inner();
            Some((s.evaluated_elements, s.evaluation_busy_micros))
        }
        Err(status) => {
            eprintln!(
                "warning: cannot read the server's counters ({:?}: {}); server CPU is not reported",
                status.code(),
                status.message()
            );
            None
        }
    }
}

/// Run the workload with `args.clients` concurrent clients for `args.duration`.
pub async fn run(args: &BenchArgs, target: Target) -> anyhow::Result<Measured> {
    let params = server_params(&target).await?;
    let admin_token = SendAdminToken::from_file(
        args.admin_token_file
            .as_ref()
            .and_then(crate::admin::TokenFile::path),
    )?;
    let before = server_counters(&target, &admin_token).await;

    let bar = if std::io::stderr().is_terminal() && !args.json {
        ProgressBar::new(args.duration.as_secs().max(1))
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("running   {spinner} {pos} requests, {elapsed} of {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(format!("{} s", args.duration.as_secs()));
    bar.enable_steady_tick(Duration::from_millis(200));

    let target = std::sync::Arc::new(target);
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let target = std::sync::Arc::clone(&target);
        let params = params.clone();
        let bar = bar.clone();
        let (contacts, contacts_only) = (args.contacts, args.contacts_only);
        tasks.push(tokio::spawn(async move {
            client_loop(&target, params, contacts, contacts_only, deadline, bar).await
        }));
    }
    let mut samples = Vec::new();
    let mut refused = 0;
    let mut connects = Vec::new();
    for t in tasks {
        let (s, r, c) = t.await.context("a client task failed")??;
        samples.extend(s);
        refused += r;
        connects.push(c);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    // After the workload, so its server counters leave these calls out.
    let after = server_counters(&target, &admin_token).await;
    let resync = if args.resync {
        let (contacts, registered) = (args.contacts, target.registered.clone());
        let book = move || {
            address_book(contacts, &registered)
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect()
        };
        Some(
            super::resync::measure(&target, &admin_token, args.resync_changes, book)
                .await
                .context("the sync-mode measurement failed")?,
        )
    } else {
        None
    };
    let server = match (before, after) {
        (Some((e0, b0)), Some((e1, b1))) if e1 > e0 => Some(ServerSide {
            evaluated: e1 - e0,
            busy: Duration::from_micros(b1 - b0),
        }),
        _ => None,
    };
    // After the workload and its server counters, so neither disturbs the
    // other's figures.
    let allow_list = match (args.allow_list, &target.contacts_issuer) {
        (None, _) => None,
        (Some(_), None) => anyhow::bail!(super::NO_CONTACTS_ISSUER),
        (Some(n), Some(issuer)) => {
            let mode = if args.contacts_only {
                cds_client::BucketMode::ContactsOnly
            } else {
                cds_client::BucketMode::All
            };
            Some(
                super::allow_list::measure(&target, admin_token.clone(), issuer, n, mode)
                    .await
                    .context("the contacts-only measurement failed")?,
            )
        }
    };
    Ok(Measured {
        samples,
        refused,
        elapsed,
        server,
        bucket_bits: params.bucket_bits.get(),
        connects,
        tls: target.url.starts_with("https://"),
        allow_list,
        resync,
    })
}

/// `cds bench --server URL`.
pub async fn run_remote(args: &BenchArgs, url: &str) -> anyhow::Result<Report> {
    let channel = args.channel.options()?;
    let target = Target {
        url: url.to_owned(),
        token: args.credential.load()?,
        profile: args.profile.clone(),
        admin: args.admin.clone(),
        admin_channel: args.client_cert.apply(channel.clone())?,
        channel,
        registered: None,
        contacts_issuer: match &args.contacts_issuer {
            Some(path) => Some(crate::contacts::read_issuer(path)?),
            None => None,
        },
    };
    let measured = run(args, target).await?;
    Ok(Report::new(args, "remote", measured, None))
}
