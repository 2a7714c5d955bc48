//! The traffic simulator, the demo and the staffing calculator.
//!
//! - [`scenario`]: a scenario file — the centre, staff with shifts and
//!   habits, Poisson arrivals with a rate per interval, handle-time and
//!   patience distributions, run length and seeds.
//! - [`virtual_time`]: drives the routing engine itself in simulated time;
//!   it needs no clock, socket or database.
//! - [`live`]: drives a running server over gRPC, as the interop bridge and
//!   as every agent, in real time or sped up.
//! - [`report`]: tallies per queue and channel, estimates over independent
//!   replications, and the Erlang prediction beside each where it applies.
//! - [`erlang`]: Erlang C and Erlang A, the oracle of the report and of
//!   `switchboard erlang`.
//! - [`demo`]: `switchboard demo`, a sample centre with a minute of live traffic.
//! - [`command`]: the `simulate`, `demo` and `erlang` subcommands.

pub mod command;
pub mod demo;
pub mod erlang;
pub mod live;
pub mod report;
pub mod scenario;
pub mod virtual_time;

pub use command::{Command, run};
