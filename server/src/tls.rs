//! TLS for the listeners: read and check the PEM files named in the
//! configuration, then hand them to tonic (Discovery, Admin) or to rustls
//! directly (`/metrics`).
//!
//! rustls with the *ring* provider: it builds with a C compiler alone (no
//! CMake, Go or NASM, which aws-lc-rs needs on some targets), and there is
//! no OpenSSL anywhere. tonic's server TLS uses rustls's safe defaults:
//! TLS 1.3, and TLS 1.2 with forward-secret AEAD suites only; tonic exposes
//! no setting to drop 1.2. `/metrics`, configured here directly, speaks
//! TLS 1.3 only.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::error::ServerError;

/// How long a client may take to complete its TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener's TLS configuration, read from its files and checked.
#[derive(Clone)]
pub(crate) struct ListenerTls {
    /// For tonic (Discovery, Admin).
    tonic: ServerTlsConfig,
    /// For `/metrics`: TLS 1.3 and HTTP/1.1.
    metrics: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenerTls(..)")
    }
}

fn tls_error(path: &Path, reason: impl Into<String>) -> ServerError {
    ServerError::Tls {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|source| ServerError::Io {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The certificates of a PEM file, at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, format!("is not valid PEM ({e})")))?;
    if certs.is_empty() {
        return Err(tls_error(
            path,
            "holds no certificate (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file.
fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, ServerError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
        tls_error(
            path,
            "holds no usable private key (expected a PKCS#8, PKCS#1 or SEC1 key in PEM)",
        )
    })
}

impl ListenerTls {
    /// Read `cert` and `key` (and the client CA, if any) and check that they
    /// parse and that the key belongs to the certificate.
    pub(crate) fn read(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<Self, ServerError> {
        let cert_pem = read(cert, "cannot read the TLS certificate")?;
        let key_pem = zeroize::Zeroizing::new(read(key, "cannot read the TLS private key")?);
        let chain = certificates(cert, &cert_pem)?;
        let private = private_key(key, &key_pem)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_error(cert, e.to_string()))?;
        let mut tonic = ServerTlsConfig::new()
            .identity(Identity::from_pem(&cert_pem, &*key_pem))
            .timeout(HANDSHAKE_TIMEOUT);
        let builder = match client_ca {
            Some(path) => {
                let pem = read(path, "cannot read the client CA certificate")?;
                let mut roots = rustls::RootCertStore::empty();
                for ca in certificates(path, &pem)? {
                    roots
                        .add(ca)
                        .map_err(|e| tls_error(path, format!("is not a usable CA ({e})")))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| tls_error(path, format!("is not a usable CA ({e})")))?;
                tonic = tonic.client_ca_root(Certificate::from_pem(&pem));
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut metrics = builder
            .with_single_cert(chain, private)
            .map_err(|e| tls_error(key, format!("does not fit the certificate ({e})")))?;
        metrics.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tonic,
            metrics: Arc::new(metrics),
        })
    }

    /// The configuration tonic serves a gRPC listener with.
    pub(crate) fn tonic(&self) -> ServerTlsConfig {
        self.tonic.clone()
    }

    /// An acceptor for `/metrics` (HTTP/1.1, TLS 1.3, client certificates
    /// as on the Admin listener).
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.metrics))
    }
}
