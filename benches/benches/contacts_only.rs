//! Contacts-only mode: the client's cost per contact (one pairing and two
//! hashes), the upload signature, and the server's verification.

use cds_core::contacts_only::{IssuerSecret, PairKey, UploadSignature, upload_message};
use cds_core::{E164, Label};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn contacts_only(c: &mut Criterion) {
    let issuer = IssuerSecret::from_seed(&[7; 32]);
    let me = issuer.issue(&E164::parse("+12015550123").expect("valid"));
    let other = E164::parse("+4915123456789").expect("valid");
    let label = Label::new(vec![b'x'; 16]).expect("short");
    let mut g = c.benchmark_group("contacts_only");
    g.bench_function("pair_key_and_tag_per_contact", |b| {
        b.iter(|| {
            let key = PairKey::derive(&me, black_box(&other)).expect("derives");
            black_box(key.record_keys(&other).expect("in pair"))
        })
    });
    g.bench_function("seal_one_pair_record", |b| {
        b.iter(|| {
            let key = PairKey::derive(&me, black_box(&other)).expect("derives");
            let keys = key.record_keys(me.number()).expect("in pair");
            black_box(keys.seal(&label))
        })
    });
    let message = upload_message(
        issuer.public_key().epoch(),
        b"acct",
        me.number(),
        1,
        &[0; 61_000],
    );
    g.bench_function("sign_upload", |b| {
        b.iter(|| black_box(UploadSignature::sign(&me, &message, &mut rand::rng())))
    });
    let sig = UploadSignature::sign(&me, &message, &mut rand::rng());
    g.bench_function("server_verify_upload", |b| {
        b.iter(|| black_box(sig.verify(issuer.public_key(), me.number(), &message)))
    });
    g.bench_function("issue_identity_keys", |b| {
        b.iter(|| black_box(issuer.issue(black_box(&other))))
    });
    g.finish();
}

criterion_group!(benches, contacts_only);
criterion_main!(benches);
