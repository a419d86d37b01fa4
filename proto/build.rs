//! Compile `cds/v1/cds.proto` with protox (pure Rust), so building cds needs
//! no `protoc` on the machine. The encoded descriptor set is kept for gRPC
//! reflection.
//!
//! Two passes: the messages and the clients with prost's codec, then the
//! servers alone (into `server/`, naming the messages of the first pass)
//! with [`RequestCodec`](../src/codec.rs), which refuses an undecodable
//! request with `INVALID_ARGUMENT` instead of `INTERNAL`.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=cds/v1/cds.proto");
    let fds = protox::compile(["cds/v1/cds.proto"], ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("cds_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        // Records and packed elements are served from shared buffers without copying.
        .bytes(".cds.v1")
        .build_server(false)
        .compile_fds(fds.clone())?;
    let servers = out.join("server");
    std::fs::create_dir_all(&servers)?;
    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        .out_dir(&servers)
        .build_client(false)
        .extern_path(".cds.v1", "crate::v1")
        .codec_path("crate::codec::RequestCodec")
        .compile_fds(fds)?;
    Ok(())
}
