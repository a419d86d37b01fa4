//! `cds discover`: an address book file in, who is registered out.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use cds_client::{BucketMode, Client, Contact, Region};
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
    #[arg(long)]
    contacts_only_buckets: bool,
    /// Trust only this server public key (64 hex digits) instead of the announced one.
    #[arg(long)]
    pin_key: Option<String>,
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
        } else {
            BucketMode::All
        });
    if let Some(k) = &args.pin_key {
        builder = builder.pin_public_key(parse_key(k)?);
    }
    let mut client = builder
        .connect()
        .await
        .with_context(|| format!("cannot use the discovery service at {}", args.server))?;
    let contacts = client
        .discover(&entries, region)
        .await
        .context("discovery failed")?;

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
