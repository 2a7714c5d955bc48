//! The gRPC adapters: they decode and check requests, call the store (and,
//! with the live path, the engine), and map errors to status codes in one
//! place (`status.rs`). The routing core never sees a proto type.

pub mod acks;
pub mod agent;
pub mod bridge;
pub mod codec;
pub mod convert;
pub mod presence;
mod status;
pub mod supervisor;
pub mod watch;
