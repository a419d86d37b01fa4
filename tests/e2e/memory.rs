//! Response memory under slow readers: clients that ask for every bucket
//! and never read the answer hold it in the server until they do. The
//! server bounds what they hold together (`max_response_memory`) and sheds
//! the rest, while honest requests go on.

use bytes::Bytes;
use cds_client::{BucketMode, ClientError};
use cds_proto::v1::DiscoverRequest;
use cds_proto::v1::discover_request::Buckets;
use cds_tests::{TestServer, german_mobiles, us};
use prost::Message;

/// Users with 64-byte labels: 109-byte records, about 5.5 MB in all.
const USERS: usize = 50_000;
/// The server's response memory: room for two whole-table responses.
const BUDGET: usize = 12 * 1024 * 1024;
/// Slow readers: 40 whole-table responses would hold about 218 MB.
const SLOW_READERS: usize = 40;

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

/// A client on its own HTTP/2 connection that asks for every bucket and
/// reads only the response head: the server can send no more than the
/// flow-control window and holds the rest. Returns the connection's
/// response (kept alive by the caller) and its `grpc-status`, if the head
/// carried one (a refusal).
async fn slow_reader(
    server: &TestServer,
    account: &str,
    epoch: u64,
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
        buckets: Some(Buckets::All(Default::default())),
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
        c.bucket_bits = cds_core::BucketBits::new(8).expect("valid");
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
    let rss_before = resident_bytes();

    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..SLOW_READERS {
        let (body, status) = slow_reader(&server, &format!("slow-{i}"), stats.epoch).await;
        match status.as_deref() {
            None => held.push(body),
            // UNAVAILABLE, with a retry-after.
            Some("14") => refused += 1,
            Some(other) => panic!("unexpected status {other}"),
        }
    }
    assert!(
        (1..=2).contains(&held.len()),
        "{} whole-table responses held at once",
        held.len()
    );
    assert_eq!(refused, SLOW_READERS - held.len());
    let metrics_held = held_memory(&server).await;
    assert!(metrics_held <= BUDGET, "{metrics_held} reserved");
    let grown = resident_bytes().saturating_sub(rss_before);
    assert!(
        grown < BUDGET + 48 * 1024 * 1024,
        "resident memory grew {grown} bytes with {SLOW_READERS} slow readers"
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
    // ...and a whole-table one is told when to come back.
    let mut greedy = server
        .client_builder("greedy")
        .connect()
        .await
        .expect("connects");
    match greedy.discover(&numbers[..1], us()).await {
        Err(ClientError::Unavailable { retry_after, .. }) => assert!(retry_after.is_some()),
        other => panic!("expected UNAVAILABLE with retry-after, got {other:?}"),
    }

    // Once the slow readers go away their memory is given back.
    drop(held);
    let mut freed = false;
    for _ in 0..50 {
        if held_memory(&server).await == 0 {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(freed, "reservations were not given back");
    greedy
        .discover(&numbers[..1], us())
        .await
        .expect("the whole table is served again");
    server.stop().await;
}
