//! Switchboard: an automatic call distributor (ACD) for contact centres.
//!
//! The interop bridge hands every incoming call, chat or video session to
//! Switchboard over gRPC; a skills-based routing engine offers it to the best
//! available agent; supervisors manage the centre over gRPC and operations
//! watch Prometheus metrics. The layout follows that architecture:
//!
//! - [`domain`]: ids, channels, presence and the centre's configuration
//!   (skills, queues with routing steps, entry points, agents), with the
//!   validation every layer shares.
//! - [`engine`]: the routing core, sans-IO and deterministic:
//!   `apply(command, now) -> effects`, never a clock, a socket or a database.
//! - [`store`]: the system of record behind one async trait, with SQLite (the
//!   embedded default) and PostgreSQL back-ends sharing their SQL.
//! - [`grpc`]: the adapters that decode and check `switchboard.v1` requests
//!   and map [`error::Error`] to status codes in one place.
//! - [`proto`]: the generated contract, compiled from `proto/`.
//! - [`metrics`]: the Prometheus registry and its `/metrics` endpoint.
//! - [`server`]: `switchboard serve`, wiring it all together with health,
//!   reflection and ordered shutdown; [`config`] holds its options.
//! - [`cli`]: the supervisors' subcommands (`apply`, `top`, `report`, …),
//!   gRPC clients of a running server.
//! - [`sim`]: the traffic simulator (virtual time against the engine, live
//!   against a server over gRPC), `switchboard demo`, and the Erlang C / A
//!   staffing calculator that is also the simulator's oracle.
//! - [`bench`]: `switchboard bench`, the end-to-end load generator: intake
//!   throughput and arrival-to-offer latency against this machine's ceiling
//!   (a tonic echo service and the store's raw commit rate).

pub mod bench;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod live;
pub mod metrics;
pub mod proto;
pub mod server;
pub mod sim;
pub mod store;
