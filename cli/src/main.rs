//! # cds: the command line of private contact discovery
//!
//! - `cds serve`: run the Discovery and Admin services on an embedded store.
//! - `cds admin ...`: register, import and inspect users over the Admin API.
//! - `cds discover`: look up an address book file, as an app would.
//!
//! Exit codes: 0 success, 1 the operation failed (the message says why),
//! 2 the command line is wrong, 3 `cds serve` was stopped by a second
//! SIGTERM or SIGINT without waiting for requests in flight.
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::unwrap_used)]

mod admin;
mod bench;
mod channel;
mod contacts;
mod credential;
mod discover;
mod serve;

use clap::{Parser, Subcommand};

/// Private contact discovery: find which contacts use the messenger without
/// showing the server the address book.
#[derive(Parser, Debug)]
#[command(name = "cds", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: Discovery for apps, Admin for the messenger backend.
    Serve(serve::ServeArgs),
    /// Manage users through the Admin API.
    Admin(admin::AdminArgs),
    /// Discover which entries of an address book file are registered.
    Discover(discover::DiscoverArgs),
    /// Measure throughput, latency, bytes and CPU per element under load.
    Bench(bench::BenchArgs),
    /// Contacts-only mode: upload (replace) the numbers allowed to find me.
    AllowList(contacts::AllowListArgs),
}

/// Write `text` to standard output. A closed pipe (`cds ... | head`) is not
/// an error worth a panic: the reader has what it wanted.
pub(crate) fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(a) => serve::run(a).await,
            Command::Admin(a) => admin::run(a).await,
            Command::Discover(a) => discover::run(a).await,
            Command::Bench(a) => bench::run(a).await,
            Command::AllowList(a) => contacts::run(a).await,
        }
    });
    // Do not wait for blocking work still running (a key rotation that the
    // shutdown interrupted): its pending key is discarded at the next start.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `e` and its causes, joined by ": ", leaving out a cause whose text an
/// outer message already quotes (many errors name their cause).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_message_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "File exists");
        let quoting = cds_server::ServerError::Io {
            what: "cannot create",
            path: "x".into(),
            source: io,
        };
        let e = anyhow::Error::new(quoting).context("cannot write");
        assert_eq!(message(&e), "cannot write: cannot create at x: File exists");
        let plain = anyhow::Error::new(std::io::Error::other("disk full")).context("cannot save");
        assert_eq!(message(&plain), "cannot save: disk full");
    }
}
