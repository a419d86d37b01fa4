//! TLS on both listeners, end to end: certificates made at run time, a real
//! server on 127.0.0.1, the real client library.

use std::sync::Arc;

use cds_client::{ChannelOptions, Client, ClientError};
use cds_proto::v1::admin_client::AdminClient;
use cds_proto::v1::{RegisterRequest, StatsRequest, User};
use cds_tests::pki::{CertFiles, TestPki};
use cds_tests::{TEST_ACCOUNT, TestServer, label_of, us};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A server whose Discovery listener serves `cert`, with one registered
/// user.
async fn tls_server(cert: &CertFiles) -> TestServer {
    let server = TestServer::start_with(|c| {
        c.tls_cert = Some(cert.cert.clone());
        c.tls_key = Some(cert.key.clone());
    })
    .await;
    server.register("+12015550123", "alice", true).await;
    server
}

/// Connect a client of [`TEST_ACCOUNT`] to `url` trusting `ca`.
async fn client(
    server: &TestServer,
    url: String,
    ca: Option<Vec<u8>>,
) -> Result<Client, ClientError> {
    let builder = Client::builder(url).credential(server.token(TEST_ACCOUNT));
    match ca {
        Some(ca) => builder.ca_certificate(ca),
        None => builder,
    }
    .connect()
    .await
}

async fn evaluated(server: &TestServer) -> u64 {
    server.stats().await.evaluated_elements
}

#[tokio::test]
async fn a_client_that_trusts_the_servers_ca_discovers_over_tls() {
    let pki = TestPki::new();
    let server = tls_server(&pki.server).await;
    let mut client = client(&server, server.https_url(), Some(pki.ca_pem()))
        .await
        .expect("TLS connects");
    let found = client
        .discover(&["(201) 555-0123", "(201) 555-0199"], us())
        .await
        .expect("discovers");
    assert_eq!(label_of(&found[0]).as_deref(), Some("alice"));
    assert_eq!(label_of(&found[1]), None);

    // Health and reflection answer on the same TLS listener.
    let channel = ChannelOptions::default()
        .ca_certificate(pki.ca_pem())
        .connect(&server.https_url())
        .await
        .expect("connects");
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "cds.v1.Discovery".into(),
        })
        .await
        .expect("health over TLS")
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_ca_another_host_name_or_an_expired_certificate_is_refused_and_changes_nothing() {
    let pki = TestPki::new();
    for (cert, ca, what) in [
        (
            &pki.server,
            Some(pki.other_ca_pem()),
            "a CA the client does not trust",
        ),
        (
            &pki.server,
            None,
            "a private CA without --ca-file (public roots only)",
        ),
        (
            &pki.wrong_host,
            Some(pki.ca_pem()),
            "a certificate for another host",
        ),
        (&pki.expired, Some(pki.ca_pem()), "an expired certificate"),
    ] {
        let server = tls_server(cert).await;
        let err = client(&server, server.https_url(), ca)
            .await
            .expect_err(what);
        assert!(matches!(err, ClientError::Tls { .. }), "{what}: {err}");
        let message = err.to_string();
        assert!(message.contains("certificate"), "{what}: {message}");
        assert!(!message.contains("alice"), "{what}: {message}");
        assert_eq!(evaluated(&server).await, 0, "{what}: nothing evaluated");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_plaintext_client_against_a_tls_listener_fails_and_changes_nothing() {
    let pki = TestPki::new();
    let server = tls_server(&pki.server).await;
    let plaintext = server.https_url().replace("https://", "http://");
    let err = client(&server, plaintext, None)
        .await
        .expect_err("the TLS listener does not speak plaintext");
    assert!(
        matches!(
            err,
            ClientError::Connect { .. }
                | ClientError::Unavailable { .. }
                | ClientError::Rejected { .. }
        ),
        "{err}"
    );
    assert_eq!(evaluated(&server).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn plaintext_to_a_host_beyond_loopback_is_refused_unless_opted_into() {
    // 192.0.2.0/24 is reserved for documentation: nothing is ever sent there,
    // because the refusal comes before any connection.
    let refused = Client::builder("http://192.0.2.7:50051")
        .connect()
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, ClientError::PlaintextToRemoteHost),
        "{refused}"
    );
    assert!(refused.to_string().contains("https://"));
}

/// A server whose Admin listener (and `/metrics`) serve `pki.server` and
/// require client certificates from `pki.ca`.
async fn mutual_tls_server(pki: &TestPki) -> TestServer {
    TestServer::start_with(|c| {
        c.admin_tls_cert = Some(pki.server.cert.clone());
        c.admin_tls_key = Some(pki.server.key.clone());
        c.admin_client_ca = Some(pki.ca.clone());
        c.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await
}

async fn register_over(channel: tonic::transport::Channel) -> Result<(), tonic::Status> {
    AdminClient::new(channel)
        .register(RegisterRequest {
            user: Some(User {
                e164: "+12015550123".into(),
                label: b"alice".to_vec().into(),
                discoverable: true,
            }),
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn mutual_tls_on_admin_refuses_clients_without_a_certificate_or_from_another_ca() {
    let pki = TestPki::new();
    let server = mutual_tls_server(&pki).await;
    let url = server.admin_https_url();
    let trusting = ChannelOptions::default().ca_certificate(pki.ca_pem());
    for (options, who) in [
        (trusting.clone(), "a client without a certificate"),
        (
            trusting
                .clone()
                .client_certificate(pki.stranger.cert_pem(), pki.stranger.key_pem()),
            "a client certificate from another CA",
        ),
    ] {
        // rustls may report the refusal at the handshake or at the first call.
        let refused = match options.connect(&url).await {
            Err(_) => true,
            Ok(channel) => register_over(channel).await.is_err(),
        };
        assert!(refused, "{who} was let in");
    }

    let admitted = trusting
        .client_certificate(pki.client.cert_pem(), pki.client.key_pem())
        .connect(&url)
        .await
        .expect("the CA's client connects");
    register_over(admitted.clone()).await.expect("registers");
    let stats = AdminClient::new(admitted)
        .stats(StatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.registered, 1, "only the admitted client registered");
    server.stop().await;
}

/// `GET /metrics` over TLS with `client` (if any), trusting `pki.ca`.
async fn metrics_over_tls(
    addr: std::net::SocketAddr,
    pki: &TestPki,
    client: Option<&CertFiles>,
) -> std::io::Result<String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&pki.ca_pem()) {
        roots.add(ca.expect("PEM")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(c) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(&c.cert_pem())
                    .collect::<Result<_, _>>()
                    .expect("PEM"),
                PrivateKeyDer::from_pem_slice(&c.key_pem()).expect("key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await?;
    tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::test]
async fn metrics_follow_the_admin_listeners_tls_and_client_certificates() {
    let pki = TestPki::new();
    let server = mutual_tls_server(&pki).await;
    let addr = server.metrics_addr().expect("metrics listen");

    let response = metrics_over_tls(addr, &pki, Some(&pki.client))
        .await
        .expect("metrics over TLS");
    assert!(response.starts_with("HTTP/1.1 200"), "{response:.80}");
    assert!(response.contains("cds_ready 1"), "{response:.200}");

    // Without a client certificate, or in plaintext, nothing is served.
    let refused = metrics_over_tls(addr, &pki, None).await;
    assert!(
        refused.as_ref().map_or(true, |r| !r.contains("cds_ready")),
        "{refused:?}"
    );
    let mut plain = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    plain
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: cds\r\nConnection: close\r\n\r\n")
        .await
        .expect("sent");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("cds_ready"),
        "plaintext got metrics"
    );
    server.stop().await;
}
