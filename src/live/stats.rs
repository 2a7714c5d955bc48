//! Real-time statistics for supervisors: today's and the last 15 minutes'
//! figures per queue and channel, and each agent's state, work and
//! occupancy, fed by the engine's effects like the metrics are.
//!
//! The router owns one [`Board`]. Every `stats_interval` (500 ms by
//! default, see [`super::LiveConfig`]) it recomputes
//! the figures, compares them with the ones it last published, and
//! broadcasts the changed entries as one [`StatsFrame`]: watchers thus get at
//! most two updates a second by default, however busy the centre. Broadcasting never
//! blocks the router; a watcher that falls [`WATCH_BACKLOG`] frames behind
//! skips the frames it missed and is sent a fresh snapshot instead.
//!
//! "Today" is the UTC day, like the interval report's day rows. Offered
//! counts an item in the queue it arrives in (an arrival, or a transfer
//! segment); answered and abandoned count it in the queue where it ends,
//! with its wait from its first arrival, like the metrics.

use crate::domain::{
    AgentId, Channel, ChannelThresholds, Presence, QueueId, RoutingState, Timestamp, WorkItemId,
};
use crate::engine::{AgentView, Effect, Engine, QueueStaff};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Frames a watcher may fall behind before it skips to a fresh snapshot.
pub const WATCH_BACKLOG: usize = 16;

/// Every this many publications all agents are recomputed, so that
/// occupancy moves on a wallboard even while an agent's state holds.
const AGENT_REFRESH_EVERY: u32 = 10;

/// Minutes in the recent window.
const RECENT_MINUTES: usize = 15;

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// One queue and channel's real-time figures.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    /// The queue.
    pub queue: QueueId,
    /// The channel.
    pub channel: Channel,
    /// Items waiting now (not offered).
    pub waiting: u32,
    /// The longest current wait, from first arrival.
    pub longest_wait: Option<Duration>,
    /// Expected wait for a new arrival; `None` when nobody could take it.
    pub estimated_wait: Option<Duration>,
    /// The queue's staff on the channel, by routing state.
    pub staff: QueueStaff,
    /// Items that arrived in the queue today.
    pub offered_today: u64,
    /// Items answered in the queue today.
    pub answered_today: u64,
    /// Items abandoned in the queue today.
    pub abandoned_today: u64,
    /// Default service level today; `None` before any outcome.
    pub service_level_today: Option<f64>,
    /// Default service level over the last 15 minutes.
    pub service_level_15m: Option<f64>,
}

/// One agent's real-time figures.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStats {
    /// The agent.
    pub agent: AgentId,
    /// Routing state.
    pub state: RoutingState,
    /// When that state began (the server's start for agents unchanged since).
    pub since: Timestamp,
    /// UC presence.
    pub presence: Presence,
    /// Items offered to, connected to, or in wrap-up with the agent.
    pub current: Vec<WorkItemId>,
    /// Conversations ended today.
    pub handled_today: u64,
    /// Busy and wrap-up time over time signed in and not NOT_READY today;
    /// `None` before any such time.
    pub occupancy: Option<f64>,
}

/// A set of figures: a full snapshot, or the entries that changed.
#[derive(Debug, Clone, Default)]
pub struct StatsFrame {
    /// Publication number; a snapshot carries the number of the last
    /// publication it includes.
    pub seq: u64,
    /// Queue figures.
    pub queues: Vec<Arc<QueueStats>>,
    /// Agent figures.
    pub agents: Vec<Arc<AgentStats>>,
}

/// Outcome counts behind a service level.
#[derive(Debug, Clone, Copy, Default)]
struct Outcomes {
    answered: u64,
    answered_within: u64,
    abandoned: u64,
    abandoned_within: u64,
}

impl Outcomes {
    fn add(&mut self, other: &Outcomes) {
        self.answered += other.answered;
        self.answered_within += other.answered_within;
        self.abandoned += other.abandoned;
        self.abandoned_within += other.abandoned_within;
    }

    /// Answered within T over answered plus abandoned after T.
    fn service_level(&self) -> Option<f64> {
        let counted = self.answered + self.abandoned - self.abandoned_within;
        (counted > 0).then(|| self.answered_within as f64 / counted as f64)
    }
}

/// A queue and channel's counters.
#[derive(Debug, Clone, Default)]
struct Tally {
    offered_today: u64,
    today: Outcomes,
    /// Outcomes per minute, indexed by minute modulo the window, with the
    /// minute each slot holds.
    recent: [(i64, Outcomes); RECENT_MINUTES],
}

impl Tally {
    fn recent_slot(&mut self, now: Timestamp) -> &mut Outcomes {
        let minute = now.0.div_euclid(MINUTE_MS);
        let slot = &mut self.recent[minute.rem_euclid(RECENT_MINUTES as i64) as usize];
        if slot.0 != minute {
            *slot = (minute, Outcomes::default());
        }
        &mut slot.1
    }

    fn recent(&self, now: Timestamp) -> Outcomes {
        let minute = now.0.div_euclid(MINUTE_MS);
        let mut total = Outcomes::default();
        for (at, outcomes) in &self.recent {
            if minute - at < RECENT_MINUTES as i64 {
                total.add(outcomes);
            }
        }
        total
    }
}

/// How a routing state counts towards occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occupancy {
    /// Busy or in wrap-up: counts above and below the line.
    Occupied,
    /// Ready or alerting: counts below the line.
    Open,
    /// Signed out, not ready or not responding: left out.
    Excluded,
}

impl Occupancy {
    fn of(state: &RoutingState) -> Self {
        match state {
            RoutingState::Busy | RoutingState::WrapUp => Occupancy::Occupied,
            RoutingState::Ready | RoutingState::Reserved => Occupancy::Open,
            RoutingState::LoggedOut
            | RoutingState::NotReady { .. }
            | RoutingState::NotResponding => Occupancy::Excluded,
        }
    }
}

/// An agent's counters.
#[derive(Debug, Clone)]
struct AgentTally {
    state: RoutingState,
    since: Timestamp,
    handled_today: u64,
    /// Occupied and open time today, up to `since`, in ms.
    occupied_ms: i64,
    open_ms: i64,
    /// Items in wrap-up.
    wrapping: Vec<WorkItemId>,
}

impl AgentTally {
    fn new(since: Timestamp) -> Self {
        Self {
            state: RoutingState::LoggedOut,
            since,
            handled_today: 0,
            occupied_ms: 0,
            open_ms: 0,
            wrapping: Vec::new(),
        }
    }

    /// Time in the current state since `max(since, day_start)`, by kind.
    fn running(&self, now: Timestamp, day_start: i64) -> (i64, i64) {
        let elapsed = (now.0 - self.since.0.max(day_start)).max(0);
        match Occupancy::of(&self.state) {
            Occupancy::Occupied => (elapsed, elapsed),
            Occupancy::Open => (0, elapsed),
            Occupancy::Excluded => (0, 0),
        }
    }

    fn occupancy(&self, now: Timestamp, day_start: i64) -> Option<f64> {
        let (occupied, open) = self.running(now, day_start);
        let occupied = self.occupied_ms + occupied;
        let open = self.open_ms + open;
        (open > 0).then(|| occupied as f64 / open as f64)
    }
}

/// The router's statistics: counters fed by effects, and the figures last
/// published to watchers.
pub(super) struct Board {
    /// When the server started: the `since` of agents unchanged since.
    started: Timestamp,
    /// Each queue's thresholds; also the list of queues.
    thresholds: HashMap<QueueId, ChannelThresholds>,
    /// The UTC day the counters are for.
    day: i64,
    queues: HashMap<(QueueId, Channel), Tally>,
    agents: HashMap<AgentId, AgentTally>,
    /// Agents whose figures may have changed since the last publication.
    dirty_agents: HashSet<AgentId>,
    /// Set when changes went unrecorded (nobody watching): recompute everyone.
    all_agents_dirty: bool,
    publications: u32,
    seq: u64,
    published_queues: HashMap<(QueueId, Channel), Arc<QueueStats>>,
    published_agents: HashMap<AgentId, Arc<AgentStats>>,
    updates: broadcast::Sender<Arc<StatsFrame>>,
}

impl Board {
    /// A board whose changes go to `updates`.
    pub(super) fn new(now: Timestamp, updates: broadcast::Sender<Arc<StatsFrame>>) -> Self {
        Self {
            started: now,
            thresholds: HashMap::new(),
            day: now.0.div_euclid(DAY_MS),
            queues: HashMap::new(),
            agents: HashMap::new(),
            dirty_agents: HashSet::new(),
            all_agents_dirty: true,
            publications: 0,
            seq: 0,
            published_queues: HashMap::new(),
            published_agents: HashMap::new(),
            updates,
        }
    }

    /// Every configured queue.
    pub(super) fn queues(&self) -> impl Iterator<Item = &QueueId> {
        self.thresholds.keys()
    }

    /// Takes a queue's thresholds into account.
    pub(super) fn set_queue(&mut self, queue: &QueueId, thresholds: ChannelThresholds) {
        self.thresholds.insert(queue.clone(), thresholds);
    }

    /// Forgets a removed queue.
    pub(super) fn remove_queue(&mut self, queue: &QueueId) {
        self.thresholds.remove(queue);
        for channel in Channel::ALL {
            let key = (queue.clone(), channel);
            self.queues.remove(&key);
            self.published_queues.remove(&key);
        }
    }

    /// Forgets a removed agent.
    pub(super) fn remove_agent(&mut self, agent: &AgentId) {
        self.agents.remove(agent);
        self.dirty_agents.remove(agent);
        self.published_agents.remove(agent);
    }

    /// Notes that an agent's figures may have changed outside an effect
    /// (presence, configuration).
    pub(super) fn touch_agent(&mut self, agent: &AgentId) {
        self.dirty_agents.insert(agent.clone());
    }

    /// Whether `waited` is within the queue's threshold on the channel.
    pub(super) fn within(&self, queue: &QueueId, channel: Channel, waited: Duration) -> bool {
        let threshold = self
            .thresholds
            .get(queue)
            .copied()
            .unwrap_or_default()
            .get(channel);
        waited <= Duration::from_secs(u64::from(threshold))
    }

    /// Starts a new day's counters when the UTC day has changed.
    fn roll(&mut self, now: Timestamp) {
        let day = now.0.div_euclid(DAY_MS);
        if day == self.day {
            return;
        }
        self.day = day;
        for tally in self.queues.values_mut() {
            tally.offered_today = 0;
            tally.today = Outcomes::default();
        }
        for tally in self.agents.values_mut() {
            tally.handled_today = 0;
            tally.occupied_ms = 0;
            tally.open_ms = 0;
        }
    }

    fn tally(&mut self, queue: &QueueId, channel: Channel, now: Timestamp) -> &mut Tally {
        self.roll(now);
        self.queues.entry((queue.clone(), channel)).or_default()
    }

    fn agent_tally(&mut self, agent: &AgentId, now: Timestamp) -> &mut AgentTally {
        self.roll(now);
        self.dirty_agents.insert(agent.clone());
        let started = self.started;
        self.agents
            .entry(agent.clone())
            .or_insert_with(|| AgentTally::new(started))
    }

    /// An item arrived in a queue (a first arrival or a transfer segment).
    pub(super) fn arrival(&mut self, queue: &QueueId, channel: Channel, now: Timestamp) {
        self.tally(queue, channel, now).offered_today += 1;
    }

    /// Counts an item answered (or abandoned) after `waited`.
    fn outcome(
        &mut self,
        queue: &QueueId,
        channel: Channel,
        waited: Duration,
        now: Timestamp,
        answered: bool,
    ) {
        let within = u64::from(self.within(queue, channel, waited));
        let add = if answered {
            Outcomes {
                answered: 1,
                answered_within: within,
                ..Outcomes::default()
            }
        } else {
            Outcomes {
                abandoned: 1,
                abandoned_within: within,
                ..Outcomes::default()
            }
        };
        let tally = self.tally(queue, channel, now);
        tally.today.add(&add);
        tally.recent_slot(now).add(&add);
    }

    /// Updates the counters an effect changes.
    pub(super) fn observe(&mut self, effect: &Effect, now: Timestamp) {
        match effect {
            Effect::Answered {
                agent,
                queue,
                channel,
                waited,
                ..
            } => {
                self.outcome(queue, *channel, *waited, now, true);
                self.agent_tally(agent, now);
            }
            Effect::Abandoned {
                queue,
                channel,
                waited,
                ..
            } => self.outcome(queue, *channel, *waited, now, false),
            Effect::Offered { agent, .. } | Effect::OfferEnded { agent, .. } => {
                self.agent_tally(agent, now);
            }
            Effect::Completed {
                item,
                agent,
                wrap_up_until,
                ..
            } => {
                let tally = self.agent_tally(agent, now);
                tally.handled_today += 1;
                if wrap_up_until.is_some() {
                    tally.wrapping.push(*item);
                }
            }
            Effect::WrapUpEnded { item, agent, .. } => {
                self.agent_tally(agent, now)
                    .wrapping
                    .retain(|wrapping| wrapping != item);
            }
            Effect::AgentState { agent, state, at } => {
                let day_start = self.day * DAY_MS;
                let tally = self.agent_tally(agent, now);
                let (occupied, open) = tally.running(*at, day_start);
                tally.occupied_ms += occupied;
                tally.open_ms += open;
                tally.state = state.clone();
                tally.since = *at;
            }
            Effect::Queued { .. }
            | Effect::Overflowed { .. }
            | Effect::Rejected { .. }
            | Effect::Disposed { .. }
            | Effect::Cancelled { .. }
            | Effect::Moved { .. }
            | Effect::Reprioritised { .. } => {}
        }
    }

    fn queue_stats(
        &self,
        engine: &Engine,
        queue: &QueueId,
        channel: Channel,
        now: Timestamp,
    ) -> Option<QueueStats> {
        let snapshot = engine.queue_snapshot(queue, channel, now).ok()?;
        let staff = engine.queue_staff(queue, channel).ok()?;
        let tally = self.queues.get(&(queue.clone(), channel));
        let today = tally.map(|tally| tally.today).unwrap_or_default();
        let recent = tally.map(|tally| tally.recent(now)).unwrap_or_default();
        Some(QueueStats {
            queue: queue.clone(),
            channel,
            waiting: snapshot.waiting,
            longest_wait: snapshot.oldest_wait,
            estimated_wait: snapshot.estimated_wait,
            staff,
            offered_today: tally.map_or(0, |tally| tally.offered_today),
            answered_today: today.answered,
            abandoned_today: today.abandoned,
            service_level_today: today.service_level(),
            service_level_15m: recent.service_level(),
        })
    }

    fn agent_stats(&self, view: AgentView, now: Timestamp) -> AgentStats {
        let tally = self.agents.get(&view.id);
        let mut current = view.offers;
        current.extend(view.connected);
        if let Some(tally) = tally {
            current.extend(tally.wrapping.iter().copied());
        }
        let day_start = self.day * DAY_MS;
        AgentStats {
            agent: view.id,
            state: view.state,
            since: tally.map_or(self.started, |tally| tally.since),
            presence: view.presence,
            current,
            handled_today: tally.map_or(0, |tally| tally.handled_today),
            occupancy: tally.and_then(|tally| tally.occupancy(now, day_start)),
        }
    }

    /// Recomputes the figures and broadcasts those that changed. Unless
    /// `force`d, does nothing while nobody watches but remember that every
    /// agent must be recomputed next time.
    pub(super) fn publish(&mut self, engine: &Engine, now: Timestamp, force: bool) {
        self.roll(now);
        if !force && self.updates.receiver_count() == 0 {
            self.all_agents_dirty = true;
            self.dirty_agents.clear();
            return;
        }
        self.publications = self.publications.wrapping_add(1);
        if self.publications.is_multiple_of(AGENT_REFRESH_EVERY) {
            self.all_agents_dirty = true;
        }
        let mut frame = StatsFrame::default();
        let mut queues: Vec<&QueueId> = self.thresholds.keys().collect();
        queues.sort();
        for queue in queues {
            for channel in Channel::ALL {
                let Some(stats) = self.queue_stats(engine, queue, channel, now) else {
                    continue;
                };
                let key = (queue.clone(), channel);
                if self.published_queues.get(&key).map(Arc::as_ref) != Some(&stats) {
                    frame.queues.push(Arc::new(stats));
                }
            }
        }
        let mut agents = Vec::new();
        if self.all_agents_dirty {
            agents.extend(engine.agents());
        } else {
            for agent in &self.dirty_agents {
                agents.extend(engine.agent(agent));
            }
        }
        self.all_agents_dirty = false;
        self.dirty_agents.clear();
        for view in agents {
            let stats = self.agent_stats(view, now);
            if self.published_agents.get(&stats.agent).map(Arc::as_ref) != Some(&stats) {
                frame.agents.push(Arc::new(stats));
            }
        }
        frame.agents.sort_by(|a, b| a.agent.cmp(&b.agent));
        if frame.queues.is_empty() && frame.agents.is_empty() {
            return;
        }
        for stats in &frame.queues {
            self.published_queues
                .insert((stats.queue.clone(), stats.channel), stats.clone());
        }
        for stats in &frame.agents {
            self.published_agents
                .insert(stats.agent.clone(), stats.clone());
        }
        self.seq += 1;
        frame.seq = self.seq;
        // No receiver is not an error: the figures are kept for the next one.
        let _ = self.updates.send(Arc::new(frame));
    }

    /// Every figure, current as of now: publishes pending changes first, so
    /// that a watcher that subscribed before asking misses nothing.
    pub(super) fn snapshot(&mut self, engine: &Engine, now: Timestamp) -> StatsFrame {
        self.publish(engine, now, true);
        let mut queues: Vec<Arc<QueueStats>> = self.published_queues.values().cloned().collect();
        queues.sort_by(|a, b| (&a.queue, a.channel).cmp(&(&b.queue, b.channel)));
        let mut agents: Vec<Arc<AgentStats>> = self.published_agents.values().cloned().collect();
        agents.sort_by(|a, b| a.agent.cmp(&b.agent));
        StatsFrame {
            seq: self.seq,
            queues,
            agents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(answered: u64, within: u64, abandoned: u64, abandoned_within: u64) -> Outcomes {
        Outcomes {
            answered,
            answered_within: within,
            abandoned,
            abandoned_within,
        }
    }

    #[test]
    fn service_level_leaves_out_abandons_within_the_threshold() {
        // 8 of 10 answered in time; 3 abandoned, 1 of them within T:
        // 8 / (10 + 3 - 1).
        let level = outcomes(10, 8, 3, 1).service_level();
        assert_eq!(level, Some(8.0 / 12.0));
        assert_eq!(outcomes(0, 0, 2, 2).service_level(), None);
    }

    #[test]
    fn the_recent_window_keeps_fifteen_minutes() {
        let mut tally = Tally::default();
        let start = Timestamp(10 * DAY_MS);
        tally.recent_slot(start).add(&outcomes(1, 1, 0, 0));
        let later = Timestamp(start.0 + 10 * MINUTE_MS);
        tally.recent_slot(later).add(&outcomes(1, 0, 0, 0));
        assert_eq!(tally.recent(later).answered, 2);
        let past = Timestamp(start.0 + 15 * MINUTE_MS);
        let recent = tally.recent(past);
        assert_eq!((recent.answered, recent.answered_within), (1, 0));
        // The slot of minute 0 is reused by minute 15 and starts empty.
        tally.recent_slot(past).add(&outcomes(0, 0, 1, 0));
        assert_eq!(tally.recent(past).abandoned, 1);
        assert_eq!(tally.recent(past).answered, 1);
    }

    #[test]
    fn occupancy_counts_busy_over_open_time_and_restarts_each_day() {
        let (updates, _) = broadcast::channel(1);
        let day = 20 * DAY_MS;
        let mut board = Board::new(Timestamp(day), updates);
        let agent = AgentId::new("alice");
        let at = |minutes: i64| Timestamp(day + minutes * MINUTE_MS);
        let state = |board: &mut Board, state: RoutingState, minutes: i64| {
            board.observe(
                &Effect::AgentState {
                    agent: AgentId::new("alice"),
                    state,
                    at: at(minutes),
                },
                at(minutes),
            );
        };
        state(&mut board, RoutingState::Ready, 0);
        state(&mut board, RoutingState::Busy, 10);
        state(
            &mut board,
            RoutingState::NotReady {
                reason: "lunch".into(),
            },
            40,
        );
        // 30 min busy over 40 min open; lunch does not count.
        let tally = &board.agents[&agent];
        assert_eq!(tally.occupancy(at(100), day), Some(0.75));
        // Busy again from minute 100: at 120, 50 of 60.
        state(&mut board, RoutingState::Busy, 100);
        let tally = &board.agents[&agent];
        assert_eq!(tally.occupancy(at(120), day), Some(50.0 / 60.0));
        // Next day at 00:30, still busy: only today's 30 minutes count.
        let tomorrow = Timestamp(day + DAY_MS + 30 * MINUTE_MS);
        board.roll(tomorrow);
        let tally = &board.agents[&agent];
        assert_eq!(tally.occupancy(tomorrow, day + DAY_MS), Some(1.0));
    }
}
