//! The generated gRPC contract, `switchboard.v1`, compiled from `proto/`.
#![allow(missing_docs, clippy::all)]

/// Types and service stubs of package `switchboard.v1`.
pub mod v1 {
    tonic::include_proto!("switchboard.v1");
}

/// The echo service of `switchboard bench`, package `switchboard.bench.v1`:
/// the ceiling a submission is measured against, never served by `serve`.
pub mod bench {
    tonic::include_proto!("switchboard.bench.v1");
}

/// The encoded descriptor set of the contract, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("switchboard_descriptor");
