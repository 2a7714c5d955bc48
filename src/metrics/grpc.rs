//! gRPC server metrics in the convention of the Go gRPC Prometheus
//! middleware: `grpc_server_started_total`, `grpc_server_handled_total` and
//! `grpc_server_handling_seconds`, by service, method, type and code.
//!
//! The code is read from the response headers: tonic sends an error as a
//! trailers-only response, so its `grpc-status` is there; a response without
//! it succeeded. A streaming call is counted when its response stream opens.

use http::{Request, Response};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

/// Most methods whose series are kept at hand; a path beyond them (a
/// client calling methods that do not exist) has its series looked up per
/// request instead, so that such calls cannot grow the cache. (Each path
/// still gets its series in the registry, as every label value does.)
const METHODS_KEPT: usize = 64;

/// The three families, shared by every request.
#[derive(Clone)]
pub struct GrpcMetrics {
    started: IntCounterVec,
    handled: IntCounterVec,
    handling: HistogramVec,
    /// Each method's series by request path, looked up once.
    methods: Arc<RwLock<HashMap<String, Arc<MethodSeries>>>>,
}

/// One method's series: those every request of it touches, so that a
/// request hashes no labels unless it fails.
struct MethodSeries {
    /// Type, service and method.
    labels: [String; 3],
    started: IntCounter,
    /// The family a failure is counted in, by its code.
    handled: IntCounterVec,
    handled_ok: IntCounter,
    handling: Histogram,
}

impl MethodSeries {
    /// Counts a completed call with its status code's name.
    fn handled(&self, code: &str) {
        if code == "OK" {
            self.handled_ok.inc();
        } else {
            let [kind, service, method] = &self.labels;
            self.handled
                .with_label_values(&[kind.as_str(), service, method, code])
                .inc();
        }
    }
}

impl GrpcMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let labels = ["grpc_type", "grpc_service", "grpc_method"];
        let started = IntCounterVec::new(
            Opts::new("grpc_server_started_total", "RPCs started on the server."),
            &labels,
        )?;
        let handled = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "RPCs completed on the server, by code.",
            ),
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        )?;
        let handling = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Time to handle an RPC (until the response stream opens, for streams).",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &labels,
        )?;
        registry.register(Box::new(started.clone()))?;
        registry.register(Box::new(handled.clone()))?;
        registry.register(Box::new(handling.clone()))?;
        Ok(Self {
            started,
            handled,
            handling,
            methods: Arc::default(),
        })
    }

    /// The series of the method a request path names.
    fn method(&self, path: &str) -> Arc<MethodSeries> {
        let kept = self
            .methods
            .read()
            .ok()
            .and_then(|methods| methods.get(path).cloned());
        if let Some(series) = kept {
            return series;
        }
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("unknown", "unknown"));
        let labels = [
            rpc_type(method).to_string(),
            service.to_string(),
            method.to_string(),
        ];
        let [kind, service, method] = &labels;
        let series = Arc::new(MethodSeries {
            started: self.started.with_label_values(&labels),
            handled_ok: self
                .handled
                .with_label_values(&[kind.as_str(), service, method, "OK"]),
            handling: self.handling.with_label_values(&labels),
            handled: self.handled.clone(),
            labels,
        });
        if let Ok(mut methods) = self.methods.write()
            && methods.len() < METHODS_KEPT
        {
            methods.insert(path.to_string(), series.clone());
        }
        series
    }
}

/// The RPC type of a method, known from the contract.
fn rpc_type(method: &str) -> &'static str {
    match method {
        "Session" | "ServerReflectionInfo" => "bidi_stream",
        "WatchQueues" | "WatchAgents" | "Watch" => "server_stream",
        _ => "unary",
    }
}

/// The name of a gRPC status code, as the Go middleware writes it.
fn code_name(code: &str) -> &'static str {
    match code.parse::<i32>().map(tonic::Code::from) {
        Ok(tonic::Code::Ok) => "OK",
        Ok(tonic::Code::Cancelled) => "Canceled",
        Ok(tonic::Code::Unknown) => "Unknown",
        Ok(tonic::Code::InvalidArgument) => "InvalidArgument",
        Ok(tonic::Code::DeadlineExceeded) => "DeadlineExceeded",
        Ok(tonic::Code::NotFound) => "NotFound",
        Ok(tonic::Code::AlreadyExists) => "AlreadyExists",
        Ok(tonic::Code::PermissionDenied) => "PermissionDenied",
        Ok(tonic::Code::ResourceExhausted) => "ResourceExhausted",
        Ok(tonic::Code::FailedPrecondition) => "FailedPrecondition",
        Ok(tonic::Code::Aborted) => "Aborted",
        Ok(tonic::Code::OutOfRange) => "OutOfRange",
        Ok(tonic::Code::Unimplemented) => "Unimplemented",
        Ok(tonic::Code::Internal) => "Internal",
        Ok(tonic::Code::Unavailable) => "Unavailable",
        Ok(tonic::Code::DataLoss) => "DataLoss",
        Ok(tonic::Code::Unauthenticated) => "Unauthenticated",
        Err(_) => "Unknown",
    }
}

/// A tower layer that records every RPC the server handles.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    metrics: GrpcMetrics,
}

impl GrpcMetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: GrpcMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service the layer wraps around the gRPC router.
#[derive(Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: GrpcMetrics,
}

impl<S, B, R> tower::Service<Request<B>> for GrpcMetricsService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let series = self.metrics.method(request.uri().path());
        series.started.inc();
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .map_or("OK", code_name);
            series.handled(code);
            series.handling.observe(started.elapsed().as_secs_f64());
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_is_looked_up_once_and_unknown_paths_cannot_grow_the_cache() {
        let metrics = GrpcMetrics::register(&Registry::new()).expect("fresh metrics");
        let path = "/switchboard.v1.BridgeService/SubmitInteraction";
        let first = metrics.method(path);
        let again = metrics.method(path);
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second request reuses the series"
        );
        assert_eq!(
            first.labels,
            ["unary", "switchboard.v1.BridgeService", "SubmitInteraction"].map(String::from)
        );
        first.started.inc();
        again.started.inc();
        let started = metrics.started.with_label_values(&first.labels).get();
        assert_eq!(started, 2, "both count in the exported series");

        for n in 0..200 {
            metrics.method(&format!("/nowhere.Service/Method{n}"));
        }
        let kept = metrics.methods.read().expect("not poisoned").len();
        assert_eq!(kept, METHODS_KEPT);
    }
}
