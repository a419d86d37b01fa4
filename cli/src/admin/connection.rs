//! Reaching the Admin listener: the admin token and the channel.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cds_proto::v1::admin_client::AdminClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use zeroize::Zeroizing;

/// `--admin-token-file` (and `CDS_ADMIN_TOKEN_FILE`), or `--token-file`
/// (and `CDS_TOKEN_FILE`): a file, or "" for none.
#[derive(Clone, Debug)]
pub struct TokenFile(pub Option<PathBuf>);

impl TokenFile {
    /// The file, if one was named.
    pub fn path(&self) -> Option<&Path> {
        self.0.as_deref()
    }
}

/// Parse `--admin-token-file` or `--token-file`: "" is none, as in the
/// configuration file.
pub fn parse_token_file(text: &str) -> Result<TokenFile, String> {
    Ok(TokenFile((!text.is_empty()).then(|| PathBuf::from(text))))
}

/// An Admin client that sends the Admin token with every call, if it has
/// one.
pub type Admin = AdminClient<InterceptedService<Channel, SendAdminToken>>;

/// Adds `authorization: Bearer <token>` (marked sensitive, so it is never
/// logged) to every call.
#[derive(Clone)]
pub struct SendAdminToken(Option<MetadataValue<Ascii>>);

impl Interceptor for SendAdminToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert(cds_proto::wire::AUTHORIZATION, value.clone());
        }
        Ok(request)
    }
}

impl SendAdminToken {
    /// The token of `file`, or none. tonic keeps header values in
    /// `Bytes`, which cannot be wiped: the token stays in this process's
    /// memory until it exits (the text read from the file is wiped).
    pub fn from_file(file: Option<&Path>) -> anyhow::Result<Self> {
        let Some(file) = file else {
            return Ok(Self(None));
        };
        let text = std::fs::read_to_string(file)
            .map(Zeroizing::new)
            .with_context(|| format!("cannot read the admin token file {}", file.display()))?;
        cds_server::admin_token::AdminToken::parse(&text).map_err(|reason| {
            anyhow::anyhow!("the admin token file {} {reason}", file.display())
        })?;
        let header = Zeroizing::new(cds_proto::wire::bearer(&text));
        let mut value = MetadataValue::try_from(header.as_str())
            .context("the admin token is not a valid header value")?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }
}

/// Connect to the Admin service at `url` over `options`, sending `token`
/// with every call.
pub async fn connect(
    url: &str,
    options: &cds_client::ChannelOptions,
    token: SendAdminToken,
) -> anyhow::Result<Admin> {
    let channel = options
        .connect(url)
        .await
        .with_context(|| format!("cannot reach the admin service at {url}"))?;
    Ok(AdminClient::with_interceptor(channel, token))
}
