//! Effects: what happened, in order. Metrics, the store and the bridge and
//! agent sessions are pure views of this stream.

use crate::domain::{AgentId, Channel, Disposition, QueueId, RoutingState, Timestamp, WorkItemId};
use std::time::Duration;

/// Why an offer ended without being accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferEndReason {
    /// The agent declined.
    Declined,
    /// Nobody answered within the queue's offer timeout.
    TimedOut,
    /// Switchboard withdrew it (consumer hung up, agent signed out, supervisor action).
    Rescinded,
}

/// Which queue limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitReason {
    /// `max_waiting` items were already waiting.
    Full,
    /// The item waited `max_wait_secs`.
    MaxWait,
    /// No signed-in agent could ever take the item.
    NoAgents,
    /// An overflow chain ended at a missing queue or went too deep.
    OverflowFailed,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// An item joined a queue's line.
    Queued {
        /// The item.
        item: WorkItemId,
        /// The queue.
        queue: QueueId,
        /// Its channel.
        channel: Channel,
        /// Its 1-based place in line.
        position: u32,
    },
    /// An item is alerting at an agent.
    Offered {
        /// The item.
        item: WorkItemId,
        /// The agent alerted.
        agent: AgentId,
        /// The queue it came from.
        queue: QueueId,
        /// Its channel.
        channel: Channel,
        /// When the offer times out.
        expires_at: Timestamp,
        /// True when a supervisor assigned it, bypassing skills.
        assigned: bool,
    },
    /// An offer ended without an answer; the item is back in its place (or gone, when rescinded by its end).
    OfferEnded {
        /// The item.
        item: WorkItemId,
        /// The agent who was alerted.
        agent: AgentId,
        /// Why.
        reason: OfferEndReason,
    },
    /// The agent accepted: the consumer is connected.
    Answered {
        /// The item.
        item: WorkItemId,
        /// The agent.
        agent: AgentId,
        /// The queue it was answered in (where SLA counts it).
        queue: QueueId,
        /// Its channel.
        channel: Channel,
        /// Wait from first arrival.
        waited: Duration,
        /// Whether it is a transfer segment.
        transfer: bool,
    },
    /// The consumer left before being connected.
    Abandoned {
        /// The item.
        item: WorkItemId,
        /// The queue it left.
        queue: QueueId,
        /// Its channel.
        channel: Channel,
        /// Wait from first arrival.
        waited: Duration,
        /// Whether it had ever been offered.
        was_offered: bool,
        /// Whether it is a transfer segment.
        transfer: bool,
    },
    /// An item left one queue for another, keeping its arrival time.
    Overflowed {
        /// The item.
        item: WorkItemId,
        /// The queue it left.
        from: QueueId,
        /// The queue it joins.
        to: QueueId,
        /// Its channel.
        channel: Channel,
        /// Which limit sent it.
        reason: LimitReason,
    },
    /// An arrival was refused.
    Rejected {
        /// The item.
        item: WorkItemId,
        /// The queue that refused it.
        queue: QueueId,
        /// Its channel.
        channel: Channel,
        /// Which limit refused it.
        reason: LimitReason,
    },
    /// An item left routing for voicemail, a callback or a disconnect.
    Disposed {
        /// The item.
        item: WorkItemId,
        /// The queue it left.
        queue: QueueId,
        /// Its channel.
        channel: Channel,
        /// What the bridge must do with the consumer.
        disposition: Disposition,
        /// Which limit caused it.
        reason: LimitReason,
        /// Wait from first arrival.
        waited: Duration,
    },
    /// The bridge ended a connected item.
    Completed {
        /// The item.
        item: WorkItemId,
        /// The agent who handled it.
        agent: AgentId,
        /// Its queue.
        queue: QueueId,
        /// Its channel.
        channel: Channel,
        /// From accept to end (wrap-up not included).
        handle_time: Duration,
        /// When the wrap-up this starts ends, if the queue has one.
        wrap_up_until: Option<Timestamp>,
    },
    /// An agent's wrap-up ended, freeing its capacity.
    WrapUpEnded {
        /// The item wrapped up, now complete.
        item: WorkItemId,
        /// The agent.
        agent: AgentId,
        /// The queue of the item wrapped up.
        queue: QueueId,
        /// The channel whose capacity it frees.
        channel: Channel,
        /// True when the agent (or sign-out) ended it before its time.
        early: bool,
    },
    /// An agent's routing state changed.
    AgentState {
        /// The agent.
        agent: AgentId,
        /// The new state.
        state: RoutingState,
        /// When.
        at: Timestamp,
    },
    /// A supervisor cancelled an item.
    Cancelled {
        /// The item.
        item: WorkItemId,
        /// The queue it left.
        queue: QueueId,
        /// Its channel.
        channel: Channel,
        /// Wait from first arrival.
        waited: Duration,
    },
    /// A supervisor moved an item; a `Queued` effect follows.
    Moved {
        /// The item.
        item: WorkItemId,
        /// The queue it left.
        from: QueueId,
        /// The queue it joins.
        to: QueueId,
    },
    /// A supervisor changed an item's priority.
    Reprioritised {
        /// The item.
        item: WorkItemId,
        /// Its queue.
        queue: QueueId,
        /// The new base priority.
        priority: i32,
    },
}
