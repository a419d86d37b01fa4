//! Contacts-only mode from the shell: the key files, `cds allow-list`
//! (upload who may find me). Its cost is measured by `cds bench --allow-list`.
//!
//! Files (all text, written mode 0600 since they hold secrets):
//!
//! ```text
//! contacts issuer:  "cds-contacts-issuer v1\nseed " hex(32-byte seed) "\n"
//! identity keys:    "cds-identity-keys v1\nissuer " hex(issuer public key, 144 bytes)
//!                   "\nkeys " hex(identity keys, 161 bytes) "\n"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cds_client::{Client, Region};
use cds_core::Label;
use cds_core::contacts_only::{IdentityKeys, IssuerPublicKey, IssuerSecret};
use clap::Args;

const ISSUER_HEADER: &str = "cds-contacts-issuer v1\n";
const KEYS_HEADER: &str = "cds-identity-keys v1\n";

/// Write `text` to a new file only its owner can read.
pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn field<'a>(text: &'a str, header: &str, name: &str, path: &Path) -> anyhow::Result<&'a str> {
    let body = text
        .strip_prefix(header)
        .with_context(|| format!("{} does not start with {:?}", path.display(), header.trim()))?;
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .map(str::trim)
        .with_context(|| format!("{} has no `{name}` line", path.display()))
}

/// Create a contacts issuer secret in `path`; returns it.
pub(crate) fn create_issuer(path: &Path) -> anyhow::Result<IssuerSecret> {
    let issuer = IssuerSecret::generate(&mut rand::rng());
    write_private(
        path,
        &format!("{ISSUER_HEADER}seed {}\n", hex::encode(issuer.seed())),
    )?;
    Ok(issuer)
}

/// Read a contacts issuer secret.
pub(crate) fn read_issuer(path: &Path) -> anyhow::Result<IssuerSecret> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let seed = hex::decode(field(&text, ISSUER_HEADER, "seed", path)?)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| format!("{}: the seed must be 64 hex digits", path.display()))?;
    Ok(IssuerSecret::from_seed(&seed))
}

/// Write `keys` (with the issuer's public key) to a new private file.
pub(crate) fn write_identity(
    path: &Path,
    issuer: &IssuerPublicKey,
    keys: &IdentityKeys,
) -> anyhow::Result<()> {
    let text = zeroize::Zeroizing::new(format!(
        "{KEYS_HEADER}issuer {}\nkeys {}\n",
        hex::encode(issuer.as_bytes()),
        hex::encode(&*keys.to_bytes())
    ));
    write_private(path, &text)
}

/// Read identity keys, checked against the issuer key stored beside them.
pub(crate) fn read_identity(path: &Path) -> anyhow::Result<IdentityKeys> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let issuer = hex::decode(field(&text, KEYS_HEADER, "issuer", path)?)
        .ok()
        .and_then(|b| IssuerPublicKey::from_slice(&b).ok())
        .with_context(|| format!("{}: not a contacts issuer public key", path.display()))?;
    let keys = zeroize::Zeroizing::new(
        hex::decode(field(&text, KEYS_HEADER, "keys", path)?)
            .with_context(|| format!("{}: the keys are not hex", path.display()))?,
    );
    IdentityKeys::from_bytes(&keys, &issuer)
        .with_context(|| format!("{}: identity keys refused", path.display()))
}

/// Options of `cds allow-list`.
#[derive(Args, Debug)]
pub struct AllowListArgs {
    /// URL of the Discovery service.
    #[arg(long, default_value = "http://127.0.0.1:50051", env = "CDS_SERVER")]
    server: String,
    /// Region for numbers written without a country code (ISO 3166 code).
    #[arg(long)]
    region: String,
    /// This user's identity keys (`cds admin contacts-keys` writes them).
    #[arg(long, value_name = "FILE")]
    identity_keys: PathBuf,
    /// The label the allowed contacts will see (this user's account id).
    #[arg(long)]
    label: String,
    /// The numbers allowed to find this user, one per line, written as
    /// people write numbers; an empty file allows nobody.
    file: PathBuf,
    #[command(flatten)]
    credential: crate::credential::CredentialArgs,
    #[command(flatten)]
    channel: crate::channel::ChannelArgs,
}

/// Run `cds allow-list`.
pub async fn run(args: AllowListArgs) -> anyhow::Result<()> {
    let region = Region::parse(&args.region).context("--region")?;
    let keys = read_identity(&args.identity_keys)?;
    let label = Label::new(args.label.into_bytes()).context("--label")?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let entries: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let Some(token) = args.credential.load()? else {
        bail!("an upload needs a credential: give --token-file (or --token)");
    };
    let mut client = Client::builder(args.server.clone())
        .channel(args.channel.options()?)
        .credential(token)
        .identity_keys(keys)
        .connect()
        .await
        .with_context(|| format!("cannot use the discovery service at {}", args.server))?;
    let report = client
        .upload_allow_list(&entries, region, &label)
        .await
        .context("the upload failed")?;
    crate::print_out(&format!(
        "allowed {} numbers ({} records stored, {} pairings, {} bytes sent)\n",
        report.allowed, report.stored, report.pairings, report.bytes_sent
    ))
}
