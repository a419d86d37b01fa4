//! The Discovery service over gRPC, written by hand rather than generated,
//! so that a response can send the shared encoding of every bucket
//! ([`super::shared`]) without copying it.
//!
//! tonic's codecs encode each message into a buffer of their own, so a
//! generated server would copy the whole table into every `all` response.
//! Here `Discover` decodes its request with tonic's own decoder (the same
//! size limit, the same errors), and answers with a body of its own: the
//! gRPC message prefix and the response's own fields, then the shared
//! encoding as it is (the transport takes it in slices of the same
//! buffer), then the `grpc-status` trailers. `GetConfig`, `SyncRecords` and
//! `UploadAllowList` are served by tonic's unary handler, as generated code
//! would; any other method is UNIMPLEMENTED. Every request is decoded with
//! [`cds_proto::codec::RequestCodec`], so one that is not valid protobuf is
//! INVALID_ARGUMENT, as on the Admin listener. Errors are trailers-only
//! responses, as tonic sends them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use cds_proto::codec::RequestCodec;
use cds_proto::v1::{
    Config, DiscoverRequest, DiscoverResponse, GetConfigRequest, SyncRequest, SyncResponse,
    UploadAllowListRequest, UploadAllowListResponse,
};
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, Streaming};
use tonic::codegen::{BoxFuture, http};
use tonic::{Request, Response, Status};

use super::service::DiscoveryService;

/// The path of `GetConfig`.
const GET_CONFIG: &str = "/cds.v1.Discovery/GetConfig";
/// The path of `UploadAllowList`.
const UPLOAD_ALLOW_LIST: &str = "/cds.v1.Discovery/UploadAllowList";
/// The path of `SyncRecords`.
const SYNC_RECORDS: &str = "/cds.v1.Discovery/SyncRecords";
/// The path of `Discover`.
const DISCOVER: &str = "/cds.v1.Discovery/Discover";
/// Bytes of the gRPC message prefix: the compression flag and the length.
const PREFIX: usize = 5;

/// The Discovery service as a listener routes to it.
#[derive(Debug, Clone)]
pub(crate) struct DiscoveryRoutes {
    service: DiscoveryService,
    /// The largest request message decoded.
    max_request: usize,
    /// The largest response message sent.
    max_response: usize,
}

impl DiscoveryRoutes {
    pub(crate) fn new(service: DiscoveryService, max_request: usize, max_response: usize) -> Self {
        Self {
            service,
            max_request,
            max_response,
        }
    }

    async fn get_config(self, request: http::Request<Body>) -> http::Response<Body> {
        tonic::server::Grpc::new(RequestCodec::<Config, GetConfigRequest>::default())
            .max_decoding_message_size(self.max_request)
            .max_encoding_message_size(self.max_response)
            .unary(GetConfig(self.service), request)
            .await
    }

    async fn upload_allow_list(self, request: http::Request<Body>) -> http::Response<Body> {
        tonic::server::Grpc::new(RequestCodec::<
            UploadAllowListResponse,
            UploadAllowListRequest,
        >::default())
        .max_decoding_message_size(self.max_request)
        .max_encoding_message_size(self.max_response)
        .unary(UploadAllowList(self.service), request)
        .await
    }

    async fn sync_records(self, request: http::Request<Body>) -> http::Response<Body> {
        tonic::server::Grpc::new(RequestCodec::<SyncResponse, SyncRequest>::default())
            .max_decoding_message_size(self.max_request)
            .max_encoding_message_size(self.max_response)
            .unary(SyncRecords(self.service), request)
            .await
    }

    async fn discover(self, request: http::Request<Body>) -> Result<http::Response<Body>, Status> {
        refuse_compressed(request.headers())?;
        let (mut parts, body) = request.into_parts();
        let mut stream = Streaming::new_request(
            RequestCodec::<DiscoverResponse, DiscoverRequest>::default().decoder(),
            body,
            None,
            Some(self.max_request),
        );
        let message = stream
            .message()
            .await?
            .ok_or_else(|| Status::internal("Missing request message."))?;
        // Request trailers count as metadata, as tonic merges them.
        if let Some(trailers) = stream.trailers().await? {
            parts.headers.extend(trailers.into_headers());
        }
        let request = Request::from_http(http::Request::from_parts(parts, message));
        let answer = self.service.discover(request).await?;
        let data = message_frames(&answer.response, answer.all_buckets, self.max_response)?;
        let mut trailers = http::HeaderMap::new();
        Status::ok("").add_header(&mut trailers)?;
        let mut response = http::Response::new(Body::new(MessageBody {
            data: data.into(),
            trailers: Some(trailers),
        }));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        // Held until the body is sent (`HoldLayer`).
        response.extensions_mut().insert(answer.reservation);
        Ok(response)
    }
}

impl tonic::server::NamedService for DiscoveryRoutes {
    const NAME: &'static str = crate::listeners::DISCOVERY_SERVICE;
}

impl tower::Service<http::Request<Body>> for DiscoveryRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let routes = self.clone();
        match request.uri().path() {
            DISCOVER => Box::pin(async move {
                Ok(routes
                    .discover(request)
                    .await
                    .unwrap_or_else(Status::into_http))
            }),
            GET_CONFIG => Box::pin(async move { Ok(routes.get_config(request).await) }),
            SYNC_RECORDS => Box::pin(async move { Ok(routes.sync_records(request).await) }),
            UPLOAD_ALLOW_LIST => {
                Box::pin(async move { Ok(routes.upload_allow_list(request).await) })
            }
            _ => Box::pin(async { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

/// `GetConfig` as tonic's unary handler calls it.
struct GetConfig(DiscoveryService);

impl tonic::server::UnaryService<GetConfigRequest> for GetConfig {
    type Response = Config;
    type Future = BoxFuture<Response<Config>, Status>;

    fn call(&mut self, request: Request<GetConfigRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.get_config(request).await })
    }
}

/// `UploadAllowList` as tonic's unary handler calls it.
struct UploadAllowList(DiscoveryService);

impl tonic::server::UnaryService<UploadAllowListRequest> for UploadAllowList {
    type Response = UploadAllowListResponse;
    type Future = BoxFuture<Response<UploadAllowListResponse>, Status>;

    fn call(&mut self, request: Request<UploadAllowListRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.upload_allow_list(request).await })
    }
}

/// `SyncRecords` as tonic's unary handler calls it.
struct SyncRecords(DiscoveryService);

impl tonic::server::UnaryService<SyncRequest> for SyncRecords {
    type Response = SyncResponse;
    type Future = BoxFuture<Response<SyncResponse>, Status>;

    fn call(&mut self, request: Request<SyncRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.sync_records(request).await })
    }
}

/// UNIMPLEMENTED for a compressed request, as tonic answers when no
/// compression is enabled: clients send uncompressed messages.
fn refuse_compressed(headers: &http::HeaderMap) -> Result<(), Status> {
    match headers.get("grpc-encoding") {
        None => Ok(()),
        Some(v) if v.as_bytes() == b"identity" => Ok(()),
        Some(v) => {
            let mut status = Status::unimplemented(format!(
                "Content is compressed with `{}` which isn't supported",
                String::from_utf8_lossy(v.as_bytes())
            ));
            status.metadata_mut().insert(
                "grpc-accept-encoding",
                tonic::metadata::MetadataValue::from_static("identity"),
            );
            Err(status)
        }
    }
}

/// The gRPC message of a Discover response, in pieces: the prefix
/// (uncompressed, and the length of the whole message) with `response`
/// encoded, then `all_buckets` (field 4 of every bucket, encoded already)
/// as it is. The pieces make exactly the bytes of `response` with those
/// buckets encoded whole, since prost writes fields in number order.
/// OUT_OF_RANGE if the message is longer than `max`, as tonic's encoder
/// says it.
pub(crate) fn message_frames(
    response: &DiscoverResponse,
    all_buckets: Option<Bytes>,
    max: usize,
) -> Result<Vec<Bytes>, Status> {
    let own = response.encoded_len();
    let len = own + all_buckets.as_ref().map_or(0, Bytes::len);
    let limit = max.min(u32::MAX as usize);
    if len > limit {
        return Err(Status::out_of_range(format!(
            "Error, encoded message length too large: found {len} bytes, the limit is: {limit} bytes"
        )));
    }
    let mut head = Vec::with_capacity(PREFIX + own);
    head.push(0);
    head.extend_from_slice(&(len as u32).to_be_bytes());
    response
        .encode(&mut head)
        .map_err(|e| Status::internal(format!("Error encoding: {e}")))?;
    let mut frames = vec![Bytes::from(head)];
    frames.extend(all_buckets.filter(|b| !b.is_empty()));
    Ok(frames)
}

/// A response body: data pieces, then trailers.
struct MessageBody {
    data: VecDeque<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl http_body::Body for MessageBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        if let Some(data) = self.data.pop_front() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
        }
        Poll::Ready(
            self.trailers
                .take()
                .map(|t| Ok(http_body::Frame::trailers(t))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::plan::all_buckets_bound;
    use crate::discovery::shared::encode_all_buckets;
    use crate::discovery::{DiscoverLimits, DiscoverPlan};
    use crate::epoch::ServingEpoch;
    use crate::registry::User;
    use crate::table::RecordTable;
    use cds_core::{BucketBits, E164, KeyPair, Label};
    use cds_proto::v1::AllBuckets;
    use cds_proto::v1::discover_request::Buckets;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// An epoch of `users` users in `2^bits` buckets, some of them empty.
    fn epoch(bits: u8, users: u64) -> ServingEpoch {
        let epoch = ServingEpoch::new(
            7,
            KeyPair::generate(&mut rand::rng()),
            RecordTable::new(BucketBits::new(bits).expect("valid")),
        );
        let changes = (0..users)
            .map(|i| {
                let user = User {
                    number: E164::from_u64(12015550100 + i).expect("valid"),
                    label: Label::new(vec![b'x'; (i % 5) as usize * 13]).expect("short"),
                    discoverable: true,
                };
                epoch.table.change_for(&epoch.oprf, &user)
            })
            .collect();
        epoch.table.apply_changes(changes);
        epoch
    }

    fn request(epoch: &ServingEpoch, elements: usize) -> DiscoverRequest {
        let packed: Vec<u8> = (0..elements)
            .flat_map(|i| {
                cds_core::VoprfClient::blind(format!("+1201555{i:04}").as_bytes(), &mut rand::rng())
                    .expect("blinds")
                    .message
                    .as_bytes()
                    .to_vec()
            })
            .collect();
        DiscoverRequest {
            epoch: epoch.id(),
            blinded_elements: packed.into(),
            buckets: Some(Buckets::All(AllBuckets {})),
            record_format: cds_proto::wire::RECORD_FORMAT,
        }
    }

    #[test]
    fn an_all_response_assembled_from_the_shared_encoding_is_the_message_prost_encodes() {
        let limits = DiscoverLimits {
            max_elements: 16,
            max_response_bytes: 1 << 22,
        };
        // Bucket 0 (absent id on the wire), empty buckets, a one-bucket
        // table, elements and none.
        for (bits, users, elements) in [(3, 40, 3), (4, 5, 0), (0, 30, 1), (2, 0, 2)] {
            let epoch = epoch(bits, users);
            let request = request(&epoch, elements);
            let whole = DiscoverPlan::new(request.clone(), &epoch, &limits)
                .expect("valid")
                .answer(&epoch, &mut StdRng::seed_from_u64(1), &|_| {})
                .expect("answered");
            let own = DiscoverPlan::new(request, &epoch, &limits)
                .expect("valid")
                .answer_without_all(&epoch, &mut StdRng::seed_from_u64(1), &|_| {})
                .expect("answered");
            assert!(own.buckets.is_empty());
            let shared: Bytes = encode_all_buckets(&epoch.table, all_buckets_bound(&epoch.table))
                .expect("fits")
                .into();
            let frames = message_frames(&own, Some(shared.clone()), 1 << 22).expect("fits");
            if !shared.is_empty() {
                // The shared encoding goes out as it is, not copied.
                assert_eq!(frames.last().map(|f| f.as_ptr()), Some(shared.as_ptr()));
            }
            let body: Vec<u8> = frames.concat();
            assert_eq!(body[0], 0, "uncompressed");
            let len = u32::from_be_bytes(body[1..5].try_into().expect("4 bytes")) as usize;
            assert_eq!(len, body.len() - PREFIX);
            assert_eq!(&body[PREFIX..], &whole.encode_to_vec()[..], "same bytes");
            let decoded = DiscoverResponse::decode(&body[PREFIX..]).expect("prost decodes it");
            assert_eq!(decoded, whole);
            assert_eq!(decoded.buckets.len(), 1 << bits);
        }
    }

    #[test]
    fn a_message_over_the_limit_is_out_of_range() {
        let response = DiscoverResponse {
            epoch: 1,
            ..Default::default()
        };
        let shared = Bytes::from(vec![0x22, 0]);
        let len = response.encoded_len() + 2;
        assert!(message_frames(&response, Some(shared.clone()), len).is_ok());
        let status = message_frames(&response, Some(shared), len - 1).expect_err("too long");
        assert_eq!(status.code(), tonic::Code::OutOfRange);
    }
}
