//! `cds admin`: the messenger backend's operations, from the shell.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use cds_core::{BucketBits, PublicKey, ServerProfile};
use cds_proto::v1::admin_client::AdminClient;
use cds_proto::v1::{
    AnnounceNextKeyRequest, ImportRequest, ListChangesRequest, ProfileRequest, RegisterRequest,
    RotateKeyRequest, SetDiscoverableRequest, StatsRequest, UnregisterRequest, User,
    registry_change,
};
use cds_server::config::DEFAULT_MAX_CREDENTIAL_LIFETIME;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use zeroize::Zeroizing;

/// Options of `cds admin`.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// URL of the Admin service.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:50052",
        env = "CDS_ADMIN"
    )]
    admin: String,
    /// File holding the Admin token, for a server started with
    /// `--admin-token-file` (the same file).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "CDS_ADMIN_TOKEN_FILE",
        value_parser = parse_token_file
    )]
    admin_token_file: Option<TokenFile>,
    #[command(flatten)]
    channel: crate::channel::ChannelArgs,
    #[command(flatten)]
    client_cert: crate::channel::ClientCertArgs,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Register or update users from a CSV file with columns e164,label,discoverable.
    Import {
        /// The CSV file; a header line `e164,label,discoverable` is optional.
        file: PathBuf,
        /// Rows per message sent to the server.
        #[arg(long, default_value_t = 2000)]
        chunk: usize,
    },
    /// Register a user, or update their label and discoverability.
    Register {
        /// The number in E.164 form, such as +14155550132.
        e164: String,
        /// Opaque label for clients (an account id), at most 64 bytes.
        #[arg(long, default_value = "")]
        label: String,
        /// Register the user as not discoverable.
        #[arg(long)]
        hidden: bool,
    },
    /// Remove a user.
    Unregister {
        /// The number in E.164 form.
        e164: String,
    },
    /// Turn discovery on or off for a registered user.
    SetDiscoverable {
        /// The number in E.164 form.
        e164: String,
        /// `true` to let others find the user, `false` to hide them.
        #[arg(action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
        discoverable: bool,
    },
    /// Issue a discovery credential for an account (what the messenger
    /// backend does for its users; for testing and operations).
    Token {
        /// The account id (1 to 64 bytes).
        #[arg(long)]
        account: String,
        /// The issuer key file (development servers create one in their data directory).
        #[arg(long, default_value = "./cds-data/issuer.key")]
        issuer_key: PathBuf,
        /// How long the credential is valid, such as 24h, 90min or 3days.
        /// Servers refuse credentials valid for longer than their
        /// max_credential_lifetime (7 days by default).
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = cds_cli::settings::parse_duration)]
        valid_for: Duration,
        /// Validity in seconds (the older spelling of --valid-for).
        #[arg(long, hide = true, conflicts_with = "valid_for")]
        ttl_secs: Option<u64>,
        /// The target server's max_credential_lifetime, if it allows more
        /// than the default 7 days: --valid-for may be up to this long.
        #[arg(long, value_name = "DURATION", value_parser = cds_cli::settings::parse_duration)]
        max_lifetime: Option<Duration>,
    },
    /// Create a credential issuer key for the messenger backend and print its
    /// public key (give that to `cds serve --issuer-public-key`).
    IssuerKeygen {
        /// Where to write the new key (refuses to overwrite).
        #[arg(long)]
        out: PathBuf,
    },
    /// Create an Admin token file (64 hex digits, readable by its owner
    /// only). Give it to `cds serve --admin-token-file` and to the messenger
    /// backend, which sends it as `authorization: Bearer <token>`.
    NewAdminToken {
        /// Where to write the token (refuses to overwrite).
        #[arg(long)]
        out: PathBuf,
    },
    /// Show counts: registered, discoverable, table size.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rotate the OPRF key: prepare a new epoch while the current one
    /// serves, switch at once, wipe the old key. Waits until done (about as
    /// long as a table build at start). Clients refresh by themselves. The
    /// new key is the announced one (`announce-key`) if there is one.
    RotateKey,
    /// Announce the key the next `rotate-key` switches to, without using it
    /// yet, so apps can ship it in their server profile first (see
    /// `profile`). Prints its public key; a second call prints the same key.
    AnnounceKey,
    /// Print the server profile apps compile in: the current key, the
    /// announced next key (if any) and the most bucket bits the app lets the
    /// server use. Give it to `cds discover --profile` or
    /// `ClientBuilder::profile`.
    Profile {
        /// The ceiling on bucket bits, 0 to 24 (default: the server's
        /// current bucket bits). A contacts-only lookup reveals this many
        /// bits of each contact at most.
        #[arg(long, value_name = "N", value_parser = parse_bucket_bits)]
        max_bucket_bits: Option<BucketBits>,
    },
    /// Print registry changes after a position as JSON lines (seq, time,
    /// number, label in hex, discoverable, or removed), oldest first.
    Changes {
        /// Print changes with a sequence number above this.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many changes (the server caps a page at 10,000;
        /// larger values fetch several pages).
        #[arg(long, default_value_t = 1000)]
        limit: u64,
    },
}

/// Parse `--max-bucket-bits`.
fn parse_bucket_bits(text: &str) -> Result<BucketBits, String> {
    text.trim()
        .parse::<u8>()
        .ok()
        .and_then(|b| BucketBits::new(b).ok())
        .ok_or_else(|| {
            format!(
                "expected a whole number from 0 to {}",
                cds_core::MAX_BUCKET_BITS
            )
        })
}

/// The server's profile from its Admin `Profile` answer: the current key,
/// the announced one if any, and `max_bucket_bits` (default: the server's
/// bucket bits). Also returns whether a next key is announced.
pub async fn server_profile(
    admin: &mut Admin,
    max_bucket_bits: Option<BucketBits>,
) -> anyhow::Result<(ServerProfile, bool)> {
    let p = admin
        .profile(ProfileRequest {})
        .await
        .map_err(status)?
        .into_inner();
    if p.suite != cds_proto::wire::SUITE {
        bail!(
            "the server uses ciphersuite {:?}, this cds speaks {} only",
            p.suite,
            cds_proto::wire::SUITE
        );
    }
    let mut keys =
        vec![PublicKey::from_slice(&p.public_key).context("the server sent an invalid key")?];
    if !p.next_public_key.is_empty() {
        keys.push(
            PublicKey::from_slice(&p.next_public_key)
                .context("the server sent an invalid announced key")?,
        );
    }
    let announced = keys.len() > 1;
    let ceiling = match max_bucket_bits {
        Some(b) => b,
        None => u8::try_from(p.bucket_bits)
            .ok()
            .and_then(|b| BucketBits::new(b).ok())
            .context("the server sent bucket bits out of range")?,
    };
    Ok((ServerProfile::new(keys, ceiling)?, announced))
}

/// `--admin-token-file` (and `CDS_ADMIN_TOKEN_FILE`), or `--token-file`
/// (and `CDS_TOKEN_FILE`): a file, or "" for none.
#[derive(Clone, Debug)]
pub struct TokenFile(pub Option<PathBuf>);

impl TokenFile {
    /// The file, if one was named.
    pub fn path(&self) -> Option<&Path> {
        self.0.as_deref()
    }
}

/// Parse `--admin-token-file` or `--token-file`: "" is none, as in the
/// configuration file.
pub fn parse_token_file(text: &str) -> Result<TokenFile, String> {
    Ok(TokenFile((!text.is_empty()).then(|| PathBuf::from(text))))
}

/// An Admin client that sends the Admin token with every call, if it has
/// one.
pub type Admin = AdminClient<InterceptedService<Channel, SendAdminToken>>;

/// Adds `authorization: Bearer <token>` (marked sensitive, so it is never
/// logged) to every call.
#[derive(Clone)]
pub struct SendAdminToken(Option<MetadataValue<Ascii>>);

impl Interceptor for SendAdminToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert(cds_proto::wire::AUTHORIZATION, value.clone());
        }
        Ok(request)
    }
}

impl SendAdminToken {
    /// The token of `file`, or none. tonic keeps header values in
    /// `Bytes`, which cannot be wiped: the token stays in this process's
    /// memory until it exits (the text read from the file is wiped).
    pub fn from_file(file: Option<&Path>) -> anyhow::Result<Self> {
        let Some(file) = file else {
            return Ok(Self(None));
        };
        let text = std::fs::read_to_string(file)
            .map(Zeroizing::new)
            .with_context(|| format!("cannot read the admin token file {}", file.display()))?;
        cds_server::admin_token::AdminToken::parse(&text).map_err(|reason| {
            anyhow::anyhow!("the admin token file {} {reason}", file.display())
        })?;
        let header = Zeroizing::new(cds_proto::wire::bearer(&text));
        let mut value = MetadataValue::try_from(header.as_str())
            .context("the admin token is not a valid header value")?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }
}

/// Connect to the Admin service at `url` over `options`, sending `token`
/// with every call.
pub async fn connect(
    url: &str,
    options: &cds_client::ChannelOptions,
    token: SendAdminToken,
) -> anyhow::Result<Admin> {
    let channel = options
        .connect(url)
        .await
        .with_context(|| format!("cannot reach the admin service at {url}"))?;
    Ok(AdminClient::with_interceptor(channel, token))
}

/// The lifetime in seconds of a credential valid for `valid_for`, or why a
/// server whose max_credential_lifetime is `max_lifetime` (the default if
/// not given) would refuse it.
fn credential_lifetime(valid_for: Duration, max_lifetime: Option<Duration>) -> anyhow::Result<u64> {
    let shown = |d: Duration| humantime::format_duration(d).to_string();
    let secs = valid_for.as_secs();
    if secs == 0 {
        bail!("--valid-for must be at least 1s: credentials carry whole seconds");
    }
    match max_lifetime {
        None if valid_for > DEFAULT_MAX_CREDENTIAL_LIFETIME => bail!(
            "--valid-for {} is longer than servers accept by default ({} days, their setting \
             max_credential_lifetime), so the server would refuse the credential: give a shorter \
             --valid-for, or, if the target server's max_credential_lifetime allows more, give it \
             as --max-lifetime",
            shown(valid_for),
            DEFAULT_MAX_CREDENTIAL_LIFETIME.as_secs() / 86_400,
        ),
        Some(max) if secs > max.as_secs() => bail!(
            "--valid-for {} is longer than --max-lifetime {} (the target server's \
             max_credential_lifetime), so the server would refuse the credential: give a shorter \
             --valid-for",
            shown(valid_for),
            shown(max),
        ),
        _ => Ok(secs),
    }
}

fn status(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("the server refused ({:?}): {}", s.code(), s.message())
}

/// Run an admin command.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let mut out = String::new();
    match args.command {
        AdminCommand::Token {
            account,
            issuer_key,
            valid_for,
            ttl_secs,
            max_lifetime,
        } => {
            let valid_for = ttl_secs.map_or(valid_for, Duration::from_secs);
            let lifetime = credential_lifetime(valid_for, max_lifetime)?;
            let issuer = cds_server::keystore::read_issuer(&issuer_key)
                .context("cannot load the issuer key")?;
            let account = cds_core::AccountId::new(account.into_bytes()).context("--account")?;
            let now = cds_server::unix_now();
            let expires = now.saturating_add(lifetime);
            let _ = writeln!(out, "{}", issuer.issue(&account, now, expires));
            return crate::print_out(&out);
        }
        AdminCommand::IssuerKeygen { out: path } => {
            let issuer = cds_core::CredentialIssuer::generate(&mut rand::rng());
            cds_server::keystore::write_issuer(&path, &issuer)
                .context("cannot write the issuer key")?;
            let _ = writeln!(out, "{}", hex::encode(issuer.verifier().to_bytes()));
            return crate::print_out(&out);
        }
        AdminCommand::NewAdminToken { out: path } => {
            cds_server::admin_token::create(&path).context("cannot write the admin token file")?;
            let _ = writeln!(
                out,
                "wrote a new admin token to {}; start the server with --admin-token-file {0} and give the backend the same token",
                path.display()
            );
            return crate::print_out(&out);
        }
        _ => {}
    }
    let token =
        SendAdminToken::from_file(args.admin_token_file.as_ref().and_then(TokenFile::path))?;
    let options = args.client_cert.apply(args.channel.options()?)?;
    let mut admin = connect(&args.admin, &options, token).await?;
    match args.command {
        AdminCommand::Token { .. }
        | AdminCommand::IssuerKeygen { .. }
        | AdminCommand::NewAdminToken { .. } => {}
        AdminCommand::Register {
            e164,
            label,
            hidden,
        } => {
            let r = admin
                .register(RegisterRequest {
                    user: Some(User {
                        e164,
                        label: label.into_bytes().into(),
                        discoverable: !hidden,
                    }),
                })
                .await
                .map_err(status)?
                .into_inner();
            let _ = writeln!(out, "{}", if r.created { "registered" } else { "updated" });
        }
        AdminCommand::Unregister { e164 } => {
            let r = admin
                .unregister(UnregisterRequest { e164 })
                .await
                .map_err(status)?
                .into_inner();
            let _ = writeln!(
                out,
                "{}",
                if r.existed {
                    "unregistered"
                } else {
                    "was not registered"
                }
            );
        }
        AdminCommand::SetDiscoverable { e164, discoverable } => {
            admin
                .set_discoverable(SetDiscoverableRequest { e164, discoverable })
                .await
                .map_err(status)?;
            let _ = writeln!(
                out,
                "{}",
                if discoverable {
                    "discoverable"
                } else {
                    "hidden"
                }
            );
        }
        AdminCommand::Stats { json } => {
            let s = admin
                .stats(StatsRequest {})
                .await
                .map_err(status)?
                .into_inner();
            if json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "registered": s.registered,
                        "discoverable": s.discoverable,
                        "epoch": format!("{:016x}", s.epoch),
                        "bucket_bits": s.bucket_bits,
                        "record_bytes": s.record_bytes,
                        "table_build_ms": s.table_build_ms,
                        "evaluated_elements": s.evaluated_elements,
                        "rotations": s.rotations,
                    })
                );
            } else {
                let _ = writeln!(out, "registered     {}", s.registered);
                let _ = writeln!(out, "discoverable   {}", s.discoverable);
                let _ = writeln!(out, "key epoch      {:016x}", s.epoch);
                let _ = writeln!(
                    out,
                    "bucket bits    {} ({} buckets)",
                    s.bucket_bits,
                    1u64 << s.bucket_bits
                );
                let _ = writeln!(out, "record bytes   {}", s.record_bytes);
                let _ = writeln!(out, "table build    {} ms", s.table_build_ms);
                let _ = writeln!(out, "evaluated      {} elements", s.evaluated_elements);
                let _ = writeln!(out, "rotations      {}", s.rotations);
            }
        }
        AdminCommand::Import { file, chunk } => {
            out = import(&mut admin, &file, chunk.max(1)).await?
        }
        AdminCommand::RotateKey => {
            eprintln!("rotating the key: evaluating every discoverable user under a new key…");
            let r = admin
                .rotate_key(RotateKeyRequest {})
                .await
                .map_err(status)?
                .into_inner();
            let _ = writeln!(
                out,
                "rotated: epoch {:016x} retired, epoch {:016x} serving {} records (took {} ms){}",
                r.retired_epoch,
                r.epoch,
                r.records,
                r.build_ms,
                if r.announced {
                    "; the new key is the announced one"
                } else {
                    ""
                }
            );
        }
        AdminCommand::AnnounceKey => {
            let r = admin
                .announce_next_key(AnnounceNextKeyRequest {})
                .await
                .map_err(status)?
                .into_inner();
            let _ = writeln!(out, "{}", hex::encode(&r.public_key));
            eprintln!(
                "{} the next key (epoch {:016x}); `cds admin profile` prints a profile with it, \
                 ship that to apps before `cds admin rotate-key` switches to it",
                if r.created {
                    "announced"
                } else {
                    "already announced"
                },
                r.epoch
            );
        }
        AdminCommand::Profile { max_bucket_bits } => {
            let (profile, announced) = server_profile(&mut admin, max_bucket_bits).await?;
            let _ = writeln!(out, "{profile}");
            eprintln!(
                "{} key(s), at most {} bucket bits{}",
                profile.keys().len(),
                profile.max_bucket_bits().get(),
                if announced {
                    ": the current key and the announced next one"
                } else {
                    ": the current key only; apps with this profile stop working at the next \
                     rotation unless you run `cds admin announce-key` first and ship the new profile"
                }
            );
        }
        AdminCommand::Changes { after, limit } => out = changes(&mut admin, after, limit).await?,
    }
    crate::print_out(&out)
}

/// Page through the change log; one JSON object per line.
async fn changes(admin: &mut Admin, mut after: u64, limit: u64) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut left = limit;
    let mut warned = false;
    while left > 0 {
        let page = admin
            .list_changes(ListChangesRequest {
                after,
                limit: u32::try_from(left.min(10_000)).unwrap_or(10_000),
            })
            .await
            .map_err(status)?
            .into_inner();
        if !warned && after.saturating_add(1) < page.oldest_retained {
            eprintln!(
                "warning: changes {}..{} were pruned (past the server's retention) before they were read",
                after + 1,
                page.oldest_retained - 1
            );
            warned = true;
        }
        if page.changes.is_empty() {
            break;
        }
        for c in page.changes {
            let line = match c.change {
                Some(registry_change::Change::Upserted(u)) => serde_json::json!({
                    "seq": c.seq, "at_unix": c.at_unix, "op": "upsert", "e164": u.e164,
                    "label_hex": hex::encode(&u.label), "discoverable": u.discoverable,
                }),
                Some(registry_change::Change::Removed(e164)) => serde_json::json!({
                    "seq": c.seq, "at_unix": c.at_unix, "op": "remove", "e164": e164,
                }),
                None => bail!("the server sent a change without content"),
            };
            let _ = writeln!(out, "{line}");
            after = c.seq;
            left -= 1;
        }
    }
    eprintln!("next: --after {after}");
    Ok(out)
}

/// A row left out of the import: its line number and why.
type Skipped = (u64, String);

/// One CSV row that parsed locally, with its line number for error reports.
struct Row {
    line: u64,
    user: User,
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Some(true),
        "false" | "0" | "no" | "n" => Some(false),
        _ => None,
    }
}

/// Read the CSV file; rows with a bad column count or discoverable value are
/// reported by line and skipped.
fn read_csv(file: &PathBuf) -> anyhow::Result<(Vec<Row>, Vec<Skipped>)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 1;
        let record = match record {
            Ok(r) => r,
            Err(_) => {
                problems.push((line, "not valid CSV".to_owned()));
                continue;
            }
        };
        if i == 0
            && record
                .get(0)
                .is_some_and(|f| f.eq_ignore_ascii_case("e164"))
        {
            continue;
        }
        if record.len() != 3 {
            problems.push((
                line,
                format!(
                    "expected 3 columns (e164,label,discoverable), found {}",
                    record.len()
                ),
            ));
            continue;
        }
        let Some(discoverable) = parse_bool(&record[2]) else {
            problems.push((line, "discoverable must be true or false".to_owned()));
            continue;
        };
        rows.push(Row {
            line,
            user: User {
                e164: record[0].to_owned(),
                label: record[1].as_bytes().to_vec().into(),
                discoverable,
            },
        });
    }
    Ok((rows, problems))
}

/// Stream the file's rows to the server; returns the summary line.
async fn import(admin: &mut Admin, file: &PathBuf, chunk: usize) -> anyhow::Result<String> {
    let (rows, mut problems) = read_csv(file)?;
    let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
    let total = rows.len() as u64;

    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let (tx, rx) = tokio::sync::mpsc::channel::<ImportRequest>(4);
    let sender_bar = bar.clone();
    let sender = tokio::spawn(async move {
        let mut users = Vec::with_capacity(chunk);
        for row in rows {
            users.push(row.user);
            if users.len() == chunk {
                let n = users.len() as u64;
                if tx
                    .send(ImportRequest {
                        users: std::mem::take(&mut users),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                sender_bar.inc(n);
            }
        }
        if !users.is_empty() {
            let n = users.len() as u64;
            let _ = tx.send(ImportRequest { users }).await;
            sender_bar.inc(n);
        }
    });
    let summary = admin
        .import(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(status)?
        .into_inner();
    let _ = sender.await;
    bar.finish_and_clear();

    let local_rejected = problems.len() as u64;
    for e in &summary.errors {
        let line = lines.get(e.row as usize).copied().unwrap_or(0);
        problems.push((line, e.reason.clone()));
    }
    problems.sort_by_key(|(line, _)| *line);
    for (line, why) in &problems {
        eprintln!("skipped line {line}: {why}");
    }
    if summary.rejected > summary.errors.len() as u64 {
        eprintln!(
            "(the server lists only the first {} rejected rows)",
            summary.errors.len()
        );
    }
    let line = format!(
        "imported {}: {} created, {} updated, {} rejected\n",
        file.display(),
        summary.created,
        summary.updated,
        local_rejected + summary.rejected
    );
    if summary.received != total {
        bail!(
            "the server received {} of {} rows; run the import again",
            summary.received,
            total
        );
    }
    Ok(line)
}
