//! A work item's life: queue configuration, admission and limits, the line,
//! offers, answers, ends, supervisor actions on items and timers.

use super::effect::{Effect, LimitReason, OfferEndReason};
use super::item::{Item, ItemState};
use super::ix::{AgentIx, ClassIx, Dense, ItemIx, QueueIx, SkillIx};
use super::queue::{Class, ClassKey, ClassSummary, ItemKey, Rules, StepRule, merge_requirements};
use super::timer::{Action, Timer};
use super::{Engine, NewWorkItem};
use crate::domain::{
    Channel, Disposition, Queue, QueueId, SkillName, Timestamp, Validate, WorkItemId,
};
use crate::error::{Error, Result};
use std::collections::BTreeSet;

/// How many overflows one item may go through before it is disconnected.
const MAX_OVERFLOW_HOPS: u32 = 8;

/// The message played when an overflow chain fails.
const OVERFLOW_FAILED_MESSAGE: &str = "no queue can take this interaction now";

/// The message played when an item waited too long and the queue says nothing.
const MAX_WAIT_MESSAGE: &str = "all agents are still busy, please try again later";

/// Weight of the newest handle time in the moving average.
const HANDLE_TIME_WEIGHT: f64 = 0.2;

/// A time `secs` seconds after `at`.
pub(super) fn after_secs(at: Timestamp, secs: u32) -> Timestamp {
    Timestamp::from_millis(at.millis() + i64::from(secs) * 1000)
}

/// The requirements of one step for an item: the step's own, `lang:` when the
/// step matches language, and the item's extra skills.
pub(super) fn step_requirements(
    rule: &StepRule,
    language: Option<SkillIx>,
    extra: &[(SkillIx, u8)],
) -> Vec<(SkillIx, u8)> {
    let mut language_requirement = Vec::new();
    if let Some(skill) = language.filter(|_| rule.match_language) {
        language_requirement.push((skill, 1));
    }
    merge_requirements(&[&rule.requirements, &language_requirement, extra])
}

impl Engine {
    /// Creates or replaces a queue. Waiting items are re-filed under the new
    /// steps and aging rule in their old line order, keeping their enqueue time.
    pub(super) fn upsert_queue(&mut self, queue: Queue, now: Timestamp) -> Result<()> {
        queue.validate()?;
        let q = self.intern_queue(&queue.id);
        let mut keys: Vec<ItemKey> = Vec::new();
        for summary in &self.queues[q.get()].classes {
            keys.extend(self.classes[summary.class].waiting.iter().copied());
        }
        keys.sort_unstable();
        for key in &keys {
            self.dequeue(key.item);
        }
        let mut steps = Vec::with_capacity(queue.steps.len());
        let mut end_ms = 0;
        for step in &queue.steps {
            let mut interned = Vec::with_capacity(step.requirements.len());
            for requirement in &step.requirements {
                interned.push((self.intern_skill(&requirement.skill), requirement.min_level));
            }
            let mut ends_after_ms = None;
            if let Some(secs) = step.duration_secs {
                end_ms += i64::from(secs) * 1000;
                ends_after_ms = Some(end_ms);
            }
            steps.push(StepRule {
                requirements: merge_requirements(&[&interned]),
                match_language: step.match_language,
                ends_after_ms,
            });
        }
        let slot = &mut self.queues[q.get()];
        slot.steps = steps;
        if queue.limits.when_no_agents.is_some() {
            // A rule against waiting for no one applies to those already waiting.
            for channel in Channel::ALL {
                if slot.staffed[channel.index()] == 0 {
                    self.unstaffed.push((q, channel));
                }
            }
        }
        slot.rules = Some(Rules {
            priority: queue.priority,
            aging_secs: queue.priority_aging_secs,
            max_wait_secs: queue.limits.max_wait_secs,
        });
        slot.config = Some(queue);
        for key in &keys {
            self.enqueue(key.item, now);
        }
        Ok(())
    }

    /// Removes a queue with no waiting or offered items; connected items finish normally.
    pub(super) fn remove_queue(&mut self, id: &QueueId) -> Result<()> {
        let q = self.queue_of(id)?;
        for item in self.items.values() {
            if item.queue == q && !matches!(item.state, ItemState::Connected { .. }) {
                return Err(Error::FailedPrecondition(format!(
                    "queue {id} still has waiting or offered items"
                )));
            }
        }
        let slot = &mut self.queues[q.get()];
        slot.config = None;
        slot.rules = None;
        slot.steps.clear();
        Ok(())
    }

    /// Admits a new work item.
    pub(super) fn submit(
        &mut self,
        new: NewWorkItem,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let item = self.new_item(new)?;
        self.admit(item, 0, now, out);
        Ok(())
    }

    /// Puts back an item that was waiting before a restart, straight into
    /// its line: its queue's limits admitted it when it arrived, and at a
    /// restart every agent is signed out, so `when_no_agents` would turn
    /// every waiting caller away. An item whose queue is gone still goes
    /// through admission, which disposes of it.
    pub(super) fn requeue(
        &mut self,
        new: NewWorkItem,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let item = self.new_item(new)?;
        if self.queues[item.queue.get()].config.is_some() {
            self.join_line(item, now, out);
        } else {
            self.admit(item, 0, now, out);
        }
        Ok(())
    }

    /// Puts back an item its agent had accepted before a restart: connected
    /// to the agent, who was signed out by the restart, and holding their
    /// capacity on its channel until the bridge ends it, so that the agent
    /// is not offered more than they can take when they sign in again.
    pub(super) fn restore(
        &mut self,
        new: NewWorkItem,
        agent: &super::AgentId,
        since: Timestamp,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let a = self.agent_of(agent)?;
        let mut item = self.new_item(new)?;
        item.state = ItemState::Connected { agent: a, since };
        item.epoch = self.bump();
        let (id, channel) = (item.id, item.channel);
        let ix = self.items.insert(item);
        self.item_ix.insert(id, ix);
        let slot = &mut self.agents[a.get()];
        slot.connected.push(ix);
        slot.load[channel.index()] += 1;
        self.refresh_agent(a, now, out);
        Ok(())
    }

    /// An engine item for a new work item, checked against the queues, the
    /// items already held and the proficiency scale; not yet in any line.
    fn new_item(&mut self, new: NewWorkItem) -> Result<Item> {
        let q = self.queue_of(&new.queue)?;
        if self.item_ix.contains_key(&new.id) {
            return Err(Error::AlreadyExists {
                what: "work item",
                id: new.id.to_string(),
            });
        }
        for (i, requirement) in new.skills.iter().enumerate() {
            if !(1..=5).contains(&requirement.min_level) {
                return Err(Error::invalid(
                    format!("skills[{i}].min_level"),
                    "proficiency must be between 1 and 5",
                ));
            }
        }
        let mut extra = Vec::with_capacity(new.skills.len());
        for requirement in &new.skills {
            extra.push((self.intern_skill(&requirement.skill), requirement.min_level));
        }
        let mut language_skill = None;
        if let Some(language) = &new.language {
            language_skill = Some(self.intern_skill(&SkillName::new(format!("lang:{language}"))));
        }
        Ok(Item {
            id: new.id,
            interaction: new.interaction,
            channel: new.channel,
            queue: q,
            language: new.language,
            language_skill,
            priority: new.priority,
            extra: merge_requirements(&[&extra]),
            arrived_at: new.arrived_at,
            enqueued_at: new.enqueued_at,
            seq: self.bump(),
            epoch: 0,
            rank: 0,
            transfer: new.transfer,
            was_offered: false,
            cooldowns: Vec::new(),
            state: ItemState::Admitting,
            step: 0,
        })
    }

    /// Puts an item through its queue's limits, then into line.
    fn admit(&mut self, item: Item, hops: u32, now: Timestamp, out: &mut Vec<Effect>) {
        let slot = &self.queues[item.queue.get()];
        let Some(config) = &slot.config else {
            let disposition = Disposition::Disconnect {
                message: OVERFLOW_FAILED_MESSAGE.to_owned(),
            };
            self.dispose(
                item,
                disposition,
                LimitReason::OverflowFailed,
                hops,
                now,
                out,
            );
            return;
        };
        let limits = &config.limits;
        let full = limits
            .max_waiting
            .is_some_and(|max| slot.waiting >= max as usize);
        if full {
            let disposition = limits.when_full.clone().unwrap_or(Disposition::Reject);
            self.dispose(item, disposition, LimitReason::Full, hops, now, out);
            return;
        }
        if let Some(disposition) = &limits.when_no_agents
            && !self.anyone_could_take(&item)
        {
            let chosen = disposition.clone();
            self.dispose(item, chosen, LimitReason::NoAgents, hops, now, out);
            return;
        }
        self.join_line(item, now, out);
    }

    /// Whether some signed-in member of the item's queue with capacity on its
    /// channel meets some step's requirements for it.
    fn anyone_could_take(&self, item: &Item) -> bool {
        let slot = &self.queues[item.queue.get()];
        if slot.staffed[item.channel.index()] == 0 {
            return false;
        }
        let mut steps = Vec::with_capacity(slot.steps.len());
        for rule in &slot.steps {
            steps.push(step_requirements(rule, item.language_skill, &item.extra));
        }
        for a in &slot.members {
            let agent = &self.agents[a.get()];
            if !agent.staffing[item.channel.index()] {
                continue;
            }
            for requirements in &steps {
                if agent.meets(requirements) {
                    return true;
                }
            }
        }
        false
    }

    /// Applies `when_no_agents` to the items waiting on a channel in queues
    /// whose last signed-in member with capacity on it has just left (signed
    /// out, went offline, was removed or reconfigured), or which were just
    /// configured with the rule while nobody is there, so nobody waits for no
    /// one. Queues still staffed are not re-checked for skills: that would
    /// scan their lines on every sign-out; arrivals are checked in full.
    pub(super) fn strand_unstaffed(&mut self, now: Timestamp, out: &mut Vec<Effect>) {
        while let Some((q, channel)) = self.unstaffed.pop() {
            let slot = &self.queues[q.get()];
            if slot.staffed[channel.index()] > 0 {
                continue;
            }
            let Some(queue) = &slot.config else {
                continue;
            };
            let Some(disposition) = queue.limits.when_no_agents.clone() else {
                continue;
            };
            let mut keys = Vec::new();
            for summary in &slot.classes {
                if summary.channel == channel {
                    keys.extend(self.classes[summary.class].waiting.iter().copied());
                }
            }
            keys.sort_unstable();
            for key in keys {
                let item = self.withdraw(key.item, now, out);
                self.dispose(
                    item,
                    disposition.clone(),
                    LimitReason::NoAgents,
                    0,
                    now,
                    out,
                );
            }
        }
    }

    /// Applies a disposition to an item that is out of line.
    fn dispose(
        &mut self,
        mut item: Item,
        disposition: Disposition,
        reason: LimitReason,
        hops: u32,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let from = self.queues[item.queue.get()].id.clone();
        let waited = now.since(item.arrived_at);
        match disposition {
            Disposition::Reject => out.push(Effect::Rejected {
                item: item.id,
                queue: from,
                channel: item.channel,
                reason,
            }),
            Disposition::Overflow { queue: to } => {
                let target = match self.queue_of(&to) {
                    Ok(target) if hops < MAX_OVERFLOW_HOPS => target,
                    _ => {
                        out.push(Effect::Disposed {
                            item: item.id,
                            queue: from,
                            channel: item.channel,
                            disposition: Disposition::Disconnect {
                                message: OVERFLOW_FAILED_MESSAGE.to_owned(),
                            },
                            reason: LimitReason::OverflowFailed,
                            waited,
                        });
                        return;
                    }
                };
                out.push(Effect::Overflowed {
                    item: item.id,
                    from,
                    to,
                    channel: item.channel,
                    reason,
                });
                self.rehome(&mut item, target, now);
                self.admit(item, hops + 1, now, out);
            }
            other => out.push(Effect::Disposed {
                item: item.id,
                queue: from,
                channel: item.channel,
                disposition: other,
                reason,
                waited,
            }),
        }
    }

    /// Points an out-of-line item at another queue, joining it now and
    /// keeping its first arrival.
    fn rehome(&mut self, item: &mut Item, target: QueueIx, now: Timestamp) {
        item.queue = target;
        item.enqueued_at = now;
        item.seq = self.bump();
        item.cooldowns.clear();
        item.state = ItemState::Admitting;
    }

    /// Stores an item, puts it in line and reports its position.
    fn join_line(&mut self, item: Item, now: Timestamp, out: &mut Vec<Effect>) {
        let id = item.id;
        let channel = item.channel;
        let queue = self.queues[item.queue.get()].id.clone();
        let ix = self.items.insert(item);
        self.item_ix.insert(id, ix);
        self.enqueue(ix, now);
        out.push(Effect::Queued {
            item: id,
            queue,
            channel,
            position: self.position(ix),
        });
    }

    /// A waiting item's 1-based place in its queue's line.
    pub(super) fn position(&self, ix: ItemIx) -> u32 {
        let item = &self.items[ix];
        let ahead = self.ahead_of(item.queue, &item.key(ix));
        u32::try_from(ahead + 1).unwrap_or(u32::MAX)
    }

    /// How many items wait ahead of a place in a queue's line, over all its
    /// classes. Each class is counted from whichever end of it is nearer, so
    /// the usual arrival at the back of a long line costs next to nothing.
    pub(super) fn ahead_of(&self, q: QueueIx, key: &ItemKey) -> usize {
        let mut ahead = 0;
        for summary in &self.queues[q.get()].classes {
            let line = &self.classes[summary.class].waiting;
            let mut before = line.range(..key);
            let mut after = line.range(key..);
            let mut steps = 0;
            loop {
                if before.next_back().is_none() {
                    ahead += steps;
                    break;
                }
                if after.next().is_none() {
                    ahead += line.len() - steps;
                    break;
                }
                steps += 1;
            }
        }
        ahead
    }

    /// Puts a stored item in line at its rank and enqueue time, in the class
    /// of its current step, and sets its step and maximum-wait timers.
    pub(super) fn enqueue(&mut self, ix: ItemIx, now: Timestamp) {
        let epoch = self.bump();
        let item = &self.items[ix];
        let q = item.queue;
        let slot = &self.queues[q.get()];
        let enqueued_at = item.enqueued_at;
        let step = slot.step_at(now.millis() - enqueued_at.millis());
        let rank = slot.rank(item.priority, enqueued_at);
        let class = self.class_for(ix, step);
        let entry = &mut self.items[ix];
        entry.rank = rank;
        entry.step = step;
        entry.epoch = epoch;
        entry.state = ItemState::Waiting { class };
        self.join_class(class, ix);
        self.queues[q.get()].waiting += 1;
        for timer in self.line_timers(ix).into_iter().flatten() {
            self.timers.schedule(timer);
        }
        self.pending_items.push(ix);
    }

    /// A waiting item's timers: the end of its current step and its maximum
    /// wait, as set when it entered the step (so they can be cancelled).
    fn line_timers(&self, ix: ItemIx) -> [Option<Timer>; 2] {
        let item = &self.items[ix];
        let slot = &self.queues[item.queue.get()];
        let step_end = slot.step_end(item.step).map(|end_ms| Timer {
            at: Timestamp::from_millis(item.enqueued_at.millis() + end_ms),
            seq: item.epoch,
            action: Action::Step(ix),
        });
        let max_wait = slot
            .rules
            .and_then(|rules| rules.max_wait_secs)
            .map(|secs| Timer {
                at: after_secs(item.enqueued_at, secs),
                seq: item.epoch,
                action: Action::MaxWait(ix),
            });
        [step_end, max_wait]
    }

    /// The requirement class for an item in a step, created if new. A queue
    /// has few classes, so a scan of its own beats hashing a key with skills.
    fn class_for(&mut self, ix: ItemIx, step: usize) -> ClassIx {
        let item = &self.items[ix];
        let slot = &self.queues[item.queue.get()];
        let rule = slot.steps.get(step);
        let match_language = rule.is_some_and(|rule| rule.match_language);
        let language = item.language_skill.filter(|_| match_language);
        for summary in &slot.classes {
            let existing = &self.classes[summary.class].key;
            let same = existing.channel == item.channel
                && existing.step == step
                && existing.language == language
                && existing.extra == item.extra;
            if same {
                return summary.class;
            }
        }
        let key = ClassKey {
            queue: item.queue,
            channel: item.channel,
            step,
            language,
            extra: item.extra.clone(),
        };
        let requirements = match rule {
            Some(rule) => step_requirements(rule, key.language, &key.extra),
            None => key.extra.clone(),
        };
        let q = key.queue;
        let channel = key.channel;
        let class = self.classes.insert(Class {
            key,
            waiting: BTreeSet::new(),
        });
        self.queues[q.get()].classes.push(ClassSummary {
            class,
            channel,
            requirements: requirements.into_boxed_slice(),
            head: None,
            cooling: 0,
        });
        class
    }

    /// Puts a waiting item in its class's line, keeping the class's head and
    /// count of items with cooldowns.
    fn join_class(&mut self, class: ClassIx, ix: ItemIx) {
        let item = &self.items[ix];
        let key = item.key(ix);
        let cooling = !item.cooldowns.is_empty();
        self.classes[class].waiting.insert(key);
        let summary = self.queues[item.queue.get()].summary_mut(class);
        if summary.head.is_none_or(|head| key < head) {
            summary.head = Some(key);
        }
        summary.cooling += usize::from(cooling);
    }

    /// Takes a waiting item out of line and cancels its timers (its state is
    /// the caller's to set).
    pub(super) fn dequeue(&mut self, ix: ItemIx) {
        let ItemState::Waiting { class } = self.items[ix].state else {
            return;
        };
        for timer in self.line_timers(ix).into_iter().flatten() {
            self.timers.cancel(&timer);
        }
        self.queues[self.items[ix].queue.get()].waiting -= 1;
        self.leave_class(class, ix);
    }

    /// Takes a waiting item out of its class, dropping the class when it empties.
    fn leave_class(&mut self, class: ClassIx, ix: ItemIx) {
        let item = &self.items[ix];
        let key = item.key(ix);
        let line = &mut self.classes[class].waiting;
        line.remove(&key);
        let head = line.first().copied();
        let slot = &mut self.queues[item.queue.get()];
        if head.is_none() {
            self.classes.remove(class);
            slot.classes.retain(|summary| summary.class != class);
            return;
        }
        let summary = slot.summary_mut(class);
        if summary.head == Some(key) {
            summary.head = head;
        }
        summary.cooling -= usize::from(!item.cooldowns.is_empty());
    }

    /// Moves a waiting item to the class of the step it has reached, keeping its place.
    fn restep(&mut self, ix: ItemIx, now: Timestamp) {
        let item = &self.items[ix];
        let ItemState::Waiting { class } = item.state else {
            return;
        };
        let waited_ms = now.millis() - item.enqueued_at.millis();
        let step = self.queues[item.queue.get()].step_at(waited_ms);
        self.leave_class(class, ix);
        let next_class = self.class_for(ix, step);
        self.join_class(next_class, ix);
        let entry = &mut self.items[ix];
        entry.state = ItemState::Waiting { class: next_class };
        entry.step = step;
        let [step_end, _] = self.line_timers(ix);
        if let Some(timer) = step_end {
            self.timers.schedule(timer);
        }
        self.pending_items.push(ix);
    }

    /// Reserves an item for an agent until the queue's offer timeout.
    pub(super) fn offer(
        &mut self,
        ix: ItemIx,
        a: AgentIx,
        assigned: bool,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        self.dequeue(ix);
        let epoch = self.bump();
        let item = &mut self.items[ix];
        let slot = &mut self.queues[item.queue.get()];
        let timeout_secs = slot
            .config
            .as_ref()
            .map_or(15, |queue| queue.offer_timeout_secs);
        if !assigned {
            slot.round_robin = Some(a);
        }
        let expires_at = after_secs(now, timeout_secs);
        item.state = ItemState::Offered {
            agent: a,
            expires_at,
            assigned,
        };
        item.epoch = epoch;
        item.was_offered = true;
        let agent = &mut self.agents[a.get()];
        agent.offers.push(ix);
        agent.load[item.channel.index()] += 1;
        self.timers.schedule(Timer {
            at: expires_at,
            seq: epoch,
            action: Action::Offer(ix),
        });
        out.push(Effect::Offered {
            item: item.id,
            agent: agent.id.clone(),
            queue: slot.id.clone(),
            channel: item.channel,
            expires_at,
            assigned,
        });
        self.refresh_agent(a, now, out);
    }

    /// Frees the capacity an offer held and cancels its timeout (the agent's
    /// state is refreshed by the caller).
    fn release_offer(&mut self, ix: ItemIx, a: AgentIx, now: Timestamp) {
        self.cancel_offer_timer(ix);
        let channel = self.items[ix].channel;
        let agent = &mut self.agents[a.get()];
        agent.offers.retain(|offered| *offered != ix);
        agent.load[channel.index()] -= 1;
        agent.idle_since = now;
    }

    /// Cancels an offered item's timeout.
    fn cancel_offer_timer(&mut self, ix: ItemIx) {
        let item = &self.items[ix];
        if let ItemState::Offered { expires_at, .. } = item.state {
            self.timers.cancel(&Timer {
                at: expires_at,
                seq: item.epoch,
                action: Action::Offer(ix),
            });
        }
    }

    /// Ends an unanswered offer and puts the item back in its place in line.
    pub(super) fn end_offer(
        &mut self,
        ix: ItemIx,
        reason: OfferEndReason,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let ItemState::Offered { agent: a, .. } = self.items[ix].state else {
            return;
        };
        self.release_offer(ix, a, now);
        let config = self.queues[self.items[ix].queue.get()].config.as_ref();
        let reoffer_delay = config.map_or(0, |queue| queue.reoffer_delay_secs);
        let max_no_answer = config.map_or(u32::MAX, |queue| queue.max_no_answer);
        let agent = &mut self.agents[a.get()];
        match reason {
            OfferEndReason::Declined => agent.missed = 0,
            OfferEndReason::TimedOut => {
                agent.missed += 1;
                if agent.missed >= max_no_answer {
                    agent.intent = super::agent::Intent::NotResponding;
                }
            }
            OfferEndReason::Rescinded => {}
        }
        out.push(Effect::OfferEnded {
            item: self.items[ix].id,
            agent: agent.id.clone(),
            reason,
        });
        if reason != OfferEndReason::Rescinded && reoffer_delay > 0 {
            let until = after_secs(now, reoffer_delay);
            let item = &mut self.items[ix];
            // The agent's latest decline or miss sets its cooldown, even if
            // the queue's delay was shortened since an earlier one.
            item.cooldowns
                .retain(|cooldown| cooldown.1 > now && cooldown.0 != a);
            item.cooldowns.push((a, until));
            self.timers.schedule(Timer {
                at: until,
                seq: item.seq,
                action: Action::Cooldown(ix),
            });
        }
        self.enqueue(ix, now);
        self.refresh_agent(a, now, out);
        self.pending_agents.push(a);
    }

    /// Takes a waiting or offered item out of routing and storage, rescinding its offer.
    fn withdraw(&mut self, ix: ItemIx, now: Timestamp, out: &mut Vec<Effect>) -> Item {
        match self.items[ix].state {
            ItemState::Waiting { .. } => self.dequeue(ix),
            ItemState::Offered { agent, .. } => {
                self.release_offer(ix, agent, now);
                out.push(Effect::OfferEnded {
                    item: self.items[ix].id,
                    agent: self.agents[agent.get()].id.clone(),
                    reason: OfferEndReason::Rescinded,
                });
                self.refresh_agent(agent, now, out);
                self.pending_agents.push(agent);
            }
            ItemState::Admitting | ItemState::Connected { .. } => {}
        }
        self.remove_item(ix)
    }

    /// Drops an item from storage.
    fn remove_item(&mut self, ix: ItemIx) -> Item {
        let item = self
            .items
            .remove(ix)
            .expect("callers pass the index of a live item");
        self.item_ix.remove(&item.id);
        item
    }

    /// The index of an item that is not connected yet (supervisor actions and abandons).
    fn unconnected(&self, id: &WorkItemId) -> Result<ItemIx> {
        let ix = self.item_of(id)?;
        if matches!(self.items[ix].state, ItemState::Connected { .. }) {
            return Err(Error::FailedPrecondition(format!(
                "work item {id} is already connected"
            )));
        }
        Ok(ix)
    }

    /// The consumer hung up before being connected.
    pub(super) fn abandon(
        &mut self,
        id: &WorkItemId,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let ix = self.unconnected(id)?;
        let item = self.withdraw(ix, now, out);
        out.push(Effect::Abandoned {
            item: item.id,
            queue: self.queues[item.queue.get()].id.clone(),
            channel: item.channel,
            waited: now.since(item.arrived_at),
            was_offered: item.was_offered,
            transfer: item.transfer,
        });
        Ok(())
    }

    /// An item offered to `agent`, or why not.
    fn offered_to(&self, item: &WorkItemId, agent: &super::AgentId) -> Result<(ItemIx, AgentIx)> {
        let ix = self.item_of(item)?;
        let a = self.agent_of(agent)?;
        match self.items[ix].state {
            ItemState::Offered { agent: offered, .. } if offered == a => Ok((ix, a)),
            _ => Err(Error::FailedPrecondition(format!(
                "work item {item} is not offered to agent {agent}"
            ))),
        }
    }

    /// The agent accepted: the item is connected.
    pub(super) fn accept(
        &mut self,
        item: &WorkItemId,
        agent: &super::AgentId,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let (ix, a) = self.offered_to(item, agent)?;
        self.cancel_offer_timer(ix);
        let epoch = self.bump();
        let entry = &mut self.items[ix];
        entry.state = ItemState::Connected {
            agent: a,
            since: now,
        };
        entry.epoch = epoch;
        let slot = &mut self.agents[a.get()];
        slot.offers.retain(|offered| *offered != ix);
        slot.connected.push(ix);
        slot.missed = 0;
        out.push(Effect::Answered {
            item: entry.id,
            agent: slot.id.clone(),
            queue: self.queues[entry.queue.get()].id.clone(),
            channel: entry.channel,
            waited: now.since(entry.arrived_at),
            transfer: entry.transfer,
        });
        self.refresh_agent(a, now, out);
        Ok(())
    }

    /// The agent declined: the item goes back to its place.
    pub(super) fn decline(
        &mut self,
        item: &WorkItemId,
        agent: &super::AgentId,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let (ix, _) = self.offered_to(item, agent)?;
        self.end_offer(ix, OfferEndReason::Declined, now, out);
        Ok(())
    }

    /// The bridge ended a connected item: it completes and the agent wraps up.
    pub(super) fn end(
        &mut self,
        id: &WorkItemId,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let ix = self.item_of(id)?;
        let ItemState::Connected { agent: a, since } = self.items[ix].state else {
            return Err(Error::FailedPrecondition(format!(
                "work item {id} is not connected"
            )));
        };
        let item = self.remove_item(ix);
        let slot = &mut self.queues[item.queue.get()];
        let wrap_up_secs = slot.config.as_ref().map_or(0, |queue| queue.wrap_up_secs);
        let handle_time = now.since(since);
        let sample = handle_time.as_millis() as f64 + f64::from(wrap_up_secs) * 1000.0;
        let average = &mut slot.handle_ms[item.channel.index()];
        *average = Some(match *average {
            Some(previous) => previous + HANDLE_TIME_WEIGHT * (sample - previous),
            None => sample,
        });
        let agent = &mut self.agents[a.get()];
        agent.connected.retain(|connected| *connected != ix);
        agent.load[item.channel.index()] -= 1;
        let mut wrap_up_until = None;
        if wrap_up_secs > 0 && agent.logged_in() {
            self.next_seq += 1;
            let wrap_id = self.next_seq;
            agent.wrap_ups.push(super::agent::WrapUp {
                id: wrap_id,
                channel: item.channel,
                queue: item.queue,
                item: item.id,
            });
            agent.load[item.channel.index()] += 1;
            let until = after_secs(now, wrap_up_secs);
            self.timers.schedule(Timer {
                at: until,
                seq: wrap_id,
                action: Action::WrapUp(a),
            });
            wrap_up_until = Some(until);
        } else {
            agent.idle_since = now;
        }
        out.push(Effect::Completed {
            item: item.id,
            agent: agent.id.clone(),
            queue: slot.id.clone(),
            channel: item.channel,
            handle_time,
            wrap_up_until,
        });
        self.refresh_agent(a, now, out);
        self.pending_agents.push(a);
        Ok(())
    }

    /// A supervisor moves an item to another queue, keeping its first arrival.
    pub(super) fn move_item(
        &mut self,
        id: &WorkItemId,
        queue: &QueueId,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let ix = self.unconnected(id)?;
        let target = self.queue_of(queue)?;
        let from = self.items[ix].queue;
        if from == target {
            return Err(Error::invalid(
                "queue",
                "the work item is already in that queue",
            ));
        }
        let mut item = self.withdraw(ix, now, out);
        out.push(Effect::Moved {
            item: item.id,
            from: self.queues[from.get()].id.clone(),
            to: queue.clone(),
        });
        self.rehome(&mut item, target, now);
        self.join_line(item, now, out);
        Ok(())
    }

    /// A supervisor changes an item's base priority; a waiting item moves in line.
    pub(super) fn reprioritise(
        &mut self,
        id: &WorkItemId,
        priority: i32,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let ix = self.unconnected(id)?;
        let waiting = matches!(self.items[ix].state, ItemState::Waiting { .. });
        if waiting {
            self.dequeue(ix);
        }
        let item = &mut self.items[ix];
        item.priority = priority;
        out.push(Effect::Reprioritised {
            item: item.id,
            queue: self.queues[item.queue.get()].id.clone(),
            priority,
        });
        if waiting {
            self.enqueue(ix, now);
        }
        Ok(())
    }

    /// A supervisor cancels an item that is not connected.
    pub(super) fn cancel(
        &mut self,
        id: &WorkItemId,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let ix = self.unconnected(id)?;
        let item = self.withdraw(ix, now, out);
        out.push(Effect::Cancelled {
            item: item.id,
            queue: self.queues[item.queue.get()].id.clone(),
            channel: item.channel,
            waited: now.since(item.arrived_at),
        });
        Ok(())
    }

    /// A supervisor offers an item to a named agent, bypassing skills and cooldowns.
    pub(super) fn assign(
        &mut self,
        item: &WorkItemId,
        agent: &super::AgentId,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let ix = self.unconnected(item)?;
        let a = self.agent_of(agent)?;
        let slot = &self.agents[a.get()];
        if let ItemState::Offered { agent: offered, .. } = self.items[ix].state
            && offered == a
        {
            return Err(Error::FailedPrecondition(format!(
                "work item {item} is already offered to agent {agent}"
            )));
        }
        if !slot.logged_in() {
            return Err(Error::FailedPrecondition(format!(
                "agent {agent} is not signed in"
            )));
        }
        if slot.free_capacity(self.items[ix].channel) == 0 {
            return Err(Error::ResourceExhausted(format!(
                "agent {agent} has no free capacity on the work item's channel"
            )));
        }
        self.end_offer(ix, OfferEndReason::Rescinded, now, out);
        self.offer(ix, a, true, now, out);
        Ok(())
    }

    /// Whether a timer set for an item's line epoch still applies.
    fn waiting_in(&self, ix: ItemIx, epoch: u64) -> bool {
        self.items.get(ix).is_some_and(|item| {
            item.epoch == epoch && matches!(item.state, ItemState::Waiting { .. })
        })
    }

    /// Acts on a due timer, ignoring it if what it was set for has moved on.
    pub(super) fn fire(&mut self, timer: Timer, now: Timestamp, out: &mut Vec<Effect>) {
        let seq = timer.seq;
        match timer.action {
            Action::Offer(item) => {
                let live = self.items.get(item).is_some_and(|entry| {
                    entry.epoch == seq && matches!(entry.state, ItemState::Offered { .. })
                });
                if live {
                    self.end_offer(item, OfferEndReason::TimedOut, now, out);
                }
            }
            Action::Step(item) => {
                if self.waiting_in(item, seq) {
                    self.restep(item, now);
                }
            }
            Action::MaxWait(item) => {
                if !self.waiting_in(item, seq) {
                    return;
                }
                let config = self.queues[self.items[item].queue.get()].config.as_ref();
                let disposition = config
                    .and_then(|queue| queue.limits.when_max_wait.clone())
                    .unwrap_or_else(|| Disposition::Disconnect {
                        message: MAX_WAIT_MESSAGE.to_owned(),
                    });
                let entry = self.withdraw(item, now, out);
                self.dispose(entry, disposition, LimitReason::MaxWait, 0, now, out);
            }
            Action::Cooldown(item) => {
                let Some(entry) = self.items.get_mut(item) else {
                    return;
                };
                let ItemState::Waiting { class } = entry.state else {
                    return;
                };
                if entry.seq != seq || entry.cooldowns.is_empty() {
                    return;
                }
                entry.cooldowns.retain(|cooldown| cooldown.1 > now);
                if entry.cooldowns.is_empty() {
                    self.queues[entry.queue.get()].summary_mut(class).cooling -= 1;
                }
                self.pending_items.push(item);
            }
            Action::WrapUp(agent) => self.wrap_up_due(agent, seq, now, out),
        }
    }
}
