//! Read-only views the engine answers queries with.

use crate::domain::{
    AgentId, AgentKind, Channel, InteractionId, Presence, QueueId, RoutingState, Timestamp,
    WorkItemId,
};
use std::time::Duration;

/// Where a work item is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemStatus {
    /// In line, in this routing step (0-based).
    Waiting {
        /// The step index.
        step: usize,
    },
    /// Alerting at an agent.
    Offered {
        /// The agent alerted.
        agent: AgentId,
        /// When the offer times out.
        expires_at: Timestamp,
        /// Whether a supervisor assigned it.
        assigned: bool,
    },
    /// Connected to an agent.
    Connected {
        /// The agent.
        agent: AgentId,
        /// Since when.
        since: Timestamp,
    },
}

/// One open work item, for invariant checks, recovery and statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemView {
    /// Switchboard's id.
    pub id: WorkItemId,
    /// The bridge's id.
    pub interaction: InteractionId,
    /// Its queue.
    pub queue: QueueId,
    /// Its channel.
    pub channel: Channel,
    /// Its consumer's language.
    pub language: Option<String>,
    /// Base priority.
    pub priority: i32,
    /// First arrival.
    pub arrived_at: Timestamp,
    /// When it joined its queue.
    pub enqueued_at: Timestamp,
    /// Whether it is a transfer segment.
    pub transfer: bool,
    /// Waiting, offered or connected.
    pub status: ItemStatus,
}

/// One agent's routing picture.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    /// The agent.
    pub id: AgentId,
    /// Formal or informal.
    pub kind: AgentKind,
    /// The routing state.
    pub state: RoutingState,
    /// The UC presence.
    pub presence: Presence,
    /// Whether a formal agent is signed in.
    pub signed_in: bool,
    /// Items alerting at the agent.
    pub offers: Vec<WorkItemId>,
    /// Items the agent is connected to.
    pub connected: Vec<WorkItemId>,
    /// Wrap-ups in progress.
    pub wrap_ups: usize,
    /// Capacity in use per channel, indexed by [`Channel::index`].
    pub load: [u32; 3],
    /// Consecutive missed offers.
    pub missed_offers: u32,
}

/// A waiting item's place and expected wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemWait {
    /// 1-based place in line; 0 once offered or connected.
    pub position: u32,
    /// Expected remaining wait; `None` when no signed-in agent could take it.
    pub estimated_wait: Option<Duration>,
}

/// A queue's real-time picture on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// The queue.
    pub queue: QueueId,
    /// The channel described.
    pub channel: Channel,
    /// Items waiting (not offered).
    pub waiting: u32,
    /// Longest wait so far among waiting items, from first arrival.
    pub oldest_wait: Option<Duration>,
    /// Expected wait for a new item with no extra skills.
    pub estimated_wait: Option<Duration>,
    /// Members signed in with capacity on the channel who meet some step (language aside).
    pub agents_signed_in: u32,
    /// Members who could take an item of the channel right now.
    pub agents_available: u32,
}

/// The answer to "is anyone there, and how long is the wait?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitEstimate {
    /// Signed-in members of the queue with capacity on the channel who meet some step.
    pub agents_signed_in: u32,
    /// Those who could take the item right now (first step).
    pub agents_available: u32,
    /// The 1-based place a new priority-0 item would take.
    pub position: u32,
    /// Expected wait; `None` when nobody signed in could take it.
    pub estimated_wait: Option<Duration>,
}

/// The members of a queue signed in with capacity on a channel who meet some
/// step, counted by routing state, for supervisors' wallboards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStaff {
    /// All of them.
    pub signed_in: u32,
    /// Waiting for work.
    pub ready: u32,
    /// An offer is alerting.
    pub reserved: u32,
    /// On work.
    pub busy: u32,
    /// In after-contact work.
    pub wrap_up: u32,
    /// Not ready, by the reason they gave; agents who stopped answering
    /// offers are counted under `not_responding`.
    pub not_ready: std::collections::BTreeMap<String, u32>,
}
