//! `cds bench`: a complete discovery workload against a running server or
//! an in-process one, with the figures an operator needs.

mod allow_list;
mod local;
mod report;
mod resync;
mod sample;
mod workload;

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

/// Options of `cds bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Start an in-process server on 127.0.0.1 with `--users` synthetic users.
    #[arg(long, conflicts_with = "server")]
    local: bool,
    /// Benchmark a running server at this Discovery URL instead.
    #[arg(long)]
    server: Option<String>,
    /// The running server's profile (`cds admin profile`): the client
    /// refuses a server outside it, as an app would.
    #[arg(long, value_name = "TEXT", conflicts_with = "local", value_parser = cds_core::ServerProfile::parse)]
    profile: Option<cds_core::ServerProfile>,
    #[command(flatten)]
    credential: crate::credential::CredentialArgs,
    /// Admin URL of the running server, to report its CPU time per element.
    #[arg(long)]
    admin: Option<String>,
    /// The Admin token file of the running server, if it requires one.
    #[arg(
        long,
        value_name = "FILE",
        env = "CDS_ADMIN_TOKEN_FILE",
        value_parser = crate::admin::parse_token_file
    )]
    admin_token_file: Option<crate::admin::TokenFile>,
    /// Registered (discoverable) synthetic users of the local server.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Contacts per request (one address book per request, all new numbers).
    #[arg(long, default_value_t = 1_000)]
    contacts: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// How long to run, such as 20s or 2m.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Bucket bits of the local server.
    #[arg(long, default_value_t = 8)]
    bucket_bits: u8,
    /// Ask only for the contacts' buckets instead of all of them.
    #[arg(long)]
    contacts_only: bool,
    /// Also measure contacts-only mode after the workload: a synthetic
    /// contacts-only user uploads an allow-list of N numbers, and one of
    /// them finds it among N contacts (pairing CPU per contact, upload
    /// bytes and round trip, lookup bytes). Needs the Admin service
    /// (`--admin` with `--server`) and, with `--server`, the contacts
    /// issuer secret the server's key comes from (`--contacts-issuer`).
    #[arg(long, value_name = "N")]
    allow_list: Option<usize>,
    /// With `--server --allow-list`: the contacts issuer secret
    /// (`cds admin contacts-issuer`) whose public key the server has, to
    /// issue the synthetic users' identity keys.
    #[arg(
        long,
        value_name = "FILE",
        requires = "allow_list",
        conflicts_with = "local"
    )]
    contacts_issuer: Option<std::path::PathBuf>,
    /// Also measure sync mode's steady state with the real client: the
    /// first download, a request for --contacts new contacts, a re-sync
    /// with nothing changed and one after --resync-changes registrations
    /// (made through --admin), and the client's storage.
    #[arg(long)]
    resync: bool,
    /// Registrations made before the measured re-sync.
    #[arg(long, default_value_t = 1_000, requires = "resync")]
    resync_changes: usize,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// Local server: serve Discovery over TLS with this certificate (PEM),
    /// reached as https://localhost; give --tls-key and --ca-file too.
    #[arg(long, value_name = "PEM", requires_all = ["tls_key", "local"])]
    tls_cert: Option<std::path::PathBuf>,
    /// Local server: the private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    channel: crate::channel::ChannelArgs,
    #[command(flatten)]
    client_cert: crate::channel::ClientCertArgs,
}

/// `20s`, `2m`, `1h` or a number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = digits
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 20s or 2m)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit in {s:?}: use ms, s, m or h")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err("the duration must be positive".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

const NO_CONTACTS_ISSUER: &str = "--allow-list with --server needs --contacts-issuer FILE (the secret whose public key the server has) and --admin URL (to register a synthetic contacts-only user)";

/// Run the benchmark and print its report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.contacts == 0 || args.clients == 0 {
        bail!("--contacts and --clients must be at least 1");
    }
    if args.allow_list == Some(0) {
        bail!("--allow-list must be at least 1 (the finder is one of the allowed numbers)");
    }
    // Checked before the workload runs, not after.
    if !args.local
        && args.allow_list.is_some()
        && (args.contacts_issuer.is_none() || args.admin.is_none())
    {
        bail!(NO_CONTACTS_ISSUER);
    }
    let report = if args.local {
        local::run(&args).await?
    } else {
        let Some(url) = args.server.clone() else {
            bail!("choose --local, or --server URL for a running server");
        };
        workload::run_remote(&args, &url)
            .await
            .context("the benchmark failed")?
    };
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&report.to_json())?)
    } else {
        report.to_table()
    };
    crate::print_out(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }
}
