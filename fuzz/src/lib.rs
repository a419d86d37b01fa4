//! Fixtures the fuzz targets share with `examples/seeds.rs`, which writes
//! the seed corpora: a fixed key, a small record table, the client's view
//! of that server, and the framing of Admin messages. Everything is
//! deterministic, so the seeds written once keep matching the targets
//! (an honest `DiscoverResponse` seed still verifies).

use std::sync::OnceLock;

use bytes::Bytes;
use cds_client::RecordCopy;
use cds_client::session::{
    BucketSelection, PreparedBatch, ServerParams, prepare, prepare_revalidating,
};
use cds_core::{BucketBits, CredentialIssuer, E164, KeyPair, Label, Mode, Output, VoprfServer};
use cds_server::ServingEpoch;
use cds_server::discovery::DiscoverLimits;
use cds_server::discovery::sync::answer_sync;
use cds_server::registry::User;
use cds_server::table::RecordTable;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The epoch the fuzzed server serves.
pub const EPOCH: u64 = 7;
/// Bucket bits of its table: 4 buckets.
pub const BUCKET_BITS: u8 = 2;
/// Its request limits (small, so that a fuzzed request evaluates quickly).
pub const LIMITS: DiscoverLimits = DiscoverLimits {
    max_elements: 16,
    max_response_bytes: 64 * 1024,
};
/// Slack the real server allows over `max_response_bytes` when encoding
/// (`bind.rs`: `max_encoding_message_size`).
pub const ENCODING_SLACK: usize = 4096;
/// The time credentials are checked at.
pub const NOW: u64 = 1_700_000_000;

/// The server's key, always the same.
pub fn key() -> KeyPair {
    KeyPair::derive(Mode::Voprf, &[7; 32], b"cds-fuzz").expect("a fixed seed derives a key")
}

/// The numbers registered on the fuzzed server (the first is hidden).
pub const REGISTERED: [&str; 4] = [
    "+12015550123",
    "+4915123456789",
    "+447400123456",
    "+33612345678",
];

fn number(s: &str) -> E164 {
    E164::parse(s).expect("a canonical number")
}

/// The server's users.
pub fn users() -> Vec<User> {
    REGISTERED
        .iter()
        .enumerate()
        .map(|(i, n)| User {
            number: number(n),
            label: Label::new(format!("user-{i}").into_bytes()).expect("short"),
            discoverable: i > 0,
        })
        .collect()
}

/// The serving epoch: the fixed key and the table of [`users`].
pub fn serving_epoch() -> ServingEpoch {
    let bits = BucketBits::new(BUCKET_BITS).expect("valid bits");
    let table = RecordTable::build(bits, &VoprfServer::new(key()), &users(), None, &|| false)
        .expect("never cancelled");
    ServingEpoch::new(EPOCH, key(), table)
}

/// What a client knows of that server.
pub fn params() -> ServerParams {
    ServerParams {
        epoch: EPOCH,
        public_key: *key().public(),
        bucket_bits: BucketBits::new(BUCKET_BITS).expect("valid bits"),
        max_elements_per_request: LIMITS.max_elements as usize,
        bucket_scheme: cds_proto::wire::BUCKET_SCHEME_TAG,
    }
}

/// Kinds of client request, chosen by a fuzz input's first byte.
pub const CLIENT_MODES: u8 = 3;

/// The records the client holds for bucket 1 in mode 1 (an empty bucket).
pub fn held_records() -> Bytes {
    Bytes::new()
}

/// A client request, the same every time for the same `mode`
/// (modulo [`CLIENT_MODES`]): 0 asks for all buckets for three contacts
/// (two registered); 1 asks for buckets 3 and 1 for two contacts, holding
/// bucket 1's records; 2 refreshes bucket 0's records only.
pub fn client_request(mode: u8) -> PreparedBatch {
    let mut rng = StdRng::seed_from_u64(u64::from(mode));
    let p = params();
    let n = |s: &[&str]| s.iter().map(|s| number(s)).collect::<Vec<_>>();
    let prepared = match mode % CLIENT_MODES {
        0 => prepare(
            n(&[REGISTERED[1], REGISTERED[2], "+12025550199"]),
            &p,
            BucketSelection::All,
            &mut rng,
        ),
        1 => prepare_revalidating(
            n(&[REGISTERED[3], "+12025550199"]),
            &p,
            BucketSelection::Ids(vec![3, 1]),
            &[(1, held_records())].into_iter().collect(),
            &mut rng,
        ),
        _ => prepare(Vec::new(), &p, BucketSelection::Ids(vec![0]), &mut rng),
    };
    prepared.expect("a valid request")
}

/// Kinds of sync-mode copy a `sync_response` input is applied to, chosen
/// by its first byte (modulo this).
pub const SYNC_COPIES: u8 = 3;
/// Bytes of records per sync page for copy 2: two records of this table.
pub const SYNC_PAGE: usize = 40;

/// Sync `copy` with `epoch`, `page` bytes a page, until current or
/// (with `pages`) after that many pages.
pub fn sync_with(epoch: &ServingEpoch, copy: &mut RecordCopy, page: usize, pages: Option<usize>) {
    for done in 0.. {
        if pages == Some(done) {
            return;
        }
        let request = cds_client::fuzzing::next_request(copy);
        let response = answer_sync(epoch, &request, page, LIMITS.max_response_bytes)
            .expect("an honest sync request");
        if cds_client::fuzzing::apply(copy, &response).expect("an honest answer applies") {
            return;
        }
    }
}

/// A sync-mode copy of the fuzzed server's table, the same every time for
/// the same `mode` (modulo [`SYNC_COPIES`]): 0 empty (the first page is
/// next), 1 current at the table's first version (a delta is next), 2
/// after the first page of [`SYNC_PAGE`] bytes (the next page is next).
pub fn sync_copy(mode: u8) -> RecordCopy {
    static COPIES: OnceLock<Vec<RecordCopy>> = OnceLock::new();
    COPIES.get_or_init(|| {
        let epoch = serving_epoch();
        let empty = cds_client::fuzzing::start_copy(EPOCH);
        let mut current = empty.clone();
        sync_with(&epoch, &mut current, 1 << 20, None);
        let mut partial = empty.clone();
        sync_with(&epoch, &mut partial, SYNC_PAGE, Some(1));
        vec![empty, current, partial]
    })[usize::from(mode % SYNC_COPIES)]
    .clone()
}

/// The PRF outputs of every registered number (what a sync-mode client
/// looks up in its copy).
pub fn outputs() -> &'static [Output] {
    static OUTPUTS: OnceLock<Vec<Output>> = OnceLock::new();
    OUTPUTS.get_or_init(|| {
        let server = VoprfServer::new(key());
        REGISTERED
            .iter()
            .map(|n| server.evaluate(number(n).as_bytes()).expect("evaluates"))
            .collect()
    })
}

/// The issuer of the credentials the fuzzed verifier accepts.
pub fn issuer() -> CredentialIssuer {
    CredentialIssuer::from_seed(&[9; 32])
}

/// Split fuzz input into Admin messages: while at least two bytes remain,
/// a little-endian u16 gives the next message's length (cut short at the
/// end of the input); a remainder of one byte is a message of its own.
pub fn split_messages(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 2 {
            out.push(data);
            break;
        }
        let len = usize::from(u16::from_le_bytes([data[0], data[1]]));
        let rest = &data[2..];
        let (msg, tail) = rest.split_at(len.min(rest.len()));
        out.push(msg);
        data = tail;
    }
    out
}

/// The inverse of [`split_messages`], for seeds.
pub fn join_messages(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        let len = u16::try_from(m.len()).expect("a seed message under 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// gRPC length-prefixed framing (uncompressed) of `messages`: the request
/// body of a client-streaming call.
pub fn grpc_frames(messages: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.push(0);
        out.extend_from_slice(&(m.len() as u32).to_be_bytes());
        out.extend_from_slice(m);
    }
    out
}
