//! The cost per contact of the binding layer, measured from Rust: the same
//! cached address book discovered through `cds_client::Client` and through
//! `cds_ffi::DiscoveryClient` (the object Kotlin, Swift and Python call),
//! against a running server. `bindings/python/bench_overhead.py` runs this
//! and adds the Python side; BENCHMARKING.md has the figures.
//!
//! ```sh
//! cargo run --release -p cds-ffi --example overhead -- URL CREDENTIAL CONTACTS ROUNDS
//! ```
//!
//! Prints one JSON line: the median seconds per call of each.

use std::time::{Duration, Instant};

use cds_client::{Client, Region};
use cds_ffi::{ClientOptions, connect};

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, credential, contacts, rounds] = &args[..] else {
        return Err("usage: overhead URL CREDENTIAL CONTACTS ROUNDS".into());
    };
    let contacts: usize = contacts.parse()?;
    let rounds: usize = rounds.parse()?;
    let book: Vec<String> = (0..contacts)
        .map(|i| format!("+1201555{:04}", i % 10_000))
        .collect();

    let mut rust = Client::builder(url.clone())
        .credential(credential.clone())
        .connect()
        .await?;
    let us = Region::parse("US")?;
    rust.discover(&book, us).await?; // evaluates once; later calls are cached
    let mut rust_times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let found = rust.discover(&book, us).await?;
        rust_times.push(t.elapsed());
        assert_eq!(found.len(), contacts);
    }

    let ffi = connect(ClientOptions {
        url: url.clone(),
        credential: Some(credential.clone()),
        cache: Some(rust.cache().to_bytes()),
        ..ClientOptions::default()
    })
    .await?;
    let mut ffi_times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let found = ffi.discover(book.clone(), "US".to_owned()).await?;
        ffi_times.push(t.elapsed());
        assert_eq!(found.len(), contacts);
        assert_eq!(ffi.last_report().evaluated, 0);
    }
    println!(
        "{{\"contacts\": {contacts}, \"rounds\": {rounds}, \"rust_client_s\": {:.6}, \"ffi_from_rust_s\": {:.6}}}",
        median(rust_times),
        median(ffi_times)
    );
    Ok(())
}
