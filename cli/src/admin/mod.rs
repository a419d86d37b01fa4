//! `cds admin`: the messenger backend's operations, from the shell.
//!
//! - this file: the subcommands and what each does;
//! - `connection`: reaching the Admin listener (token, TLS);
//! - `profile`: the server profile apps ship;
//! - `token`: credentials for development and tests;
//! - `changes` and `import`: the change feed and CSV import.

mod changes;
mod connection;
mod import;
mod profile;
mod token;

pub use connection::{Admin, SendAdminToken, TokenFile, connect, parse_token_file};
pub use profile::server_profile;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cds_core::BucketBits;
use cds_proto::v1::{
    AnnounceNextKeyRequest, RegisterRequest, RotateKeyRequest, SetDiscoverableRequest,
    StatsRequest, UnregisterRequest, User,
};
use clap::{Args, Subcommand};

use changes::changes;
use import::import;
use profile::parse_bucket_bits;
use token::credential_lifetime;

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
    /// Who may find a registered user: everybody, contacts (only the
    /// numbers the user's app uploads) or nobody.
    SetDiscoverability {
        /// The number in E.164 form.
        e164: String,
        /// everybody, contacts or nobody.
        #[arg(value_parser = ["everybody", "contacts", "nobody"])]
        mode: String,
    },
    /// Create a contacts issuer secret (what the messenger backend keeps,
    /// never the cds server) and print its public key for
    /// `cds serve --contacts-issuer-public-key` / CDS_CONTACTS_ISSUER_PUBLIC_KEY.
    ContactsIssuer {
        /// Where to write the secret (must not exist; mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a user's contacts-only identity keys (development: a backend
    /// does this after verifying that the user holds the number).
    ContactsKeys {
        /// The verified number in E.164 form.
        e164: String,
        /// The contacts issuer secret.
        #[arg(long)]
        issuer: PathBuf,
        /// Where to write the keys (must not exist; mode 0600).
        #[arg(long)]
        out: PathBuf,
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
    /// Create a key-encryption key file (64 hex digits, readable by its
    /// owner only) for replicas sharing keys through PostgreSQL. Give every
    /// replica a copy (`cds serve --key-encryption-key-file`); it never
    /// enters the database.
    NewKeyEncryptionKey {
        /// Where to write the key (refuses to overwrite).
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

pub(super) fn status(s: tonic::Status) -> anyhow::Error {
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
        AdminCommand::ContactsIssuer { out: path } => {
            let issuer = crate::contacts::create_issuer(&path)?;
            let _ = writeln!(out, "{}", hex::encode(issuer.public_key().as_bytes()));
            return crate::print_out(&out);
        }
        AdminCommand::ContactsKeys {
            e164,
            issuer,
            out: path,
        } => {
            let issuer = crate::contacts::read_issuer(&issuer)?;
            let number = cds_core::E164::parse(&e164).context("e164")?;
            crate::contacts::write_identity(&path, issuer.public_key(), &issuer.issue(&number))?;
            let _ = writeln!(out, "wrote identity keys to {}", path.display());
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
        AdminCommand::NewKeyEncryptionKey { out: path } => {
            cds_server::postgres::keys::Kek::create(&path)
                .context("cannot write the key-encryption key file")?;
            let _ = writeln!(
                out,
                "wrote a new key-encryption key to {}; give every replica a copy and start each with --key-encryption-key-file",
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
        | AdminCommand::NewAdminToken { .. }
        | AdminCommand::NewKeyEncryptionKey { .. }
        | AdminCommand::ContactsIssuer { .. }
        | AdminCommand::ContactsKeys { .. } => {}
        AdminCommand::SetDiscoverability { e164, mode } => {
            use cds_proto::v1::Discoverability as D;
            let wire = match mode.as_str() {
                "everybody" => D::Everybody,
                "contacts" => D::Contacts,
                _ => D::Nobody,
            };
            admin
                .set_discoverability(cds_proto::v1::SetDiscoverabilityRequest {
                    e164,
                    discoverability: wire as i32,
                })
                .await
                .map_err(status)?;
            let _ = writeln!(out, "discoverable by {mode}");
        }
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
