//! # cds-proto: the cds wire protocol
//!
//! Generated gRPC services and messages of package `cds.v1`
//! (`proto/cds/v1/cds.proto`), compiled at build time with `protox`, so no
//! `protoc` has to be installed. `docs/protocol.md` specifies the meaning of
//! every field.
//!
//! - [`v1::discovery_client`] / [`v1::discovery_server`]: what apps call.
//! - [`v1::admin_client`] / [`v1::admin_server`]: what the messenger backend calls.
//! - [`codec`]: the servers' codec, which refuses a request that is not
//!   valid protobuf with `INVALID_ARGUMENT`.
//! - [`wire`]: metadata keys, limit codes, the suite name and the request
//!   size rule, shared by both sides.

pub mod codec;
pub mod wire;

/// Package `cds.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("cds.v1");
    // The servers, generated apart with `codec::RequestCodec` (build.rs).
    include!(concat!(env!("OUT_DIR"), "/server/cds.v1.rs"));
}

/// The encoded `FileDescriptorSet` of `cds.v1`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/cds_v1_descriptor.bin"));
