//! A queue inside the engine: its interned routing steps, its waiting line,
//! its requirement classes and the free agents indexed by channel.

use super::ix::{AgentIx, ClassIx, ItemIx, QueueIx, SkillIx};
use crate::domain::{Channel, Queue, QueueId, SkillLevel, Timestamp};
use std::cmp::Reverse;
use std::collections::BTreeSet;

/// Score units per priority level in the cross-queue comparison.
pub(crate) const SCORE_PER_LEVEL: i64 = 1_000_000;

/// A routing step with interned skills and its end as an offset from enqueue.
#[derive(Debug, Clone)]
pub(crate) struct StepRule {
    /// Skills an agent needs during the step.
    pub(crate) requirements: Vec<(SkillIx, SkillLevel)>,
    /// Whether the agent must also hold `lang:<item language>`.
    pub(crate) match_language: bool,
    /// Milliseconds after enqueue at which the step ends; `None` for ever.
    pub(crate) ends_after_ms: Option<i64>,
}

/// An item's place in its queue's line. Lower sorts first: higher rank, then
/// earlier enqueue, then earlier submission (unique, so the fields after it
/// never decide). It also carries what the cross-queue rule compares, so
/// routing can weigh a class's head without reading the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ItemKey {
    /// The time-invariant priority rank (see [`QueueSlot::rank`]), reversed so higher goes first.
    pub(crate) rank: Reverse<i64>,
    /// When the item joined this queue.
    pub(crate) enqueued_at: Timestamp,
    /// Submission order, to break exact ties deterministically.
    pub(crate) seq: u64,
    /// The item itself.
    pub(crate) item: ItemIx,
    /// The item's base priority, for its cross-queue score.
    pub(crate) priority: i32,
    /// The item's first arrival, the cross-queue tie-break.
    pub(crate) arrived_at: Timestamp,
}

/// Items that need exactly the same skills at the moment: one queue, one
/// channel, one step, one language, one set of extra skills. Routing looks
/// only at the head of each class, instead of scanning the whole line.
#[derive(Debug, Clone)]
pub(crate) struct ClassKey {
    /// The queue the items wait in.
    pub(crate) queue: QueueIx,
    /// The items' channel.
    pub(crate) channel: Channel,
    /// The routing step the items are in.
    pub(crate) step: usize,
    /// The `lang:` skill, when the step matches language and the item has one.
    pub(crate) language: Option<SkillIx>,
    /// The items' extra required skills, sorted.
    pub(crate) extra: Vec<(SkillIx, SkillLevel)>,
}

/// One requirement class and its waiting items in line order.
#[derive(Debug)]
pub(crate) struct Class {
    /// What identifies the class.
    pub(crate) key: ClassKey,
    /// The class's waiting items in line order.
    pub(crate) waiting: BTreeSet<ItemKey>,
}

/// What routing reads of a class, kept inline in its queue's list: finding
/// an agent's next item looks at every class of every queue the agent serves,
/// so that scan reads one short array per queue instead of several scattered
/// structures per class.
#[derive(Debug)]
pub(crate) struct ClassSummary {
    /// The class, which holds the key and the whole line.
    pub(crate) class: ClassIx,
    /// The items' channel.
    pub(crate) channel: Channel,
    /// The merged requirements an agent must meet (sorted, highest level per skill).
    pub(crate) requirements: Box<[(SkillIx, SkillLevel)]>,
    /// The first item in the class's line.
    pub(crate) head: Option<ItemKey>,
    /// How many of the class's items have cooldowns (agents skipped for a
    /// while); while none has, the head is every agent's candidate.
    pub(crate) cooling: usize,
}

/// The parts of a queue's configuration that every routing decision reads,
/// copied out of it so they sit at the front of the slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// The queue's priority, added to each item's in the cross-queue rule.
    pub(crate) priority: i32,
    /// Seconds of waiting that add one priority level, if items age.
    pub(crate) aging_secs: Option<u32>,
    /// The longest an item may wait, if limited.
    pub(crate) max_wait_secs: Option<u32>,
}

/// One queue as the engine sees it. A slot exists for every queue id any
/// agent or queue mentions; only queues with a configuration take items.
/// `repr(C)` keeps the fields routing reads on every decision first, on one
/// cache line; the rest of the slot is rarely needed there.
#[derive(Debug)]
#[repr(C)]
pub(crate) struct QueueSlot {
    /// Requirement classes with waiting items.
    pub(crate) classes: Vec<ClassSummary>,
    /// What routing reads of the configuration, `None` while there is none.
    pub(crate) rules: Option<Rules>,
    /// The steps with interned skills.
    pub(crate) steps: Vec<StepRule>,
    /// The queue's id, for effects.
    pub(crate) id: QueueId,
    /// The configuration, `None` while unknown or after removal.
    pub(crate) config: Option<Queue>,
    /// Agents whose configuration lists this queue.
    pub(crate) members: BTreeSet<AgentIx>,
    /// Per channel, members signed in (present, if informal) with capacity on
    /// it, so the queue notices at once when the last of them leaves.
    pub(crate) staffed: [u32; 3],
    /// Per channel, members that could take an item of that channel now,
    /// keyed by (idle since, agent) so the longest idle comes first.
    pub(crate) free: [BTreeSet<(Timestamp, AgentIx)>; 3],
    /// How many items wait in line (offered ones excepted), for `max_waiting`;
    /// the line itself is the union of the classes' lines.
    pub(crate) waiting: usize,
    /// The agent who took the last item under round robin.
    pub(crate) round_robin: Option<AgentIx>,
    /// Moving average of handle time (talk plus wrap-up) per channel, in ms.
    pub(crate) handle_ms: [Option<f64>; 3],
}

impl QueueSlot {
    /// An unconfigured queue slot.
    pub(crate) fn new(id: QueueId) -> Self {
        Self {
            classes: Vec::new(),
            rules: None,
            steps: Vec::new(),
            id,
            config: None,
            members: BTreeSet::new(),
            staffed: [0; 3],
            free: [BTreeSet::new(), BTreeSet::new(), BTreeSet::new()],
            waiting: 0,
            round_robin: None,
            handle_ms: [None; 3],
        }
    }

    /// The summary of one of the queue's classes.
    pub(crate) fn summary(&self, class: ClassIx) -> &ClassSummary {
        &self.classes[self.summary_at(class)]
    }

    /// The summary of one of the queue's classes, to update.
    pub(crate) fn summary_mut(&mut self, class: ClassIx) -> &mut ClassSummary {
        let at = self.summary_at(class);
        &mut self.classes[at]
    }

    /// Where a class is in the queue's list (a handful of entries).
    fn summary_at(&self, class: ClassIx) -> usize {
        for (at, summary) in self.classes.iter().enumerate() {
            if summary.class == class {
                return at;
            }
        }
        panic!("a class with waiting items is listed in its queue")
    }

    /// The step an item is in after waiting `waited_ms` in this queue.
    pub(crate) fn step_at(&self, waited_ms: i64) -> usize {
        for (i, step) in self.steps.iter().enumerate() {
            match step.ends_after_ms {
                Some(end) if waited_ms >= end => {}
                _ => return i,
            }
        }
        self.steps.len().saturating_sub(1)
    }

    /// When (after enqueue) a step ends, if it does (only the last step
    /// lasts for ever, so the steps themselves are read only for the others).
    pub(crate) fn step_end(&self, step: usize) -> Option<i64> {
        if step + 1 >= self.steps.len() {
            return None;
        }
        self.steps.get(step)?.ends_after_ms
    }

    /// The time-invariant rank that orders the line. Without aging it is the
    /// item's priority. With aging every N seconds waited add one level,
    /// accrued by the millisecond, so priority + waited/N orders the same as
    /// priority·N − enqueued_at, which never changes as time passes: the line
    /// never needs re-sorting.
    pub(crate) fn rank(&self, priority: i32, enqueued_at: Timestamp) -> i64 {
        match self.rules.and_then(|rules| rules.aging_secs) {
            Some(secs) => i64::from(priority) * i64::from(secs) * 1000 - enqueued_at.millis(),
            None => i64::from(priority),
        }
    }

    /// An item's score against items of other queues: (queue priority + item
    /// priority + aging levels accrued) in millionths of a level.
    pub(crate) fn score(&self, priority: i32, enqueued_at: Timestamp, now: Timestamp) -> i64 {
        let Some(rules) = self.rules else {
            return i64::MIN;
        };
        let base = (i64::from(rules.priority) + i64::from(priority)) * SCORE_PER_LEVEL;
        match rules.aging_secs {
            Some(secs) => {
                let waited_ms = (now.millis() - enqueued_at.millis()).max(0);
                base + waited_ms * (SCORE_PER_LEVEL / 1000) / i64::from(secs)
            }
            None => base,
        }
    }
}

/// Merges requirements into one sorted list holding the highest level per skill.
pub(crate) fn merge_requirements(parts: &[&[(SkillIx, SkillLevel)]]) -> Vec<(SkillIx, SkillLevel)> {
    let mut merged: Vec<(SkillIx, SkillLevel)> = Vec::new();
    for part in parts {
        merged.extend_from_slice(part);
    }
    merged.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    merged.dedup_by_key(|requirement| requirement.0);
    merged
}
