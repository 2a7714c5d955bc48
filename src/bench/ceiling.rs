//! The ceilings of `switchboard bench`, measured in the same run: a trivial
//! tonic unary echo service served on loopback and loaded like the server
//! (same request, same connections and concurrency, as fast as it answers),
//! and the store's raw commit rate (batches of the records a submission
//! writes, appended with no routing, no gRPC and no group-commit writer).

use super::BenchError;
use super::load::{self, LoadPlan};
use super::probe::{between, own_cpu_secs};
use crate::domain::{Channel, Queue, Timestamp, WorkItemId};
use crate::proto::bench::echo_service_client::EchoServiceClient;
use crate::proto::bench::echo_service_server::{EchoService, EchoServiceServer};
use crate::proto::v1 as pb;
use crate::store::records::{EventKind, Record, WorkItemEvent, WorkItemRecord};
use crate::store::{self, Actor};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Work items per raw batch (each is two records: created and queued).
const RAW_BATCH_ITEMS: usize = 256;

/// Answers every call with its request.
struct Echo;

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(
        &self,
        request: tonic::Request<pb::SubmitInteractionRequest>,
    ) -> Result<tonic::Response<pb::SubmitInteractionRequest>, tonic::Status> {
        Ok(tonic::Response::new(request.into_inner()))
    }
}

/// What the echo ceiling measured.
pub struct EchoCeiling {
    /// Calls answered per second.
    pub calls_per_sec: f64,
    /// Cores this process kept busy meanwhile (it holds the echo service
    /// and its callers), when Linux tells its CPU time.
    pub cpu_share_of_one_core: Option<f64>,
}

/// Serves the echo service on `127.0.0.1:0` and calls it as fast as it
/// answers, with the plan's connections and concurrency, for the plan's
/// duration.
pub async fn echo(plan: &LoadPlan) -> Result<EchoCeiling, BenchError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|error| BenchError::Failed(format!("cannot bind the echo service: {error}")))?;
    let address = listener.local_addr().map_err(|error| {
        BenchError::Failed(format!("cannot read the echo service's address: {error}"))
    })?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(EchoServiceServer::new(Echo))
            .serve_with_incoming_shutdown(crate::server::incoming(listener), async move {
                let _ = stopped.await;
            }),
    );
    let channels = load::connect(&format!("http://{address}"), plan.connections).await?;
    let calls = Arc::new(AtomicU64::new(0));
    let cpu_at_start = own_cpu_secs();
    let start = Instant::now();
    let end = start + plan.duration;
    let mut workers = Vec::new();
    for worker in 0..plan.concurrency {
        let mut client = EchoServiceClient::new(channels[worker as usize % channels.len()].clone());
        let calls = Arc::clone(&calls);
        workers.push(tokio::spawn(async move {
            let mut n = u64::from(worker) << 32;
            while Instant::now() < end {
                n += 1;
                client.echo(load::request("echo", n)).await?;
                calls.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), tonic::Status>(())
        }));
    }
    let mut failure = None;
    for worker in workers {
        match worker.await {
            Ok(Ok(())) => {}
            Ok(Err(status)) => failure = Some(BenchError::from(status)),
            Err(error) => {
                failure = Some(BenchError::Failed(format!(
                    "an echo caller failed: {error}"
                )));
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let cpu_secs = between(cpu_at_start, own_cpu_secs());
    let _ = stop.send(());
    drop(channels);
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            return Err(BenchError::Failed(format!(
                "the echo service failed: {error}"
            )));
        }
        Err(error) => {
            return Err(BenchError::Failed(format!(
                "the echo service failed: {error}"
            )));
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(EchoCeiling {
        calls_per_sec: calls.load(Ordering::Relaxed) as f64 / elapsed,
        cpu_share_of_one_core: cpu_secs.map(|cpu| cpu / elapsed),
    })
}

/// The records the n-th submission into `queue` writes: its work item and
/// its queued event (also the recovery benchmark's open items).
pub fn submission(n: usize, queue: &str, at: Timestamp) -> [Record; 2] {
    let item = WorkItemRecord {
        id: WorkItemId::new(),
        interaction_id: format!("raw-{n}").into(),
        segment: 0,
        channel: Channel::Voice,
        from_address: format!("sip:consumer-{n}@consumer.example"),
        to_address: load::ENTRY_POINT.into(),
        display_name: format!("Consumer {n}"),
        entry_point: Some(load::ENTRY_POINT.into()),
        language: None,
        attributes: [(
            "page_url".to_string(),
            "https://bench.example/help".to_string(),
        )]
        .into(),
        required_skills: Vec::new(),
        priority: 0,
        is_transfer: false,
        queue: queue.into(),
        arrived_at: at,
        enqueued_at: at,
    };
    let queued = WorkItemEvent {
        work_item: item.id,
        at,
        kind: EventKind::Queued,
        queue: item.queue.clone(),
        agent: None,
        priority: Some(0),
        detail: "{}".into(),
    };
    [Record::Created(item), Record::Event(queued)]
}

/// Appends batches of submissions' records to a fresh store at `url` for
/// `duration`; returns records committed per second.
pub async fn raw_commit(url: &str, duration: Duration) -> Result<f64, BenchError> {
    let failed =
        |error: crate::error::Error| BenchError::Failed(format!("the raw commit store: {error}"));
    let store = store::connect(url).await.map_err(failed)?;
    let by = Actor {
        name: "bench".into(),
        at: Timestamp::from_millis(1),
    };
    store
        .create_queue(&Queue::new("bench".into()), &by)
        .await
        .map_err(failed)?;
    let mut committed: u64 = 0;
    let mut n = 0;
    let start = Instant::now();
    let end = start + duration;
    let mut result = Ok(());
    while Instant::now() < end {
        let mut records = Vec::with_capacity(RAW_BATCH_ITEMS * 2);
        for _ in 0..RAW_BATCH_ITEMS {
            n += 1;
            let at = Timestamp::from_millis(1_000 + n as i64);
            records.extend(submission(n, "bench", at));
        }
        if let Err(error) = store.append(&records).await {
            result = Err(failed(error));
            break;
        }
        committed += records.len() as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    store.close().await;
    result?;
    Ok(committed as f64 / elapsed.max(1e-9))
}
