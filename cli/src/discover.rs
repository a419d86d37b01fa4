//! `cds discover`: an address book file in, who is registered out.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use cds_client::{BucketMode, Client, Contact, DiscoveryCache, Region, ServerProfile};
use cds_core::PublicKey;
use clap::Args;

/// Options of `cds discover`.
#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// URL of the Discovery service.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "CDS_SERVER")]
    server: String,
    /// Region for numbers written without a country code (ISO 3166 code, such as US or DE).
    #[arg(long)]
    region: String,
    /// The address book: one entry per line, written as people write numbers.
    file: PathBuf,
    /// Print JSON (one array, one object per entry) instead of a table.
    #[arg(long)]
    json: bool,
    /// Download only the buckets of the contacts: less traffic, but the
    /// server learns a few bits of each contact number.
    #[arg(long, conflicts_with = "sync")]
    contacts_only_buckets: bool,
    /// Sync mode: keep a copy of every record (in --cache, which it makes
    /// large: about the size of the table) and bring it up to date by
    /// delta; requests then carry only new contacts. The server learns
    /// nothing about the contacts but how many new ones were evaluated.
    #[arg(long)]
    sync: bool,
    /// Trust only this server public key (64 hex digits) instead of the announced one.
    #[arg(long, conflicts_with = "profile")]
    pin_key: Option<String>,
    /// Trust only what this server profile allows (`cds admin profile`
    /// prints it): its keys, and at most its bucket bits. Without one, any
    /// key is trusted and at most 16 bucket bits.
    #[arg(long, env = "CDS_PROFILE", value_name = "TEXT", value_parser = ServerProfile::parse)]
    profile: Option<ServerProfile>,
    #[command(flatten)]
    credential: crate::credential::CredentialArgs,
    /// Keep evaluated contacts in this file, so the next run only pays for
    /// new numbers (created if missing; private: it lists contacts).
    #[arg(long)]
    cache: Option<PathBuf>,
    #[command(flatten)]
    channel: crate::channel::ChannelArgs,
    /// This user's contacts-only identity keys (`cds admin contacts-keys`):
    /// also find contacts-only users who listed this user's number (one
    /// pairing per contact not otherwise found).
    #[arg(long, value_name = "FILE")]
    identity_keys: Option<PathBuf>,
}

fn load_cache(path: &PathBuf) -> anyhow::Result<DiscoveryCache> {
    match std::fs::read(path) {
        Ok(bytes) => DiscoveryCache::from_bytes(&bytes)
            .with_context(|| format!("cannot use the cache {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DiscoveryCache::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read the cache {}", path.display())),
    }
}

/// Write the cache beside its final name and rename it into place, mode 0600.
fn save_cache(path: &PathBuf, cache: &DiscoveryCache) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    // A leftover temporary file could carry looser permissions: start afresh.
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(&cache.to_bytes()).and_then(|()| f.sync_all())?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot write the cache {}", path.display()))
}

fn parse_key(hex_key: &str) -> anyhow::Result<PublicKey> {
    let bytes = hex::decode(hex_key.trim()).context("--pin-key must be 64 hex digits")?;
    PublicKey::from_slice(&bytes).context("--pin-key is not a valid ristretto255 public key")
}

/// The label for people: UTF-8 text if it is, hex otherwise.
fn label_text(label: &[u8]) -> String {
    match std::str::from_utf8(label) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => format!("0x{}", hex::encode(label)),
    }
}

fn to_json(entry: &str, c: &Contact) -> serde_json::Value {
    match c {
        Contact::Registered { number, label } => serde_json::json!({
            "entry": entry,
            "status": "registered",
            "e164": number.as_str(),
            "label": std::str::from_utf8(label.as_bytes()).ok(),
            "label_hex": hex::encode(label.as_bytes()),
        }),
        Contact::NotRegistered { number } => serde_json::json!({
            "entry": entry,
            "status": "not_registered",
            "e164": number.as_str(),
        }),
        Contact::Invalid { reason } => serde_json::json!({
            "entry": entry,
            "status": "invalid",
            "reason": reason.code(),
            "message": reason.to_string(),
        }),
        _ => serde_json::json!({ "entry": entry, "status": "unknown" }),
    }
}

/// Run `cds discover`.
pub async fn run(args: DiscoverArgs) -> anyhow::Result<()> {
    let region = Region::parse(&args.region).context("--region")?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read the address book {}", args.file.display()))?;
    let entries: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();

    let mut builder =
        Client::builder(args.server.clone()).bucket_mode(if args.contacts_only_buckets {
            BucketMode::ContactsOnly
        } else if args.sync {
            BucketMode::Sync
        } else {
            BucketMode::All
        });
    builder = builder.channel(args.channel.options()?);
    if let Some(k) = &args.pin_key {
        builder = builder.pin_public_key(parse_key(k)?);
    }
    if let Some(p) = &args.profile {
        builder = builder.profile(p.clone());
    }
    if let Some(token) = args.credential.load()? {
        builder = builder.credential(token);
    }
    if let Some(path) = &args.cache {
        builder = builder.cache(load_cache(path)?);
    }
    if let Some(path) = &args.identity_keys {
        builder = builder.identity_keys(crate::contacts::read_identity(path)?);
    }
    let mut client = builder
        .connect()
        .await
        .with_context(|| format!("cannot use the discovery service at {}", args.server))?;
    let contacts = client
        .discover(&entries, region)
        .await
        .context("discovery failed")?;
    if let Some(path) = &args.cache {
        save_cache(path, client.cache())?;
    }
    let report = client.last_report();
    eprintln!(
        "{} contacts looked up: {} evaluated by the server, {} from the cache; \
         {} buckets, {} unchanged since the cache; {} bytes sent, {} received; \
         {} pairings, {} found through allow-lists",
        report.contacts,
        report.evaluated,
        report.cached,
        report.buckets,
        report.unchanged_buckets,
        report.bytes_sent,
        report.bytes_received,
        report.pairings,
        report.found_by_allow_list
    );
    if report.unopenable_records > 0 {
        // Which contacts is not said, here or anywhere: the entries are
        // listed as not registered, as if there were no record.
        eprintln!(
            "warning: the server sent {} record(s) under your contacts' match tags that do not \
             open (corrupt or forged); those contacts are listed as not registered. An honest \
             server never does this: it may be probing which numbers address books hold. Do not \
             pass this count on to the service.",
            report.unopenable_records
        );
    }

    if args.json {
        let out: Vec<_> = entries
            .iter()
            .zip(&contacts)
            .map(|(e, c)| to_json(e, c))
            .collect();
        let mut text = serde_json::to_string_pretty(&out)?;
        text.push('\n');
        return crate::print_out(&text);
    }
    let width = entries
        .iter()
        .map(|e| e.chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    let (mut registered, mut not_registered, mut invalid) = (0, 0, 0);
    let mut text = String::new();
    for (entry, c) in entries.iter().zip(&contacts) {
        match c {
            Contact::Registered { number, label } => {
                registered += 1;
                let _ = writeln!(
                    text,
                    "{entry:<width$}  {:<16}  registered      {}",
                    number.as_str(),
                    label_text(label.as_bytes())
                );
            }
            Contact::NotRegistered { number } => {
                not_registered += 1;
                let _ = writeln!(
                    text,
                    "{entry:<width$}  {:<16}  not registered",
                    number.as_str()
                );
            }
            Contact::Invalid { reason } => {
                invalid += 1;
                let _ = writeln!(text, "{entry:<width$}  {:<16}  invalid: {reason}", "-");
            }
            _ => {}
        }
    }
    let _ = writeln!(
        text,
        "{} entries: {registered} registered, {not_registered} not registered, {invalid} invalid",
        entries.len()
    );
    crate::print_out(&text)
}
