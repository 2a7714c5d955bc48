//! Compiles the gRPC contract in `proto/` with protox (no `protoc` needed) and
//! writes the descriptor set used by server reflection.

use prost::Message;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/switchboard/v1/common.proto",
    "proto/switchboard/v1/bridge.proto",
    "proto/switchboard/v1/agent.proto",
    "proto/switchboard/v1/presence.proto",
    "proto/switchboard/v1/supervisor.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("switchboard_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
