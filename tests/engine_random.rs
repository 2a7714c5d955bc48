//! Randomized simulation of the routing engine in virtual time, checking its
//! invariants after every event against a shadow model built only from the
//! raw configuration, the commands sent and the effects returned.
//!
//! `SWITCHBOARD_SEED` replays a run; `SWITCHBOARD_SIM_EVENTS` sets its length
//! (default 1,000,000). The seed is printed first, so a failure shows it.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use switchboard::domain::{
    Agent, AgentId, AgentKind, Channel, ChannelCapacity, Disposition, InteractionId, Presence,
    Queue, QueueId, QueueLimits, RoutingState, RoutingStep, SelectionStrategy, SkillName,
    SkillRequirement, Timestamp, WorkItemId,
};
use switchboard::engine::{Command, Effect, Engine, ItemStatus, NewWorkItem, OfferEndReason};

/// Queues in the model.
const QUEUES: usize = 4;
/// Agents in the model.
const AGENTS: usize = 10;
/// Most open items the simulation keeps.
const MAX_ITEMS: usize = 40;
/// Skills besides languages.
const SKILLS: [&str; 4] = ["billing", "sales", "tech", "vip"];
/// Languages items may have.
const LANGUAGES: [&str; 2] = ["en", "fr"];

/// The shadow's view of where an item is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Where {
    Waiting,
    Offered { agent: usize, assigned: bool },
    Connected { agent: usize },
}

/// The shadow's copy of an item.
#[derive(Debug, Clone)]
struct ShadowItem {
    queue: usize,
    channel: Channel,
    language: Option<String>,
    priority: i32,
    extra: Vec<SkillRequirement>,
    enqueued_at: Timestamp,
    at: Where,
}

/// What an agent said about taking work, as the shadow tracks it.
#[derive(Debug, Clone, PartialEq)]
enum Intent {
    Ready,
    /// Not ready, for this reason.
    NotReady(String),
    NotResponding,
}

/// The shadow's copy of an agent.
#[derive(Debug, Clone)]
struct ShadowAgent {
    config: Option<Agent>,
    signed_in: bool,
    intent: Intent,
    presence: Presence,
    missed: u32,
    wrap_ups: [u32; 3],
}

impl ShadowAgent {
    /// An agent before configuration or after removal: signed out and offline.
    fn absent() -> Self {
        ShadowAgent {
            config: None,
            signed_in: false,
            intent: Intent::Ready,
            presence: Presence::Offline,
            missed: 0,
            wrap_ups: [0; 3],
        }
    }
}

/// The whole simulation: engine, shadow and randomness.
struct Sim {
    seed: u64,
    rng: SmallRng,
    engine: Engine,
    now: Timestamp,
    queues: Vec<Queue>,
    agents: Vec<ShadowAgent>,
    items: BTreeMap<u128, ShadowItem>,
    /// Items submitted in the current command, not yet queued or refused.
    arriving: HashMap<u128, ShadowItem>,
    cooldowns: HashMap<(u128, usize), Timestamp>,
    next_item: u128,
    events: u64,
    /// The last command or tick and its effects, shown when an invariant breaks.
    last: String,
}

fn queue_id(q: usize) -> QueueId {
    QueueId::new(format!("q{q}"))
}

fn agent_id(a: usize) -> AgentId {
    AgentId::new(format!("a{a}"))
}

fn item_id(n: u128) -> WorkItemId {
    WorkItemId(uuid::Uuid::from_u128(n))
}

fn key_of(id: &WorkItemId) -> u128 {
    id.0.as_u128()
}

fn agent_index(id: &AgentId) -> usize {
    id.as_str()[1..]
        .parse()
        .expect("simulated agent ids are a<number>")
}

fn queue_index(id: &QueueId) -> usize {
    id.as_str()[1..]
        .parse()
        .expect("simulated queue ids are q<number>")
}

/// Agent `a` holds skill at or above level.
fn holds(agent: &Agent, skill: &str, level: u8) -> bool {
    for (name, held) in &agent.skills {
        if name.as_str() == skill && *held >= level {
            return true;
        }
    }
    false
}

/// The step an item is in, from the raw configuration.
fn step_of(queue: &Queue, item: &ShadowItem, now: Timestamp) -> usize {
    let waited = now.millis() - item.enqueued_at.millis();
    let mut end = 0i64;
    for (i, step) in queue.steps.iter().enumerate() {
        match step.duration_secs {
            Some(secs) => {
                end += i64::from(secs) * 1000;
                if waited < end {
                    return i;
                }
            }
            None => return i,
        }
    }
    queue.steps.len() - 1
}

/// Whether an agent meets an item's requirements in a step, from the raw configuration.
fn fits(agent: &Agent, queue: &Queue, step: usize, item: &ShadowItem) -> bool {
    let rule = &queue.steps[step];
    for requirement in rule.requirements.iter().chain(item.extra.iter()) {
        if !holds(agent, requirement.skill.as_str(), requirement.min_level) {
            return false;
        }
    }
    if rule.match_language
        && let Some(language) = &item.language
        && !holds(agent, &format!("lang:{language}"), 1)
    {
        return false;
    }
    true
}

/// Whether an agent may take another item on a channel, given its load.
fn has_room(agent: &Agent, load: [u32; 3], channel: Channel) -> bool {
    let [voice, chat, video] = load;
    let mixing = agent.chat_during_calls;
    let blocked = match channel {
        Channel::Voice => video > 0 || (chat > 0 && !mixing),
        Channel::Video => voice > 0 || (chat > 0 && !mixing),
        Channel::Chat => voice + video > 0 && !mixing,
    };
    !blocked && load[channel.index()] < agent.capacity.get(channel)
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut sim = Sim {
            seed,
            rng: SmallRng::seed_from_u64(seed),
            engine: Engine::new(),
            now: Timestamp::from_secs(1_000),
            queues: Vec::new(),
            agents: Vec::new(),
            items: BTreeMap::new(),
            arriving: HashMap::new(),
            cooldowns: HashMap::new(),
            next_item: 1,
            events: 0,
            last: String::new(),
        };
        for q in 0..QUEUES {
            let queue = sim.random_queue(q);
            sim.queues.push(queue.clone());
            sim.run(Command::UpsertQueue(queue));
        }
        for a in 0..AGENTS {
            sim.agents.push(ShadowAgent::absent());
            let agent = sim.random_agent(a);
            sim.run(Command::UpsertAgent(agent));
            sim.run(Command::SetPresence {
                agent: agent_id(a),
                presence: Presence::Available,
            });
            sim.run(Command::SignIn {
                agent: agent_id(a),
                ready: true,
            });
        }
        sim
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "invariant broken after event {} at {:?} (replay with SWITCHBOARD_SEED={}): {what}\nlast: {}",
            self.events, self.now, self.seed, self.last
        );
    }

    fn random_requirements(&mut self, most: usize) -> Vec<SkillRequirement> {
        let mut requirements = Vec::new();
        let count = self.rng.random_range(0..=most);
        for skill in SKILLS.iter().take(count) {
            if self.rng.random_bool(0.5) {
                requirements.push(SkillRequirement {
                    skill: SkillName::new(skill),
                    min_level: self.rng.random_range(1..=4),
                });
            }
        }
        requirements
    }

    fn random_disposition(&mut self, q: usize, full: bool) -> Option<Disposition> {
        match self.rng.random_range(0..5) {
            0 => None,
            1 => Some(Disposition::Overflow {
                queue: queue_id((q + 1 + self.rng.random_range(0..QUEUES - 1)) % QUEUES),
            }),
            2 => Some(Disposition::Voicemail),
            3 if full => Some(Disposition::Reject),
            _ => Some(Disposition::Callback),
        }
    }

    fn random_queue(&mut self, q: usize) -> Queue {
        let mut queue = Queue::new(queue_id(q));
        let steps = self.rng.random_range(1..=3);
        queue.steps.clear();
        for i in 0..steps {
            let last = i + 1 == steps;
            queue.steps.push(RoutingStep {
                requirements: self.random_requirements(2 - i.min(2)),
                match_language: self.rng.random_bool(0.3),
                duration_secs: (!last).then(|| self.rng.random_range(3..30)),
            });
        }
        queue.strategy = match self.rng.random_range(0..4) {
            0 => SelectionStrategy::LongestIdle,
            1 => SelectionStrategy::MostSkilled,
            2 => SelectionStrategy::RoundRobin,
            _ => SelectionStrategy::LeastOccupied,
        };
        queue.priority = self.rng.random_range(-1..=2);
        queue.priority_aging_secs = self
            .rng
            .random_bool(0.4)
            .then(|| self.rng.random_range(5..60));
        queue.offer_timeout_secs = self.rng.random_range(3..15);
        queue.wrap_up_secs = self.rng.random_range(0..10);
        queue.max_no_answer = self.rng.random_range(1..4);
        queue.reoffer_delay_secs = self.rng.random_range(0..20);
        let max_waiting = self
            .rng
            .random_bool(0.5)
            .then(|| self.rng.random_range(3..12));
        let max_wait_secs = self
            .rng
            .random_bool(0.5)
            .then(|| self.rng.random_range(20..200));
        queue.limits = QueueLimits {
            max_waiting,
            when_full: self.random_disposition(q, true),
            max_wait_secs,
            when_max_wait: self.random_disposition(q, false),
            when_no_agents: if self.rng.random_bool(0.2) {
                Some(Disposition::Voicemail)
            } else {
                None
            },
        };
        queue
    }

    fn random_agent(&mut self, a: usize) -> Agent {
        let mut skills = Vec::new();
        for skill in SKILLS {
            if self.rng.random_bool(0.6) {
                skills.push((SkillName::new(skill), self.rng.random_range(1..=5)));
            }
        }
        for language in LANGUAGES {
            if self.rng.random_bool(0.6) {
                skills.push((SkillName::new(format!("lang:{language}")), 1));
            }
        }
        let mut queues = Vec::new();
        for q in 0..QUEUES {
            if self.rng.random_bool(0.5) {
                queues.push(queue_id(q));
            }
        }
        Agent {
            id: agent_id(a),
            display_name: format!("agent {a}"),
            uc_address: format!("sip:a{a}@contoso.example"),
            kind: if a % 5 == 4 {
                AgentKind::Informal
            } else {
                AgentKind::Formal
            },
            skills,
            capacity: ChannelCapacity {
                voice: 1,
                chat: 1 + (a % 3) as u32,
                video: 1,
            },
            chat_during_calls: a % 4 == 1,
            queues,
        }
    }

    /// Applies a command, mirrors it into the shadow, then fires due timers.
    fn run(&mut self, command: Command) {
        let before = self.engine.items().count();
        match self.engine.apply(command.clone(), self.now) {
            Ok(effects) => {
                self.absorb(&effects);
                self.mirror_command(&command);
            }
            Err(_) => {
                if self.engine.items().count() != before {
                    self.fail(format!("rejected command {command:?} changed the items"));
                }
                self.arriving.clear();
            }
        }
    }

    /// Moves virtual time forward, firing every deadline at its own time.
    fn advance(&mut self, millis: i64) {
        let target = Timestamp::from_millis(self.now.millis() + millis);
        while let Some(deadline) = self.engine.next_deadline() {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            let effects = self.engine.tick(self.now);
            self.last = format!("tick -> {effects:#?}");
            self.absorb(&effects);
            self.check(&effects, None);
        }
        self.now = target;
    }

    /// Mirrors what a successful command says about agents and queues.
    fn mirror_command(&mut self, command: &Command) {
        match command {
            Command::UpsertQueue(queue) => self.queues[queue_index(&queue.id)] = queue.clone(),
            Command::UpsertAgent(agent) => {
                self.agents[agent_index(&agent.id)].config = Some(agent.clone());
            }
            Command::RemoveAgent(id) => self.agents[agent_index(id)] = ShadowAgent::absent(),
            Command::SignIn { agent: id, ready } => {
                let shadow = &mut self.agents[agent_index(id)];
                if !shadow.signed_in {
                    shadow.signed_in = true;
                    shadow.intent = if *ready {
                        Intent::Ready
                    } else {
                        Intent::NotReady("signed_in".to_owned())
                    };
                    shadow.missed = 0;
                }
            }
            Command::SignOut(id)
            | Command::ForceState {
                agent: id,
                state: RoutingState::LoggedOut,
            } => {
                let shadow = &mut self.agents[agent_index(id)];
                shadow.signed_in = false;
                shadow.intent = Intent::Ready;
                shadow.missed = 0;
            }
            Command::SetReady(id) => {
                let shadow = &mut self.agents[agent_index(id)];
                shadow.intent = Intent::Ready;
                shadow.missed = 0;
            }
            Command::SetNotReady { agent, reason } => {
                self.agents[agent_index(agent)].intent = Intent::NotReady(reason.clone());
            }
            Command::SetPresence { agent, presence } => {
                self.agents[agent_index(agent)].presence = *presence;
            }
            Command::ForceState { agent, state } => {
                let shadow = &mut self.agents[agent_index(agent)];
                shadow.signed_in = true;
                shadow.missed = 0;
                shadow.intent = match state {
                    RoutingState::NotReady { reason } => Intent::NotReady(reason.clone()),
                    RoutingState::NotResponding => Intent::NotResponding,
                    _ => Intent::Ready,
                };
            }
            Command::Reprioritise { item, priority } => {
                if let Some(shadow) = self.items.get_mut(&key_of(item)) {
                    shadow.priority = *priority;
                }
            }
            _ => {}
        }
    }

    /// Updates the shadow from effects, checking transitions are legal.
    fn absorb(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Queued { item, queue, .. } => {
                    let key = key_of(item);
                    let q = queue_index(queue);
                    if let Some(mut arriving) = self.arriving.remove(&key) {
                        arriving.queue = q;
                        self.items.insert(key, arriving);
                        continue;
                    }
                    let Some(shadow) = self.items.get_mut(&key) else {
                        self.fail(format!("unknown item {item} queued"));
                    };
                    shadow.queue = q;
                    shadow.enqueued_at = self.now;
                    shadow.at = Where::Waiting;
                    self.cooldowns.retain(|(cooled, _), _| *cooled != key);
                }
                Effect::Overflowed { item, to, .. } | Effect::Moved { item, to, .. } => {
                    let key = key_of(item);
                    let q = queue_index(to);
                    if let Some(arriving) = self.arriving.get_mut(&key) {
                        arriving.queue = q;
                        arriving.enqueued_at = self.now;
                        continue;
                    }
                    // A max-wait overflow re-admits an item that was waiting.
                    if let Some(shadow) = self.items.remove(&key) {
                        self.cooldowns.retain(|(cooled, _), _| *cooled != key);
                        let mut moving = shadow;
                        moving.queue = q;
                        moving.enqueued_at = self.now;
                        moving.at = Where::Waiting;
                        self.arriving.insert(key, moving);
                    }
                }
                Effect::Offered {
                    item,
                    agent,
                    assigned,
                    ..
                } => {
                    let a = agent_index(agent);
                    let Some(shadow) = self.items.get_mut(&key_of(item)) else {
                        self.fail(format!("unknown item {item} offered"));
                    };
                    let at = shadow.at;
                    if at != Where::Waiting {
                        self.fail(format!("item {item} offered while {at:?}"));
                    }
                    shadow.at = Where::Offered {
                        agent: a,
                        assigned: *assigned,
                    };
                }
                Effect::OfferEnded {
                    item,
                    agent,
                    reason,
                } => {
                    let a = agent_index(agent);
                    let key = key_of(item);
                    let Some(shadow) = self.items.get_mut(&key) else {
                        self.fail(format!("unknown item {item} offer ended"));
                    };
                    let at = shadow.at;
                    if !matches!(at, Where::Offered { agent, .. } if agent == a) {
                        self.fail(format!("offer of {item} to {agent} ended while {at:?}"));
                    }
                    shadow.at = Where::Waiting;
                    let queue = &self.queues[shadow.queue];
                    let delay = i64::from(queue.reoffer_delay_secs) * 1000;
                    let max_no_answer = queue.max_no_answer;
                    let agent_shadow = &mut self.agents[a];
                    match reason {
                        OfferEndReason::Declined => agent_shadow.missed = 0,
                        OfferEndReason::TimedOut => {
                            agent_shadow.missed += 1;
                            if agent_shadow.missed >= max_no_answer {
                                agent_shadow.intent = Intent::NotResponding;
                            }
                        }
                        OfferEndReason::Rescinded => {}
                    }
                    if *reason != OfferEndReason::Rescinded && delay > 0 {
                        self.cooldowns
                            .insert((key, a), Timestamp::from_millis(self.now.millis() + delay));
                    }
                }
                Effect::Answered { item, agent, .. } => {
                    let a = agent_index(agent);
                    let Some(shadow) = self.items.get_mut(&key_of(item)) else {
                        self.fail(format!("unknown item {item} answered"));
                    };
                    let at = shadow.at;
                    if !matches!(at, Where::Offered { agent, .. } if agent == a) {
                        self.fail(format!("{item} answered by {agent} while {at:?}"));
                    }
                    shadow.at = Where::Connected { agent: a };
                    self.agents[a].missed = 0;
                }
                Effect::Completed {
                    item,
                    agent,
                    channel,
                    wrap_up_until,
                    ..
                } => {
                    let a = agent_index(agent);
                    let removed = self.items.remove(&key_of(item));
                    if !matches!(removed, Some(ShadowItem { at: Where::Connected { agent }, .. }) if agent == a)
                    {
                        self.fail(format!("{item} completed by {agent} while {removed:?}"));
                    }
                    if wrap_up_until.is_some() {
                        self.agents[a].wrap_ups[channel.index()] += 1;
                    }
                }
                Effect::WrapUpEnded { agent, channel, .. } => {
                    let count = &mut self.agents[agent_index(agent)].wrap_ups[channel.index()];
                    if *count == 0 {
                        self.fail(format!("{agent} ended a wrap-up it did not have"));
                    }
                    *count -= 1;
                }
                Effect::Abandoned { item, .. }
                | Effect::Cancelled { item, .. }
                | Effect::Disposed { item, .. }
                | Effect::Rejected { item, .. } => {
                    let key = key_of(item);
                    let known =
                        self.items.remove(&key).is_some() || self.arriving.remove(&key).is_some();
                    if !known {
                        self.fail(format!("unknown item {item} left"));
                    }
                    self.cooldowns.retain(|(cooled, _), _| *cooled != key);
                }
                Effect::AgentState { .. } | Effect::Reprioritised { .. } => {}
            }
        }
        if !self.arriving.is_empty() {
            self.fail(format!(
                "items neither queued nor refused: {:?}",
                self.arriving.keys()
            ));
        }
    }

    fn load(&self, a: usize) -> [u32; 3] {
        let mut load = self.agents[a].wrap_ups;
        for item in self.items.values() {
            match item.at {
                Where::Offered { agent, .. } | Where::Connected { agent } if agent == a => {
                    load[item.channel.index()] += 1;
                }
                _ => {}
            }
        }
        load
    }

    /// Whether agent `a` is signed in (formal) or present (informal).
    fn logged_in(&self, a: usize) -> bool {
        let shadow = &self.agents[a];
        match &shadow.config {
            None => false,
            Some(config) if config.kind == AgentKind::Formal => shadow.signed_in,
            Some(_) => shadow.presence != Presence::Offline,
        }
    }

    /// The routing state the model expects of agent `a`: what it is doing
    /// first, then what it (or a supervisor) said.
    fn expected_state(&self, a: usize) -> RoutingState {
        if !self.logged_in(a) {
            return RoutingState::LoggedOut;
        }
        let mut offered = false;
        for item in self.items.values() {
            match item.at {
                Where::Connected { agent } if agent == a => return RoutingState::Busy,
                Where::Offered { agent, .. } if agent == a => offered = true,
                _ => {}
            }
        }
        let shadow = &self.agents[a];
        if offered {
            return RoutingState::Reserved;
        }
        if shadow.wrap_ups.iter().sum::<u32>() > 0 {
            return RoutingState::WrapUp;
        }
        match &shadow.intent {
            Intent::Ready => RoutingState::Ready,
            Intent::NotReady(reason) => RoutingState::NotReady {
                reason: reason.clone(),
            },
            Intent::NotResponding => RoutingState::NotResponding,
        }
    }

    /// Per queue and channel, members signed in (present, if informal) with capacity on it.
    fn staffed(&self) -> [[u32; 3]; QUEUES] {
        let mut staffed = [[0; 3]; QUEUES];
        for (a, shadow) in self.agents.iter().enumerate() {
            let Some(config) = &shadow.config else {
                continue;
            };
            if !self.logged_in(a) {
                continue;
            }
            for queue in &config.queues {
                for channel in Channel::ALL {
                    if config.capacity.get(channel) > 0 {
                        staffed[queue_index(queue)][channel.index()] += 1;
                    }
                }
            }
        }
        staffed
    }

    /// `when_no_agents` after a command: once the last member signed in with
    /// capacity on a channel has left a queue with the rule (or the queue was
    /// just configured with it while nobody is there), nothing waits there on
    /// that channel.
    fn check_no_one_waits_for_no_one(&self, before: &[[u32; 3]; QUEUES], command: &Command) {
        let after = self.staffed();
        for (q, queue) in self.queues.iter().enumerate() {
            if queue.limits.when_no_agents.is_none() {
                continue;
            }
            let reconfigured =
                matches!(command, Command::UpsertQueue(changed) if changed.id == queue.id);
            for channel in Channel::ALL {
                let c = channel.index();
                if after[q][c] > 0 || (before[q][c] == 0 && !reconfigured) {
                    continue;
                }
                for (key, item) in &self.items {
                    if item.at == Where::Waiting && item.queue == q && item.channel == channel {
                        self.fail(format!(
                            "{} waits in q{q} on {channel:?} with nobody signed in to take it",
                            item_id(*key)
                        ));
                    }
                }
            }
        }
    }

    fn routable(&self, a: usize) -> bool {
        let shadow = &self.agents[a];
        let Some(config) = &shadow.config else {
            return false;
        };
        let ready = shadow.intent == Intent::Ready && shadow.presence == Presence::Available;
        ready && (config.kind == AgentKind::Informal || shadow.signed_in)
    }

    fn cooling(&self, key: u128, a: usize) -> bool {
        self.cooldowns
            .get(&(key, a))
            .is_some_and(|until| *until > self.now)
    }

    /// Whether agent `a` could be offered item `key` by routing now.
    fn could_take(&self, a: usize, key: u128, item: &ShadowItem, load: [u32; 3]) -> bool {
        let Some(agent) = &self.agents[a].config else {
            return false;
        };
        let queue = &self.queues[item.queue];
        agent.queues.contains(&queue.id)
            && has_room(agent, load, item.channel)
            && fits(agent, queue, step_of(queue, item, self.now), item)
            && !self.cooling(key, a)
    }

    /// Checks every invariant; `waiting_before` holds the items waiting (with
    /// their step) before the event, for the FIFO check.
    fn check(&self, effects: &[Effect], waiting_before: Option<&HashMap<u128, usize>>) {
        // Items: none lost or duplicated, states agree.
        let mut seen = 0;
        for view in self.engine.items() {
            seen += 1;
            let Some(shadow) = self.items.get(&key_of(&view.id)) else {
                self.fail(format!("engine holds unknown item {}", view.id));
            };
            let queue = &self.queues[shadow.queue];
            let agrees = match (&view.status, shadow.at) {
                (ItemStatus::Waiting { step }, Where::Waiting) => {
                    *step == step_of(queue, shadow, self.now)
                }
                (
                    ItemStatus::Offered {
                        agent, assigned, ..
                    },
                    Where::Offered {
                        agent: a,
                        assigned: b,
                    },
                ) => agent_index(agent) == a && *assigned == b,
                (ItemStatus::Connected { agent, .. }, Where::Connected { agent: a }) => {
                    agent_index(agent) == a
                }
                _ => false,
            };
            if !agrees || view.queue != queue.id {
                self.fail(format!(
                    "item {} is {view:?} in the engine, {shadow:?} in the model",
                    view.id
                ));
            }
        }
        if seen != self.items.len() {
            self.fail(format!(
                "engine holds {seen} items, the model {}",
                self.items.len()
            ));
        }
        // Agents: capacity never exceeded, load agrees.
        let mut loads = [[0; 3]; AGENTS];
        for (a, load) in loads.iter_mut().enumerate() {
            *load = self.load(a);
            let Some(config) = &self.agents[a].config else {
                continue;
            };
            let [voice, chat, video] = *load;
            let over = voice > config.capacity.voice
                || chat > config.capacity.chat
                || video > config.capacity.video
                || (voice > 0 && video > 0)
                || (voice + video > 0 && chat > 0 && !config.chat_during_calls);
            if over {
                self.fail(format!("agent a{a} over capacity: {load:?}"));
            }
            let view = self
                .engine
                .agent(&agent_id(a))
                .expect("configured agents have views");
            if view.load != *load {
                self.fail(format!(
                    "agent a{a} load {:?} in the engine, {load:?} in the model",
                    view.load
                ));
            }
            let expected = self.expected_state(a);
            if view.state != expected {
                self.fail(format!(
                    "agent a{a} is {:?} in the engine, {expected:?} in the model",
                    view.state
                ));
            }
        }
        // Offers made by routing fit the item's current step, in FIFO order.
        for effect in effects {
            let Effect::Offered {
                item,
                agent,
                assigned: false,
                ..
            } = effect
            else {
                continue;
            };
            let key = key_of(item);
            let a = agent_index(agent);
            let Some(offered) = self.items.get(&key) else {
                continue;
            };
            let Some(config) = &self.agents[a].config else {
                self.fail(format!("{item} offered to removed agent {agent}"));
            };
            let queue = &self.queues[offered.queue];
            let step = step_of(queue, offered, self.now);
            if !config.queues.contains(&queue.id) || !fits(config, queue, step, offered) {
                self.fail(format!(
                    "{item} offered to {agent}, who does not fit step {step}"
                ));
            }
            if self.cooling(key, a) {
                self.fail(format!(
                    "{item} offered again to {agent} within the re-offer delay"
                ));
            }
            let Some(before) = waiting_before else {
                continue;
            };
            for (other_key, other) in &self.items {
                let same_line = other.at == Where::Waiting
                    && other.queue == offered.queue
                    && other.channel == offered.channel
                    && other.priority == offered.priority
                    && other.language == offered.language
                    && other.extra == offered.extra
                    && other.enqueued_at < offered.enqueued_at;
                if !same_line || self.cooling(*other_key, a) {
                    continue;
                }
                let other_step = step_of(queue, other, self.now);
                if before.get(other_key) == Some(&other_step) && other_step == step {
                    self.fail(format!(
                        "{item} offered to {agent} ahead of older {}",
                        item_id(*other_key)
                    ));
                }
            }
        }
        // Work-conserving: no routable agent idles while an item it could take waits.
        for (key, item) in &self.items {
            if item.at != Where::Waiting {
                continue;
            }
            for (a, load) in loads.iter().enumerate() {
                if self.routable(a) && self.could_take(a, *key, item, *load) {
                    self.fail(format!(
                        "agent a{a} idles while {} waits: {item:?}",
                        item_id(*key)
                    ));
                }
            }
        }
    }

    fn pick_item(&mut self, wanted: impl Fn(&Where) -> bool) -> Option<(u128, Where)> {
        let candidates: Vec<(u128, Where)> = self
            .items
            .iter()
            .filter(|(_, item)| wanted(&item.at))
            .map(|(key, item)| (*key, item.at))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.random_range(0..candidates.len())])
    }

    fn submit(&mut self) {
        if self.items.len() >= MAX_ITEMS {
            return;
        }
        let key = self.next_item;
        self.next_item += 1;
        let channel = Channel::ALL[self.rng.random_range(0..3)];
        let language = self
            .rng
            .random_bool(0.6)
            .then(|| LANGUAGES[self.rng.random_range(0..LANGUAGES.len())].to_owned());
        let extra = if self.rng.random_bool(0.2) {
            self.random_requirements(1)
        } else {
            Vec::new()
        };
        let q = self.rng.random_range(0..QUEUES);
        let priority = self.rng.random_range(0..3);
        self.arriving.insert(
            key,
            ShadowItem {
                queue: q,
                channel,
                language: language.clone(),
                priority,
                extra: extra.clone(),
                enqueued_at: self.now,
                at: Where::Waiting,
            },
        );
        self.run(Command::Submit(NewWorkItem {
            id: item_id(key),
            interaction: InteractionId::new(format!("i{key}")),
            channel,
            queue: queue_id(q),
            language,
            priority,
            skills: extra,
            arrived_at: self.now,
            enqueued_at: self.now,
            transfer: false,
        }));
    }

    fn step(&mut self) {
        let before: HashMap<u128, usize> = self
            .items
            .iter()
            .filter(|(_, item)| item.at == Where::Waiting)
            .map(|(key, item)| (*key, step_of(&self.queues[item.queue], item, self.now)))
            .collect();
        let a = self.rng.random_range(0..AGENTS);
        let roll = self.rng.random_range(0..1000);
        let command = match roll {
            0..200 => {
                let millis = self.rng.random_range(1..3000);
                self.advance(millis);
                None
            }
            200..400 => {
                self.submit();
                None
            }
            400..560 => self
                .pick_item(|at| matches!(at, Where::Offered { .. }))
                .map(|(key, at)| {
                    let Where::Offered { agent, .. } = at else {
                        unreachable!("picked offered")
                    };
                    if roll < 520 {
                        Command::Accept {
                            item: item_id(key),
                            agent: agent_id(agent),
                        }
                    } else {
                        Command::Decline {
                            item: item_id(key),
                            agent: agent_id(agent),
                        }
                    }
                }),
            560..660 => self
                .pick_item(|at| matches!(at, Where::Connected { .. }))
                .map(|(key, _)| Command::End(item_id(key))),
            660..710 => self
                .pick_item(|at| !matches!(at, Where::Connected { .. }))
                .map(|(key, _)| Command::Abandon(item_id(key))),
            710..770 => {
                let presence = if self.rng.random_bool(0.7) {
                    Presence::Available
                } else {
                    [Presence::Busy, Presence::Away, Presence::Offline][self.rng.random_range(0..3)]
                };
                Some(Command::SetPresence {
                    agent: agent_id(a),
                    presence,
                })
            }
            770..800 => Some(Command::SignIn {
                agent: agent_id(a),
                ready: self.rng.random_bool(0.7),
            }),
            800..815 => Some(Command::SignOut(agent_id(a))),
            815..845 => Some(Command::SetReady(agent_id(a))),
            845..860 => Some(Command::SetNotReady {
                agent: agent_id(a),
                reason: "break".to_owned(),
            }),
            860..880 => Some(Command::FinishWrapUp(agent_id(a))),
            880..890 => {
                let q = self.rng.random_range(0..QUEUES);
                Some(Command::UpsertQueue(self.random_queue(q)))
            }
            890..900 => Some(Command::UpsertAgent(self.random_agent(a))),
            900..903 => Some(Command::RemoveAgent(agent_id(a))),
            903..920 => self
                .pick_item(|at| !matches!(at, Where::Connected { .. }))
                .map(|(key, _)| {
                    let q = self.rng.random_range(0..QUEUES);
                    Command::Move {
                        item: item_id(key),
                        queue: queue_id(q),
                    }
                }),
            920..935 => self
                .pick_item(|at| !matches!(at, Where::Connected { .. }))
                .map(|(key, _)| Command::Reprioritise {
                    item: item_id(key),
                    priority: self.rng.random_range(0..3),
                }),
            935..945 => self
                .pick_item(|at| !matches!(at, Where::Connected { .. }))
                .map(|(key, _)| Command::Cancel(item_id(key))),
            945..970 => self
                .pick_item(|at| !matches!(at, Where::Connected { .. }))
                .map(|(key, _)| Command::Assign {
                    item: item_id(key),
                    agent: agent_id(a),
                }),
            _ => {
                let state = match self.rng.random_range(0..4) {
                    0 => RoutingState::LoggedOut,
                    1 => RoutingState::Ready,
                    2 => RoutingState::NotResponding,
                    _ => RoutingState::NotReady {
                        reason: "coaching".to_owned(),
                    },
                };
                Some(Command::ForceState {
                    agent: agent_id(a),
                    state,
                })
            }
        };
        if let Some(command) = command {
            if matches!(command, Command::UpsertAgent(_)) && self.agents[a].config.is_none() {
                // A re-added agent starts offline and signed out, like a new one.
                self.agents[a].presence = Presence::Offline;
            }
            let staffed = self.staffed();
            let result = self.engine.apply(command.clone(), self.now);
            self.last = format!("{command:?} -> {result:#?}");
            match result {
                Ok(effects) => {
                    self.absorb(&effects);
                    self.mirror_command(&command);
                    self.check(&effects, Some(&before));
                    self.check_no_one_waits_for_no_one(&staffed, &command);
                }
                Err(_) => self.arriving.clear(),
            }
        } else {
            self.check(&[], None);
        }
        self.events += 1;
        if self.events.is_multiple_of(POSITION_CHECK_EVERY) {
            self.check_positions();
        }
    }

    /// The sweep of every waiting item's place and wait (for the bridge's
    /// position updates) gives each waiting item, once, what asking for it
    /// alone gives.
    fn check_positions(&self) {
        let mut swept = HashMap::new();
        self.engine.each_waiting(|id, wait| {
            if swept.insert(id, wait).is_some() {
                self.fail(format!("the sweep gives item {id} twice"));
            }
        });
        let mut waiting = 0;
        for view in self.engine.items() {
            if !matches!(view.status, ItemStatus::Waiting { .. }) {
                continue;
            }
            waiting += 1;
            let alone = self.engine.item_wait(&view.id);
            if swept.get(&view.id) != alone.as_ref() {
                self.fail(format!(
                    "item {}: the sweep gives {:?}, alone {alone:?}",
                    view.id,
                    swept.get(&view.id)
                ));
            }
        }
        if swept.len() != waiting {
            self.fail(format!(
                "the sweep gives {} items, {waiting} wait",
                swept.len()
            ));
        }
    }
}

/// How often, in events, the position sweep is compared with single items.
const POSITION_CHECK_EVERY: u64 = 997;

#[test]
fn random_simulation_keeps_every_invariant() {
    let seed = std::env::var("SWITCHBOARD_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let events: u64 = std::env::var("SWITCHBOARD_SIM_EVENTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000);
    println!("SWITCHBOARD_SEED={seed}");
    let mut sim = Sim::new(seed);
    while sim.events < events {
        sim.step();
    }
    println!(
        "{} events, {} open items at the end",
        sim.events,
        sim.items.len()
    );
}
