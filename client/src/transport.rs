//! The channel to a cds listener: TLS for `https://` URLs (public CAs, or
//! the CA the caller names), plaintext `http://` only to loopback unless the
//! caller opts in.

use std::net::IpAddr;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use zeroize::Zeroizing;

use crate::error::ClientError;

/// How to reach a listener: which CA to trust, which certificate to show,
/// and whether plaintext to a remote host is allowed.
#[derive(Clone, Default)]
pub struct ChannelOptions {
    ca_pem: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Zeroizing<Vec<u8>>)>,
    allow_remote_plaintext: bool,
}

impl std::fmt::Debug for ChannelOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelOptions")
            .field("private_ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.identity.is_some())
            .field("allow_remote_plaintext", &self.allow_remote_plaintext)
            .finish()
    }
}

impl ChannelOptions {
    /// Trust only the CA certificate(s) in `pem` (a private CA), instead of
    /// the public web CAs.
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Show this client certificate (PEM chain and key) to servers that ask
    /// for one (the Admin listener with mutual TLS).
    pub fn client_certificate(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        self.identity = Some((cert_pem, Zeroizing::new(key_pem)));
        self
    }

    /// Allow `http://` to a host other than loopback: everything sent,
    /// credentials included, crosses the network in clear text. Only for a
    /// TLS terminator on a network path the caller trusts.
    pub fn dangerous_allow_remote_plaintext(mut self) -> Self {
        self.allow_remote_plaintext = true;
        self
    }

    /// Connect to `url`.
    pub async fn connect(&self, url: &str) -> Result<Channel, ClientError> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|_| ClientError::InvalidUrl)?
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        let uri = endpoint.uri().clone();
        let endpoint = match uri.scheme_str() {
            Some("https") => {
                let tls = match &self.ca_pem {
                    Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
                    None => ClientTlsConfig::new().with_webpki_roots(),
                };
                let tls = match &self.identity {
                    Some((cert, key)) => tls.identity(Identity::from_pem(cert, &**key)),
                    None => tls,
                };
                endpoint.tls_config(tls).map_err(|e| tls_error(&e))?
            }
            Some("http") => {
                let host = uri.host().unwrap_or_default();
                if !self.allow_remote_plaintext && !is_loopback(host) {
                    return Err(ClientError::PlaintextToRemoteHost);
                }
                endpoint
            }
            _ => return Err(ClientError::InvalidUrl),
        };
        endpoint.connect().await.map_err(|e| tls_error(&e))
    }
}

/// Whether `host` (as a URI writes it) is this machine.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A connection failure, as [`ClientError::Tls`] when TLS refused it (a
/// certificate from another CA, for another host, expired; a server that
/// does not speak TLS) and [`ClientError::Connect`] otherwise.
fn tls_error(e: &tonic::transport::Error) -> ClientError {
    use tokio_rustls::rustls;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        let tls = c.downcast_ref::<rustls::Error>().or_else(|| {
            c.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return ClientError::Tls {
                reason: tls.to_string(),
            };
        }
        cause = c.source();
    }
    ClientError::Connect { reason: chain(e) }
}

/// `e` and its causes, each once.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_counts_as_loopback() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "[::1]"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1",
            "[2001:db8::1]",
            "localhost.evil",
            "",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[tokio::test]
    async fn plaintext_to_a_remote_host_is_refused_before_connecting() {
        let refused = ChannelOptions::default()
            .connect("http://192.0.2.1:50051")
            .await
            .expect_err("refused");
        assert!(matches!(refused, ClientError::PlaintextToRemoteHost));
        let refused = ChannelOptions::default()
            .connect("ftp://127.0.0.1:50051")
            .await
            .expect_err("refused");
        assert!(matches!(refused, ClientError::InvalidUrl));
    }
}
