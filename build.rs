//! Compiles the gRPC contract in `proto/` with protox (no `protoc` needed) and
//! writes the descriptor set used by server reflection; compiles the
//! benchmark's echo service beside it.

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
    // Small codec buffers: a session stream keeps its buffers all day.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::grpc::codec::SmallBufferCodec")
        .compile_fds(descriptors)?;
    // The benchmark's echo service is compiled on its own, so that it is
    // neither in the contract's descriptor set nor served by reflection.
    let mut bench = protox::compile(["proto/bench/v1/echo.proto"], ["proto"])?;
    bench
        .file
        .retain(|file| file.package() == "switchboard.bench.v1");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(".switchboard.v1", "crate::proto::v1")
        .codec_path("crate::grpc::codec::SmallBufferCodec")
        .compile_fds(bench)?;
    Ok(())
}
