//! # cds-benches: inputs for the protocol benchmarks
//!
//! `cargo bench -p cds-benches` runs `benches/protocol.rs`: each protocol
//! step of cds next to the floor it cannot beat, one variable-base
//! ristretto255 scalar multiplication (with the decompression and
//! compression a wire element needs). Figures and commands are recorded in
//! `BENCHMARKING.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::unwrap_used)]

use cds_core::{BlindedElement, E164, KeyPair, VoprfClient, VoprfServer};

/// A server with a fresh random key.
pub fn server() -> VoprfServer {
    VoprfServer::new(KeyPair::generate(&mut rand::rng()))
}

/// `n` distinct valid-looking E.164 numbers.
pub fn numbers(n: usize) -> Vec<E164> {
    (0..n as u64)
        .map(|i| E164::from_u64(4915120000000 + i).expect("in range"))
        .collect()
}

/// Blind `numbers` as the client library does (one batch, additive
/// blinding): the client states and the blinded elements to send.
pub fn blind_all(numbers: &[E164]) -> (Vec<VoprfClient>, Vec<BlindedElement>) {
    let inputs: Vec<&[u8]> = numbers.iter().map(E164::as_bytes).collect();
    VoprfClient::blind_batch_additive(&inputs, &mut rand::rng())
        .expect("blinds")
        .into_iter()
        .map(|r| (r.state, r.message))
        .unzip()
}

/// Blind `numbers` with RFC 9497's multiplicative `Blind` (one batch), for
/// comparison with [`blind_all`].
pub fn blind_all_multiplicative(numbers: &[E164]) -> (Vec<VoprfClient>, Vec<BlindedElement>) {
    let inputs: Vec<&[u8]> = numbers.iter().map(E164::as_bytes).collect();
    VoprfClient::blind_batch(&inputs, &mut rand::rng())
        .expect("blinds")
        .into_iter()
        .map(|r| (r.state, r.message))
        .unzip()
}
