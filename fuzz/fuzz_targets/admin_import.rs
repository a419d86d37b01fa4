//! An Admin `Import` stream from the messenger backend (or anything that
//! reaches the Admin listener), gRPC-framed, through the real tonic Admin
//! service over a real registry in a temporary directory: answered with a
//! status, never a panic, and a successful import accounts for every row.
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use cds_proto::v1::ImportResponse;
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::codegen::Service;
use tonic::codegen::http;

type Call = Box<dyn Fn(Bytes) -> (Option<String>, Bytes) + Send + Sync>;

struct Admin {
    call: Call,
    _dir: tempfile::TempDir,
}

/// The directory for the registry: memory-backed where there is one, so
/// that commits do not wait for a disk.
fn temp_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("cds-fuzz-admin").clone();
    if shm.is_dir() {
        builder.tempdir_in(shm).expect("a temporary directory")
    } else {
        builder.tempdir().expect("a temporary directory")
    }
}

static ADMIN: LazyLock<Admin> = LazyLock::new(|| {
    let dir = temp_dir();
    let mut config = cds_server::ServerConfig::new(dir.path().join("data"));
    config.bucket_bits = cds_core::BucketBits::new(cds_fuzz::BUCKET_BITS).expect("valid bits");
    config.issuer = Some(cds_fuzz::issuer().verifier());
    let service = cds_server::fuzzing::admin_service(config).expect("the Admin service starts");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let call: Call = Box::new(move |body: Bytes| {
        let request = http::Request::builder()
            .method("POST")
            .uri("/cds.v1.Admin/Import")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(body))
            .expect("a valid request");
        let mut service = service.clone();
        runtime.block_on(async move {
            let response = service
                .call(request)
                .await
                .expect("tonic services are infallible");
            // A refusal may come as a trailers-only response (status in
            // the headers) or in the trailers.
            let mut status = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let collected = response
                .into_body()
                .collect()
                .await
                .expect("the response body completes");
            if let Some(s) = collected
                .trailers()
                .and_then(|t| t.get("grpc-status"))
                .and_then(|v| v.to_str().ok())
            {
                status = Some(s.to_owned());
            }
            (status, collected.to_bytes())
        })
    });
    Admin { call, _dir: dir }
});

fuzz_target!(|data: &[u8]| {
    let body = cds_fuzz::grpc_frames(&cds_fuzz::split_messages(data));
    let (status, body) = (ADMIN.call)(body.into());
    let status = status.expect("every gRPC response carries a status");
    if status != "0" {
        return;
    }
    // One uncompressed frame holding the ImportResponse.
    assert!(body.len() >= 5 && body[0] == 0, "a framed response");
    let summary = ImportResponse::decode(&body[5..]).expect("the server's own response decodes");
    assert_eq!(
        summary.received,
        summary.created + summary.updated + summary.rejected
    );
    assert!(summary.errors.len() as u64 <= summary.rejected);
});
