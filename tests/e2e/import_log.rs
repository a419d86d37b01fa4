//! An `Import` that ends early has still changed the registry (chunks are
//! applied as they arrive), so the operator must see it in the log: one
//! line, with counts and never a phone number, whether the stream failed or
//! the caller went away. The server runs in this process; its log is
//! captured by a subscriber installed for this test binary alone.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cds_proto::v1::{ImportRequest, User};
use cds_tests::TestServer;
use cds_tests::raw;
use prost::Message;

/// Everything the process logged, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide log capture, installed once.
fn captured() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Captured::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_writer(move || writer.clone())
            .init();
        log
    })
}

/// The first captured line containing every one of `parts`, waiting up
/// to a minute for it (the server logs from its own tasks).
async fn line_with(parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = String::from_utf8_lossy(&captured().0.lock().expect("log buffer")).into_owned();
        if let Some(line) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `count` users, numbers `+1201555{first..}`.
fn chunk(first: usize, count: usize) -> Vec<u8> {
    ImportRequest {
        users: (first..first + count)
            .map(|i| User {
                e164: format!("+1201555{i:04}"),
                label: Bytes::from_static(b"label"),
                discoverable: true,
            })
            .collect(),
    }
    .encode_to_vec()
}

fn assert_no_number(line: &str) {
    assert!(!line.contains("+1201555"), "a number in the log: {line}");
    assert!(!line.contains("1201555"), "a number in the log: {line}");
}

#[tokio::test]
async fn an_import_that_fails_midway_logs_what_was_applied_with_counts_only() {
    captured();
    let server = TestServer::start().await;
    // Three valid rows, then a chunk that is not protobuf.
    let answer = raw::call(
        server.admin_addr(),
        "/cds.v1.Admin/Import",
        &[],
        vec![raw::frame(&chunk(0, 3)), raw::frame(&[0xff; 11])],
    )
    .await;
    assert_eq!(answer.grpc_status, Some(tonic::Code::InvalidArgument));
    assert_eq!(server.stats().await.registered, 3);
    let line = line_with(&["import failed midway", "received=3"]).await;
    assert!(line.contains("created=3"), "{line}");
    assert!(line.contains("InvalidArgument"), "{line}");
    assert!(line.contains("WARN"), "{line}");
    assert_no_number(&line);
    server.stop().await;
}

/// Open an Import on its own connection to `server`, send `rows` rows
/// from `first` in one chunk and wait until they are applied, keeping the
/// stream open. Returns the stream's sender and the connection's task.
async fn import_left_open(
    server: &TestServer,
    first: usize,
    rows: usize,
) -> (h2::SendStream<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(server.admin_addr())
        .await
        .expect("connects");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2");
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{}/cds.v1.Admin/Import",
            server.admin_addr()
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    // Counted before the chunk is sent: read after, it may already hold
    // the chunk, and the wait below would never end.
    let before = server.stats().await.registered;
    let (_response, mut send) = client.send_request(request, false).expect("sent");
    send.send_data(raw::frame(&chunk(first, rows)), false)
        .expect("chunk sent");
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.stats().await.registered < before + rows as u64 {
        assert!(Instant::now() < deadline, "the chunk was not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (send, connection)
}

#[tokio::test]
async fn an_import_whose_caller_goes_away_logs_what_was_applied_with_counts_only() {
    captured();
    let server = TestServer::start().await;
    let (_send, connection) = import_left_open(&server, 100, 5).await;
    // The backend dies: its connection closes mid-stream.
    connection.abort();
    let line = line_with(&["import failed midway", "received=5"]).await;
    assert!(line.contains("created=5"), "{line}");
    assert!(line.contains("WARN"), "{line}");
    assert_no_number(&line);
    assert_eq!(server.stats().await.registered, 5);
    server.stop().await;
}

#[tokio::test]
async fn an_import_the_caller_cancels_is_logged_with_what_was_applied() {
    captured();
    let server = TestServer::start().await;
    let (mut send, _connection) = import_left_open(&server, 200, 7).await;
    // RST_STREAM(CANCEL), what a gRPC client sends when it cancels: HTTP/2
    // servers (hyper) read it as the end of the request body, so the server
    // cannot tell it from a finished stream; the line still says what was
    // applied (protocol.md §8).
    send.send_reset(h2::Reason::CANCEL);
    let line = line_with(&["import", "received=7"]).await;
    assert!(line.contains("created=7"), "{line}");
    assert_no_number(&line);
    assert_eq!(server.stats().await.registered, 7);
    server.stop().await;
}
