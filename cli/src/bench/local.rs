//! `cds bench --local`: an in-process server on 127.0.0.1 with synthetic
//! registered users, built with a progress bar and measured.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use cds_core::{AccountId, CredentialIssuer, E164, Label};
use cds_proto::v1::StatsRequest;
use cds_proto::v1::admin_client::AdminClient;
use cds_server::ServerConfig;
use cds_server::registry::{Registry, User};
use indicatif::{ProgressBar, ProgressStyle};

use super::BenchArgs;
use super::report::Report;
use super::sample::Setup;
use super::workload::{self, Target};
use crate::admin::SendAdminToken;

/// Synthetic registered users are German mobiles +491512 followed by 7
/// digits, counting up from here.
const REGISTERED_BASE: u64 = 4_915_120_000_000;

fn bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() && !quiet {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what:<9} {{bar:40}} {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Resident memory of this process, from /proc (Linux only).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Register `users` synthetic discoverable users with 8-byte labels.
fn register(dir: &std::path::Path, users: usize, quiet: bool) -> anyhow::Result<()> {
    let registry = Registry::open(dir).context("cannot create the benchmark registry")?;
    let progress = bar(users as u64, "register", quiet);
    const CHUNK: usize = 100_000;
    for start in (0..users).step_by(CHUNK) {
        let batch: Vec<User> = (start..(start + CHUNK).min(users))
            .map(|i| {
                Ok(User {
                    number: E164::from_u64(REGISTERED_BASE + i as u64)?,
                    label: Label::new((i as u64).to_be_bytes().to_vec())?,
                    discoverable: true,
                })
            })
            .collect::<Result<_, cds_core::Error>>()?;
        registry.upsert(&batch)?;
        progress.inc(batch.len() as u64);
    }
    progress.finish_and_clear();
    Ok(())
}

/// Run the local benchmark.
pub async fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    if args.users > 10_000_000 {
        anyhow::bail!("--users is limited to 10,000,000 synthetic users");
    }
    let dir = private_tempdir().context("cannot create a temporary data directory")?;
    let users = args.users;
    let quiet = args.json;
    let data = dir.path().to_owned();
    tokio::task::spawn_blocking(move || register(&data, users, quiet)).await??;

    let issuer = CredentialIssuer::generate(&mut rand::rng());
    let mut config = ServerConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse()?;
    config.admin_listen = "127.0.0.1:0".parse()?;
    config.bucket_bits = cds_core::BucketBits::new(args.bucket_bits)?;
    config.issuer = Some(issuer.verifier());
    config.tls_cert = args.tls_cert.clone();
    config.tls_key = args.tls_key.clone();
    config.quota.burst = u32::MAX;
    config.quota.max_in_flight = u32::MAX;
    config.peer.max_connections = u32::MAX;
    config.peer.requests_per_second = 1e9;
    config.peer.request_burst = u32::MAX;
    config.max_response_bytes = 1 << 30;
    // With --allow-list: the backend's contacts issuer, whose public key
    // the server trusts for uploads.
    let contacts_issuer = args
        .allow_list
        .map(|_| cds_core::contacts_only::IssuerSecret::generate(&mut rand::rng()));
    config.contacts_issuer = contacts_issuer.as_ref().map(|i| *i.public_key());

    let rss_before = resident_bytes();
    let progress = Arc::new(AtomicUsize::new(0));
    let build_bar = bar(users as u64, "build", quiet);
    let watcher = {
        let (progress, build_bar) = (Arc::clone(&progress), build_bar.clone());
        tokio::spawn(async move {
            loop {
                build_bar.set_position(progress.load(Ordering::Relaxed) as u64);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    let server = cds_server::start_observed(config, Some(progress)).await;
    let build_wall = started.elapsed();
    watcher.abort();
    build_bar.finish_and_clear();
    let server = server.context("the benchmark server did not start")?;
    let rss_after = resident_bytes();

    let admin_url = format!("http://{}", server.admin_addr());
    let stats = AdminClient::connect(admin_url.clone())
        .await?
        .stats(StatsRequest {})
        .await?
        .into_inner();
    let setup = Setup {
        users,
        table_build: Duration::from_millis(stats.table_build_ms).min(build_wall),
        table_records: stats.discoverable,
        table_bytes: stats.record_bytes,
        rss_delta: rss_before.zip(rss_after).map(|(b, a)| a.saturating_sub(b)),
    };

    // The in-process server's own profile, so any --bucket-bits is accepted.
    let mut admin = crate::admin::connect(
        &admin_url,
        &cds_client::ChannelOptions::default(),
        SendAdminToken::from_file(None)?,
    )
    .await?;
    let (profile, _) = crate::admin::server_profile(&mut admin, None).await?;
    let account = AccountId::new(b"bench".to_vec())?;
    let url = match &args.tls_cert {
        Some(_) => format!("https://localhost:{}", server.discovery_addr().port()),
        None => format!("http://{}", server.discovery_addr()),
    };
    let target = Target {
        url,
        token: Some({
            let now = cds_server::unix_now();
            issuer.issue(&account, now, now + 86_400)
        }),
        profile: Some(profile),
        admin: Some(admin_url),
        admin_channel: cds_client::ChannelOptions::default(),
        channel: args.channel.options()?,
        registered: Some(REGISTERED_BASE..REGISTERED_BASE + users as u64),
        contacts_issuer,
    };
    let measured = workload::run(args, target).await;
    server
        .shutdown()
        .await
        .context("the benchmark server did not stop cleanly")?;
    Ok(Report::new(args, "local", measured?, Some(setup)))
}

/// A temporary data directory only this user can enter (0700 on Unix), as
/// the server requires; `tempfile` uses the default mode otherwise.
fn private_tempdir() -> std::io::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    builder.tempdir()
}
