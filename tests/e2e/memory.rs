//! Response memory under slow readers: clients that ask for many buckets
//! and never read the answer hold it in the server until they do. Every
//! `all` response of one table version shares one encoding of the table,
//! counted once; what each response holds of its own (its evaluated
//! elements, or with `ids` its copy of the buckets) is counted per
//! response. The server bounds the total (`max_response_memory`) and sheds
//! the rest, while honest requests go on.

use bytes::Bytes;
use cds_client::{BucketMode, ClientError};
use cds_proto::v1::discover_request::Buckets;
use cds_proto::v1::{BucketIds, DiscoverRequest, DiscoverResponse};
use cds_tests::{TestServer, german_mobiles, us};
use prost::Message;

/// Users with 64-byte labels: 89-byte records (`cds_core::MAX_RECORD_LEN`),
/// about 5.5 MB in all.
const USERS: usize = 62_000;
/// The server's response memory: room for two copies of the table.
const BUDGET: usize = 12 * 1024 * 1024;
/// Slow readers of every bucket: 40 copies of the table would hold about
/// 220 MB, 18 times the budget.
const SLOW_READERS: usize = 40;
/// Bucket bits of the server: 256 buckets.
const BITS: u8 = 8;

/// Resident memory of this process (the server runs in it), in bytes.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("procfs");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// A client on its own HTTP/2 connection that asks for `buckets` and reads
/// only the response head: the server can send no more than the
/// flow-control window and holds the rest. Returns the connection's
/// response (kept alive by the caller) and its `grpc-status`, if the head
/// carried one (a refusal).
async fn slow_reader(
    server: &TestServer,
    account: &str,
    epoch: u64,
    buckets: Buckets,
) -> (h2::RecvStream, Option<String>) {
    let addr = server.url().trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connects");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/cds.v1.Discovery/Discover"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(
            "authorization",
            cds_proto::wire::bearer(&server.token(account)),
        )
        .body(())
        .expect("request");
    let (response, mut send) = client.send_request(request, false).expect("sent");
    let message = DiscoverRequest {
        epoch,
        blinded_elements: Bytes::new(),
        buckets: Some(buckets),
        record_format: cds_proto::wire::RECORD_FORMAT,
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    send.send_data(frame.into(), true).expect("body sent");
    let response = response.await.expect("response head");
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    (response.into_body(), status)
}

/// Every bucket.
fn all() -> Buckets {
    Buckets::All(Default::default())
}

/// Every bucket, by id: the response carries its own copy of the table.
fn every_id() -> Buckets {
    Buckets::Ids(BucketIds {
        ids: (0..1 << BITS).collect(),
        known_digests: Bytes::new(),
        scheme: cds_proto::wire::BUCKET_SCHEME_TAG,
    })
}

/// Read a held response to its end, giving the flow-control window back
/// as it goes, and decode its message; checks the trailers say OK.
async fn read_to_end(mut body: h2::RecvStream) -> DiscoverResponse {
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        body.flow_control()
            .release_capacity(chunk.len())
            .expect("window");
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("trailers").expect("sent");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    assert_eq!(data[0], 0, "uncompressed");
    let len = u32::from_be_bytes(data[1..5].try_into().expect("4 bytes")) as usize;
    assert_eq!(len, data.len() - 5, "one whole message");
    DiscoverResponse::decode(&data[5..]).expect("decodes")
}

/// The server's `cds_response_memory_bytes` gauge.
async fn held_memory(server: &TestServer) -> usize {
    server
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("cds_response_memory_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the gauge is exported")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_cannot_hold_more_than_the_response_memory_and_honest_requests_go_on() {
    let server = TestServer::start_with(|c| {
        c.bucket_bits = cds_core::BucketBits::new(BITS).expect("valid");
        c.max_response_memory = BUDGET;
        c.max_response_bytes = BUDGET;
        c.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let numbers = german_mobiles(USERS, 0);
    server
        .import(
            numbers
                .iter()
                .map(|n| cds_proto::v1::User {
                    e164: n.clone(),
                    label: vec![b'l'; 64].into(),
                    discoverable: true,
                })
                .collect(),
        )
        .await;
    let stats = server.stats().await;
    let table = stats.record_bytes as usize;
    assert!(table > 5_000_000, "{table}");
    assert!(SLOW_READERS * table > 2 * BUDGET);
    let rss_before = resident_bytes();

    // Every slow reader of `all` is served: they share one encoding of the
    // table, and each holds only its own few bytes.
    let mut held = Vec::new();
    for i in 0..SLOW_READERS {
        let (body, status) = slow_reader(&server, &format!("slow-{i}"), stats.epoch, all()).await;
        assert_eq!(status, None, "slow reader {i} of all buckets was refused");
        held.push(body);
    }
    let shared = held_memory(&server).await;
    assert!(
        shared > table && shared < table + table / 10 + SLOW_READERS * 4096,
        "{shared} reserved for {SLOW_READERS} responses of a {table}-byte table"
    );
    let grown = resident_bytes().saturating_sub(rss_before);
    assert!(
        grown < BUDGET + 48 * 1024 * 1024,
        "resident memory grew {grown} bytes with {SLOW_READERS} slow readers"
    );

    // Slow readers of every bucket by id each hold a copy of their own:
    // beside the shared encoding at most one fits, the rest are shed.
    let mut copies = Vec::new();
    let mut refused = 0;
    for i in 0..SLOW_READERS / 4 {
        let (body, status) =
            slow_reader(&server, &format!("copy-{i}"), stats.epoch, every_id()).await;
        match status.as_deref() {
            None => copies.push(body),
            // UNAVAILABLE, with a retry-after.
            Some("14") => refused += 1,
            Some(other) => panic!("unexpected status {other}"),
        }
    }
    assert!(copies.len() <= 1, "{} copies held at once", copies.len());
    assert_eq!(refused, SLOW_READERS / 4 - copies.len());
    let metrics_held = held_memory(&server).await;
    assert!(metrics_held <= BUDGET, "{metrics_held} reserved");
    let grown = resident_bytes().saturating_sub(rss_before);
    assert!(
        grown < BUDGET + 48 * 1024 * 1024,
        "resident memory grew {grown} bytes with {} slow readers",
        SLOW_READERS + SLOW_READERS / 4
    );

    // An honest contacts-only lookup still fits beside them...
    let mut honest = server
        .client_builder("honest")
        .bucket_mode(BucketMode::ContactsOnly)
        .connect()
        .await
        .expect("connects");
    let found = honest
        .discover(&numbers[..3], us())
        .await
        .expect("a small response fits");
    assert!(found.iter().all(|c| cds_tests::label_of(c).is_some()));
    // ...so does another whole-table one, which shares the encoding...
    let mut whole = server
        .client_builder("whole")
        .connect()
        .await
        .expect("connects");
    let found = whole
        .discover(&numbers[..2], us())
        .await
        .expect("an `all` response shares the encoding");
    assert!(found.iter().all(|c| cds_tests::label_of(c).is_some()));
    // ...and one that needs its own copy of most buckets is told when to
    // come back.
    let mut greedy = server
        .client_builder("greedy")
        .bucket_mode(BucketMode::ContactsOnly)
        .connect()
        .await
        .expect("connects");
    let many = &numbers[..2_000];
    match greedy.discover(many, us()).await {
        Err(ClientError::Unavailable { retry_after, .. }) => assert!(retry_after.is_some()),
        other => panic!("expected UNAVAILABLE with retry-after, got {other:?}"),
    }

    // A held `all` response, read to its end, is every bucket of the table.
    let response = read_to_end(held.pop().expect("held")).await;
    assert_eq!(response.buckets.len(), 1 << BITS);
    assert!(
        response
            .buckets
            .iter()
            .enumerate()
            .all(|(i, b)| b.bucket == i as u32)
    );
    let records: usize = response.buckets.iter().map(|b| b.records.len()).sum();
    assert_eq!(records, table);

    // Once the slow readers go away their memory is given back; the table's
    // current encoding stays, for the next `all` request.
    drop(held);
    drop(copies);
    let mut freed = false;
    for _ in 0..50 {
        if held_memory(&server).await < table + table / 10 {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(freed, "reservations were not given back");
    let found = greedy
        .discover(many, us())
        .await
        .expect("the copies are served again");
    assert_eq!(found.len(), many.len());
    server.stop().await;
}
