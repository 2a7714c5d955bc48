//! The routing engine: a deterministic, sans-IO state machine that owns every
//! queue, waiting item, agent, offer and timer.
//!
//! The shell feeds it [`Command`]s with the current time through
//! [`Engine::apply`] and gets [`Effect`]s back; it calls [`Engine::tick`]
//! whenever [`Engine::next_deadline`] has passed. The engine never reads a
//! clock, sleeps, spawns or does I/O, so tests run it in virtual time. A
//! command that returns an error has changed nothing.
//!
//! # Rules
//!
//! - **Line order.** Within a queue, items go by priority (higher first), then
//!   enqueue time, then submission order. With `priority_aging_secs = N` an
//!   item gains one level per N seconds waited, accrued by the millisecond, so
//!   the line is ordered by `priority·N·1000 − enqueued_at_ms`, a key that does
//!   not change with time: aging needs no timers and no re-sorting.
//! - **Steps.** An item's step follows from the time since it joined the queue
//!   (step durations are consecutive). A step's requirements, the `lang:<language>`
//!   skill (level ≥ 1) when the step matches language and the item has a
//!   language, and the item's extra skills must all be met. A step change
//!   moves the item between requirement classes, never in line.
//! - **Routable.** A formal agent is routable when signed in, ready and
//!   AVAILABLE; an informal agent when AVAILABLE and not set not-ready or not
//!   responding. A routable agent may take an item on a channel where it has
//!   free capacity, even while busy on other items ("busy with spare
//!   capacity"). Offers, connected items and wrap-ups all use capacity. Voice
//!   and video exclude any other work; `chat_during_calls` lets chats and one
//!   call mix.
//! - **Agent selection** (an item becomes routable): among the queue's free
//!   agents for the channel who meet the item's current requirements and did
//!   not decline or miss it within `reoffer_delay_secs`: longest idle;
//!   most skilled (highest total proficiency over the required skills, ties to
//!   longest idle); round robin (the next agent index after the last one
//!   chosen, wrapping); least occupied (least busy time, connected or wrapping
//!   up, over the last hour, ties to longest idle).
//! - **Cross-queue fairness** (an agent can take work from several queues).
//!   For each queue the agent serves, the candidate is the first item in line
//!   whose requirements the agent meets on a channel with free capacity. The
//!   candidates of different queues are compared by
//!   `queue.priority + item priority + aging levels accrued so far` (higher
//!   wins), then by first arrival (`arrived_at`, earlier wins), then by
//!   submission order. So queue priority weighs exactly like item priority, and
//!   among equals the consumer who has waited longest overall is served first.
//!   When an item becomes routable, the agent chosen for it by its queue's
//!   strategy takes its own best candidate by this rule (which is that item
//!   unless an older one in another queue also fits), and the engine repeats
//!   until the item is offered or no free agent fits it.
//! - **Work-conserving.** Routing runs eagerly at the end of every command and
//!   after every timer: no routable agent with free capacity is left idle
//!   while an item it could take waits.
//! - **Offers.** Decline and timeout return the item to its place in line
//!   (same rank and enqueue time); the agent is skipped for that item for the
//!   queue's `reoffer_delay_secs`. `max_no_answer` consecutive timeouts make the
//!   agent NOT_RESPONDING until they set themselves ready. An accept or decline
//!   resets the count.
//! - **Limits.** `max_waiting` is checked on arrival (offered items do not
//!   count) and applies `when_full` (reject by default); `max_wait_secs`
//!   counts from the enqueue in the current queue and applies
//!   `when_max_wait` (disconnect by default); `when_no_agents` applies on
//!   arrival when no signed-in member with capacity on the channel meets any
//!   step, and to the items waiting on a channel as soon as the queue's last
//!   signed-in member with capacity on it leaves (signs out, goes offline, is
//!   removed or reconfigured) or the queue gets the rule while nobody is
//!   there. An overflow keeps the first arrival, joins the target's line at
//!   the time of overflow and goes through the target's limits, at most
//!   eight hops. Supervisor moves bypass the target's limits.
//! - **Estimated wait.** `position × handle time / capacity`, where capacity
//!   is the channel capacity of signed-in members who meet the item's current
//!   requirements and handle time is a moving average of talk plus wrap-up
//!   for the queue and channel (three minutes until the first completion).
//!   Zero when someone could take the item now.
//!
//! # Layout
//!
//! Sized for half a million waiting items (see `benches/engine.rs`); what a
//! routing decision reads is kept together, and nothing grows by copying
//! everything at once.
//!
//! - A queue's line is split into requirement classes, each a B-tree in line
//!   order. The queue keeps a short array of class summaries (channel,
//!   requirements, first item, how many items have cooldowns), and a line
//!   key carries what the cross-queue rule compares, so finding an agent's
//!   next item reads one array per queue and no item at all.
//! - Free agents sit in per-queue, per-channel sets ordered by idle time.
//!   They are re-indexed once per routing pass, so an agent who frees up and
//!   takes the next item within one command never enters them.
//! - Items live in a slab of fixed pages, ids map to them through 256 small
//!   hash maps, and timers are a B-tree from which the timers of waiting and
//!   offered items are removed as soon as they stop applying: growth is a
//!   page, a shard or a node at a time, with no stale timers piling up.

mod agent;
mod command;
mod effect;
mod estimate;
mod idmap;
mod item;
mod ix;
mod lifecycle;
mod queue;
mod routing;
mod staff;
mod timer;
mod view;

#[cfg(test)]
mod tests;

pub use command::{Command, NewWorkItem};
pub use effect::{Effect, LimitReason, OfferEndReason};
pub(crate) use idmap::ShardedMap;
pub use view::{
    AgentView, ItemStatus, ItemView, ItemWait, QueueSnapshot, QueueStaff, WaitEstimate,
};

use crate::domain::{AgentId, Channel, QueueId, SkillName, Timestamp, WorkItemId};
use crate::error::{Error, Result};
use agent::AgentSlot;
use idmap::IdMap;
use item::Item;
use ix::{AgentIx, ClassIx, Dense, ItemIx, QueueIx, SkillIx, Slab};
use queue::{Class, QueueSlot};
use timer::Timers;

/// All routing state. One task owns it; see the module documentation for the rules.
#[derive(Debug, Default)]
pub struct Engine {
    /// Queue slots by dense index.
    queues: Vec<QueueSlot>,
    /// Queue ids to dense indices.
    queue_ix: IdMap<QueueId, QueueIx>,
    /// Agent slots by dense index (removed agents keep theirs).
    agents: Vec<AgentSlot>,
    /// Agent ids to dense indices.
    agent_ix: IdMap<AgentId, AgentIx>,
    /// Skill names to dense indices.
    skills: IdMap<SkillName, SkillIx>,
    /// Open work items.
    items: Slab<ItemIx, Item>,
    /// Work item ids to slab indices.
    item_ix: ShardedMap<WorkItemId, ItemIx>,
    /// Requirement classes with waiting items.
    classes: Slab<ClassIx, Class>,
    /// Offer timeouts, step changes, maximum waits, cooldowns and wrap-ups.
    timers: Timers,
    /// Counter for item admissions, epochs and wrap-ups.
    next_seq: u64,
    /// Items that became routable during the current command.
    pending_items: Vec<ItemIx>,
    /// Agents that gained capacity or readiness during the current command.
    pending_agents: Vec<AgentIx>,
    /// Agents whose free-set entries may be out of date.
    reindex: Vec<AgentIx>,
    /// Queues and channels whose last signed-in member with capacity left
    /// during the current command, for `when_no_agents`.
    unstaffed: Vec<(QueueIx, Channel)>,
}

impl Engine {
    /// An engine with no configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a command at `now` and returns its effects; on error nothing
    /// changed. Call [`Engine::tick`] first when [`Engine::next_deadline`] has
    /// passed, so the command meets the state at `now`.
    pub fn apply(&mut self, command: Command, now: Timestamp) -> Result<Vec<Effect>> {
        let mut effects = Vec::new();
        self.apply_into(command, now, &mut effects)?;
        Ok(effects)
    }

    /// Like [`Engine::apply`], appending effects to a caller's buffer (which
    /// is left as it was on error).
    pub fn apply_into(
        &mut self,
        command: Command,
        now: Timestamp,
        out: &mut Vec<Effect>,
    ) -> Result<()> {
        let start = out.len();
        let result = self.dispatch(command, now, out);
        if result.is_err() {
            out.truncate(start);
            return result;
        }
        self.drain(now, out);
        result
    }

    /// Fires every timer due at or before `now` and routes what they free.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.tick_into(now, &mut effects);
        effects
    }

    /// Like [`Engine::tick`], appending effects to a caller's buffer. Every
    /// due timer fires before routing runs, so routing sees the state at `now`
    /// (a step change and a wrap-up end at the same instant both count).
    pub fn tick_into(&mut self, now: Timestamp, out: &mut Vec<Effect>) {
        while let Some(timer) = self.timers.pop_due(now) {
            self.fire(timer, now, out);
        }
        self.drain(now, out);
    }

    /// When the shell should next call [`Engine::tick`]; may be early (a
    /// cancelled timer), never late.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.timers.next_deadline()
    }

    /// Sends a command to its handler.
    fn dispatch(&mut self, command: Command, now: Timestamp, out: &mut Vec<Effect>) -> Result<()> {
        match command {
            Command::UpsertQueue(queue) => self.upsert_queue(queue, now),
            Command::RemoveQueue(id) => self.remove_queue(&id),
            Command::UpsertAgent(agent) => self.upsert_agent(agent, now, out),
            Command::RemoveAgent(id) => self.remove_agent(&id, now, out),
            Command::Submit(item) => self.submit(item, now, out),
            Command::Requeue(item) => self.requeue(item, now, out),
            Command::Restore { item, agent, since } => self.restore(item, &agent, since, now, out),
            Command::Abandon(id) => self.abandon(&id, now, out),
            Command::Accept { item, agent } => self.accept(&item, &agent, now, out),
            Command::Decline { item, agent } => self.decline(&item, &agent, now, out),
            Command::End(id) => self.end(&id, now, out),
            Command::FinishWrapUp(id) => self.finish_wrap_up(&id, now, out),
            Command::SignIn { agent, ready } => self.sign_in(&agent, ready, now, out),
            Command::SignOut(id) => self.sign_out(&id, now, out),
            Command::SetReady(id) => self.set_ready(&id, now, out),
            Command::SetNotReady { agent, reason } => self.set_not_ready(&agent, reason, now, out),
            Command::SetPresence { agent, presence } => {
                self.set_presence(&agent, presence, now, out)
            }
            Command::ForceState { agent, state } => self.force_state(&agent, state, now, out),
            Command::Move { item, queue } => self.move_item(&item, &queue, now, out),
            Command::Reprioritise { item, priority } => {
                self.reprioritise(&item, priority, now, out)
            }
            Command::Cancel(id) => self.cancel(&id, now, out),
            Command::Assign { item, agent } => self.assign(&item, &agent, now, out),
            Command::Tick => {
                self.tick_into(now, out);
                Ok(())
            }
        }
    }

    /// A configured queue's index.
    fn queue_of(&self, id: &QueueId) -> Result<QueueIx> {
        match self.queue_ix.get(id) {
            Some(ix) if self.queues[ix.get()].config.is_some() => Ok(*ix),
            _ => Err(Error::not_found("queue", id)),
        }
    }

    /// A configured agent's index.
    fn agent_of(&self, id: &AgentId) -> Result<AgentIx> {
        match self.agent_ix.get(id) {
            Some(ix) if self.agents[ix.get()].config.is_some() => Ok(*ix),
            _ => Err(Error::not_found("agent", id)),
        }
    }

    /// An open item's index.
    fn item_of(&self, id: &WorkItemId) -> Result<ItemIx> {
        self.item_ix
            .get(id)
            .copied()
            .ok_or_else(|| Error::not_found("work item", id))
    }

    /// A skill's index, interning it on first sight.
    fn intern_skill(&mut self, name: &SkillName) -> SkillIx {
        if let Some(ix) = self.skills.get(name) {
            return *ix;
        }
        let ix = ix::next_index(self.skills.len());
        self.skills.insert(name.clone(), ix);
        ix
    }

    /// A queue's index, creating an unconfigured slot on first sight.
    fn intern_queue(&mut self, id: &QueueId) -> QueueIx {
        if let Some(ix) = self.queue_ix.get(id) {
            return *ix;
        }
        let ix = ix::next_index(self.queues.len());
        self.queues.push(QueueSlot::new(id.clone()));
        self.queue_ix.insert(id.clone(), ix);
        ix
    }

    /// A fresh number for admissions, epochs and wrap-ups.
    fn bump(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}
