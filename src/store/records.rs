//! What the live path writes as routing happens: work items, their lifecycle
//! events, and agents' routing-state changes. The writer commits them in
//! batches (group commit); recovery and reports read them back.

use crate::domain::{
    AgentId, Channel, EntryPointAddress, InteractionId, QueueId, SkillRequirement, Timestamp,
    WorkItemId,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A work item as created: everything needed to route it again after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItemRecord {
    /// Switchboard's id.
    pub id: WorkItemId,
    /// The bridge's id for the interaction; with `segment`, unique.
    pub interaction_id: InteractionId,
    /// 0 for the first routing of an interaction, then 1, 2, … for each transfer.
    pub segment: u32,
    /// Voice, chat or video.
    pub channel: Channel,
    /// The consumer's address.
    pub from_address: String,
    /// The address the consumer reached.
    pub to_address: String,
    /// The consumer's display name.
    pub display_name: String,
    /// The entry point it arrived at, if any.
    pub entry_point: Option<EntryPointAddress>,
    /// The consumer's language tag.
    pub language: Option<String>,
    /// Context for the agent, e.g. `page_url`.
    pub attributes: BTreeMap<String, String>,
    /// Skills required on top of the queue's steps.
    pub required_skills: Vec<SkillRequirement>,
    /// Priority at creation.
    pub priority: i32,
    /// True for a transfer segment, so reports can include or exclude it.
    pub is_transfer: bool,
    /// The queue it first joined.
    pub queue: QueueId,
    /// The consumer's first arrival; SLA waits are measured from it.
    pub arrived_at: Timestamp,
    /// When it joined its current line; with priority, its place in line.
    pub enqueued_at: Timestamp,
}

/// The lifecycle transitions of a work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Joined a queue's line (also after an overflow or a move).
    Queued,
    /// Offered to an agent.
    Offered,
    /// The agent declined; back in line.
    OfferDeclined,
    /// The offer timed out; back in line.
    OfferTimedOut,
    /// The offer was withdrawn (agent signed out, supervisor); back in line.
    OfferRescinded,
    /// The agent accepted: the item is answered.
    Answered,
    /// The bridge connected the consumer to the agent.
    Connected,
    /// The consumer left before being answered.
    Abandoned,
    /// Moved to another queue by an overflow rule.
    Overflowed,
    /// Refused at arrival (queue full).
    Rejected,
    /// Sent to voicemail, callback or a disconnect message.
    Disposed,
    /// Cancelled by a supervisor.
    Cancelled,
    /// Moved to another queue by a supervisor.
    Moved,
    /// Priority changed by a supervisor.
    Reprioritised,
    /// The conversation ended; the agent is in wrap-up.
    Ended,
    /// Wrap-up finished: the item is complete.
    Completed,
}

impl EventKind {
    /// The snake-case name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::Offered => "offered",
            EventKind::OfferDeclined => "offer_declined",
            EventKind::OfferTimedOut => "offer_timed_out",
            EventKind::OfferRescinded => "offer_rescinded",
            EventKind::Answered => "answered",
            EventKind::Connected => "connected",
            EventKind::Abandoned => "abandoned",
            EventKind::Overflowed => "overflowed",
            EventKind::Rejected => "rejected",
            EventKind::Disposed => "disposed",
            EventKind::Cancelled => "cancelled",
            EventKind::Moved => "moved",
            EventKind::Reprioritised => "reprioritised",
            EventKind::Ended => "ended",
            EventKind::Completed => "completed",
        }
    }

    /// Parses a name written by [`EventKind::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        const ALL: [EventKind; 16] = [
            EventKind::Queued,
            EventKind::Offered,
            EventKind::OfferDeclined,
            EventKind::OfferTimedOut,
            EventKind::OfferRescinded,
            EventKind::Answered,
            EventKind::Connected,
            EventKind::Abandoned,
            EventKind::Overflowed,
            EventKind::Rejected,
            EventKind::Disposed,
            EventKind::Cancelled,
            EventKind::Moved,
            EventKind::Reprioritised,
            EventKind::Ended,
            EventKind::Completed,
        ];
        ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The work item's state after this event, as kept in `work_items.state`;
    /// `None` leaves the state as it was (a reprioritisation).
    pub fn state_after(self) -> Option<&'static str> {
        match self {
            EventKind::Queued
            | EventKind::OfferDeclined
            | EventKind::OfferTimedOut
            | EventKind::OfferRescinded
            | EventKind::Overflowed
            | EventKind::Moved => Some("waiting"),
            EventKind::Offered => Some("offered"),
            EventKind::Answered => Some("answered"),
            EventKind::Connected => Some("connected"),
            EventKind::Ended => Some("wrap_up"),
            EventKind::Abandoned => Some("abandoned"),
            EventKind::Rejected => Some("rejected"),
            EventKind::Disposed => Some("disposed"),
            EventKind::Cancelled => Some("cancelled"),
            EventKind::Completed => Some("completed"),
            EventKind::Reprioritised => None,
        }
    }
}

/// One lifecycle transition of a work item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItemEvent {
    /// The work item.
    pub work_item: WorkItemId,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// The queue the item is in after the event.
    pub queue: QueueId,
    /// The agent concerned (offered, answered, …), if any.
    pub agent: Option<AgentId>,
    /// The new priority, for queued and reprioritised events.
    pub priority: Option<i32>,
    /// Further detail as JSON (a reason, a disposition), `{}` when none.
    pub detail: String,
}

/// One routing-state change of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStateRecord {
    /// The agent.
    pub agent: AgentId,
    /// When the state began.
    pub at: Timestamp,
    /// The state's snake-case name (`ready`, `not_ready`, …).
    pub state: String,
    /// The not-ready reason, if any.
    pub reason: Option<String>,
}

/// One durable record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A new work item.
    Created(WorkItemRecord),
    /// A transition of an existing (or same-batch) work item.
    Event(WorkItemEvent),
    /// An agent's routing-state change.
    AgentState(AgentStateRecord),
    /// An instruction for the bridge given while no bridge session was
    /// open; it replaces any earlier one kept for the same work item.
    Unsent(UnsentInstruction),
    /// A bridge session received the work item's unsent instructions, or
    /// they were given up: none is kept for it any more.
    Sent(WorkItemId),
}

/// An instruction for the bridge (an overflow, a disconnect, …) that no
/// bridge session has received yet, kept so that it survives a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsentInstruction {
    /// The work item it is about.
    pub work_item: WorkItemId,
    /// When it was given.
    pub at: Timestamp,
    /// The instruction as JSON, written and read by the live path.
    pub instruction: String,
}

/// A work item as stored, with its current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWorkItem {
    /// The item as created, with `queue`, `priority` and `enqueued_at` brought up to date.
    pub item: WorkItemRecord,
    /// The current state (`waiting`, `offered`, `answered`, `connected`, `wrap_up`, or a final one).
    pub state: String,
    /// The agent it is offered or connected to.
    pub agent: Option<AgentId>,
    /// When it was answered.
    pub answered_at: Option<Timestamp>,
    /// When it ended (or was abandoned, rejected, …).
    pub ended_at: Option<Timestamp>,
}
