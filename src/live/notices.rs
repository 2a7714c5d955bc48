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

/// An event for an agent's client.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentNotice {
    /// A work item is offered.
    Offer {
        /// The work item.
        item: WorkItemId,
        /// The bridge's interaction id.
        interaction: InteractionId,
        /// Its channel.
        channel: Channel,
        /// The consumer's address.
        from_address: String,
        /// The consumer's display name.
        display_name: String,
        /// Context from the bridge.
        attributes: BTreeMap<String, String>,
        /// The consumer's language.
        language: Option<String>,
        /// The queue it comes from.
        queue: QueueId,
        /// The wait so far.
        waited: Duration,
        /// When the offer times out.
        expires_at: Timestamp,
    },
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
