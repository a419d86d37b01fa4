//! Write the seed corpora under `fuzz/corpus/<target>/`: a few small,
//! valid inputs per target (an honest request, an honest response, a real
//! key file...), from which libFuzzer mutates. Run from the repository root:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```
//!
//! The fixtures are deterministic (`cds_fuzz`), so rewriting gives the same
//! seeds except where the format itself is random (sealed records).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use cds_client::DiscoveryCache;
use cds_core::{AccountId, BlindedElement, Label, Output, Proof, RecordKeys, SetDigest};
use cds_proto::v1::{ImportRequest, User};
use cds_server::discovery::answer;
use cds_server::discovery::sync::answer_sync;
use prost::Message;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).expect("write a seed");
}

fn main() {
    let epoch = cds_fuzz::serving_epoch();
    let mut rng = StdRng::seed_from_u64(42);

    // Discover requests (server) and responses (client), honest ones.
    for mode in 0..cds_fuzz::CLIENT_MODES {
        let prepared = cds_fuzz::client_request(mode);
        let request = prepared.message.clone();
        write(
            "discover_request",
            &format!("honest-{mode}"),
            &request.encode_to_vec(),
        );
        let mut response =
            answer(&epoch, request, &cds_fuzz::LIMITS, &mut rng).expect("an honest request");
        if mode == 1 {
            // Bucket 1 as the client holds it: an honest server calls it
            // unchanged when its digest matches.
            for b in &mut response.buckets {
                if b.bucket == 1 {
                    b.records = Bytes::new();
                    b.unchanged = true;
                }
            }
        }
        let mut seed = vec![mode];
        seed.extend_from_slice(&response.encode_to_vec());
        prepared
            .state
            .finish(response.clone())
            .expect("an honest response verifies");
        write("discover_response", &format!("honest-{mode}"), &seed);

        if mode == 0 {
            write("packed_elements", "blinded", &prepared_blinded());
            write("packed_elements", "evaluated", &response.evaluated_elements);
            write("proof", "honest", &response.proof);
            for b in &response.buckets {
                if !b.records.is_empty() {
                    write(
                        "packed_records",
                        &format!("bucket-{}", b.bucket),
                        &b.records,
                    );
                }
            }
        }
    }
    write(
        "proof",
        "zero",
        &Proof::from_slice(&[0; 64])
            .map(|p| p.to_bytes())
            .unwrap_or([0; 64]),
    );

    // Admin Import: one chunk of valid and invalid rows, then a second one.
    let user = |e164: &str, label: &str, discoverable| User {
        e164: e164.to_owned(),
        label: label.as_bytes().to_vec().into(),
        discoverable,
    };
    let chunk1 = ImportRequest {
        users: vec![
            user("+12015550123", "alice", true),
            user("+4915123456789", "bob", false),
            user("+1 201 555", "bad", true),
        ],
    };
    let chunk2 = ImportRequest {
        users: vec![user("+447400123456", "carol", true)],
    };
    write(
        "admin_import",
        "two-chunks",
        &cds_fuzz::join_messages(&[chunk1.encode_to_vec(), chunk2.encode_to_vec()]),
    );
    write(
        "admin_import",
        "empty-chunk",
        &cds_fuzz::join_messages(&[Vec::new()]),
    );

    // SyncRecords answers (first byte: the copy, `cds_fuzz::sync_copy`),
    // each checked to apply as an honest one does.
    let sync_seed = |mode: u8, response: &cds_proto::v1::SyncResponse, name: &str| {
        let mut copy = cds_fuzz::sync_copy(mode);
        cds_client::fuzzing::apply(&mut copy, response).expect("an honest answer applies");
        let mut seed = vec![mode];
        seed.extend_from_slice(&response.encode_to_vec());
        write("sync_response", name, &seed);
    };
    let ask = |epoch: &cds_server::ServingEpoch, mode: u8, page: usize| {
        let request = cds_client::fuzzing::next_request(&cds_fuzz::sync_copy(mode));
        answer_sync(epoch, &request, page, cds_fuzz::LIMITS.max_response_bytes)
            .expect("an honest request")
    };
    sync_seed(0, &ask(&epoch, 0, 1 << 20), "page-whole");
    sync_seed(0, &ask(&epoch, 0, cds_fuzz::SYNC_PAGE), "page-first");
    sync_seed(2, &ask(&epoch, 2, cds_fuzz::SYNC_PAGE), "page-next");
    sync_seed(1, &ask(&epoch, 1, 1 << 20), "delta-empty");
    // One user hides, one arrives, one changes label: a delta that removes
    // two record ids and adds two records.
    let changed = cds_fuzz::serving_epoch();
    let mut users = cds_fuzz::users();
    users[1].discoverable = false;
    users[2].label = Label::new(b"renamed".to_vec()).expect("short");
    users[0].discoverable = true;
    for u in &users[..3] {
        changed.table().apply(changed.oprf(), u);
    }
    let delta = ask(&changed, 1, 1 << 20);
    assert_eq!(delta.removed_ids.len(), 2 * cds_core::RECORD_ID_LEN);
    sync_seed(1, &delta, "delta-changes");
    let restart = cds_proto::v1::SyncResponse {
        epoch: cds_fuzz::EPOCH,
        restart: true,
        ..Default::default()
    };
    let mut seed = vec![1];
    seed.extend_from_slice(&restart.encode_to_vec());
    write("sync_response", "restart", &seed);

    // Client cache (format in client/src/cache.rs): versions 3 and 4 with
    // one output and one bucket, and a copy section (none, a current copy,
    // a download in progress), each checked by reading it back; versions
    // 1 and 2 (whose bucket section is dropped on reading).
    let label = Label::new(b"alice".to_vec()).expect("short");
    let record = RecordKeys::derive(&Output::from_bytes([5; 64])).seal(&label);
    let mut v1 = b"CDSC\x01".to_vec();
    v1.extend_from_slice(&cds_fuzz::EPOCH.to_be_bytes());
    v1.extend_from_slice(cds_fuzz::key().public().as_bytes());
    v1.extend_from_slice(&1u32.to_be_bytes());
    v1.extend_from_slice(&12015550123u64.to_be_bytes());
    v1.extend_from_slice(&[5; 64]);
    let mut v2 = v1.clone();
    v2[4] = 2;
    v2.extend_from_slice(&1u32.to_be_bytes());
    v2.extend_from_slice(&2u32.to_be_bytes());
    v2.extend_from_slice(&(record.as_bytes().len() as u32).to_be_bytes());
    v2.extend_from_slice(record.as_bytes());
    let mut v3 = v2.clone();
    v3[4] = 3;
    v3.push(0); // no copy
    // A copy section: epoch, version, digest, pending, records.
    let copy_section = |pending: Option<&[u8]>| {
        let mut c = vec![1];
        c.extend_from_slice(&cds_fuzz::EPOCH.to_be_bytes());
        c.extend_from_slice(&3u64.to_be_bytes());
        c.extend_from_slice(&SetDigest::of([record.as_ref()]).to_bytes());
        match pending {
            None => c.push(0),
            Some(cursor) => {
                c.push(1);
                c.extend_from_slice(&2u64.to_be_bytes());
                c.extend_from_slice(&(cursor.len() as u32).to_be_bytes());
                c.extend_from_slice(cursor);
            }
        }
        c.extend_from_slice(&(record.as_bytes().len() as u64).to_be_bytes());
        c.extend_from_slice(record.as_bytes());
        c
    };
    let mut v3_copy = v2.clone();
    v3_copy[4] = 3;
    v3_copy.extend_from_slice(&copy_section(None));
    let mut v4_copy = v3_copy.clone();
    v4_copy[4] = 4;
    let mut cursor = 0u32.to_be_bytes().to_vec();
    cursor.extend_from_slice(record.as_ref().id().as_bytes());
    let mut v4_download = v2.clone();
    v4_download[4] = 4;
    v4_download.extend_from_slice(&copy_section(Some(&cursor)));
    for (name, bytes, copy) in [
        ("v1", &v1, false),
        ("v2", &v2, false),
        ("v3", &v3, false),
        ("v3-copy", &v3_copy, false),
        ("v4-copy", &v4_copy, true),
        ("v4-download", &v4_download, true),
    ] {
        let cache = DiscoveryCache::from_bytes(bytes).expect("a valid cache");
        assert_eq!(cache.record_copy().is_some(), copy, "{name}");
        write("client_cache", name, bytes);
    }
    write("packed_records", "one", record.as_bytes());

    // Key files as the server writes them.
    let seed_line = format!("seed {}\n", "07".repeat(32));
    let mut issuer = vec![0];
    issuer.extend_from_slice(format!("cds-issuer-key v1\n{seed_line}").as_bytes());
    write("key_files", "issuer", &issuer);
    let mut oprf = vec![1];
    oprf.extend_from_slice(format!("cds-oprf-key v1\n{seed_line}").as_bytes());
    write("key_files", "oprf", &oprf);

    // Stored values: a user (flags byte, label) and the two kinds of change
    // (kind, unix seconds, number digits, then the user's value).
    let digits = 12015550123u64.to_be_bytes();
    let mut stored = vec![0];
    stored.extend_from_slice(&digits);
    stored.extend_from_slice(b"\x01alice");
    write("stored_user", "user", &stored);
    for (name, kind, tail) in [
        ("upserted", 1u8, &b"\x01alice"[..]),
        ("removed", 2, &[][..]),
    ] {
        let mut change = vec![1];
        change.extend_from_slice(&5u64.to_be_bytes());
        change.push(kind);
        change.extend_from_slice(&1_700_000_000u64.to_be_bytes());
        change.extend_from_slice(&digits);
        change.extend_from_slice(tail);
        write("stored_user", name, &change);
    }

    // Credentials: valid, and expired at NOW.
    let issuer = cds_fuzz::issuer();
    let account = AccountId::new(b"account-1".to_vec()).expect("valid");
    write(
        "credential",
        "valid",
        issuer
            .issue(&account, cds_fuzz::NOW, cds_fuzz::NOW + 3600)
            .as_bytes(),
    );
    write(
        "credential",
        "expired",
        issuer.issue(&account, 0, 1).as_bytes(),
    );

    write(
        "admin_token",
        "valid",
        b"0123456789abcdef0123456789abcdef\n",
    );
    write("admin_token", "short", b"secret");

    // Address-book entries (first byte: region 0 = US, 1 = DE).
    for (name, region, entry) in [
        ("us-national", 0u8, "(201) 555-0123"),
        ("de-national", 1, "0151 23456789"),
        ("international", 2, "+44 7400 123456"),
        ("e164", 0, "+12015550123"),
        ("text", 0, "call me maybe"),
    ] {
        let mut seed = vec![region];
        seed.extend_from_slice(entry.as_bytes());
        write("normalize", name, &seed);
    }
}

/// The blinded elements of the first client request.
fn prepared_blinded() -> Vec<u8> {
    let message = cds_fuzz::client_request(0).message;
    let elements =
        BlindedElement::decode_packed(&message.blinded_elements).expect("valid elements");
    BlindedElement::encode_packed(&elements)
}
