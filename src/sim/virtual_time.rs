//! The virtual-time driver: runs a scenario against the routing engine
//! itself, in simulated time, with no clock, socket or database. Events —
//! arrivals, answers, ends, abandons, shifts — sit in a time-ordered heap;
//! the engine's own timers (offer timeouts, step changes, wrap-ups) fire
//! through [`Engine::next_deadline`]. Each replication is deterministic in
//! its seed.
//!
//! Arrivals stop at the end of the run; the centre then drains, up to a day
//! more, so that every counted item gets its outcome and waits are not
//! biased towards the short ones.

use super::report::{Report, Tally};
use super::scenario::{Habits, Sampler, Scenario, Traffic};
use crate::domain::{
    AgentId, Channel, InteractionId, Presence, QueueId, RoutingState, Timestamp, WorkItemId,
};
use crate::engine::{Command, Effect, Engine, NewWorkItem};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// How far a replication is, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// The replication running, from 1.
    pub replication: u32,
    /// Replications in all.
    pub replications: u32,
    /// Simulated seconds so far.
    pub simulated_secs: f64,
    /// Simulated seconds of arrivals.
    pub duration_secs: f64,
    /// Arrivals so far in this replication.
    pub arrivals: u64,
    /// Items waiting or alerting now.
    pub open: usize,
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The engine refused the scenario's configuration.
    #[error("{what}: {reason}")]
    Config {
        /// The entry refused.
        what: String,
        /// The engine's reason.
        reason: String,
    },
}

/// Longest drain after the last arrival, milliseconds (one day).
const DRAIN_MS: i64 = 24 * 3600 * 1000;

/// Something the driver does at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// The next arrival of a stream.
    Arrival(usize),
    /// A consumer's patience runs out.
    Abandon(u64),
    /// An agent answers an offer: accepts, or declines.
    Answer {
        item: u64,
        agent: usize,
        accept: bool,
    },
    /// The bridge ends a connected item.
    End(u64),
    /// An agent's shift starts.
    ShiftStart(usize),
    /// An agent's shift ends.
    ShiftEnd(usize),
}

/// An event with its time and a sequence number, so that events at the same
/// millisecond keep the order they were scheduled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scheduled {
    at: i64,
    seq: u64,
    event: Event,
}

// The heap orders by (at, seq), which is unique, so the event never decides.
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One open item as the driver sees it.
#[derive(Debug, Clone, Copy)]
struct Open {
    stream: usize,
    /// Counted in the tallies (arrived after the warm-up).
    counted: bool,
    /// Connected to an agent, so patience no longer applies.
    answered: bool,
}

/// A stream with its samplers and the key it counts under.
struct Stream<'a> {
    traffic: &'a Traffic,
    key: (QueueId, Channel),
    threshold_secs: f64,
    handle: Sampler,
    patience: Option<Sampler>,
}

/// An agent's time accounting for occupancy.
struct Clock {
    state: RoutingState,
    since: i64,
    /// The keys of the queues this agent serves, for occupancy.
    keys: Vec<(QueueId, Channel)>,
    habits: Habits,
}

/// One replication's state.
struct Replication<'a> {
    engine: Engine,
    rng: SmallRng,
    heap: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    streams: Vec<Stream<'a>>,
    agent_ids: Vec<AgentId>,
    agent_ix: HashMap<AgentId, usize>,
    clocks: Vec<Clock>,
    open: HashMap<u64, Open>,
    counted_open: usize,
    next_item: u64,
    tallies: Tallies,
    warmup_ms: i64,
    end_ms: i64,
    arrivals: u64,
    effects: Vec<Effect>,
}

/// Runs every replication of a scenario in virtual time, on as many threads
/// as there are cores (replications are independent and each is
/// deterministic in its seed, so the report does not depend on the threads).
pub fn run(scenario: &Scenario, progress: &(dyn Fn(&Progress) + Sync)) -> Result<Report, SimError> {
    let replications = scenario.run.replications;
    let seeds = scenario.run.seeds();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(seeds.len());
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<Tallies, SimError>>> = Vec::new();
    results.resize_with(seeds.len(), || None);
    let done = Mutex::new(results);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let ix = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&seed) = seeds.get(ix) else { break };
                    let outcome = Replication::new(scenario, seed).map(|mut sim| {
                        let number = u32::try_from(ix + 1).unwrap_or(u32::MAX);
                        sim.run(number, replications, progress);
                        sim.tallies
                    });
                    // A poisoned lock means another worker panicked; the scope re-raises it.
                    if let Ok(mut done) = done.lock() {
                        done[ix] = Some(outcome);
                    }
                }
            });
        }
    });
    let mut tallies = Vec::with_capacity(seeds.len());
    for outcome in done.into_inner().unwrap_or_default().into_iter().flatten() {
        tallies.push(outcome?);
    }
    Ok(Report::new("virtual", scenario, seeds, &tallies))
}

/// One replication's counts by queue and channel.
type Tallies = BTreeMap<(QueueId, Channel), Tally>;

/// A work item id from the driver's counter, so runs are reproducible.
fn item_id(n: u64) -> WorkItemId {
    WorkItemId(uuid::Uuid::from_u128(u128::from(n)))
}

/// Seconds to whole milliseconds.
fn millis(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

impl<'a> Replication<'a> {
    /// Configures an engine with the scenario's centre and schedules the
    /// first arrivals and the shifts.
    fn new(scenario: &'a Scenario, seed: u64) -> Result<Self, SimError> {
        let mut engine = Engine::new();
        let start = Timestamp::from_millis(0);
        let refused = |what: String| {
            move |error: crate::error::Error| SimError::Config {
                what,
                reason: error.to_string(),
            }
        };
        for queue in &scenario.centre.queues {
            let id = queue.0.id.to_string();
            engine
                .apply(Command::UpsertQueue(queue.0.clone()), start)
                .map_err(refused(format!("queue {id}")))?;
        }
        let mut streams = Vec::new();
        for traffic in &scenario.traffic {
            // Checked on reading: every stream's entry point leads to a queue.
            let Some(queue) = scenario.queue_for(traffic) else {
                continue;
            };
            streams.push(Stream {
                traffic,
                key: (queue.id.clone(), traffic.channel),
                threshold_secs: f64::from(queue.sl_thresholds.get(traffic.channel)),
                handle: traffic.handle.sampler(),
                patience: traffic.patience.map(|patience| patience.sampler()),
            });
        }
        let mut sim = Replication {
            engine,
            rng: SmallRng::seed_from_u64(seed),
            heap: BinaryHeap::new(),
            seq: 0,
            streams,
            agent_ids: Vec::new(),
            agent_ix: HashMap::new(),
            clocks: Vec::new(),
            open: HashMap::new(),
            counted_open: 0,
            next_item: 0,
            tallies: BTreeMap::new(),
            warmup_ms: i64::from(scenario.run.warmup_secs) * 1000,
            end_ms: i64::from(scenario.duration_secs()) * 1000,
            arrivals: 0,
            effects: Vec::new(),
        };
        for stream in &sim.streams {
            sim.tallies.entry(stream.key.clone()).or_default();
        }
        for (ix, agent) in scenario.agents().into_iter().enumerate() {
            let id = agent.agent.id.clone();
            let mut keys = Vec::new();
            for stream in &sim.streams {
                if agent.agent.queues.contains(&stream.key.0) && !keys.contains(&stream.key) {
                    keys.push(stream.key.clone());
                }
            }
            sim.engine
                .apply(Command::UpsertAgent(agent.agent), start)
                .map_err(refused(format!("agent {id}")))?;
            sim.engine
                .apply(
                    Command::SetPresence {
                        agent: id.clone(),
                        presence: Presence::Available,
                    },
                    start,
                )
                .map_err(refused(format!("agent {id}")))?;
            let (on, off) = match agent.shift {
                Some(shift) => (
                    i64::from(shift.start_secs) * 1000,
                    Some(i64::from(shift.end_secs) * 1000),
                ),
                None => (0, None),
            };
            sim.schedule(on, Event::ShiftStart(ix));
            if let Some(off) = off {
                sim.schedule(off, Event::ShiftEnd(ix));
            }
            sim.agent_ix.insert(id.clone(), ix);
            sim.agent_ids.push(id);
            sim.clocks.push(Clock {
                state: RoutingState::LoggedOut,
                since: 0,
                keys,
                habits: agent.habits,
            });
        }
        for stream in 0..sim.streams.len() {
            if let Some(at) = sim.next_arrival(stream, 0.0) {
                sim.schedule(at, Event::Arrival(stream));
            }
        }
        Ok(sim)
    }

    fn schedule(&mut self, at: i64, event: Event) {
        self.seq += 1;
        self.heap.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    /// The next arrival of a stream after `secs`, milliseconds; `None` past the run's end.
    fn next_arrival(&mut self, stream: usize, secs: f64) -> Option<i64> {
        let end = self.end_ms as f64 / 1000.0;
        self.streams[stream]
            .traffic
            .next_arrival(&mut self.rng, secs, end)
            .map(millis)
    }

    /// Runs until the drain ends.
    fn run(&mut self, replication: u32, replications: u32, progress: &(dyn Fn(&Progress) + Sync)) {
        let mut last_report = Instant::now();
        let mut steps: u32 = 0;
        let mut now = 0;
        loop {
            let next_event = self.heap.peek().map(|Reverse(scheduled)| scheduled.at);
            let deadline = self.engine.next_deadline().map(Timestamp::millis);
            let arrivals_over = now >= self.end_ms;
            if arrivals_over && self.counted_open == 0 {
                break;
            }
            let tick_first = match (next_event, deadline) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(at), Some(deadline)) => deadline <= at,
            };
            if tick_first {
                now = now.max(deadline.unwrap_or(now));
                if now > self.end_ms + DRAIN_MS {
                    break;
                }
                let mut effects = std::mem::take(&mut self.effects);
                self.engine
                    .tick_into(Timestamp::from_millis(now), &mut effects);
                self.handle_effects(now, &mut effects);
                self.effects = effects;
            } else {
                let Some(Reverse(scheduled)) = self.heap.pop() else {
                    break;
                };
                now = now.max(scheduled.at);
                if now > self.end_ms + DRAIN_MS {
                    break;
                }
                self.handle_event(now, scheduled.event);
            }
            steps = steps.wrapping_add(1);
            if steps.is_multiple_of(4096) && last_report.elapsed().as_millis() >= 200 {
                last_report = Instant::now();
                progress(&Progress {
                    replication,
                    replications,
                    simulated_secs: now as f64 / 1000.0,
                    duration_secs: self.end_ms as f64 / 1000.0,
                    arrivals: self.arrivals,
                    open: self.open.len(),
                });
            }
        }
        self.close_clocks();
    }

    /// Applies a command made by an event; a command overtaken by events
    /// (an answer to an offer that timed out) changes nothing and is dropped.
    fn apply(&mut self, now: i64, command: Command) {
        let mut effects = std::mem::take(&mut self.effects);
        if self
            .engine
            .apply_into(command, Timestamp::from_millis(now), &mut effects)
            .is_ok()
        {
            self.handle_effects(now, &mut effects);
        }
        self.effects = effects;
    }

    fn handle_event(&mut self, now: i64, event: Event) {
        match event {
            Event::Arrival(stream) => self.arrive(now, stream),
            Event::Abandon(item) => {
                if self.open.get(&item).is_some_and(|open| !open.answered) {
                    self.apply(now, Command::Abandon(item_id(item)));
                }
            }
            Event::Answer {
                item,
                agent,
                accept,
            } => {
                let agent = self.agent_ids[agent].clone();
                let item = item_id(item);
                let command = if accept {
                    Command::Accept { item, agent }
                } else {
                    Command::Decline { item, agent }
                };
                self.apply(now, command);
            }
            Event::End(item) => self.apply(now, Command::End(item_id(item))),
            Event::ShiftStart(agent) => {
                let agent = self.agent_ids[agent].clone();
                self.apply(now, Command::SignIn { agent, ready: true });
            }
            Event::ShiftEnd(agent) => {
                let agent = self.agent_ids[agent].clone();
                self.apply(now, Command::SignOut(agent));
            }
        }
    }

    /// Submits one arrival and schedules its patience and the next arrival.
    fn arrive(&mut self, now: i64, stream: usize) {
        self.next_item += 1;
        let n = self.next_item;
        self.arrivals += 1;
        let counted = now >= self.warmup_ms;
        let (queue, channel) = self.streams[stream].key.clone();
        let at = Timestamp::from_millis(now);
        self.open.insert(
            n,
            Open {
                stream,
                counted,
                answered: false,
            },
        );
        if counted {
            self.counted_open += 1;
            self.tally(stream).offered += 1;
        }
        if let Some(patience) = self.streams[stream].patience {
            let wait = patience.sample(&mut self.rng);
            self.schedule(now + millis(wait), Event::Abandon(n));
        }
        let item = NewWorkItem {
            id: item_id(n),
            interaction: InteractionId::new(format!("sim-{n}")),
            channel,
            queue,
            language: self.streams[stream].traffic.language.clone(),
            priority: 0,
            skills: Vec::new(),
            arrived_at: at,
            enqueued_at: at,
            transfer: false,
        };
        self.apply(now, Command::Submit(item));
        if let Some(next) = self.next_arrival(stream, now as f64 / 1000.0) {
            self.schedule(next, Event::Arrival(stream));
        }
    }

    fn tally(&mut self, stream: usize) -> &mut Tally {
        let key = self.streams[stream].key.clone();
        self.tallies.entry(key).or_default()
    }

    /// Forgets an item that left routing, counting it if it was counted
    /// and nothing else did.
    fn close(&mut self, item: u64) -> Option<Open> {
        let open = self.open.remove(&item)?;
        if open.counted && !open.answered {
            self.counted_open -= 1;
        }
        Some(open)
    }

    fn handle_effects(&mut self, now: i64, effects: &mut Vec<Effect>) {
        for effect in effects.drain(..) {
            match effect {
                Effect::Offered { item, agent, .. } => {
                    let Some(&agent) = self.agent_ix.get(&agent) else {
                        continue;
                    };
                    let habits = self.clocks[agent].habits;
                    let draw = self.rng.random::<f64>();
                    if draw < habits.no_answer_probability {
                        continue;
                    }
                    let accept = draw >= habits.no_answer_probability + habits.decline_probability;
                    let at = now + millis(habits.answer_delay_secs);
                    let item = item.0.as_u128() as u64;
                    self.schedule(
                        at,
                        Event::Answer {
                            item,
                            agent,
                            accept,
                        },
                    );
                }
                Effect::Answered { item, waited, .. } => {
                    let n = item.0.as_u128() as u64;
                    let Some(open) = self.open.get_mut(&n) else {
                        continue;
                    };
                    open.answered = true;
                    let (stream, counted) = (open.stream, open.counted);
                    if counted {
                        self.counted_open -= 1;
                        let threshold = self.streams[stream].threshold_secs;
                        self.tally(stream)
                            .resolve(true, waited.as_secs_f64(), threshold);
                    }
                    let talk = self.streams[stream].handle.sample(&mut self.rng);
                    self.schedule(now + millis(talk), Event::End(n));
                }
                Effect::Abandoned { item, waited, .. } => {
                    let n = item.0.as_u128() as u64;
                    if let Some(open) = self.close(n)
                        && open.counted
                    {
                        let threshold = self.streams[open.stream].threshold_secs;
                        self.tally(open.stream)
                            .resolve(false, waited.as_secs_f64(), threshold);
                    }
                }
                Effect::Completed {
                    item,
                    handle_time,
                    wrap_up_until,
                    ..
                } => {
                    let n = item.0.as_u128() as u64;
                    if let Some(open) = self.close(n)
                        && open.counted
                    {
                        let wrap_up = wrap_up_until.map_or(0, |until| until.millis() - now);
                        let tally = self.tally(open.stream);
                        tally.handled += 1;
                        tally.handle_secs += handle_time.as_secs_f64() + wrap_up as f64 / 1000.0;
                    }
                }
                Effect::Rejected { item, .. }
                | Effect::Disposed { item, .. }
                | Effect::Cancelled { item, .. } => {
                    let n = item.0.as_u128() as u64;
                    if let Some(open) = self.close(n)
                        && open.counted
                    {
                        self.tally(open.stream).other += 1;
                    }
                }
                Effect::AgentState { agent, state, at } => {
                    if let Some(&ix) = self.agent_ix.get(&agent) {
                        self.clock_state(ix, state, at.millis());
                    }
                }
                Effect::Queued { .. }
                | Effect::OfferEnded { .. }
                | Effect::Overflowed { .. }
                | Effect::WrapUpEnded { .. }
                | Effect::Moved { .. }
                | Effect::Reprioritised { .. } => {}
            }
        }
    }

    /// Books the time an agent spent in its previous state, within the
    /// measured window, to the queues it serves.
    fn clock_state(&mut self, agent: usize, state: RoutingState, at: i64) {
        let clock = &mut self.clocks[agent];
        let from = clock.since.max(self.warmup_ms);
        let to = at.min(self.end_ms);
        let previous = std::mem::replace(&mut clock.state, state);
        clock.since = at;
        if to <= from {
            return;
        }
        let secs = (to - from) as f64 / 1000.0;
        let (busy, staffed) = match previous {
            RoutingState::Busy | RoutingState::WrapUp => (true, true),
            RoutingState::Ready | RoutingState::Reserved => (false, true),
            _ => (false, false),
        };
        if !staffed {
            return;
        }
        for key in clock.keys.clone() {
            let tally = self.tallies.entry(key).or_default();
            tally.staffed_secs += secs;
            if busy {
                tally.busy_secs += secs;
            }
        }
    }

    /// Books every agent's current state up to the end of the window.
    fn close_clocks(&mut self) {
        for agent in 0..self.clocks.len() {
            let state = self.clocks[agent].state.clone();
            self.clock_state(agent, state, self.end_ms);
        }
    }
}
