//! `switchboard serve`: the gRPC API (with health and reflection) and the
//! metrics endpoint, started together and stopped in order: health turns
//! NOT_SERVING and the gRPC front end drains first (sessions are told to go
//! away), then the writer flushes every queued record, then the metrics
//! endpoint stops and the store closes. Health also says NOT_SERVING while
//! the database does not answer.

use crate::config::ServeConfig;
use crate::error::{Error, Result};
use crate::grpc::{agent::Agents, bridge::Bridge, presence::PresenceFeed, supervisor::Supervisor};
use crate::live::{Live, LiveConfig};
use crate::proto::v1::agent_service_server::AgentServiceServer;
use crate::proto::v1::bridge_service_server::BridgeServiceServer;
use crate::proto::v1::presence_service_server::PresenceServiceServer;
use crate::proto::v1::supervisor_service_server::SupervisorServiceServer;
use crate::{metrics, proto, store};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Bound listeners, so callers (and tests on port 0) know the addresses before serving.
pub struct Listeners {
    /// The gRPC listener.
    pub grpc: TcpListener,
    /// The metrics listener.
    pub metrics: TcpListener,
}

impl Listeners {
    /// Binds both addresses of the configuration.
    pub async fn bind(config: &ServeConfig) -> Result<Self> {
        let grpc = bind(config.grpc_addr, "grpc_addr").await?;
        let metrics = bind(config.metrics_addr, "metrics_addr").await?;
        Ok(Self { grpc, metrics })
    }
}

/// Binds one address, naming the option at fault when it cannot.
async fn bind(addr: SocketAddr, field: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| Error::invalid(field, format!("cannot listen on {addr}: {error}")))
}

/// The name of every service health reports on; "" is the server as a whole.
const HEALTH_SERVICES: [&str; 5] = [
    "",
    <SupervisorServiceServer<Supervisor> as tonic::server::NamedService>::NAME,
    <BridgeServiceServer<Bridge> as tonic::server::NamedService>::NAME,
    <AgentServiceServer<Agents> as tonic::server::NamedService>::NAME,
    <PresenceServiceServer<PresenceFeed> as tonic::server::NamedService>::NAME,
];

/// Sets every service's health status.
async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for service in HEALTH_SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Keeps health in step with the store: SERVING while the database answers,
/// NOT_SERVING while it does not (routing from memory goes on, but nothing
/// new can be accepted durably). Ends when the writer does.
async fn follow_store_health(reporter: HealthReporter, mut available: watch::Receiver<bool>) {
    loop {
        let status = if *available.borrow_and_update() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        set_health(&reporter, status).await;
        if available.changed().await.is_err() {
            return;
        }
    }
}

/// Runs the server until `shutdown` completes.
pub async fn run(
    config: ServeConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let store = store::connect(&config.database_url).await?;
    let registry = metrics::registry();
    let store_metrics = metrics::StoreMetrics::register(&registry).map_err(|error| {
        tracing::error!(%error, "registering metrics failed");
        Error::Internal
    })?;
    let live_config = LiveConfig {
        heartbeat_timeout: Duration::from_secs(config.heartbeat_timeout_secs.max(1)),
        stats_interval: Duration::from_millis(config.stats_interval_ms.max(10)),
        ..LiveConfig::default()
    };
    let (live, live_tasks) = Live::start(
        store.clone(),
        live_config,
        Arc::new(store_metrics),
        &registry,
    )
    .await?;
    let grpc_metrics = metrics::GrpcMetrics::register(&registry).map_err(|error| {
        tracing::error!(%error, "registering metrics failed");
        Error::Internal
    })?;
    let grpc_addr = listeners.grpc.local_addr().map_err(|_| Error::Internal)?;
    let metrics_addr = listeners
        .metrics
        .local_addr()
        .map_err(|_| Error::Internal)?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let health_task = tokio::spawn(follow_store_health(
        health_reporter.clone(),
        live.store_availability(),
    ));
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|error| {
            tracing::error!(%error, "building reflection failed");
            Error::Internal
        })?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|error| {
            tracing::error!(%error, "building reflection failed");
            Error::Internal
        })?;

    let (stop_metrics, metrics_stopped) = watch::channel(false);
    let metrics_task = tokio::spawn(metrics::serve(listeners.metrics, registry, async move {
        let mut stopped = metrics_stopped;
        // An error means the sender is gone, which also means stop.
        let _ = stopped.wait_for(|stop| *stop).await;
    }));

    tracing::info!(%grpc_addr, %metrics_addr, backend = config.backend_name(), "switchboard is serving");
    let served = tonic::transport::Server::builder()
        .layer(metrics::GrpcMetricsLayer::new(grpc_metrics))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(SupervisorServiceServer::new(Supervisor::new(
            store.clone(),
            live.clone(),
        )))
        .add_service(BridgeServiceServer::new(Bridge::new(live.clone())))
        .add_service(AgentServiceServer::new(Agents::new(live.clone())))
        .add_service(PresenceServiceServer::new(PresenceFeed::new(live)))
        .serve_with_incoming_shutdown(incoming(listeners.grpc), async {
            shutdown.await;
            tracing::info!("shutting down: no new requests; sessions are told to go away");
            health_task.abort();
            set_health(&health_reporter, ServingStatus::NotServing).await;
            live_tasks.stop_sessions();
        })
        .await;
    tracing::info!("gRPC drained; flushing the writer");
    live_tasks.join().await;
    tracing::info!("records flushed; stopping metrics and closing the store");
    // Nobody else reads the flag: a send error cannot happen while metrics_task holds the receiver.
    let _ = stop_metrics.send(true);
    if let Err(error) = metrics_task.await {
        tracing::warn!(%error, "metrics task ended abnormally");
    }
    store.close().await;
    served.map_err(|error| {
        tracing::error!(%error, "gRPC server failed");
        Error::Internal
    })
}

/// The gRPC listener's connections, with Nagle's algorithm off: a small
/// answer goes out at once instead of waiting up to 40 ms for the peer's
/// delayed acknowledgement of the previous one.
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}
