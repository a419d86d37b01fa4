//! Hostile and broken input: each malformed request gets the right status,
//! changes nothing, and the server keeps serving. A client that does not
//! trust the server's key refuses its answers.

use cds_client::ClientError;
use cds_client::session::{BucketSelection, ServerParams, prepare};
use cds_core::{BucketBits, E164, KeyPair};
use cds_proto::v1::discover_request::Buckets;
use cds_proto::v1::discovery_client::DiscoveryClient;
use cds_proto::v1::{AllBuckets, BucketIds, DiscoverRequest, GetConfigRequest};
use cds_tests::{TestServer, label_of, us};
use tonic::Code;

fn valid_element() -> Vec<u8> {
    // The ristretto255 base point: canonical and not the identity.
    cds_core::KeyPair::derive(cds_core::Mode::Voprf, &[1u8; 32], b"")
        .expect("derives")
        .public()
        .to_bytes()
        .to_vec()
}

async fn raw(server: &TestServer) -> (DiscoveryClient<tonic::transport::Channel>, u64) {
    let mut rpc = DiscoveryClient::connect(server.url())
        .await
        .expect("connects");
    let epoch = rpc
        .get_config(GetConfigRequest {})
        .await
        .expect("config")
        .into_inner()
        .epoch;
    (rpc, epoch)
}

fn request(epoch: u64, elements: Vec<u8>, buckets: Option<Buckets>) -> DiscoverRequest {
    DiscoverRequest {
        epoch,
        blinded_elements: elements.into(),
        buckets,
        record_format: cds_proto::wire::RECORD_FORMAT,
    }
}

fn all() -> Option<Buckets> {
    Some(Buckets::All(AllBuckets {}))
}

#[tokio::test]
async fn malformed_discover_requests_get_clear_statuses_and_the_server_keeps_serving() {
    let server = TestServer::start_with(|c| c.max_elements_per_request = 8).await;
    server.register("+12015550123", "alice", true).await;
    let (mut rpc, epoch) = raw(&server).await;

    let mut non_canonical = [0xffu8; 32];
    non_canonical[31] = 0x7f;
    let mut cases: Vec<(&str, DiscoverRequest, Code)> = vec![
        (
            "ragged length",
            request(epoch, vec![1u8; 33], all()),
            Code::InvalidArgument,
        ),
        (
            "identity element",
            request(epoch, vec![0u8; 32], all()),
            Code::InvalidArgument,
        ),
        (
            "non-canonical element",
            request(epoch, non_canonical.to_vec(), all()),
            Code::InvalidArgument,
        ),
        (
            "oversized batch",
            request(epoch, valid_element().repeat(9), all()),
            Code::InvalidArgument,
        ),
        (
            "no bucket choice",
            request(epoch, valid_element(), None),
            Code::InvalidArgument,
        ),
        (
            "bucket out of range",
            request(
                epoch,
                valid_element(),
                Some(Buckets::Ids(BucketIds {
                    ids: vec![16],
                    scheme: cds_proto::wire::BUCKET_SCHEME_TAG,
                    ..Default::default()
                })),
            ),
            Code::InvalidArgument,
        ),
        (
            "bucket ids of an older client (placed by number)",
            request(
                epoch,
                valid_element(),
                Some(Buckets::Ids(BucketIds {
                    ids: vec![1],
                    ..Default::default()
                })),
            ),
            Code::InvalidArgument,
        ),
        (
            "known digests not 16 bytes per bucket id",
            request(
                epoch,
                valid_element(),
                Some(Buckets::Ids(BucketIds {
                    ids: vec![1, 2],
                    known_digests: vec![7u8; 31].into(),
                    scheme: cds_proto::wire::BUCKET_SCHEME_TAG,
                })),
            ),
            Code::InvalidArgument,
        ),
        (
            "unknown epoch",
            request(epoch ^ 1, valid_element(), all()),
            Code::FailedPrecondition,
        ),
    ];
    let mut garbage = valid_element();
    garbage.extend_from_slice(&[0x55u8; 32]);
    cases.push((
        "one bad element among good",
        request(epoch, garbage, all()),
        Code::InvalidArgument,
    ));

    for (name, req, code) in cases {
        let err = rpc
            .discover(server.authed("prober", req))
            .await
            .expect_err(name);
        assert_eq!(err.code(), code, "{name}: {}", err.message());
        assert!(!err.message().is_empty(), "{name} explains itself");
    }

    // The server is unharmed and unchanged.
    let ok = rpc
        .discover(server.authed("prober", request(epoch, valid_element().repeat(8), all())))
        .await
        .expect("a well-formed maximal batch is served")
        .into_inner();
    assert_eq!(ok.evaluated_elements.len(), 8 * 32);
    assert_eq!(ok.proof.len(), 64);
    assert_eq!(ok.buckets.len(), 16);
    let found = server.discover(&["+12015550123"]).await;
    assert_eq!(label_of(&found[0]).as_deref(), Some("alice"));
    server.stop().await;
}

#[tokio::test]
async fn client_with_a_pinned_key_refuses_a_server_with_another_key() {
    let server = TestServer::start().await;
    let other = KeyPair::generate(&mut rand::rng());
    let err = server
        .client_builder(cds_tests::TEST_ACCOUNT)
        .pin_public_key(*other.public())
        .connect()
        .await
        .expect_err("key mismatch");
    assert!(matches!(err, ClientError::PublicKeyMismatch), "{err:?}");

    // Pinning the right key works.
    let right = server.client().await.params().public_key;
    server
        .client_builder(cds_tests::TEST_ACCOUNT)
        .pin_public_key(right)
        .connect()
        .await
        .expect("the right key is accepted");
    server.stop().await;
}

#[tokio::test]
async fn a_real_response_is_refused_when_checked_against_a_wrong_public_key() {
    let server = TestServer::start().await;
    server.register("+12015550123", "alice", true).await;
    let (mut rpc, epoch) = raw(&server).await;
    let wrong = ServerParams {
        epoch,
        public_key: *KeyPair::generate(&mut rand::rng()).public(),
        bucket_bits: BucketBits::new(4).expect("valid"),
        max_elements_per_request: 16,
        bucket_scheme: cds_proto::wire::BUCKET_SCHEME_TAG,
    };
    let numbers = vec![E164::parse("+12015550123").expect("valid")];
    let prepared =
        prepare(numbers, &wrong, BucketSelection::All, &mut rand::rng()).expect("prepares");
    let response = rpc
        .discover(server.authed("prober", prepared.message))
        .await
        .expect("served")
        .into_inner();
    let err = prepared
        .state
        .finish(response)
        .expect_err("proof must not verify");
    assert!(matches!(err, ClientError::ProofVerification), "{err:?}");
    server.stop().await;
}

#[tokio::test]
async fn garbage_bytes_on_the_wire_do_not_take_the_server_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let addr = server.url().trim_start_matches("http://").to_owned();
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0u8; 1024][..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff",
    ] {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connects");
        let _ = s.write_all(junk).await;
        let mut buf = [0u8; 256];
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut buf)).await;
    }
    let found = server
        .client()
        .await
        .discover(&["+12015550123"], us())
        .await
        .expect("still serving");
    assert_eq!(found.len(), 1);
    server.stop().await;
}

/// One gRPC call over a raw HTTP/2 connection ([`cds_tests::raw::call`]):
/// `path`, an extra header, and `body` as the request's bytes (empty: no
/// message). Returns the `grpc-status` the server ended the call with.
async fn raw_call(
    server: &TestServer,
    path: &str,
    extra: Option<(&str, &str)>,
    body: Vec<u8>,
) -> Option<tonic::Code> {
    let mut metadata = vec![(
        "authorization",
        cds_proto::wire::bearer(&server.token("raw")),
    )];
    metadata.extend(extra.map(|(name, value)| (name, value.to_owned())));
    let frames = if body.is_empty() {
        Vec::new()
    } else {
        vec![body.into()]
    };
    cds_tests::raw::call(server.discovery_addr(), path, &metadata, frames)
        .await
        .grpc_status
}

/// `message` as one uncompressed gRPC message.
fn framed(message: &[u8]) -> Vec<u8> {
    cds_tests::raw::frame(message).to_vec()
}

#[tokio::test]
async fn the_discover_route_refuses_bad_framing_as_tonic_does_and_keeps_serving() {
    use prost::Message;
    let server = TestServer::start_with(|c| c.max_elements_per_request = 8).await;
    server.register("+12015550123", "alice", true).await;
    let (_, epoch) = raw(&server).await;
    let valid = framed(&request(epoch, Vec::new(), all()).encode_to_vec());
    const DISCOVER: &str = "/cds.v1.Discovery/Discover";
    // Well framed: served.
    assert_eq!(
        raw_call(&server, DISCOVER, None, valid.clone()).await,
        Some(tonic::Code::Ok)
    );
    // Larger than 53 · 8 + 4096 bytes: refused before decoding.
    let oversized = framed(&request(epoch, vec![1u8; 4_608], all()).encode_to_vec());
    assert_eq!(
        raw_call(&server, DISCOVER, None, oversized).await,
        Some(tonic::Code::OutOfRange),
        "OUT_OF_RANGE"
    );
    // Compressed: this server takes none.
    assert_eq!(
        raw_call(
            &server,
            DISCOVER,
            Some(("grpc-encoding", "gzip")),
            valid.clone()
        )
        .await,
        Some(tonic::Code::Unimplemented),
        "UNIMPLEMENTED"
    );
    // No message at all.
    assert_eq!(
        raw_call(&server, DISCOVER, None, Vec::new()).await,
        Some(tonic::Code::Internal),
        "INTERNAL"
    );
    // Not a message of the request's type: the sender's fault, never retried.
    assert_eq!(
        raw_call(&server, DISCOVER, None, framed(&[0xff; 7])).await,
        Some(tonic::Code::InvalidArgument),
        "INVALID_ARGUMENT"
    );
    // A method Discovery does not have.
    assert_eq!(
        raw_call(&server, "/cds.v1.Discovery/Nope", None, valid).await,
        Some(tonic::Code::Unimplemented),
        "UNIMPLEMENTED"
    );
    let found = server
        .client()
        .await
        .discover(&["+12015550123"], us())
        .await
        .expect("still serving");
    assert_eq!(found.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_client_of_another_record_format_is_refused_before_anything_is_evaluated() {
    let server = TestServer::start().await;
    server.register("+12015550123", "alice", true).await;
    let (mut rpc, epoch) = raw(&server).await;
    let config = rpc
        .get_config(GetConfigRequest {})
        .await
        .expect("config")
        .into_inner();
    assert_eq!(config.record_format, cds_core::RECORD_FORMAT);
    let ids = Some(Buckets::Ids(BucketIds {
        ids: vec![1],
        scheme: cds_proto::wire::BUCKET_SCHEME_TAG,
        ..Default::default()
    }));
    // 0 is what every client before record format 2 sends (the field did
    // not exist): an `all` request of such a client carried nothing else
    // that could tell it apart.
    for (name, buckets) in [("all buckets", all()), ("bucket ids", ids)] {
        for format in [0, 1, 3] {
            let mut old = request(epoch, valid_element(), buckets.clone());
            old.record_format = format;
            let err = rpc
                .discover(server.authed("old-client", old))
                .await
                .expect_err("refused");
            assert_eq!(
                err.code(),
                Code::FailedPrecondition,
                "{name}, format {format}"
            );
            assert!(
                err.message().contains("upgrade the client"),
                "{name}, format {format}: {}",
                err.message()
            );
        }
    }
    assert_eq!(
        server.stats().await.evaluated_elements,
        0,
        "nothing was evaluated or charged"
    );
    // The current format is served, and the records parse as format 2.
    let ok = rpc
        .discover(server.authed("old-client", request(epoch, valid_element(), all())))
        .await
        .expect("served")
        .into_inner();
    let records: usize = ok
        .buckets
        .iter()
        .map(|b| {
            cds_core::RecordRef::decode_packed(&b.records)
                .expect("format 2 records")
                .len()
        })
        .sum();
    assert_eq!(records, 1);
    server.stop().await;
}
