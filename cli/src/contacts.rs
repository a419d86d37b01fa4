//! Contacts-only mode from the shell: the key files, `cds allow-list`
//! (upload who may find me) and `cds bench-contacts` (its cost).
//!
//! Files (all text, written mode 0600 since they hold secrets):
//!
//! ```text
//! contacts issuer:  "cds-contacts-issuer v1\nseed " hex(32-byte seed) "\n"
//! identity keys:    "cds-identity-keys v1\nissuer " hex(issuer public key, 144 bytes)
//!                   "\nkeys " hex(identity keys, 161 bytes) "\n"
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use cds_client::{Client, Region};
use cds_core::contacts_only::{AllowList, IdentityKeys, IssuerPublicKey, IssuerSecret, PairKey};
use cds_core::{E164, Label};
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

/// Options of `cds bench-contacts`.
#[derive(Args, Debug)]
pub struct BenchContactsArgs {
    /// How many contacts (allowed numbers, and numbers looked up).
    #[arg(long, default_value_t = 1000)]
    contacts: u32,
    /// Label length in bytes.
    #[arg(long, default_value_t = 16)]
    label_len: usize,
}

/// Run `cds bench-contacts`: the client's and the server's cost of
/// contacts-only mode, measured in this process (no server needed: the
/// lookup adds no request).
pub fn bench(args: BenchContactsArgs) -> anyhow::Result<()> {
    let issuer = IssuerSecret::generate(&mut rand::rng());
    let owner = issuer.issue(&E164::parse("+12015550100").context("number")?);
    let book: Vec<E164> = (0..args.contacts)
        .map(|i| E164::from_u64(4_915_100_000_000 + u64::from(i)))
        .collect::<Result<_, _>>()
        .context("numbers")?;
    let label = Label::new(vec![b'x'; args.label_len]).context("--label-len")?;

    let started = Instant::now();
    let cpu = cpu_time::ThreadTime::now();
    let list = AllowList::seal(&owner, &label, &book)?;
    let seal_cpu = cpu.elapsed();
    let seal_wall = started.elapsed();

    let cpu = cpu_time::ThreadTime::now();
    for n in &book {
        let key = PairKey::derive(&owner, n)?;
        std::hint::black_box(key.record_keys(n)?);
    }
    let lookup_cpu = cpu.elapsed();

    let n = f64::from(args.contacts.max(1));
    let upload = list.as_bytes().len() + 96 + 8 + 8 + 16 + 16;
    crate::print_out(&format!(
        "contacts                 {}\n\
         upload: seal CPU         {:.1} ms ({:.0} us per contact, 1 pairing each), wall {:.1} ms\n\
         upload bytes             {} (records {} + signature 96 + fields ~48)\n\
         lookup CPU               {:.1} ms ({:.0} us per contact, 1 pairing each)\n\
         lookup extra requests    0 (pair records ride in buckets already fetched)\n\
         lookup extra bytes       {} per allowed finder in the owner's bucket (one record)\n\
         server storage per pair  {} bytes (one record, on disk and in memory)\n",
        args.contacts,
        seal_cpu.as_secs_f64() * 1e3,
        seal_cpu.as_secs_f64() * 1e6 / n,
        seal_wall.as_secs_f64() * 1e3,
        upload,
        list.as_bytes().len(),
        lookup_cpu.as_secs_f64() * 1e3,
        lookup_cpu.as_secs_f64() * 1e6 / n,
        cds_core::record_len(args.label_len),
        cds_core::record_len(args.label_len),
    ))
}
