//! How the `cds` client commands reach a server: TLS options shared by
//! `discover`, `admin` and `bench`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cds_client::ChannelOptions;
use clap::Args;

/// Options for `https://` URLs, and the opt-in for plaintext beyond
/// loopback.
#[derive(Args, Debug, Clone, Default)]
pub struct ChannelArgs {
    /// For https:// URLs: trust only the CA certificate(s) in this PEM file
    /// (a private CA) instead of the public web CAs.
    #[arg(long, global = true, value_name = "PEM", env = "CDS_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Allow an http:// URL to a host other than loopback: everything,
    /// credentials included, crosses the network in clear text. Only behind
    /// a TLS terminator on a network you trust.
    #[arg(long, global = true)]
    allow_remote_plaintext: bool,
}

/// The client certificate the Admin listener may require (mutual TLS).
#[derive(Args, Debug, Clone, Default)]
pub struct ClientCertArgs {
    /// Client certificate chain (PEM) to show an Admin listener that
    /// requires one (`--admin-client-ca` on the server).
    #[arg(
        long,
        global = true,
        value_name = "PEM",
        env = "CDS_CLIENT_CERT",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(
        long,
        global = true,
        value_name = "PEM",
        env = "CDS_CLIENT_KEY",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

impl ChannelArgs {
    /// The channel options these flags ask for.
    pub fn options(&self) -> anyhow::Result<ChannelOptions> {
        let mut options = ChannelOptions::default();
        if let Some(ca) = &self.ca_file {
            options = options.ca_certificate(read(ca, "CA file")?);
        }
        if self.allow_remote_plaintext {
            options = options.dangerous_allow_remote_plaintext();
        }
        Ok(options)
    }
}

impl ClientCertArgs {
    /// `options` showing the client certificate, if one was given.
    pub fn apply(&self, options: ChannelOptions) -> anyhow::Result<ChannelOptions> {
        Ok(match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => options
                .client_certificate(read(cert, "client certificate")?, read(key, "client key")?),
            _ => options,
        })
    }
}
