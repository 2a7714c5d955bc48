//! What the router tells the bridge and the agents, in domain terms; the
//! gRPC adapters turn these into `BridgeInstruction` and `AgentEvent`.

use crate::domain::{
    AgentId, Channel, InteractionId, QueueId, RoutingState, Timestamp, WorkItemId,
};
use crate::engine::OfferEndReason;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How the bridge is to end an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectKind {
    /// Play or show a message, then disconnect.
    Message,
    /// Send the consumer to voicemail.
    Voicemail,
    /// Offer the consumer a callback.
    Callback,
    /// A supervisor cancelled the item.
    Cancelled,
}

/// An instruction for the bridge. Those given while no bridge session is
/// open are kept in the store as JSON until one is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "instruction", rename_all = "snake_case")]
pub enum BridgeNotice {
    /// Connect the consumer to the agent who accepted.
    Deliver {
        /// The work item.
        item: WorkItemId,
        /// The bridge's interaction id.
        interaction: InteractionId,
        /// The agent.
        agent: AgentId,
        /// The agent's UC address.
        address: String,
    },
    /// A waiting item's place in line and estimated wait.
    Position {
        /// The work item.
        item: WorkItemId,
        /// 1-based place in line.
        position: u32,
        /// Estimated wait from now, if known.
        estimated_wait: Option<Duration>,
    },
    /// The item moved to another queue.
    Overflow {
        /// The work item.
        item: WorkItemId,
        /// The queue it left.
        from: QueueId,
        /// The queue it joined.
        to: QueueId,
        /// Why, e.g. `max_wait`.
        reason: String,
    },
    /// End the interaction.
    Disconnect {
        /// The work item.
        item: WorkItemId,
        /// What to do with the consumer.
        kind: DisconnectKind,
        /// The message to play or show.
        message: String,
        /// Why, e.g. `max_wait`.
        reason: String,
    },
    /// The server is shutting down.
    GoingAway,
}

impl BridgeNotice {
    /// The work item an instruction is about; none for `GoingAway`.
    pub fn item(&self) -> Option<WorkItemId> {
        match self {
            BridgeNotice::Deliver { item, .. }
            | BridgeNotice::Position { item, .. }
            | BridgeNotice::Overflow { item, .. }
            | BridgeNotice::Disconnect { item, .. } => Some(*item),
            BridgeNotice::GoingAway => None,
        }
    }
}

/// A work item offered to an agent, as its client is told of it.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferNotice {
    /// The work item.
    pub item: WorkItemId,
    /// The bridge's interaction id.
    pub interaction: InteractionId,
    /// Its channel.
    pub channel: Channel,
    /// The consumer's address.
    pub from_address: String,
    /// The consumer's display name.
    pub display_name: String,
    /// Context from the bridge.
    pub attributes: BTreeMap<String, String>,
    /// The consumer's language.
    pub language: Option<String>,
    /// The queue it comes from.
    pub queue: QueueId,
    /// The wait so far.
    pub waited: Duration,
    /// When the offer times out.
    pub expires_at: Timestamp,
}

/// An event for an agent's client.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentNotice {
    /// A work item is offered. Boxed, so that a notice stays small: every
    /// session's channel of notices sets aside room for 32 of them up front.
    Offer(Box<OfferNotice>),
    /// An offer ended without being accepted.
    OfferEnded {
        /// The work item.
        item: WorkItemId,
        /// Why.
        reason: OfferEndReason,
    },
    /// The agent's routing state changed.
    State {
        /// The new state.
        state: RoutingState,
        /// Since when.
        since: Timestamp,
    },
    /// A connected item ended; wrap-up follows for `wrap_up`.
    ItemEnded {
        /// The work item.
        item: WorkItemId,
        /// Wrap-up length (zero for none).
        wrap_up: Duration,
    },
    /// Another session took over, or the server is shutting down.
    GoingAway {
        /// Why.
        reason: &'static str,
    },
}

/// A work item not yet finished, as a reconnecting bridge needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenInteraction {
    /// The work item.
    pub item: WorkItemId,
    /// The bridge's interaction id.
    pub interaction: InteractionId,
    /// Its queue.
    pub queue: QueueId,
    /// `waiting`, `offered`, `answered`, `connected` or `wrap_up`.
    pub state: &'static str,
    /// The agent, when answered or connected.
    pub agent: Option<AgentId>,
    /// First arrival.
    pub arrived_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::AgentNotice;

    /// Every connected agent's channel of notices sets aside room for 32 of
    /// them, so a notice's size counts in the server's memory per session.
    #[test]
    fn an_agent_notice_stays_small() {
        assert!(
            std::mem::size_of::<AgentNotice>() <= 64,
            "AgentNotice is {} bytes; box its large variants",
            std::mem::size_of::<AgentNotice>()
        );
    }
}
