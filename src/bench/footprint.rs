//! What the server holds in memory per waiting item and per connected agent
//! session, measured as the growth of its resident memory while it holds
//! many of them, divided by how many.
//!
//! Both are measured before the load, while no agent is ready: the waiting
//! items are submitted and left in line, then abandoned through
//! `EndInteraction`; the sessions sign in not ready, are held, then sign out.
//! Against a running server the memory is the server's own
//! (`process_resident_memory_bytes` at `--metrics-url`); with `--embedded`
//! it includes the load generator's side of every call and stream.

use super::BenchError;
use super::load::{self, LoadPlan};
use super::probe::Probe;
use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_client::AgentServiceClient;
use crate::proto::v1::bridge_service_client::BridgeServiceClient;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;

/// Agent sessions per HTTP/2 connection, well inside a server's usual limit
/// of concurrent streams per connection.
const SESSIONS_PER_CONNECTION: u32 = 100;

/// How long the memory is left to settle before it is read again.
const SETTLE: Duration = Duration::from_millis(500);

/// The growth of the server's memory while it held `count` things.
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    /// How many were held.
    pub count: u64,
    /// Resident bytes before.
    pub before: f64,
    /// Resident bytes while they were held.
    pub during: f64,
}

impl Growth {
    /// The figures as JSON, with bytes per thing held.
    pub fn to_json(self) -> Value {
        json!({
            "count": self.count,
            "rss_before_bytes": self.before,
            "rss_during_bytes": self.during,
            "bytes_each": (self.during - self.before) / (self.count.max(1) as f64),
        })
    }
}

/// The server's resident memory now.
async fn rss(probe: &Probe) -> Result<f64, BenchError> {
    tokio::time::sleep(SETTLE).await;
    probe.sample().await?.rss_bytes.ok_or_else(|| {
        BenchError::Failed(
            "the server's resident memory is unknown: give --metrics-url or --embedded".into(),
        )
    })
}

/// Submits `count` interactions that wait (no agent is ready), reads the
/// memory, then abandons them all.
pub async fn waiting(plan: &LoadPlan, probe: &Probe, count: u32) -> Result<Growth, BenchError> {
    let channels = load::connect(&plan.url, plan.connections).await?;
    let run = format!("waiting-{}", uuid::Uuid::new_v4().simple());
    let before = rss(probe).await?;
    let per_worker = count.div_ceil(plan.concurrency);
    let mut workers = Vec::new();
    for worker in 0..plan.concurrency {
        let mut client =
            BridgeServiceClient::new(channels[worker as usize % channels.len()].clone());
        let first = worker * per_worker;
        let last = (first + per_worker).min(count);
        let run = run.clone();
        workers.push(tokio::spawn(async move {
            for n in first..last {
                client
                    .submit_interaction(load::request(&run, u64::from(n)))
                    .await?;
            }
            Ok::<_, tonic::Status>(client)
        }));
    }
    let mut clients = Vec::new();
    for worker in workers {
        clients.push(join(worker).await??);
    }
    let during = rss(probe).await?;
    let mut enders = Vec::new();
    for (worker, mut client) in (0..plan.concurrency).zip(clients) {
        let first = worker * per_worker;
        let last = (first + per_worker).min(count);
        let run = run.clone();
        enders.push(tokio::spawn(async move {
            for n in first..last {
                let interaction_id = load::request(&run, u64::from(n)).interaction_id;
                client
                    .end_interaction(pb::EndInteractionRequest {
                        interaction_id,
                        ..Default::default()
                    })
                    .await?;
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for ender in enders {
        join(ender).await??;
    }
    Ok(Growth {
        count: u64::from(count),
        before,
        during,
    })
}

/// Opens `count` agent sessions (agents `bench-agent-1` …, signed in not
/// ready), reads the memory, then signs them all out.
pub async fn sessions(plan: &LoadPlan, probe: &Probe, count: u32) -> Result<Growth, BenchError> {
    let channels = load::connect(&plan.url, count.div_ceil(SESSIONS_PER_CONNECTION)).await?;
    let before = rss(probe).await?;
    let mut held = Vec::new();
    let mut signing_in = Vec::new();
    for n in 1..=count {
        let channel = channels[n as usize % channels.len()].clone();
        signing_in.push(tokio::spawn(sign_in(load::agent_id(n), channel)));
    }
    for session in signing_in {
        held.push(join(session).await??);
    }
    let during = rss(probe).await?;
    let mut closing = Vec::new();
    for (sender, mut stream) in held {
        let _ = sender.send(agent_message(pb::agent_message::Kind::SignOut(
            pb::SignOut {},
        )));
        drop(sender);
        // The server closes the session once the sign-out is taken.
        closing.push(tokio::spawn(async move {
            while let Ok(Some(_)) = stream.message().await {}
        }));
    }
    // Every agent is signed out before the load signs some of them in again.
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        for session in closing {
            let _ = session.await;
        }
    })
    .await;
    if closed.is_err() {
        return Err(BenchError::Failed(
            "sessions: not every session closed within 30 s of signing out".into(),
        ));
    }
    Ok(Growth {
        count: u64::from(count),
        before,
        during,
    })
}

/// An agent's session: what it sends and what it receives.
type Session = (
    mpsc::UnboundedSender<pb::AgentMessage>,
    tonic::Streaming<pb::AgentEvent>,
);

/// Signs an agent in, not ready, and returns the open session once the
/// sign-in is acknowledged.
async fn sign_in(agent_id: String, channel: Channel) -> Result<Session, BenchError> {
    let (sender, requests) = mpsc::unbounded_channel();
    let _ = sender.send(agent_message(pb::agent_message::Kind::SignIn(pb::SignIn {
        agent_id: agent_id.clone(),
        ready: false,
    })));
    let mut stream = AgentServiceClient::new(channel)
        .session(UnboundedReceiverStream::new(requests))
        .await?
        .into_inner();
    loop {
        let event = stream.message().await?.ok_or_else(|| {
            BenchError::Failed(format!("agent {agent_id}: the session ended at sign-in"))
        })?;
        if let Some(pb::agent_event::Kind::Ack(ack)) = event.kind {
            if ack.code != 0 {
                return Err(BenchError::Failed(format!(
                    "agent {agent_id}: sign-in refused: {}",
                    ack.message
                )));
            }
            return Ok((sender, stream));
        }
    }
}

/// A message on an agent's session; the bench never matches their acks.
fn agent_message(kind: pb::agent_message::Kind) -> pb::AgentMessage {
    pb::AgentMessage {
        request_id: 1,
        kind: Some(kind),
    }
}

/// Waits for a spawned task, turning its failure into the bench's.
async fn join<T>(task: tokio::task::JoinHandle<T>) -> Result<T, BenchError> {
    task.await
        .map_err(|error| BenchError::Failed(format!("a footprint task failed: {error}")))
}
