//! The operations the router task carries out, each with its reply channel.

use super::WaitTarget;
use super::notices::{AgentNotice, BridgeNotice, OpenInteraction};
use super::stats::StatsFrame;
use crate::domain::{
    AgentId, Channel, EntryPoint, EntryPointAddress, InteractionId, Presence, QueueId,
    SkillRequirement, WorkItemId,
};
use crate::engine::{Command, WaitEstimate};
use crate::error::{Error, Result};
use crate::store::records::StoredWorkItem;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// An interaction as the bridge submits it, already checked field by field.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The bridge's id; the idempotency key.
    pub interaction_id: InteractionId,
    /// Voice, chat or video.
    pub channel: Channel,
    /// The consumer's address.
    pub from_address: String,
    /// The address reached (defaults to the entry point).
    pub to_address: String,
    /// The consumer's display name.
    pub display_name: String,
    /// The entry point, if given.
    pub entry_point: Option<EntryPointAddress>,
    /// An explicit queue, overriding the entry point's.
    pub queue: Option<QueueId>,
    /// The consumer's language tag.
    pub language: Option<String>,
    /// Context for the agent.
    pub attributes: BTreeMap<String, String>,
    /// Relative urgency.
    pub priority: i32,
    /// Skills required on top of the queue's steps.
    pub required_skills: Vec<SkillRequirement>,
}

/// The answer to a submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// The work item.
    pub item: WorkItemId,
    /// The queue it waits in (after any immediate overflow).
    pub queue: QueueId,
    /// 1-based place in line; 0 once offered or no longer waiting.
    pub position: u32,
    /// Estimated wait from now, if known.
    pub estimated_wait: Option<Duration>,
    /// False when the interaction had been submitted before.
    pub created: bool,
    /// Set when the queue refused the item (full): the reason.
    pub rejected: Option<String>,
}

impl Submitted {
    /// The answer, or `ResourceExhausted` when the queue refused the item.
    pub fn into_result(self) -> Result<Submitted> {
        match &self.rejected {
            Some(reason) => Err(Error::ResourceExhausted(reason.clone())),
            None => Ok(self),
        }
    }
}

/// A lifecycle report from the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeReport {
    /// The consumer is connected to the agent the item was delivered to.
    Connected(WorkItemId),
    /// The consumer hung up.
    HungUp(WorkItemId),
    /// The conversation ended.
    Ended(WorkItemId),
    /// The agent transfers the interaction to a queue.
    Transfer {
        /// The item being transferred.
        item: WorkItemId,
        /// The queue the new segment joins.
        queue: QueueId,
    },
}

/// A receiver that completes once records are committed.
pub type Commit = oneshot::Receiver<Result<()>>;

/// One operation for the router.
pub enum Op {
    /// A new submission. The router replies at once and tells `done` once
    /// its records are committed.
    Submit {
        submission: Submission,
        reply: oneshot::Sender<Result<Submitted>>,
        done: oneshot::Sender<Result<()>>,
    },
    /// A submission the store already holds: answer with its current figures.
    Existing {
        item: WorkItemId,
        stored: StoredWorkItem,
        reply: oneshot::Sender<Submitted>,
    },
    /// A bridge lifecycle report.
    Report {
        report: BridgeReport,
        reply: oneshot::Sender<Result<Commit>>,
    },
    /// End an interaction by the bridge's id.
    EndInteraction {
        interaction: InteractionId,
        reply: oneshot::Sender<Result<(WorkItemId, Commit)>>,
    },
    /// Estimate a new item's wait.
    EstimateWait {
        target: WaitTarget,
        channel: Channel,
        language: Option<String>,
        skills: Vec<SkillRequirement>,
        reply: oneshot::Sender<Result<(QueueId, WaitEstimate)>>,
    },
    /// Every real-time statistic, current as of now.
    Stats { reply: oneshot::Sender<StatsFrame> },
    /// List open interactions.
    OpenInteractions {
        reply: oneshot::Sender<Vec<OpenInteraction>>,
    },
    /// Open a bridge session.
    OpenBridge {
        bridge_id: String,
        reply: oneshot::Sender<(u64, mpsc::UnboundedReceiver<BridgeNotice>)>,
    },
    /// Close a bridge session.
    CloseBridge {
        session: u64,
        reply: oneshot::Sender<()>,
    },
    /// Sign an agent in with a new session.
    SignIn {
        agent: AgentId,
        ready: bool,
        reply: oneshot::Sender<Result<(u64, mpsc::UnboundedReceiver<AgentNotice>)>>,
    },
    /// An agent's command on their session.
    AgentCommand {
        session: u64,
        command: Command,
        reply: oneshot::Sender<Result<Commit>>,
    },
    /// An agent's session ended.
    SessionEnded {
        agent: AgentId,
        session: u64,
        reply: oneshot::Sender<()>,
    },
    /// Bulk presence.
    Presence {
        updates: Vec<(AgentId, Presence)>,
        reply: oneshot::Sender<(u32, Vec<AgentId>)>,
    },
    /// A configuration change.
    Configure {
        command: Command,
        reply: oneshot::Sender<Result<()>>,
    },
    /// An entry point's mapping changed.
    EntryPoint {
        address: EntryPointAddress,
        entry: Option<EntryPoint>,
        reply: oneshot::Sender<()>,
    },
}
