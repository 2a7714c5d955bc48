//! Read-only queries: item and agent views, positions, queue snapshots and
//! estimated waits.

use super::Engine;
use super::agent::AgentSlot;
use super::item::{Item, ItemState};
use super::ix::{Dense, SkillIx, next_index};
use super::lifecycle::step_requirements;
use super::queue::{ItemKey, QueueSlot};
use super::view::{
    AgentView, ItemStatus, ItemView, ItemWait, QueueSnapshot, QueueStaff, WaitEstimate,
};
use crate::domain::{
    AgentId, Channel, QueueId, RoutingState, SkillName, SkillRequirement, Timestamp, WorkItemId,
};
use crate::error::Result;
use std::cmp::Reverse;
use std::time::Duration;

/// Handle time assumed until a queue has completed an item on a channel.
const DEFAULT_HANDLE_MS: f64 = 180_000.0;

/// Agents who could serve some work, and the capacity they bring.
#[derive(Debug, Default)]
struct Staffing {
    /// Signed-in agents with capacity on the channel who fit.
    signed_in: u32,
    /// Their total capacity on the channel.
    capacity: u32,
    /// Those of them who could take an item of the channel right now.
    available: u32,
}

/// `position × handle time / capacity`; zero when someone is free now, `None` when nobody is there.
fn eta(position: u32, staffing: &Staffing, handle_ms: f64) -> Option<Duration> {
    if staffing.available > 0 {
        return Some(Duration::ZERO);
    }
    if staffing.capacity == 0 {
        return None;
    }
    let millis = handle_ms * f64::from(position) / f64::from(staffing.capacity);
    Some(Duration::from_millis(millis as u64))
}

impl Engine {
    /// One open work item.
    pub fn item(&self, id: &WorkItemId) -> Option<ItemView> {
        let ix = self.item_ix.get(id)?;
        Some(self.item_view(&self.items[*ix]))
    }

    /// Every open work item (waiting, offered or connected), for invariant
    /// checks, recovery and statistics.
    pub fn items(&self) -> impl Iterator<Item = ItemView> + '_ {
        self.items.values().map(|item| self.item_view(item))
    }

    /// One agent's routing picture.
    pub fn agent(&self, id: &AgentId) -> Option<AgentView> {
        let a = self.agent_ix.get(id)?;
        self.agent_view(&self.agents[a.get()])
    }

    /// Every configured agent.
    pub fn agents(&self) -> impl Iterator<Item = AgentView> + '_ {
        self.agents.iter().filter_map(|slot| self.agent_view(slot))
    }

    /// Builds an item view.
    fn item_view(&self, item: &Item) -> ItemView {
        let status = match item.state {
            ItemState::Admitting | ItemState::Waiting { .. } => {
                ItemStatus::Waiting { step: item.step }
            }
            ItemState::Offered {
                agent,
                expires_at,
                assigned,
            } => ItemStatus::Offered {
                agent: self.agents[agent.get()].id.clone(),
                expires_at,
                assigned,
            },
            ItemState::Connected { agent, since } => ItemStatus::Connected {
                agent: self.agents[agent.get()].id.clone(),
                since,
            },
        };
        ItemView {
            id: item.id,
            interaction: item.interaction.clone(),
            queue: self.queues[item.queue.get()].id.clone(),
            channel: item.channel,
            language: item.language.clone(),
            priority: item.priority,
            arrived_at: item.arrived_at,
            enqueued_at: item.enqueued_at,
            transfer: item.transfer,
            status,
        }
    }

    /// Builds an agent view, if the agent is configured.
    fn agent_view(&self, slot: &AgentSlot) -> Option<AgentView> {
        let config = slot.config.as_ref()?;
        let mut offers = Vec::with_capacity(slot.offers.len());
        for ix in &slot.offers {
            offers.push(self.items[*ix].id);
        }
        let mut connected = Vec::with_capacity(slot.connected.len());
        for ix in &slot.connected {
            connected.push(self.items[*ix].id);
        }
        Some(AgentView {
            id: slot.id.clone(),
            kind: config.kind,
            state: slot.published.clone(),
            presence: slot.presence,
            signed_in: slot.signed_in,
            offers,
            connected,
            wrap_ups: slot.wrap_ups.len(),
            load: slot.load,
            missed_offers: slot.missed,
        })
    }

    /// A work item's place in line and expected wait, recomputed from the current state.
    pub fn item_wait(&self, id: &WorkItemId) -> Option<ItemWait> {
        let ix = *self.item_ix.get(id)?;
        let item = &self.items[ix];
        let ItemState::Waiting { class } = item.state else {
            return Some(ItemWait {
                position: 0,
                estimated_wait: Some(Duration::ZERO),
            });
        };
        let slot = &self.queues[item.queue.get()];
        let requirements = &slot.summary(class).requirements;
        let staffing = self.staffing(slot, item.channel, |agent| agent.meets(requirements));
        let position = self.position(ix);
        Some(ItemWait {
            position,
            estimated_wait: eta(position, &staffing, handle_ms(slot, item.channel)),
        })
    }

    /// Every waiting item's place in line and expected wait, as
    /// [`Engine::item_wait`] gives them, computed a queue at a time: each
    /// line is walked once and each class's staffing counted once, so a
    /// sweep costs O(n log n) in the items waiting instead of O(n²) by
    /// asking [`Engine::item_wait`] item by item.
    pub fn each_waiting(&self, mut each: impl FnMut(WorkItemId, ItemWait)) {
        let mut line: Vec<(&ItemKey, usize)> = Vec::new();
        let mut staffing = Vec::new();
        for slot in &self.queues {
            line.clear();
            staffing.clear();
            for (at, summary) in slot.classes.iter().enumerate() {
                let requirements = &summary.requirements;
                staffing
                    .push(self.staffing(slot, summary.channel, |agent| agent.meets(requirements)));
                for key in &self.classes[summary.class].waiting {
                    line.push((key, at));
                }
            }
            line.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (ahead, (key, at)) in line.iter().enumerate() {
                let position = u32::try_from(ahead + 1).unwrap_or(u32::MAX);
                let channel = slot.classes[*at].channel;
                each(
                    self.items[key.item].id,
                    ItemWait {
                        position,
                        estimated_wait: eta(position, &staffing[*at], handle_ms(slot, channel)),
                    },
                );
            }
        }
    }

    /// A queue's real-time picture on one channel.
    pub fn queue_snapshot(
        &self,
        queue: &QueueId,
        channel: Channel,
        now: Timestamp,
    ) -> Result<QueueSnapshot> {
        let slot = &self.queues[self.queue_of(queue)?.get()];
        let mut waiting = 0;
        let mut oldest: Option<Timestamp> = None;
        for summary in &slot.classes {
            if summary.channel != channel {
                continue;
            }
            let line = &self.classes[summary.class].waiting;
            waiting += line.len();
            for key in line {
                if oldest.is_none_or(|found| key.arrived_at < found) {
                    oldest = Some(key.arrived_at);
                }
            }
        }
        let staffing = self.staffing(slot, channel, |agent| {
            slot.steps
                .iter()
                .any(|rule| agent.meets(&rule.requirements))
        });
        let position = u32::try_from(waiting + 1).unwrap_or(u32::MAX);
        Ok(QueueSnapshot {
            queue: queue.clone(),
            channel,
            waiting: position - 1,
            oldest_wait: oldest.map(|arrived_at| now.since(arrived_at)),
            estimated_wait: eta(position, &staffing, handle_ms(slot, channel)),
            agents_signed_in: staffing.signed_in,
            agents_available: staffing.available,
        })
    }

    /// A queue's staff on one channel by routing state: the members counted
    /// in [`QueueSnapshot::agents_signed_in`].
    pub fn queue_staff(&self, queue: &QueueId, channel: Channel) -> Result<QueueStaff> {
        let slot = &self.queues[self.queue_of(queue)?.get()];
        let mut staff = QueueStaff::default();
        for a in &slot.members {
            let agent = &self.agents[a.get()];
            let Some(config) = &agent.config else {
                continue;
            };
            let fits = slot
                .steps
                .iter()
                .any(|rule| agent.meets(&rule.requirements));
            if !agent.logged_in() || config.capacity.get(channel) == 0 || !fits {
                continue;
            }
            staff.signed_in += 1;
            match &agent.published {
                RoutingState::Ready => staff.ready += 1,
                RoutingState::Reserved => staff.reserved += 1,
                RoutingState::Busy => staff.busy += 1,
                RoutingState::WrapUp => staff.wrap_up += 1,
                RoutingState::NotReady { reason } => {
                    *staff.not_ready.entry(reason.clone()).or_default() += 1;
                }
                RoutingState::NotResponding => {
                    *staff
                        .not_ready
                        .entry("not_responding".to_owned())
                        .or_default() += 1;
                }
                RoutingState::LoggedOut => {}
            }
        }
        Ok(staff)
    }

    /// "Is anyone there for this work, and how long is the wait?" for a new
    /// priority-0 item: agents signed in who meet some step, agents free now
    /// who meet the first step, the place it would take, and the expected wait.
    pub fn estimate_wait(
        &self,
        queue: &QueueId,
        channel: Channel,
        language: Option<&str>,
        skills: &[SkillRequirement],
        now: Timestamp,
    ) -> Result<WaitEstimate> {
        let q = self.queue_of(queue)?;
        let slot = &self.queues[q.get()];
        let mut extra = Vec::with_capacity(skills.len());
        for requirement in skills {
            extra.push((self.known_skill(&requirement.skill), requirement.min_level));
        }
        let language_skill =
            language.map(|language| self.known_skill(&SkillName::new(format!("lang:{language}"))));
        let mut steps = Vec::with_capacity(slot.steps.len());
        for rule in &slot.steps {
            steps.push(step_requirements(rule, language_skill, &extra));
        }
        let fits_some_step =
            |agent: &AgentSlot| steps.iter().any(|requirements| agent.meets(requirements));
        let mut staffing = self.staffing(slot, channel, fits_some_step);
        let first = steps.first().cloned().unwrap_or_default();
        staffing.available = self
            .staffing(slot, channel, |agent| agent.meets(&first))
            .available;
        let new_key = ItemKey {
            rank: Reverse(slot.rank(0, now)),
            enqueued_at: now,
            seq: u64::MAX,
            item: next_index(u32::MAX as usize),
            priority: 0,
            arrived_at: now,
        };
        let ahead = self.ahead_of(q, &new_key);
        let position = u32::try_from(ahead + 1).unwrap_or(u32::MAX);
        Ok(WaitEstimate {
            agents_signed_in: staffing.signed_in,
            agents_available: staffing.available,
            position,
            estimated_wait: eta(position, &staffing, handle_ms(slot, channel)),
        })
    }

    /// A skill's index, or an index nobody holds when the name was never seen.
    fn known_skill(&self, name: &SkillName) -> SkillIx {
        match self.skills.get(name) {
            Some(skill) => *skill,
            None => next_index(self.skills.len()),
        }
    }

    /// Counts a queue's members on a channel who fit.
    fn staffing(
        &self,
        slot: &QueueSlot,
        channel: Channel,
        fits: impl Fn(&AgentSlot) -> bool,
    ) -> Staffing {
        let mut staffing = Staffing::default();
        for a in &slot.members {
            let agent = &self.agents[a.get()];
            let Some(config) = &agent.config else {
                continue;
            };
            let capacity = config.capacity.get(channel);
            if !agent.logged_in() || capacity == 0 || !fits(agent) {
                continue;
            }
            staffing.signed_in += 1;
            staffing.capacity += capacity;
            if agent.indexed[channel.index()].is_some() {
                staffing.available += 1;
            }
        }
        staffing
    }
}

/// The queue's moving-average handle time on a channel, in ms.
fn handle_ms(slot: &QueueSlot, channel: Channel) -> f64 {
    slot.handle_ms[channel.index()].unwrap_or(DEFAULT_HANDLE_MS)
}
