//! A work item inside the engine.

use super::ix::{AgentIx, ClassIx, QueueIx, SkillIx};
use super::queue::ItemKey;
use crate::domain::{Channel, InteractionId, SkillLevel, Timestamp, WorkItemId};
use std::cmp::Reverse;

/// Where an item is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemState {
    /// Between queues: being admitted, overflowed or disposed.
    Admitting,
    /// In line, in a requirement class.
    Waiting {
        /// The class the item sits in.
        class: ClassIx,
    },
    /// Reserved for one agent until accepted, declined or timed out.
    Offered {
        /// The agent alerted.
        agent: AgentIx,
        /// When the offer times out.
        expires_at: Timestamp,
        /// Whether a supervisor assigned it (bypassing skills).
        assigned: bool,
    },
    /// Connected to an agent until the bridge ends it.
    Connected {
        /// The agent handling it.
        agent: AgentIx,
        /// When the agent accepted, for handle time.
        since: Timestamp,
    },
}

/// One work item.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// Switchboard's id.
    pub(crate) id: WorkItemId,
    /// The bridge's id of the interaction.
    pub(crate) interaction: InteractionId,
    /// The medium, which picks the capacity it uses.
    pub(crate) channel: Channel,
    /// The queue it waits in (or was offered from).
    pub(crate) queue: QueueIx,
    /// The consumer's language, if known.
    pub(crate) language: Option<String>,
    /// The interned `lang:<language>` skill.
    pub(crate) language_skill: Option<SkillIx>,
    /// Base priority; higher goes first.
    pub(crate) priority: i32,
    /// Skills required in every step, sorted.
    pub(crate) extra: Vec<(SkillIx, SkillLevel)>,
    /// First arrival, kept across overflow and moves, for SLA.
    pub(crate) arrived_at: Timestamp,
    /// When it joined its current queue; orders the line and times the steps.
    pub(crate) enqueued_at: Timestamp,
    /// Unique per admission: breaks ties in line and identifies the item's timers.
    pub(crate) seq: u64,
    /// Bumped each time the item enters or leaves the line, so stale timers are ignored.
    pub(crate) epoch: u64,
    /// The line rank computed when it last entered the line.
    pub(crate) rank: i64,
    /// Whether this is a transfer segment.
    pub(crate) transfer: bool,
    /// Whether it was ever offered (for abandon statistics).
    pub(crate) was_offered: bool,
    /// Agents who declined or missed it, and until when they are skipped.
    pub(crate) cooldowns: Vec<(AgentIx, Timestamp)>,
    /// Where it is in its life.
    pub(crate) state: ItemState,
    /// Its current routing step (meaningful while waiting).
    pub(crate) step: usize,
}

impl Item {
    /// The item's place in line.
    pub(crate) fn key(&self, item: super::ix::ItemIx) -> ItemKey {
        ItemKey {
            rank: Reverse(self.rank),
            enqueued_at: self.enqueued_at,
            seq: self.seq,
            item,
            priority: self.priority,
            arrived_at: self.arrived_at,
        }
    }

    /// Whether the agent declined or missed this item too recently.
    pub(crate) fn cooling(&self, agent: AgentIx, now: Timestamp) -> bool {
        for (cooled, until) in &self.cooldowns {
            if *cooled == agent && *until > now {
                return true;
            }
        }
        false
    }
}
