//! Per-operation benchmarks. Run: `cargo bench -p cds-benches`.

use cds_benches::{blind_all, blind_all_multiplicative, numbers, server};
use cds_core::{Label, Output, RecordKeys, VoprfClient};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::traits::VartimeMultiscalarMul;
use curve25519_dalek::{RistrettoPoint, Scalar};
use std::hint::black_box;

const BATCHES: [usize; 5] = [1, 16, 256, 1024, 4096];

/// The floor: decompress a wire element, multiply by a secret scalar, compress.
fn floor(c: &mut Criterion) {
    let mut rng = rand::rng();
    let k = Scalar::random(&mut rng);
    let p = RistrettoPoint::random(&mut rng).compress();
    let mut g = c.benchmark_group("floor");
    g.throughput(Throughput::Elements(1));
    g.bench_function("scalar_mul", |b| {
        let point = p.decompress().expect("valid");
        b.iter(|| black_box(k * black_box(point)))
    });
    g.bench_function("decompress_mul_compress", |b| {
        b.iter(|| {
            let point = CompressedRistretto(black_box(p.to_bytes()))
                .decompress()
                .expect("valid");
            black_box((k * point).compress())
        })
    });
    // The proof's floor: its per-element cost is one term of a multiscalar
    // multiplication over the whole batch (RFC 9497's composite M).
    let n = 4096;
    let points: Vec<RistrettoPoint> = (0..n).map(|_| RistrettoPoint::random(&mut rng)).collect();
    let scalars: Vec<Scalar> = (0..n).map(|_| Scalar::random(&mut rng)).collect();
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::new("multiscalar_mul_vartime", n), |b| {
        b.iter(|| {
            black_box(RistrettoPoint::vartime_multiscalar_mul(
                black_box(&scalars),
                black_box(&points),
            ))
        })
    });
    g.finish();
}

fn client(c: &mut Criterion) {
    let server = server();
    let mut g = c.benchmark_group("client");
    g.throughput(Throughput::Elements(1));
    g.bench_function("hash_to_group", |b| {
        b.iter(|| {
            cds_core::oprf::hash_to_group_encoded(
                cds_core::Mode::Voprf,
                black_box(b"+4915123456789"),
            )
        })
    });
    for &n in &BATCHES {
        let nums = numbers(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("blind", n), &nums, |b, nums| {
            b.iter(|| blind_all(black_box(nums)))
        });
        g.bench_with_input(
            BenchmarkId::new("blind_rfc_multiplicative", n),
            &nums,
            |b, nums| b.iter(|| blind_all_multiplicative(black_box(nums))),
        );
        let (states, blinded) = blind_all(&nums);
        let eval = server
            .blind_evaluate_batch(&blinded, &mut rand::rng())
            .expect("evaluates");
        let inputs: Vec<&[u8]> = nums.iter().map(|n| n.as_bytes()).collect();
        let wire = cds_core::EvaluatedElement::encode_packed(&eval.messages);
        g.bench_with_input(BenchmarkId::new("decode_evaluated", n), &wire, |b, w| {
            b.iter(|| cds_core::EvaluatedElement::decode_packed(black_box(w)).expect("canonical"))
        });
        let (m_states, m_blinded) = blind_all_multiplicative(&nums);
        let m_eval = server
            .blind_evaluate_batch(&m_blinded, &mut rand::rng())
            .expect("evaluates");
        g.bench_with_input(
            BenchmarkId::new("verify_and_finalize_rfc_multiplicative", n),
            &n,
            |b, _| {
                b.iter(|| {
                    VoprfClient::batch_finalize(
                        &inputs,
                        &m_states,
                        &m_eval.messages,
                        &m_eval.proof,
                        server.public_key(),
                    )
                    .expect("verifies")
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("verify", n), &n, |b, _| {
            b.iter(|| {
                VoprfClient::verify_batch_vartime(
                    &states,
                    &eval.messages,
                    &eval.proof,
                    server.public_key(),
                )
                .expect("verifies")
            })
        });
        g.bench_with_input(BenchmarkId::new("verify_and_finalize", n), &n, |b, _| {
            b.iter(|| {
                VoprfClient::batch_finalize(
                    &inputs,
                    &states,
                    &eval.messages,
                    &eval.proof,
                    server.public_key(),
                )
                .expect("verifies")
            })
        });
    }
    g.finish();
}

fn server_side(c: &mut Criterion) {
    let server = server();
    let mut g = c.benchmark_group("server");
    for &n in &BATCHES {
        let (_, blinded) = blind_all(&numbers(n));
        let wire: Vec<u8> = cds_core::BlindedElement::encode_packed(&blinded);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("decode", n), &wire, |b, w| {
            b.iter(|| cds_core::BlindedElement::decode_packed(black_box(w)).expect("canonical"))
        });
        // What the server does per request, on one core: decode the wire
        // bytes, evaluate, prove, encode.
        g.bench_with_input(BenchmarkId::new("request_one_core", n), &wire, |b, w| {
            b.iter(|| {
                let bl = cds_core::BlindedElement::decode_packed(black_box(w)).expect("canonical");
                let eval = server
                    .blind_evaluate_batch(&bl, &mut rand::rng())
                    .expect("evaluates");
                (
                    cds_core::EvaluatedElement::encode_packed(&eval.messages),
                    eval.proof.to_bytes(),
                )
            })
        });
        g.bench_with_input(
            BenchmarkId::new("evaluate_without_proof", n),
            &blinded,
            |b, bl| b.iter(|| server.evaluate_elements(black_box(bl))),
        );
        g.bench_with_input(
            BenchmarkId::new("evaluate_with_proof", n),
            &blinded,
            |b, bl| {
                b.iter(|| {
                    server
                        .blind_evaluate_batch(black_box(bl), &mut rand::rng())
                        .expect("evaluates")
                })
            },
        );
    }
    g.finish();
}

fn records(c: &mut Criterion) {
    let server = server();
    let number = &numbers(1)[0];
    let label = Label::new(b"0123456789abcdef".to_vec()).expect("short");
    let mut g = c.benchmark_group("records");
    g.throughput(Throughput::Elements(1));
    g.bench_function("evaluate_and_seal", |b| {
        b.iter(|| {
            let out = server
                .evaluate(black_box(number.as_bytes()))
                .expect("evaluates");
            RecordKeys::derive(&out).seal(&label)
        })
    });
    let out = Output::from_bytes([7u8; 64]);
    let rec = RecordKeys::derive(&out).seal(&label);
    g.bench_function("derive_and_open", |b| {
        b.iter(|| {
            RecordKeys::derive(black_box(&out))
                .open(rec.as_ref())
                .expect("opens")
        })
    });
    g.finish();
}

criterion_group!(benches, floor, client, server_side, records);
criterion_main!(benches);
