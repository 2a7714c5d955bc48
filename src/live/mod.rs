//! The live path: one task owns the routing engine and everything that
//! follows from its effects — durable records, instructions to the bridge,
//! events to agents.
//!
//! gRPC handlers hold a cloneable [`Live`] handle. Each call becomes an
//! [`op::Op`] sent through a bounded channel to the router task, which
//! applies it to the engine with the current time, hands the resulting
//! records to the group-commit writer and pushes notices to sessions, then
//! replies. Timers fire from the same task on tokio time, so tests can pause
//! and advance the clock. Routing never waits for the disk; a submission or a
//! bridge lifecycle report is acknowledged only once its records are
//! committed (see [`Live::submit`]).

mod clock;
mod notices;
mod op;
mod router;
mod stats;

pub use clock::Clock;
pub use notices::{AgentNotice, BridgeNotice, DisconnectKind, OfferNotice, OpenInteraction};
pub use op::{BridgeReport, Submission, Submitted};
pub use stats::{AgentStats, QueueStats, StatsFrame, WATCH_BACKLOG};

use crate::domain::{AgentId, Channel, EntryPoint, Presence, QueueId, SkillRequirement};
use crate::engine::{Command, WaitEstimate};
use crate::error::{Error, Result};
use crate::metrics::{LookupMetrics, RoutingMetrics};
use crate::store::Store;
use crate::store::lookup::Lookups;
use crate::store::writer::{CommitObserver, Writer, WriterConfig};
use op::Op;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Tuning of the live path, with documented defaults.
#[derive(Debug, Clone, Copy)]
pub struct LiveConfig {
    /// An agent session with no message for this long is signed out (30 s).
    pub heartbeat_timeout: Duration,
    /// How long a submission or lifecycle report waits for its commit before
    /// answering UNAVAILABLE; its records stay queued and are still written (5 s).
    pub commit_hold: Duration,
    /// How often waiting items' position and estimated wait are sent to the
    /// bridge, for items whose figures changed (2 s).
    pub position_interval: Duration,
    /// How often changed statistics are published to supervisors' watch
    /// streams (500 ms).
    pub stats_interval: Duration,
    /// Capacity of the router's command queue (4,096).
    pub command_queue: usize,
    /// Group-commit tuning.
    pub writer: WriterConfig,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            heartbeat_timeout: Duration::from_secs(30),
            commit_hold: Duration::from_secs(5),
            position_interval: Duration::from_secs(2),
            stats_interval: Duration::from_millis(500),
            command_queue: 4_096,
            writer: WriterConfig::default(),
        }
    }
}

/// A handle to the router task; cheap to clone, one per gRPC service.
#[derive(Clone)]
pub struct Live {
    ops: mpsc::Sender<Op>,
    writer: Writer,
    /// Asks the store whether interactions were submitted before, many at a time.
    lookups: Lookups,
    config: LiveConfig,
    /// Turns true when the server begins to shut down; sessions then say goodbye.
    stopping: watch::Receiver<bool>,
    /// Where the router broadcasts changed statistics.
    stats: broadcast::Sender<Arc<StatsFrame>>,
}

/// The running router and writer tasks, to be awaited at shutdown.
pub struct LiveTasks {
    router: JoinHandle<()>,
    writer: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl LiveTasks {
    /// Tells every session the server is going away, so that streams end
    /// and the gRPC front end can drain.
    pub fn stop_sessions(&self) {
        self.stop.send_replace(true);
    }

    /// Waits for the router to stop (every [`Live`] handle dropped) and the
    /// writer to flush everything queued.
    pub async fn join(self) {
        if let Err(error) = self.router.await {
            tracing::error!(%error, "router task failed");
        }
        if let Err(error) = self.writer.await {
            tracing::error!(%error, "writer task failed");
        }
    }
}

impl Live {
    /// Loads the configuration and the open work items from the store into a
    /// new engine (see the router's `recover`) and starts the router and
    /// writer tasks.
    pub async fn start(
        store: Arc<dyn Store>,
        config: LiveConfig,
        observer: Arc<dyn CommitObserver>,
        registry: &prometheus::Registry,
    ) -> Result<(Live, LiveTasks)> {
        let queues = store.list_queues().await?;
        let metrics = RoutingMetrics::register(registry, &queues).map_err(|error| {
            tracing::error!(%error, "registering routing metrics failed");
            Error::Internal
        })?;
        let lookup_metrics = LookupMetrics::register(registry).map_err(|error| {
            tracing::error!(%error, "registering lookup metrics failed");
            Error::Internal
        })?;
        let (writer, writer_task) = Writer::spawn(store.clone(), config.writer, observer);
        let (stats, _) = broadcast::channel(WATCH_BACKLOG);
        let mut router = router::Router::new(
            Clock::start(),
            writer.clone(),
            config,
            metrics,
            stats.clone(),
        );
        router.load_configuration(
            queues,
            store.list_agents().await?,
            store.list_entry_points().await?,
        );
        router.restore_unsent(store.unsent_instructions().await?);
        // Items are rebuilt as the store reads them, so that reading and
        // rebuilding overlap.
        let mut records = Vec::new();
        let mut recovered = 0_u64;
        store
            .each_open_work_item(&mut |stored| {
                router.recover(stored, &mut records);
                recovered += 1;
            })
            .await?;
        tracing::info!(recovered, "open work items recovered");
        writer.write_detached(records);
        let (ops, inbox) = mpsc::channel(config.command_queue);
        let router_task = tokio::spawn(router.run(inbox));
        let (stop, stopping) = watch::channel(false);
        let live = Live {
            ops,
            writer,
            lookups: Lookups::spawn(store, lookup_metrics),
            config,
            stopping,
            stats,
        };
        let tasks = LiveTasks {
            router: router_task,
            writer: writer_task,
            stop,
        };
        Ok((live, tasks))
    }

    /// Completes when the server begins to shut down.
    pub async fn stopping(&self) {
        let mut stopping = self.stopping.clone();
        // An error means the sender is gone, which also means stopping.
        let _ = stopping.wait_for(|stop| *stop).await;
    }

    /// True when the store cannot take writes now (down or too far behind).
    pub fn store_degraded(&self) -> bool {
        self.writer.is_behind() || !self.writer.is_available()
    }

    /// Follows whether the database answers, for gRPC health.
    pub fn store_availability(&self) -> watch::Receiver<bool> {
        self.writer.availability()
    }

    /// The live path's settings.
    pub fn config(&self) -> &LiveConfig {
        &self.config
    }

    /// Sends an operation and waits for the router's reply.
    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Op) -> Result<T> {
        let answer = self.send(make).await?;
        answer.await.map_err(|_| shutting_down())
    }

    /// Sends an operation; the receiver takes the router's reply.
    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Op,
    ) -> Result<oneshot::Receiver<T>> {
        let (reply, answer) = oneshot::channel();
        self.ops
            .send(make(reply))
            .await
            .map_err(|_| shutting_down())?;
        Ok(answer)
    }

    /// What awaits the commit of records the router just queued.
    fn pending(&self, commit: oneshot::Receiver<Result<()>>) -> PendingCommit {
        PendingCommit {
            commit,
            deadline: tokio::time::Instant::now() + self.config.commit_hold,
        }
    }

    /// Turns an interaction into a work item; idempotent on its interaction
    /// id, also across restarts (the store is asked first). Answers only once
    /// the work item is durably stored.
    pub async fn submit(&self, submission: Submission) -> Result<Submitted> {
        // A draining server takes no new work; the bridge, told to go away,
        // submits elsewhere or later.
        if *self.stopping.borrow() {
            return Err(Error::Unavailable(
                "the server is shutting down; submit elsewhere or later".into(),
            ));
        }
        // Refuse at once while the store cannot take writes: nothing is
        // acknowledged that is not stored, and the bridge retries the same
        // interaction id later (a submission is idempotent).
        if self.store_degraded() {
            return Err(Error::Unavailable(
                "the store cannot take writes now; retry in a few seconds".into(),
            ));
        }
        if let Some(stored) = self.lookups.find(submission.interaction_id.clone()).await? {
            let item = stored.item.id;
            return self
                .call(|reply| Op::Existing {
                    item,
                    stored,
                    reply,
                })
                .await;
        }
        let (done, commit) = oneshot::channel();
        let answer = self
            .send(|reply| Op::Submit {
                submission,
                reply,
                done,
            })
            .await?;
        // The router replies as it queues the records: waiting for the
        // commit first wakes this task once, not twice, and the reply is
        // almost always there by then (a refused submission's `done` is
        // dropped at once).
        let stored = self.pending(commit).committed().await;
        let submitted = answer.await.map_err(|_| shutting_down())??;
        stored?;
        submitted.into_result()
    }

    /// Applies a report from the bridge; its answer is due once the
    /// returned commit completes. A session sends its next report without
    /// waiting for that, so that its reports share group commits.
    pub async fn report(&self, report: BridgeReport) -> Result<PendingCommit> {
        let commit = self.call(|reply| Op::Report { report, reply }).await??;
        Ok(self.pending(commit))
    }

    /// Ends an interaction by the bridge's id: an abandon while it waits or
    /// is offered, the end of the conversation once connected.
    pub async fn end_interaction(
        &self,
        interaction: crate::domain::InteractionId,
    ) -> Result<crate::domain::WorkItemId> {
        let (item, commit) = self
            .call(|reply| Op::EndInteraction { interaction, reply })
            .await??;
        self.pending(commit).committed().await?;
        Ok(item)
    }

    /// How long a new item would wait in a queue, or at an entry point.
    pub async fn estimate_wait(
        &self,
        target: WaitTarget,
        channel: Channel,
        language: Option<String>,
        skills: Vec<SkillRequirement>,
    ) -> Result<(QueueId, WaitEstimate)> {
        self.call(|reply| Op::EstimateWait {
            target,
            channel,
            language,
            skills,
            reply,
        })
        .await?
    }

    /// Every queue's and agent's real-time figures, current as of now.
    pub async fn stats(&self) -> Result<StatsFrame> {
        self.call(|reply| Op::Stats { reply }).await
    }

    /// Subscribes to changed figures, then takes a snapshot: frames whose
    /// `seq` is above the snapshot's follow it with nothing missed in between.
    pub async fn watch_stats(&self) -> Result<(StatsFrame, broadcast::Receiver<Arc<StatsFrame>>)> {
        let updates = self.stats.subscribe();
        let snapshot = self.stats().await?;
        Ok((snapshot, updates))
    }

    /// Every work item not yet finished, for a bridge resynchronising.
    pub async fn open_interactions(&self) -> Result<Vec<OpenInteraction>> {
        self.call(|reply| Op::OpenInteractions { reply }).await
    }

    /// Opens a bridge session; instructions arrive on the returned receiver,
    /// starting with deliveries the bridge has not yet connected.
    pub async fn open_bridge(
        &self,
        bridge_id: String,
    ) -> Result<(u64, mpsc::UnboundedReceiver<BridgeNotice>)> {
        self.call(|reply| Op::OpenBridge { bridge_id, reply }).await
    }

    /// Closes a bridge session.
    pub async fn close_bridge(&self, session: u64) {
        // Shutdown is the only failure, and then there is nothing to close.
        let _ = self.call(|reply| Op::CloseBridge { session, reply }).await;
    }

    /// Signs an agent in and opens their session; a previous session of the
    /// same agent is told to go away and closed (the new one takes over).
    pub async fn sign_in(
        &self,
        agent: AgentId,
        ready: bool,
    ) -> Result<(u64, mpsc::UnboundedReceiver<AgentNotice>)> {
        self.call(|reply| Op::SignIn {
            agent,
            ready,
            reply,
        })
        .await?
    }

    /// Applies an agent's command, if `session` is still the agent's
    /// session; its answer is due once the returned commit completes. The
    /// session handles its next message meanwhile.
    pub async fn agent_command(&self, session: u64, command: Command) -> Result<PendingCommit> {
        let commit = self
            .call(|reply| Op::AgentCommand {
                session,
                command,
                reply,
            })
            .await??;
        Ok(self.pending(commit))
    }

    /// The agent's session ended (stream dropped or heartbeat lost): signs
    /// the agent out unless another session has taken over.
    pub async fn session_ended(&self, agent: AgentId, session: u64) {
        // Shutdown is the only failure, and then there is nothing to sign out.
        let _ = self
            .call(|reply| Op::SessionEnded {
                agent,
                session,
                reply,
            })
            .await;
    }

    /// Applies many presence changes; returns how many applied and the unknown agents.
    pub async fn update_presence(
        &self,
        updates: Vec<(AgentId, Presence)>,
    ) -> Result<(u32, Vec<AgentId>)> {
        self.call(|reply| Op::Presence { updates, reply }).await
    }

    /// Applies a configuration change (upsert or remove a queue or agent) or a
    /// supervisor action (force a state, move, reprioritise, cancel, assign).
    pub async fn apply(&self, command: Command) -> Result<()> {
        self.call(|reply| Op::Configure { command, reply }).await?
    }

    /// Creates, replaces or (with `None`) removes an entry point's mapping.
    pub async fn map_entry_point(
        &self,
        address: crate::domain::EntryPointAddress,
        entry: Option<EntryPoint>,
    ) -> Result<()> {
        self.call(|reply| Op::EntryPoint {
            address,
            entry,
            reply,
        })
        .await
    }
}

/// Records the router has queued for the store, and how long their
/// request may wait for them.
pub struct PendingCommit {
    commit: oneshot::Receiver<Result<()>>,
    /// When the request answers UNAVAILABLE if the records are not yet
    /// committed: `commit_hold` after the request was handed to the
    /// router. The records stay queued and are still written.
    deadline: tokio::time::Instant,
}

impl PendingCommit {
    /// Completes once the records are committed, or fails at the deadline.
    pub async fn committed(self) -> Result<()> {
        match tokio::time::timeout_at(self.deadline, self.commit).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(shutting_down()),
            Err(_) => Err(Error::Unavailable(
                "the record is not stored yet; retry the same request later".into(),
            )),
        }
    }
}

/// The error of a request the router or the writer is gone before answering.
fn shutting_down() -> Error {
    Error::Unavailable("the server is shutting down".into())
}

/// Where a wait estimate is asked for.
#[derive(Debug, Clone)]
pub enum WaitTarget {
    /// The queue behind an entry point.
    EntryPoint(crate::domain::EntryPointAddress),
    /// A queue by name.
    Queue(QueueId),
}
