//! Batch evaluation on every core: decode, evaluate, prove.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cds_core::{BlindedElement, ELEMENT_LEN, EvaluatedElement, VoprfServer};
use rand::CryptoRng;
use rayon::prelude::*;

use super::DiscoverError;

/// Elements evaluated per rayon task: large enough to amortize scheduling.
const EVAL_CHUNK: usize = 64;

/// Run `f`, telling `cpu` the CPU time this thread spent in it (wall time
/// where the platform has no thread clock).
fn on_the_clock<T>(cpu: &(dyn Fn(Duration) + Sync), f: impl FnOnce() -> T) -> T {
    let thread = cpu_time::ThreadTime::try_now().ok();
    let wall = Instant::now();
    let out = f();
    cpu(thread
        .and_then(|c| c.try_elapsed().ok())
        .unwrap_or_else(|| wall.elapsed()));
    out
}

/// Decode every packed element first (so invalid input costs no
/// evaluation), then evaluate in parallel on the current rayon pool and
/// prove the whole batch. Returns the packed evaluated elements and the
/// proof; `cpu` is told each thread's CPU time.
pub fn evaluate<R: CryptoRng + ?Sized>(
    server: &VoprfServer,
    packed: &[u8],
    rng: &mut R,
    cpu: &(dyn Fn(Duration) + Sync),
) -> Result<(Bytes, Bytes), DiscoverError> {
    let decoded: Vec<Result<BlindedElement, cds_core::Error>> = packed
        .par_chunks(EVAL_CHUNK * ELEMENT_LEN)
        .map(|chunk| {
            on_the_clock(cpu, || {
                chunk
                    .chunks_exact(ELEMENT_LEN)
                    .map(BlindedElement::from_slice)
                    .collect::<Vec<_>>()
            })
        })
        .flatten_iter()
        .collect();
    let blinded = decoded
        .into_iter()
        .enumerate()
        .map(|(index, r)| r.map_err(|source| DiscoverError::InvalidElement { index, source }))
        .collect::<Result<Vec<_>, _>>()?;
    let evaluated: Vec<EvaluatedElement> = blinded
        .par_chunks(EVAL_CHUNK)
        .map(|chunk| on_the_clock(cpu, || server.evaluate_elements(chunk)))
        .flatten_iter()
        .collect();
    let proof = on_the_clock(cpu, || server.prove_batch(&blinded, &evaluated, rng))
        .map_err(DiscoverError::Proof)?;
    Ok((
        EvaluatedElement::encode_packed(&evaluated).into(),
        Bytes::copy_from_slice(&proof.to_bytes()),
    ))
}
