//! Supervisors' real-time statistics: one-off reads and watch streams of
//! queues and agents, cut from the router's [`StatsFrame`]s.

use super::convert;
use crate::error::Error;
use crate::live::{Live, StatsFrame};
use crate::proto::v1 as pb;
use std::collections::HashSet;
use std::pin::Pin;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// A server stream of watch messages.
pub type WatchStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Which entries of a frame a request asks for: the ids given, or all.
#[derive(Debug, Clone)]
pub struct Selection {
    ids: HashSet<String>,
}

impl Selection {
    /// Checks every requested id against a snapshot; an unknown one is
    /// NOT_FOUND, named with its `kind` (queue or agent).
    fn new<'a>(
        requested: &[String],
        known: impl Iterator<Item = &'a str>,
        kind: &'static str,
    ) -> Result<Self, Error> {
        let known: HashSet<&str> = known.collect();
        for id in requested {
            if !known.contains(id.as_str()) {
                return Err(Error::not_found(kind, id));
            }
        }
        Ok(Self {
            ids: requested.iter().cloned().collect(),
        })
    }

    /// A selection of queues.
    pub fn queues(requested: &[String], frame: &StatsFrame) -> Result<Self, Error> {
        let known = frame.queues.iter().map(|stats| stats.queue.as_str());
        Self::new(requested, known, "queue")
    }

    /// A selection of agents.
    pub fn agents(requested: &[String], frame: &StatsFrame) -> Result<Self, Error> {
        let known = frame.agents.iter().map(|stats| stats.agent.as_str());
        Self::new(requested, known, "agent")
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.is_empty() || self.ids.contains(id)
    }

    /// The selected queues' figures, in proto form.
    pub fn queue_stats(&self, frame: &StatsFrame) -> Vec<pb::QueueStats> {
        let mut out = Vec::new();
        for stats in &frame.queues {
            if self.contains(stats.queue.as_str()) {
                out.push(convert::queue_stats_to_proto(stats));
            }
        }
        out
    }

    /// The selected agents' figures, in proto form.
    pub fn agent_stats(&self, frame: &StatsFrame) -> Vec<pb::AgentStats> {
        let mut out = Vec::new();
        for stats in &frame.agents {
            if self.contains(stats.agent.as_str()) {
                out.push(convert::agent_stats_to_proto(stats));
            }
        }
        out
    }
}

/// How a watch turns a frame into its message: `None` when nothing it
/// watches changed (never for a snapshot).
type Cut<T> = fn(&Selection, &StatsFrame, bool) -> Option<T>;

/// Queue watch messages.
pub fn queue_update(
    selection: &Selection,
    frame: &StatsFrame,
    snapshot: bool,
) -> Option<pb::QueueStatsUpdate> {
    let stats = selection.queue_stats(frame);
    (snapshot || !stats.is_empty()).then_some(pb::QueueStatsUpdate { snapshot, stats })
}

/// Agent watch messages.
pub fn agent_update(
    selection: &Selection,
    frame: &StatsFrame,
    snapshot: bool,
) -> Option<pb::AgentStatsUpdate> {
    let stats = selection.agent_stats(frame);
    (snapshot || !stats.is_empty()).then_some(pb::AgentStatsUpdate { snapshot, stats })
}

/// Starts a watch: a snapshot, then the changes. The task forwarding them
/// waits for the client, never the router: while it waits, frames pile up
/// in the broadcast; once more than the backlog are missed, it sends a fresh
/// snapshot instead of the frames it skipped.
pub async fn watch<T: Send + 'static>(
    live: Live,
    select: impl FnOnce(&StatsFrame) -> Result<Selection, Error>,
    cut: Cut<T>,
) -> Result<WatchStream<T>, Status> {
    let (snapshot, mut updates) = live.watch_stats().await?;
    let selection = select(&snapshot)?;
    let (out, stream) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut seq = snapshot.seq;
        let mut next = cut(&selection, &snapshot, true);
        loop {
            if let Some(message) = next.take()
                && out.send(Ok(message)).await.is_err()
            {
                return;
            }
            tokio::select! {
                () = out.closed() => return,
                () = live.stopping() => {
                    let _ = out.send(Err(Status::unavailable("the server is shutting down"))).await;
                    return;
                }
                received = updates.recv() => match received {
                    Ok(frame) if frame.seq > seq => {
                        seq = frame.seq;
                        next = cut(&selection, &frame, false);
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "statistics watcher fell behind; sending a snapshot");
                        match live.stats().await {
                            Ok(fresh) => {
                                seq = fresh.seq;
                                next = cut(&selection, &fresh, true);
                            }
                            Err(error) => {
                                let _ = out.send(Err(error.into())).await;
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(stream)))
}
