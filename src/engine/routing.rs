//! Routing decisions: which agent takes an item that became routable, and
//! which item an agent with free capacity takes. See the module docs for the rules.

use super::Engine;
use super::effect::Effect;
use super::item::ItemState;
use super::ix::{AgentIx, ClassIx, Dense, ItemIx};
use super::queue::ItemKey;
use crate::domain::{Channel, SelectionStrategy, Timestamp};
use std::cmp::Reverse;

/// How an agent's candidate from one queue compares with candidates from
/// other queues: higher score, then earlier first arrival, then earlier submission.
type CrossQueueKey = (Reverse<i64>, Timestamp, u64, ItemIx);

impl Engine {
    /// Routes everything that became routable, until nothing more can be offered.
    pub(super) fn drain(&mut self, now: Timestamp, out: &mut Vec<Effect>) {
        self.strand_unstaffed(now, out);
        loop {
            if let Some(ix) = self.pending_items.pop() {
                self.route_item(ix, now, out);
                continue;
            }
            let Some(a) = self.pending_agents.pop() else {
                self.reindex_agents();
                return;
            };
            self.route_agent(a, now, out);
        }
    }

    /// Offers the agent the best items it can take until its capacity or the work runs out.
    fn route_agent(&mut self, a: AgentIx, now: Timestamp, out: &mut Vec<Effect>) {
        while let Some(ix) = self.best_item_for(a, now) {
            self.offer(ix, a, false, now, out);
        }
    }

    /// Finds an agent for a waiting item by its queue's strategy; that agent
    /// takes its own best candidate (the item, unless an item ahead of it by
    /// the cross-queue rule also fits), repeating until the item is offered or
    /// no free agent fits it.
    fn route_item(&mut self, ix: ItemIx, now: Timestamp, out: &mut Vec<Effect>) {
        loop {
            let Some(item) = self.items.get(ix) else {
                return;
            };
            let ItemState::Waiting { class } = item.state else {
                return;
            };
            self.reindex_agents();
            let Some(a) = self.select_agent(ix, class, now) else {
                return;
            };
            // The agent fits this item, so it has at least one candidate.
            let Some(chosen) = self.best_item_for(a, now) else {
                return;
            };
            self.offer(chosen, a, false, now, out);
            if chosen == ix {
                return;
            }
        }
    }

    /// The free agent a waiting item's queue strategy picks, if any fits.
    fn select_agent(&self, ix: ItemIx, class: ClassIx, now: Timestamp) -> Option<AgentIx> {
        let item = &self.items[ix];
        let slot = &self.queues[item.queue.get()];
        let strategy = slot.config.as_ref()?.strategy;
        let requirements = &slot.summary(class).requirements;
        let mut best: Option<(i64, AgentIx)> = None;
        for (_, a) in &slot.free[item.channel.index()] {
            let agent = &self.agents[a.get()];
            if !agent.meets(requirements) || item.cooling(*a, now) {
                continue;
            }
            // Lower is better; ties keep the earlier (longer idle) agent.
            let key = match strategy {
                SelectionStrategy::LongestIdle => return Some(*a),
                SelectionStrategy::MostSkilled => -i64::from(agent.proficiency(requirements)),
                SelectionStrategy::LeastOccupied => agent.busy.last_hour(now),
                SelectionStrategy::RoundRobin => {
                    let wraps = slot.round_robin.is_some_and(|last| *a <= last);
                    i64::from(wraps) << 32 | a.get() as i64
                }
            };
            if best.is_none_or(|(best_key, _)| key < best_key) {
                best = Some((key, *a));
            }
        }
        best.map(|(_, a)| a)
    }

    /// The item a routable agent with free capacity should be offered next:
    /// per queue, the first item in line it fits; across queues, the cross-queue rule.
    fn best_item_for(&self, a: AgentIx, now: Timestamp) -> Option<ItemIx> {
        let agent = &self.agents[a.get()];
        if !agent.wants_work() {
            return None;
        }
        let open = Channel::ALL.map(|channel| agent.free_capacity(channel) > 0);
        if !open.contains(&true) {
            return None;
        }
        let mut best: Option<CrossQueueKey> = None;
        for q in &agent.queues {
            let slot = &self.queues[q.get()];
            let mut head: Option<ItemKey> = None;
            for summary in &slot.classes {
                if !open[summary.channel.index()] || !agent.meets(&summary.requirements) {
                    continue;
                }
                if summary.cooling == 0 {
                    if summary
                        .head
                        .is_some_and(|key| head.is_none_or(|found| key < found))
                    {
                        head = summary.head;
                    }
                    continue;
                }
                for key in &self.classes[summary.class].waiting {
                    if head.is_some_and(|found| found <= *key) {
                        break;
                    }
                    if !self.items[key.item].cooling(a, now) {
                        head = Some(*key);
                        break;
                    }
                }
            }
            let Some(head) = head else {
                continue;
            };
            let candidate = (
                Reverse(slot.score(head.priority, head.enqueued_at, now)),
                head.arrived_at,
                head.seq,
                head.item,
            );
            if best.is_none_or(|found| candidate < found) {
                best = Some(candidate);
            }
        }
        best.map(|found| found.3)
    }
}
