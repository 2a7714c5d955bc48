//! Prometheus metrics: a registry passed in (never the global one) and the
//! HTTP endpoint that serves it at `/metrics`.

mod grpc;
mod http;
mod routing;
mod store;
mod wait;

pub use grpc::{GrpcMetrics, GrpcMetricsLayer};
pub use http::serve;
pub use routing::RoutingMetrics;
pub use store::{LookupMetrics, StoreMetrics};

use prometheus::Registry;

/// Builds the registry a server exports, with the process collector
/// (CPU, memory, open files) registered.
pub fn registry() -> Registry {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    {
        let process = prometheus::process_collector::ProcessCollector::for_self();
        if let Err(error) = registry.register(Box::new(process)) {
            tracing::warn!(%error, "process metrics unavailable");
        }
    }
    registry
}
