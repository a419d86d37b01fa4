//! `cds bench --resync`: the steady state of sync mode, measured with the
//! real client: the first download of the epoch, a request for new
//! contacts, a re-sync with nothing changed, and one after registry
//! changes made through the Admin API.

use std::time::{Duration, Instant};

use anyhow::Context;
use cds_client::{BucketMode, Client};
use cds_proto::v1::{ImportRequest, User};

use super::workload::{Target, server_counters};
use crate::admin::SendAdminToken;

/// Numbers registered by the re-sync's changes: +4916x, outside both the
/// local server's users and the unregistered numbers of address books.
const CHANGES_BASE: u64 = 4_916_000_000_000;

/// One step as the client saw it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Step {
    /// Encoded bytes sent (SyncRecords and Discover requests).
    pub up: usize,
    /// Encoded bytes received.
    pub down: usize,
    /// Wall time of the whole call.
    pub latency: Duration,
    /// SyncRecords calls.
    pub sync_calls: usize,
    /// Client CPU time of the call, when the server runs in this process
    /// (`--local`): the process's CPU time over the call less the server's
    /// evaluation time, so it also counts the server's page and delta
    /// encoding and both ends' gRPC work (an upper bound on the client's).
    pub client_cpu: Option<Duration>,
}

/// What `--resync` measured.
#[derive(Clone, Debug)]
pub struct ResyncFigures {
    /// The first call: the whole table, then its closing delta (and the
    /// address book's evaluation).
    pub first_download: Step,
    /// A call with an address book of new contacts: a delta with nothing
    /// changed, and their evaluation.
    pub new_contacts: Step,
    /// Contacts in that address book.
    pub contacts: usize,
    /// A call with nothing new and nothing changed: one empty delta.
    pub unchanged: Step,
    /// A call after `changes` registrations: one delta.
    pub after_changes: Step,
    /// Registry changes made before `after_changes`.
    pub changes: usize,
    /// Bytes of the client's cache file afterwards (the record copy and
    /// the contacts' outputs).
    pub storage: usize,
}

/// The in-process server's evaluation time so far, in microseconds.
async fn evaluation_busy_micros(server: Option<(&Target, &SendAdminToken)>) -> Option<u64> {
    let (target, token) = server?;
    server_counters(target, token).await.map(|(_, busy)| busy)
}

async fn step(
    client: &mut Client,
    book: &[String],
    server: Option<(&Target, &SendAdminToken)>,
) -> anyhow::Result<Step> {
    let busy_before = evaluation_busy_micros(server).await;
    let cpu = cpu_time::ProcessTime::now();
    let t = Instant::now();
    client
        .discover(book, cds_client::Region::parse("US")?)
        .await
        .context("a sync-mode discovery failed")?;
    let latency = t.elapsed();
    let process_cpu = cpu.elapsed();
    let busy_after = evaluation_busy_micros(server).await;
    let client_cpu = match (busy_before, busy_after) {
        (Some(b0), Some(b1)) => {
            Some(process_cpu.saturating_sub(Duration::from_micros(b1.saturating_sub(b0))))
        }
        _ => None,
    };
    let r = client.last_report();
    Ok(Step {
        up: r.bytes_sent + r.sync_bytes_sent,
        down: r.bytes_received + r.sync_bytes_received,
        latency,
        sync_calls: r.sync_requests,
        client_cpu,
    })
}

/// Measure sync mode against `target` with address books from `book`,
/// making `changes` registrations through its Admin API.
pub async fn measure(
    target: &Target,
    admin_token: &SendAdminToken,
    changes: usize,
    book: impl Fn() -> Vec<String>,
) -> anyhow::Result<ResyncFigures> {
    let admin = target
        .admin
        .as_deref()
        .context("--resync registers users: give --admin (and its token) of the server")?;
    let mut client = target
        .client_builder()
        .bucket_mode(BucketMode::Sync)
        .connect()
        .await
        .context("cannot connect")?;
    // Client CPU is only told apart from the server's when both run in
    // this process (`--local`, the only mode that knows its registered
    // numbers).
    let local = target.registered.is_some().then_some((target, admin_token));
    let first_book = book();
    let first_download = step(&mut client, &first_book, local).await?;
    let new_book = book();
    let new_contacts = step(&mut client, &new_book, local).await?;
    let unchanged = step(&mut client, &new_book, local).await?;

    let mut admin = crate::admin::connect(admin, &target.admin_channel, admin_token.clone())
        .await
        .context("cannot reach the Admin API")?;
    let salt = u64::from(rand::random::<u32>() % 1_000) * 1_000_000;
    let users: Vec<User> = (0..changes as u64)
        .map(|i| User {
            e164: format!("+{}", CHANGES_BASE + salt + i),
            label: (i.to_be_bytes().to_vec()).into(),
            discoverable: true,
        })
        .collect();
    admin
        .import(tokio_stream::iter(vec![ImportRequest { users }]))
        .await
        .context("the registry changes were refused")?;
    let after_changes = step(&mut client, &new_book, local).await?;
    Ok(ResyncFigures {
        first_download,
        new_contacts,
        contacts: new_book.len(),
        unchanged,
        after_changes,
        changes,
        storage: client.cache().to_bytes().len(),
    })
}

impl ResyncFigures {
    /// The figures as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let step = |s: &Step| {
            serde_json::json!({
                "bytes_up": s.up,
                "bytes_down": s.down,
                "latency_ms": s.latency.as_secs_f64() * 1e3,
                "sync_calls": s.sync_calls,
                "client_cpu_ms": s.client_cpu.map(|c| c.as_secs_f64() * 1e3),
            })
        };
        serde_json::json!({
            "first_download": step(&self.first_download),
            "new_contacts": step(&self.new_contacts),
            "new_contacts_count": self.contacts,
            "unchanged": step(&self.unchanged),
            "after_changes": step(&self.after_changes),
            "changes": self.changes,
            "client_storage_bytes": self.storage,
        })
    }

    /// The figures as table rows.
    pub fn rows(&self, human: impl Fn(f64) -> String) -> Vec<(String, String)> {
        let row = |s: &Step| {
            format!(
                "{} up + {} down, {:.1} ms, {} sync call(s){}",
                human(s.up as f64),
                human(s.down as f64),
                s.latency.as_secs_f64() * 1e3,
                s.sync_calls,
                s.client_cpu
                    .map(|c| format!(", client CPU {:.1} ms", c.as_secs_f64() * 1e3))
                    .unwrap_or_default()
            )
        };
        vec![
            ("sync: first".into(), row(&self.first_download)),
            (
                format!("sync: {} new", self.contacts),
                row(&self.new_contacts),
            ),
            ("sync: unchanged".into(), row(&self.unchanged)),
            (
                format!("sync: {} changes", self.changes),
                row(&self.after_changes),
            ),
            ("sync: storage".into(), human(self.storage as f64)),
        ]
    }
}
