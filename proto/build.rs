//! Compile `cds/v1/cds.proto` with protox (pure Rust), so building cds needs
//! no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=cds/v1/cds.proto");
    let fds = protox::compile(["cds/v1/cds.proto"], ["."])?;
    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        // Records and packed elements are served from shared buffers without copying.
        .bytes(".cds.v1")
        .compile_fds(fds)?;
    Ok(())
}
