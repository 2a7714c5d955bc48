//! Agents: configuration, sign-in, readiness, presence, forced states,
//! wrap-up, and keeping the free-agent indexes and published state current.

use super::Engine;
use super::agent::{AgentSlot, Intent};
use super::effect::{Effect, OfferEndReason};
use super::ix::{AgentIx, Dense};
use crate::domain::{Agent, AgentId, Channel, Presence, RoutingState, Timestamp, Validate};
use crate::error::{Error, Result};

/// The not-ready reason of an agent who signed in without asking to be ready.
pub(crate) const SIGNED_IN_REASON: &str = "signed_in";

impl Engine {
    /// Creates or replaces an agent, keeping their routing state and work in progress.
    pub(super) fn upsert_agent(
        &mut self,
        agent: Agent,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        agent.validate()?;
        let a = match self.agent_ix.get(&agent.id) {
            Some(a) => *a,
            None => {
                let a = super::ix::next_index(self.agents.len());
                self.agents.push(AgentSlot::new(agent.id.clone(), now));
                self.agent_ix.insert(agent.id.clone(), a);
                a
            }
        };
        self.unindex_agent(a);
        let mut skills = Vec::with_capacity(agent.skills.len());
        for (skill, level) in &agent.skills {
            skills.push((self.intern_skill(skill), *level));
        }
        skills.sort_unstable();
        let mut queues = Vec::with_capacity(agent.queues.len());
        for queue in &agent.queues {
            let q = self.intern_queue(queue);
            self.queues[q.get()].members.insert(a);
            queues.push(q);
        }
        let slot = &mut self.agents[a.get()];
        slot.skills = skills;
        slot.queues = queues;
        slot.config = Some(agent);
        self.refresh_agent(a, now, out);
        self.pending_agents.push(a);
        Ok(())
    }

    /// Removes an agent connected to nothing; offers go back in line.
    pub(super) fn remove_agent(
        &mut self,
        id: &AgentId,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let a = self.agent_of(id)?;
        if !self.agents[a.get()].connected.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "agent {id} is connected to work items"
            )));
        }
        self.release_work(a, now, out);
        self.agents[a.get()].config = None;
        self.refresh_agent(a, now, out);
        self.unindex_agent(a);
        self.agents[a.get()] = AgentSlot::new(id.clone(), now);
        Ok(())
    }

    /// Rescinds an agent's offers (back to their place) and ends their wrap-ups.
    fn release_work(&mut self, a: AgentIx, now: Timestamp, out: &mut Vec<Effect>) {
        let offers = self.agents[a.get()].offers.clone();
        for ix in offers {
            self.end_offer(ix, OfferEndReason::Rescinded, now, out);
        }
        while !self.agents[a.get()].wrap_ups.is_empty() {
            self.close_wrap_up(a, 0, true, now, out);
        }
    }

    /// Takes an agent out of every free set and member list (before its queues change).
    fn unindex_agent(&mut self, a: AgentIx) {
        self.restaff(a, false);
        let slot = &mut self.agents[a.get()];
        for channel in Channel::ALL {
            let Some(idle_since) = slot.indexed[channel.index()].take() else {
                continue;
            };
            for q in &slot.queues {
                self.queues[q.get()].free[channel.index()].remove(&(idle_since, a));
            }
        }
        for q in &slot.queues {
            self.queues[q.get()].members.remove(&a);
        }
        slot.routable = false;
    }

    /// Brings an agent's busy log and published state up to date, and marks
    /// its free-set entries for [`Engine::reindex_agents`]: an agent who
    /// frees up and takes new work within one command never enters the free
    /// sets at all.
    pub(super) fn refresh_agent(&mut self, a: AgentIx, now: Timestamp, out: &mut Vec<Effect>) {
        self.restaff(a, true);
        let slot = &mut self.agents[a.get()];
        slot.busy.update(slot.engaged(), now);
        let wants = slot.wants_work();
        if wants && !slot.routable {
            slot.idle_since = now;
        }
        slot.routable = wants;
        if !slot.reindex {
            slot.reindex = true;
            self.reindex.push(a);
        }
        if slot.state_is(&slot.published) {
            return;
        }
        slot.published = slot.routing_state();
        out.push(Effect::AgentState {
            agent: slot.id.clone(),
            state: slot.published.clone(),
            at: now,
        });
    }

    /// Counts the agent in its queues' `staffed` for each channel where it is
    /// signed in with capacity (uncounts it everywhere unless `counted`), and
    /// notes the queues it leaves without anyone on a channel.
    fn restaff(&mut self, a: AgentIx, counted: bool) {
        let slot = &mut self.agents[a.get()];
        let on_duty = counted && slot.logged_in();
        for channel in Channel::ALL {
            let capacity = slot
                .config
                .as_ref()
                .map_or(0, |config| config.capacity.get(channel));
            let wanted = on_duty && capacity > 0;
            if wanted == slot.staffing[channel.index()] {
                continue;
            }
            slot.staffing[channel.index()] = wanted;
            for q in &slot.queues {
                let staffed = &mut self.queues[q.get()].staffed[channel.index()];
                if wanted {
                    *staffed += 1;
                    continue;
                }
                *staffed -= 1;
                if *staffed == 0 {
                    self.unstaffed.push((*q, channel));
                }
            }
        }
    }

    /// Puts the agents refreshed since the last call into the free sets of
    /// their queues for each channel where they could take work now, and
    /// takes them out elsewhere. Runs before an agent is chosen for an item.
    pub(super) fn reindex_agents(&mut self) {
        while let Some(a) = self.reindex.pop() {
            let slot = &mut self.agents[a.get()];
            slot.reindex = false;
            let wants = slot.wants_work();
            for channel in Channel::ALL {
                let mut wanted = None;
                if wants && slot.free_capacity(channel) > 0 {
                    wanted = Some(slot.idle_since);
                }
                let had = slot.indexed[channel.index()];
                if wanted == had {
                    continue;
                }
                slot.indexed[channel.index()] = wanted;
                for q in &slot.queues {
                    let free = &mut self.queues[q.get()].free[channel.index()];
                    if let Some(idle_since) = had {
                        free.remove(&(idle_since, a));
                    }
                    if let Some(idle_since) = wanted {
                        free.insert((idle_since, a));
                    }
                }
            }
        }
    }

    /// Refreshes an agent after a change and lets routing look at them.
    fn touched(&mut self, a: AgentIx, now: Timestamp, out: &mut Vec<Effect>) {
        self.refresh_agent(a, now, out);
        self.pending_agents.push(a);
    }

    /// Sets sign-in and intent, clearing the missed-offer count.
    fn restart(
        &mut self,
        a: AgentIx,
        signed_in: bool,
        intent: Intent,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let slot = &mut self.agents[a.get()];
        slot.signed_in = signed_in;
        slot.intent = intent;
        slot.missed = 0;
        self.touched(a, now, out);
    }

    /// A formal agent signs in, ready.
    pub(super) fn sign_in(
        &mut self,
        id: &AgentId,
        ready: bool,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let a = self.agent_of(id)?;
        if self.agents[a.get()].signed_in {
            self.touched(a, now, out);
            return Ok(());
        }
        let intent = if ready {
            Intent::Ready
        } else {
            Intent::NotReady(SIGNED_IN_REASON.to_string())
        };
        self.restart(a, true, intent, now, out);
        Ok(())
    }

    /// The agent signs out: offers go back in line, wrap-ups end, connected items stay.
    pub(super) fn sign_out(
        &mut self,
        id: &AgentId,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let a = self.agent_of(id)?;
        self.release_work(a, now, out);
        self.restart(a, false, Intent::Ready, now, out);
        Ok(())
    }

    /// The index of an agent who may change readiness (formal agents must be signed in).
    fn signed_in_agent(&self, id: &AgentId) -> Result<AgentIx> {
        let a = self.agent_of(id)?;
        if !self.agents[a.get()].logged_in() {
            return Err(Error::FailedPrecondition(format!(
                "agent {id} is not signed in"
            )));
        }
        Ok(a)
    }

    /// The agent is ready; this also clears not responding.
    pub(super) fn set_ready(
        &mut self,
        id: &AgentId,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let a = self.signed_in_agent(id)?;
        let signed_in = self.agents[a.get()].signed_in;
        self.restart(a, signed_in, Intent::Ready, now, out);
        Ok(())
    }

    /// The agent takes no new work (offers in flight stay).
    pub(super) fn set_not_ready(
        &mut self,
        id: &AgentId,
        reason: String,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let a = self.signed_in_agent(id)?;
        self.agents[a.get()].intent = Intent::NotReady(reason);
        self.touched(a, now, out);
        Ok(())
    }

    /// The UC presence feed reports a presence.
    pub(super) fn set_presence(
        &mut self,
        id: &AgentId,
        presence: Presence,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let a = self.agent_of(id)?;
        let slot = &mut self.agents[a.get()];
        if slot.presence == presence {
            return Ok(());
        }
        slot.presence = presence;
        self.touched(a, now, out);
        Ok(())
    }

    /// A supervisor forces an agent's state; formal agents are signed in as needed.
    pub(super) fn force_state(
        &mut self,
        id: &AgentId,
        state: RoutingState,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let a = self.agent_of(id)?;
        let intent = match state {
            RoutingState::LoggedOut => return self.sign_out(id, now, out),
            RoutingState::Ready => Intent::Ready,
            RoutingState::NotReady { reason } => Intent::NotReady(reason),
            RoutingState::NotResponding => Intent::NotResponding,
            RoutingState::Reserved | RoutingState::Busy | RoutingState::WrapUp => {
                return Err(Error::invalid(
                    "state",
                    "only logged_out, not_ready, ready or not_responding can be forced",
                ));
            }
        };
        self.restart(a, true, intent, now, out);
        Ok(())
    }

    /// The agent ends all wrap-ups early.
    pub(super) fn finish_wrap_up(
        &mut self,
        id: &AgentId,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let a = self.agent_of(id)?;
        if self.agents[a.get()].wrap_ups.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "agent {id} is not wrapping up"
            )));
        }
        while !self.agents[a.get()].wrap_ups.is_empty() {
            self.close_wrap_up(a, 0, true, now, out);
        }
        self.touched(a, now, out);
        Ok(())
    }

    /// A wrap-up's time is up (if it has not ended already).
    pub(super) fn wrap_up_due(
        &mut self,
        a: AgentIx,
        id: u64,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let wrap_ups = &self.agents[a.get()].wrap_ups;
        let Some(position) = wrap_ups.iter().position(|wrap_up| wrap_up.id == id) else {
            return;
        };
        self.close_wrap_up(a, position, false, now, out);
        self.touched(a, now, out);
    }

    /// Ends one wrap-up, freeing its capacity (the caller refreshes the agent).
    fn close_wrap_up(
        &mut self,
        a: AgentIx,
        position: usize,
        early: bool,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) {
        let slot = &mut self.agents[a.get()];
        let wrap_up = slot.wrap_ups.remove(position);
        slot.load[wrap_up.channel.index()] -= 1;
        slot.idle_since = now;
        out.push(Effect::WrapUpEnded {
            item: wrap_up.item,
            agent: slot.id.clone(),
            queue: self.queues[wrap_up.queue.get()].id.clone(),
            channel: wrap_up.channel,
            early,
        });
    }
}
