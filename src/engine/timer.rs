//! The engine's timers: a heap of deadlines with lazy cancellation (a timer
//! names the item epoch or wrap-up it was set for and is ignored if that moved on).

use super::ix::{AgentIx, ItemIx};
use crate::domain::Timestamp;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What to do when a deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// An offer times out.
    Offer {
        /// The item offered.
        item: ItemIx,
        /// The item's epoch when offered.
        epoch: u64,
    },
    /// A waiting item enters its next routing step.
    Step {
        /// The item waiting.
        item: ItemIx,
        /// The item's epoch when it entered the line.
        epoch: u64,
    },
    /// A waiting item reaches its queue's maximum wait.
    MaxWait {
        /// The item waiting.
        item: ItemIx,
        /// The item's epoch when it entered the line.
        epoch: u64,
    },
    /// An agent may be offered an item it declined or missed again.
    Cooldown {
        /// The item.
        item: ItemIx,
        /// The item's admission, so a reused slot is not mistaken for it.
        seq: u64,
    },
    /// An agent's wrap-up ends.
    WrapUp {
        /// The agent.
        agent: AgentIx,
        /// Which wrap-up.
        id: u64,
    },
}

/// Deadlines in order; ties fire in the order they were set.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// (due, order set, timer), earliest first.
    heap: BinaryHeap<Reverse<(Timestamp, u64, Timer)>>,
    /// Counter giving each timer its setting order.
    next: u64,
}

impl Timers {
    /// Sets a timer.
    pub(crate) fn schedule(&mut self, at: Timestamp, timer: Timer) {
        self.next += 1;
        self.heap.push(Reverse((at, self.next, timer)));
    }

    /// The earliest deadline, possibly of a timer that will turn out stale.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.heap.peek().map(|entry| entry.0.0)
    }

    /// Takes the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<Timer> {
        if self.next_deadline()? > now {
            return None;
        }
        self.heap.pop().map(|entry| entry.0.2)
    }
}
