//! What a client written from the proto alone meets when it sends something
//! wrong on the wire: bytes that are not protobuf are the caller's fault
//! (`INVALID_ARGUMENT`, never `INTERNAL`, which clients retry), and metadata
//! over the header limit is refused by HTTP/2 with status 431 (protocol.md
//! §9). Neither changes anything or stops the server.

use bytes::Bytes;
use cds_proto::v1::{ImportRequest, User};
use cds_tests::raw::{self, RawAnswer};
use cds_tests::{TestServer, us};
use prost::Message;

/// Not protobuf at all: a field key whose varint never ends.
const GARBAGE: &[u8] = &[0xff; 11];
/// A `string e164 = 1` holding `+`, a byte that is not UTF-8, then a digit.
const E164_NOT_UTF8: &[u8] = &[0x0a, 3, b'+', 0xff, b'1'];

fn assert_refused_as_invalid(answer: &RawAnswer, what: &str) {
    assert_eq!(
        answer.grpc_status,
        Some(tonic::Code::InvalidArgument),
        "{what}: {answer:?}"
    );
    assert!(
        answer.grpc_message.contains("not a valid protobuf message"),
        "{what}: {answer:?}"
    );
}

#[tokio::test]
async fn requests_that_are_not_protobuf_are_invalid_argument_on_every_service_and_change_nothing() {
    let server = TestServer::start().await;
    server.register("+12015550123", "alice", true).await;
    let before = server.stats().await;
    let credential = [(
        "authorization",
        cds_proto::wire::bearer(&server.token("prober")),
    )];
    // RegisterRequest { user: User { e164: <not UTF-8> } }.
    let mut register = vec![0x0a, E164_NOT_UTF8.len() as u8];
    register.extend_from_slice(E164_NOT_UTF8);

    for (addr, path, metadata, body) in [
        (
            server.discovery_addr(),
            "/cds.v1.Discovery/GetConfig",
            &[][..],
            GARBAGE,
        ),
        (
            server.discovery_addr(),
            "/cds.v1.Discovery/Discover",
            &credential[..],
            GARBAGE,
        ),
        (
            server.admin_addr(),
            "/cds.v1.Admin/Register",
            &[][..],
            &register[..],
        ),
        (
            server.admin_addr(),
            "/cds.v1.Admin/Unregister",
            &[][..],
            E164_NOT_UTF8,
        ),
        (
            server.admin_addr(),
            "/cds.v1.Admin/SetDiscoverable",
            &[][..],
            E164_NOT_UTF8,
        ),
        (
            server.admin_addr(),
            "/cds.v1.Admin/ListChanges",
            &[][..],
            GARBAGE,
        ),
        (server.admin_addr(), "/cds.v1.Admin/Stats", &[][..], GARBAGE),
    ] {
        let answer = raw::call(addr, path, metadata, vec![raw::frame(body)]).await;
        assert_refused_as_invalid(&answer, path);
        // The status names the field, never the bytes sent.
        assert!(!answer.grpc_message.contains('+'), "{path}: {answer:?}");
    }

    let after = server.stats().await;
    assert_eq!(after.registered, before.registered);
    assert_eq!(after.evaluated_elements, before.evaluated_elements);
    let found = server.discover(&["+12015550123"]).await;
    assert_eq!(cds_tests::label_of(&found[0]).as_deref(), Some("alice"));
    server.stop().await;
}

#[tokio::test]
async fn an_import_stream_with_an_undecodable_chunk_is_invalid_argument_and_keeps_earlier_chunks() {
    let server = TestServer::start().await;
    let first = ImportRequest {
        users: vec![User {
            e164: "+12015550123".into(),
            label: Bytes::from_static(b"alice"),
            discoverable: true,
        }],
    }
    .encode_to_vec();
    // ImportRequest { users: [User { e164: <not UTF-8> }] }.
    let mut second = vec![0x0a, E164_NOT_UTF8.len() as u8];
    second.extend_from_slice(E164_NOT_UTF8);
    let answer = raw::call(
        server.admin_addr(),
        "/cds.v1.Admin/Import",
        &[],
        vec![raw::frame(&first), raw::frame(&second)],
    )
    .await;
    assert_refused_as_invalid(&answer, "Import");
    // The first chunk was applied when it arrived (protocol.md §8).
    assert_eq!(server.stats().await.registered, 1);
    let found = server.discover(&["+12015550123"]).await;
    assert_eq!(cds_tests::label_of(&found[0]).as_deref(), Some("alice"));
    server.stop().await;
}

/// Metadata of `bytes` bytes in one custom header.
fn padding(bytes: usize) -> Vec<(&'static str, String)> {
    vec![("x-padding", "p".repeat(bytes))]
}

#[tokio::test]
async fn metadata_over_the_header_limit_is_refused_by_http2_with_431_and_the_server_keeps_serving()
{
    let server = TestServer::start().await;
    let limit = cds_proto::wire::MAX_METADATA_BYTES;
    let get_config = cds_proto::v1::GetConfigRequest {}.encode_to_vec();
    for addr in [server.discovery_addr(), server.admin_addr()] {
        // Under the limit (with room for the other headers): served.
        let answer = raw::call(
            addr,
            "/grpc.health.v1.Health/Check",
            &padding(limit - 1024),
            vec![raw::frame(&[])],
        )
        .await;
        assert_eq!(answer.grpc_status, Some(tonic::Code::Ok), "{answer:?}");
        // Over it: HTTP 431 from the HTTP/2 layer, no gRPC status at all.
        let answer = raw::call(
            addr,
            "/cds.v1.Discovery/GetConfig",
            &padding(limit + 1),
            vec![raw::frame(&get_config)],
        )
        .await;
        assert_eq!(
            answer.http,
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{answer:?}"
        );
        assert_eq!(answer.grpc_status, None, "{answer:?}");
    }

    // tonic's client turns that into UNKNOWN (gRPC's HTTP-to-status
    // mapping has no entry for 431), as protocol.md §9 says.
    let mut request = tonic::Request::new(cds_proto::v1::GetConfigRequest {});
    request.metadata_mut().insert(
        "x-padding",
        "p".repeat(limit + 1).parse().expect("ASCII metadata"),
    );
    let err = cds_proto::v1::discovery_client::DiscoveryClient::connect(server.url())
        .await
        .expect("connects")
        .get_config(request)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unknown, "{err:?}");

    let found = server
        .client()
        .await
        .discover(&["+12015550123"], us())
        .await
        .expect("still serving");
    assert_eq!(found.len(), 1);
    server.stop().await;
}
