//! The engine's timers: an ordered set of deadlines. Timers of waiting and
//! offered items are cancelled as soon as they no longer apply, so the set
//! holds live timers only; the rest (cooldowns, wrap-ups) name the admission
//! or wrap-up they were set for and are ignored when due if that moved on.

use super::ix::{AgentIx, ItemIx};
use crate::domain::Timestamp;
use std::collections::BTreeSet;

/// What to do when a deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Action {
    /// An offer times out.
    Offer(ItemIx),
    /// A waiting item enters its next routing step.
    Step(ItemIx),
    /// A waiting item reaches its queue's maximum wait.
    MaxWait(ItemIx),
    /// An agent may be offered an item it declined or missed again.
    Cooldown(ItemIx),
    /// An agent's wrap-up ends.
    WrapUp(AgentIx),
}

/// One deadline. Timers sort by due time, then by `seq`, which comes from the
/// engine's one counter, so timers due at the same instant fire in the order
/// their owners last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timer {
    /// When it fires.
    pub(crate) at: Timestamp,
    /// What it was set for: the item's epoch (offer, step, maximum wait),
    /// its admission (cooldown) or the wrap-up's id; a timer whose owner has
    /// moved on since is ignored.
    pub(crate) seq: u64,
    /// What it does.
    pub(crate) action: Action,
}

/// Deadlines in order. A B-tree rather than a heap: it can cancel a timer,
/// and it grows a node at a time instead of doubling one large array.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// Pending timers, earliest first.
    set: BTreeSet<Timer>,
}

impl Timers {
    /// Sets a timer.
    pub(crate) fn schedule(&mut self, timer: Timer) {
        self.set.insert(timer);
    }

    /// Cancels a timer, if it is set.
    pub(crate) fn cancel(&mut self, timer: &Timer) {
        self.set.remove(timer);
    }

    /// The earliest deadline, possibly of a timer that will turn out stale.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.set.first().map(|timer| timer.at)
    }

    /// Takes the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<Timer> {
        if self.next_deadline()? > now {
            return None;
        }
        self.set.pop_first()
    }
}
