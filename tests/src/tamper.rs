//! A man in the middle of Discovery: [`TamperingProxy`] forwards every call
//! to a real server and lets a test rewrite the `Discover` responses, as a
//! malicious server (or whoever answers in its place) could, and the
//! `SyncRecords` responses too ([`TamperingProxy::tamper_sync_with`]). Tests use it
//! to show what a client does with what the server sends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use cds_proto::v1::discovery_client::DiscoveryClient;
use cds_proto::v1::discovery_server::{Discovery, DiscoveryServer};
use cds_proto::v1::{
    Config, DiscoverRequest, DiscoverResponse, GetConfigRequest, SyncRequest, SyncResponse,
    UploadAllowListRequest, UploadAllowListResponse,
};
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// A rewrite of `Discover` responses.
type Tamper = Box<dyn FnMut(&mut DiscoverResponse) + Send>;
/// A rewrite of `SyncRecords` responses.
type SyncTamper = Box<dyn FnMut(&mut SyncResponse) + Send>;

/// What a `Discover` request showed the proxy (the server's view of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Blinded elements it carried.
    pub elements: usize,
    /// Whether it asked for every bucket.
    pub all_buckets: bool,
    /// The bucket ids it asked for (with `all_buckets`, none).
    pub bucket_ids: Vec<u32>,
}

#[derive(Clone)]
struct Forward {
    upstream: DiscoveryClient<Channel>,
    tamper: Arc<Mutex<Tamper>>,
    sync_tamper: Arc<Mutex<SyncTamper>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

#[tonic::async_trait]
impl Discovery for Forward {
    async fn get_config(
        &self,
        request: Request<GetConfigRequest>,
    ) -> Result<Response<Config>, Status> {
        self.upstream.clone().get_config(request.into_inner()).await
    }

    async fn upload_allow_list(
        &self,
        _request: Request<UploadAllowListRequest>,
    ) -> Result<Response<UploadAllowListResponse>, Status> {
        Err(Status::unimplemented(
            "the tampering proxy forwards discovery only",
        ))
    }

    async fn sync_records(
        &self,
        request: Request<SyncRequest>,
    ) -> Result<Response<SyncResponse>, Status> {
        let authorization = request.metadata().get("authorization").cloned();
        let mut forwarded = Request::new(request.into_inner());
        if let Some(value) = authorization {
            forwarded.metadata_mut().insert("authorization", value);
        }
        let mut response = self
            .upstream
            .clone()
            .sync_records(forwarded)
            .await?
            .into_inner();
        (self.sync_tamper.lock().expect("tamper lock"))(&mut response);
        Ok(Response::new(response))
    }

    async fn discover(
        &self,
        request: Request<DiscoverRequest>,
    ) -> Result<Response<DiscoverResponse>, Status> {
        let authorization = request.metadata().get("authorization").cloned();
        let message = request.into_inner();
        let bucket_ids = match &message.buckets {
            Some(cds_proto::v1::discover_request::Buckets::Ids(ids)) => ids.ids.clone(),
            _ => Vec::new(),
        };
        self.seen.lock().expect("seen lock").push(Seen {
            elements: message.blinded_elements.len() / cds_core::ELEMENT_LEN,
            all_buckets: matches!(
                message.buckets,
                Some(cds_proto::v1::discover_request::Buckets::All(_))
            ),
            bucket_ids,
        });
        let mut forwarded = Request::new(message);
        if let Some(value) = authorization {
            forwarded.metadata_mut().insert("authorization", value);
        }
        let mut response = self
            .upstream
            .clone()
            .discover(forwarded)
            .await?
            .into_inner();
        (self.tamper.lock().expect("tamper lock"))(&mut response);
        Ok(Response::new(response))
    }
}

/// A Discovery listener on 127.0.0.1 that forwards to a real server and
/// rewrites its `Discover` responses. Stopped when dropped.
pub struct TamperingProxy {
    addr: SocketAddr,
    tamper: Arc<Mutex<Tamper>>,
    sync_tamper: Arc<Mutex<SyncTamper>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    _stop: oneshot::Sender<()>,
}

/// Largest message the proxy passes on (the client's own limit).
const MAX_MESSAGE: usize = 512 * 1024 * 1024;

impl TamperingProxy {
    /// Forward to the Discovery service at `upstream` (`http://…`),
    /// changing nothing until [`TamperingProxy::tamper_with`].
    pub async fn start(upstream: &str) -> Self {
        let upstream = DiscoveryClient::connect(upstream.to_owned())
            .await
            .expect("the proxy reaches the server")
            .max_decoding_message_size(MAX_MESSAGE);
        let tamper: Arc<Mutex<Tamper>> = Arc::new(Mutex::new(Box::new(|_| {})));
        let sync_tamper: Arc<Mutex<SyncTamper>> = Arc::new(Mutex::new(Box::new(|_| {})));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let service = DiscoveryServer::new(Forward {
            upstream,
            tamper: Arc::clone(&tamper),
            sync_tamper: Arc::clone(&sync_tamper),
            seen: Arc::clone(&seen),
        })
        .max_encoding_message_size(MAX_MESSAGE);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy binds");
        let addr = listener.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                }),
        );
        Self {
            addr,
            tamper,
            sync_tamper,
            seen,
            _stop: stop,
        }
    }

    /// The proxy's Discovery URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Rewrite every `Discover` response from now on with `tamper`.
    pub fn tamper_with(&self, tamper: impl FnMut(&mut DiscoverResponse) + Send + 'static) {
        *self.tamper.lock().expect("tamper lock") = Box::new(tamper);
    }

    /// Rewrite every `SyncRecords` response from now on with `tamper`.
    pub fn tamper_sync_with(&self, tamper: impl FnMut(&mut SyncResponse) + Send + 'static) {
        *self.sync_tamper.lock().expect("tamper lock") = Box::new(tamper);
    }

    /// The `Discover` requests forwarded so far, and forget them.
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().expect("seen lock"))
    }
}

/// Append `record` to the records of `bucket` in `response`.
pub fn plant(response: &mut DiscoverResponse, bucket: u32, record: &[u8]) {
    let entry = response
        .buckets
        .iter_mut()
        .find(|b| b.bucket == bucket)
        .expect("the response holds that bucket");
    let mut records = entry.records.to_vec();
    records.extend_from_slice(record);
    entry.records = records.into();
}

/// A record under `tag` that no key opens: what the key holder can plant
/// for any number it chooses, without knowing a label.
pub fn forged_record(tag: &cds_core::MatchTag) -> Vec<u8> {
    let mut record = tag.as_bytes().to_vec();
    record.push(5); // label length
    record.extend_from_slice(&[0xab; 16 + 5]); // synthetic IV and ciphertext
    record
}
