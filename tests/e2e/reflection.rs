//! gRPC reflection as generic tools see it: both protocol versions
//! (`grpc.reflection.v1`, and `v1alpha`, which grpcio-reflection and older
//! grpcurl speak), and on each listener only the services it answers.

use cds_tests::TestServer;
use tonic::transport::Channel;

async fn channel(url: String) -> Channel {
    tonic::transport::Endpoint::from_shared(url)
        .expect("valid url")
        .connect()
        .await
        .expect("connects")
}

/// The services a listener lists over `grpc.reflection.v1`, sorted.
async fn list_v1(url: String) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let response = ServerReflectionClient::new(channel(url).await)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("v1 reflection answers")
        .into_inner()
        .message()
        .await
        .expect("a response")
        .expect("not empty");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list, got {response:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

/// The services a listener lists over `grpc.reflection.v1alpha`, sorted.
async fn list_v1alpha(url: String) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let response = ServerReflectionClient::new(channel(url).await)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("v1alpha reflection answers")
        .into_inner()
        .message()
        .await
        .expect("a response")
        .expect("not empty");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list, got {response:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    names
}

/// The `FileDescriptorProto`s (encoded) v1alpha returns for `symbol`.
async fn file_containing_v1alpha(url: String, symbol: &str) -> Vec<Vec<u8>> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let response = ServerReflectionClient::new(channel(url).await)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("v1alpha reflection answers")
        .into_inner()
        .message()
        .await
        .expect("a response")
        .expect("not empty");
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("expected descriptors, got {response:?}");
    };
    files.file_descriptor_proto
}

fn expected(cds_service: &str) -> Vec<String> {
    let mut names: Vec<String> = [
        cds_service,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
    .map(String::from)
    .into();
    names.sort();
    names
}

#[tokio::test]
async fn each_listener_lists_exactly_the_services_it_serves_over_v1_and_v1alpha() {
    let server = TestServer::start().await;
    for (url, served) in [
        (server.url(), "cds.v1.Discovery"),
        (server.admin_url(), "cds.v1.Admin"),
    ] {
        assert_eq!(list_v1(url.clone()).await, expected(served), "v1 at {url}");
        assert_eq!(
            list_v1alpha(url.clone()).await,
            expected(served),
            "v1alpha at {url}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn what_reflection_lists_is_what_answers_and_the_other_listener_service_is_unimplemented() {
    let server = TestServer::start().await;
    let discovery = channel(server.url()).await;
    let admin = channel(server.admin_url()).await;
    // Listed on Discovery and answered there.
    cds_proto::v1::discovery_client::DiscoveryClient::new(discovery.clone())
        .get_config(cds_proto::v1::GetConfigRequest {})
        .await
        .expect("Discovery answers on its listener");
    // Not listed on Discovery, and not answered there.
    let err = cds_proto::v1::admin_client::AdminClient::new(discovery)
        .stats(cds_proto::v1::StatsRequest {})
        .await
        .expect_err("Admin is not served on the Discovery listener");
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    // And the other way round.
    cds_proto::v1::admin_client::AdminClient::new(admin.clone())
        .stats(cds_proto::v1::StatsRequest {})
        .await
        .expect("Admin answers on its listener");
    let err = cds_proto::v1::discovery_client::DiscoveryClient::new(admin)
        .get_config(cds_proto::v1::GetConfigRequest {})
        .await
        .expect_err("Discovery is not served on the Admin listener");
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    server.stop().await;
}

#[tokio::test]
async fn a_v1alpha_client_gets_the_descriptors_of_the_cds_service_it_finds() {
    let server = TestServer::start().await;
    for (url, served) in [
        (server.url(), "cds.v1.Discovery"),
        (server.admin_url(), "cds.v1.Admin"),
    ] {
        let files = file_containing_v1alpha(url, served).await;
        let names: Vec<String> = files
            .iter()
            .map(|raw| {
                descriptor_name(raw)
                    .unwrap_or_else(|| panic!("a descriptor that decodes: {} bytes", raw.len()))
            })
            .collect();
        assert!(names.iter().any(|n| n == "cds/v1/cds.proto"), "{names:?}");
    }
    server.stop().await;
}

/// The `name` (field 1) of an encoded `FileDescriptorProto`.
fn descriptor_name(raw: &[u8]) -> Option<String> {
    // Field 1, wire type 2: tag 0x0a, a one-byte length (file names are short).
    let (&tag, rest) = raw.split_first()?;
    let (&len, rest) = rest.split_first()?;
    (tag == 0x0a && len < 0x80)
        .then(|| String::from_utf8(rest.get(..usize::from(len))?.to_vec()).ok())
        .flatten()
}
