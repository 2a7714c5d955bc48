//! Commands: everything that can change routing state. The shell turns gRPC
//! requests, presence updates and bridge events into these.

use crate::domain::{
    Agent, AgentId, Channel, InteractionId, Presence, Queue, QueueId, RoutingState,
    SkillRequirement, Timestamp, WorkItemId,
};

/// A new work item as the bridge (or recovery) hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkItem {
    /// Switchboard's id for the item; must be new.
    pub id: WorkItemId,
    /// The bridge's id of the interaction.
    pub interaction: InteractionId,
    /// The medium, which selects agent capacity and SL threshold.
    pub channel: Channel,
    /// The queue to join.
    pub queue: QueueId,
    /// The consumer's language, matched against `lang:<language>` by steps that ask.
    pub language: Option<String>,
    /// Base priority; higher goes first.
    pub priority: i32,
    /// Skills required in every routing step on top of the step's own.
    pub skills: Vec<SkillRequirement>,
    /// First arrival (kept across overflow and moves), for SLA waits.
    pub arrived_at: Timestamp,
    /// When it joined the queue; taken from the command, not the clock, so
    /// recovery restores the original order and step timing.
    pub enqueued_at: Timestamp,
    /// Whether this is a transfer segment (reports may exclude those).
    pub transfer: bool,
}

/// A change to routing state, applied with [`super::Engine::apply`].
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Creates or replaces a queue; waiting items keep their place.
    UpsertQueue(Queue),
    /// Removes a queue that has no waiting or offered items.
    RemoveQueue(QueueId),
    /// Creates or replaces an agent; routing state and work in progress are kept.
    UpsertAgent(Agent),
    /// Removes an agent that is connected to nothing; offers go back in line.
    RemoveAgent(AgentId),
    /// A new work item joins a queue.
    Submit(NewWorkItem),
    /// Recovery puts back an item that was waiting before a restart: into
    /// its line with its original times, past the queue's limits, which
    /// admitted it when it arrived.
    Requeue(NewWorkItem),
    /// Recovery puts back an item accepted before a restart: connected to
    /// its agent (signed out by the restart) until the bridge ends it.
    Restore {
        /// The item, with its original times.
        item: NewWorkItem,
        /// The agent who accepted it.
        agent: AgentId,
        /// When the agent accepted, for handle time.
        since: Timestamp,
    },
    /// The consumer hung up while queued or offered.
    Abandon(WorkItemId),
    /// The agent accepted the item offered to them.
    Accept {
        /// The item offered.
        item: WorkItemId,
        /// The agent accepting.
        agent: AgentId,
    },
    /// The agent declined the item offered to them.
    Decline {
        /// The item offered.
        item: WorkItemId,
        /// The agent declining.
        agent: AgentId,
    },
    /// The bridge ended a connected item; the agent wraps up.
    End(WorkItemId),
    /// The agent finished after-contact work early.
    FinishWrapUp(AgentId),
    /// A formal agent signs in, ready or not ready (reason `signed_in`).
    SignIn {
        /// The agent.
        agent: AgentId,
        /// Start ready rather than not ready.
        ready: bool,
    },
    /// The agent signs out; offers go back in line, connected items stay until ended.
    SignOut(AgentId),
    /// The agent is ready for work (also clears not responding).
    SetReady(AgentId),
    /// The agent takes no new work, for a reason.
    SetNotReady {
        /// The agent.
        agent: AgentId,
        /// The reason code, e.g. `lunch`.
        reason: String,
    },
    /// The UC presence feed reports an agent's presence.
    SetPresence {
        /// The agent.
        agent: AgentId,
        /// The new presence.
        presence: Presence,
    },
    /// A supervisor forces an agent to logged out, not ready, ready or not responding.
    ForceState {
        /// The agent.
        agent: AgentId,
        /// The state wanted.
        state: RoutingState,
    },
    /// A supervisor moves a waiting or offered item to another queue, keeping its arrival.
    Move {
        /// The item.
        item: WorkItemId,
        /// The queue it joins.
        queue: QueueId,
    },
    /// A supervisor changes an item's base priority; it moves in line accordingly.
    Reprioritise {
        /// The item.
        item: WorkItemId,
        /// The new priority.
        priority: i32,
    },
    /// A supervisor cancels a waiting or offered item.
    Cancel(WorkItemId),
    /// A supervisor offers an item to a named agent, bypassing skills and cooldowns.
    Assign {
        /// The item.
        item: WorkItemId,
        /// The agent; must be signed in with free capacity on the item's channel.
        agent: AgentId,
    },
    /// Fires due timers (same as [`super::Engine::tick`]).
    Tick,
}
