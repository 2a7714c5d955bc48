//! Routing engine benchmark at contact-centre scale: 15,000 agents, 5,000
//! queues, 200 skills, 500,000 waiting items. Measures one routing decision
//! for an arrival while an agent is free and for an agent freeing up while
//! items wait (criterion, plus p50/p99 over individually timed decisions),
//! sustained events per second, and heap bytes per waiting item.

use criterion::{Criterion, criterion_group, criterion_main};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};
use switchboard::domain::{
    Agent, AgentId, AgentKind, Channel, ChannelCapacity, InteractionId, Presence, Queue, QueueId,
    RoutingStep, SkillName, SkillRequirement, Timestamp, WorkItemId,
};
use switchboard::engine::{Command, Effect, Engine, NewWorkItem};

/// Counts live heap bytes, to measure memory per waiting item.
struct Counting;

/// Live heap bytes allocated through [`Counting`].
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const AGENTS: usize = 15_000;
const QUEUES: usize = 5_000;
const SKILLS: usize = 200;
const WAITING: usize = 500_000;
/// Queues (and their one agent each) kept empty for the arrival-while-free decision.
const HOT: usize = 100;
const SAMPLES: usize = 100_000;

/// A tiny deterministic generator, so the setup is the same every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// The benchmark world and the counters that keep ids unique.
struct World {
    engine: Engine,
    now: Timestamp,
    next_item: u128,
    rng: Lcg,
    effects: Vec<Effect>,
}

fn skill(s: usize) -> SkillName {
    SkillName::new(format!("skill{s}"))
}

impl World {
    fn run(&mut self, command: Command) {
        self.effects.clear();
        self.engine
            .apply_into(command, self.now, &mut self.effects)
            .expect("benchmark commands are valid");
    }

    fn new_item(&mut self, queue: usize) -> NewWorkItem {
        self.next_item += 1;
        self.now = Timestamp::from_millis(self.now.millis() + 1);
        NewWorkItem {
            id: WorkItemId(uuid::Uuid::from_u128(self.next_item)),
            interaction: InteractionId::new(format!("i{}", self.next_item)),
            channel: Channel::Voice,
            queue: QueueId::new(format!("q{queue}")),
            language: None,
            priority: 0,
            skills: Vec::new(),
            arrived_at: self.now,
            enqueued_at: self.now,
            transfer: false,
        }
    }

    /// Submits an item to a random busy queue (it waits: every agent there is busy).
    fn submit_waiting(&mut self) {
        let queue = HOT + self.rng.below(QUEUES - HOT);
        let item = self.new_item(queue);
        self.run(Command::Submit(item));
    }

    /// Accepts every offer in the last effects.
    fn accept_offers(&mut self) {
        let mut accepts = Vec::new();
        for effect in &self.effects {
            if let Effect::Offered { item, agent, .. } = effect {
                accepts.push(Command::Accept {
                    item: *item,
                    agent: agent.clone(),
                });
            }
        }
        for accept in accepts {
            self.run(accept);
        }
    }

    fn build() -> (World, isize) {
        let mut world = World {
            engine: Engine::new(),
            now: Timestamp::from_secs(1_000_000),
            next_item: 0,
            rng: Lcg(42),
            effects: Vec::new(),
        };
        for q in 0..QUEUES {
            let mut queue = Queue::new(QueueId::new(format!("q{q}")));
            queue.steps = vec![
                RoutingStep {
                    requirements: vec![SkillRequirement {
                        skill: skill(world.rng.below(SKILLS)),
                        min_level: 2,
                    }],
                    match_language: false,
                    duration_secs: Some(30),
                },
                RoutingStep {
                    requirements: Vec::new(),
                    match_language: false,
                    duration_secs: None,
                },
            ];
            if q < HOT {
                // Hot queues take any of their agents at once.
                queue.steps.remove(0);
            }
            queue.offer_timeout_secs = 3_600;
            world.run(Command::UpsertQueue(queue));
        }
        for a in 0..AGENTS {
            let mut skills = Vec::new();
            while skills.len() < 10 {
                let held = skill(world.rng.below(SKILLS));
                if !skills.iter().any(|(name, _)| *name == held) {
                    skills.push((held, 1 + world.rng.below(5) as u8));
                }
            }
            let queues = if a < HOT {
                vec![QueueId::new(format!("q{a}"))]
            } else {
                let mut chosen: Vec<QueueId> = Vec::new();
                while chosen.len() < 3 {
                    let queue = QueueId::new(format!("q{}", HOT + world.rng.below(QUEUES - HOT)));
                    if !chosen.contains(&queue) {
                        chosen.push(queue);
                    }
                }
                chosen
            };
            let id = AgentId::new(format!("a{a}"));
            world.run(Command::UpsertAgent(Agent {
                id: id.clone(),
                display_name: String::new(),
                uc_address: format!("sip:a{a}@contoso.example"),
                kind: AgentKind::Formal,
                skills,
                capacity: ChannelCapacity::default(),
                chat_during_calls: false,
                queues,
            }));
            world.run(Command::SetPresence {
                agent: id.clone(),
                presence: Presence::Available,
            });
            world.run(Command::SignIn {
                agent: id,
                ready: true,
            });
        }
        let configured = LIVE.load(Ordering::Relaxed);
        // Keep every agent of the busy queues connected (items reach the
        // any-agent step after 30 s), then fill the lines.
        while world
            .engine
            .agents()
            .filter(|agent| agent.connected.is_empty())
            .count()
            > HOT
        {
            for _ in 0..1_000 {
                world.submit_waiting();
                world.accept_offers();
            }
            world.advance(31_000);
        }
        let mut waiting = world.engine.items().count() - (AGENTS - HOT);
        while waiting < WAITING {
            world.submit_waiting();
            waiting += 1;
            if waiting.is_multiple_of(1_000) {
                world.advance(0);
            }
        }
        (world, configured)
    }

    /// Moves time on and fires due timers, accepting what they route.
    fn advance(&mut self, millis: i64) {
        self.now = Timestamp::from_millis(self.now.millis() + millis);
        self.effects.clear();
        self.engine.tick_into(self.now, &mut self.effects);
        self.accept_offers();
    }

    /// A connected item of a random busy agent.
    fn some_connected(&mut self) -> WorkItemId {
        loop {
            let a = HOT + self.rng.below(AGENTS - HOT);
            let view = self
                .engine
                .agent(&AgentId::new(format!("a{a}")))
                .expect("agent exists");
            if let Some(item) = view.connected.first() {
                return *item;
            }
        }
    }

    /// Agent frees up while items wait: end one of its items (timed outside), re-fill.
    fn free_up(&mut self) -> Duration {
        let item = self.some_connected();
        self.now = Timestamp::from_millis(self.now.millis() + 1);
        let start = Instant::now();
        self.run(Command::End(item));
        let elapsed = start.elapsed();
        self.accept_offers();
        self.submit_waiting();
        if self.next_item.is_multiple_of(1_000) {
            self.advance(0);
        }
        elapsed
    }

    /// Arrival while an agent is free: submit to a hot queue (timed), then abandon it.
    fn arrive(&mut self) -> Duration {
        let queue = self.rng.below(HOT);
        let item = self.new_item(queue);
        let id = item.id;
        let start = Instant::now();
        self.run(Command::Submit(item));
        let elapsed = start.elapsed();
        assert!(
            self.effects
                .iter()
                .any(|effect| matches!(effect, Effect::Offered { .. }))
        );
        self.run(Command::Abandon(id));
        elapsed
    }
}

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "{name}: p50 {:?}, p99 {:?}, max {:?} over {} decisions",
        at(0.50),
        at(0.99),
        samples[samples.len() - 1],
        samples.len()
    );
}

fn bench(c: &mut Criterion) {
    let started = Instant::now();
    let (mut world, configured) = World::build();
    let items = world.engine.items().count() as isize;
    println!(
        "memory: {} bytes per open item on average (heap growth from the configured engine to {items} items)",
        (LIVE.load(Ordering::Relaxed) - configured) / items
    );
    println!(
        "setup: {} agents, {} queues, {} skills, {} items waiting, built in {:?}",
        AGENTS,
        QUEUES,
        SKILLS,
        world.engine.items().count() - (AGENTS - HOT),
        started.elapsed()
    );

    let before = LIVE.load(Ordering::Relaxed);
    let added = 100_000;
    for _ in 0..added {
        world.submit_waiting();
    }
    let grown = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "memory: {} bytes per waiting item at the margin (heap growth over {added} more items, including table doublings)",
        grown / added as isize
    );

    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        samples.push(world.arrive());
    }
    percentiles("arrival while an agent is free", samples);
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        samples.push(world.free_up());
    }
    percentiles("agent frees up while items wait", samples);

    // Sustained throughput: every submit, end and accept is one event.
    let events_before = world.next_item;
    let start = Instant::now();
    let mut events = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        for _ in 0..1_000 {
            let item = world.some_connected();
            world.now = Timestamp::from_millis(world.now.millis() + 1);
            world.run(Command::End(item));
            let offers = world
                .effects
                .iter()
                .filter(|effect| matches!(effect, Effect::Offered { .. }))
                .count();
            world.accept_offers();
            world.submit_waiting();
            events += 2 + offers as u64;
        }
    }
    let rate = events as f64 / start.elapsed().as_secs_f64();
    println!(
        "throughput: {rate:.0} events/s on one core ({} submissions)",
        world.next_item - events_before
    );

    c.bench_function("arrival while an agent is free", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += black_box(world.arrive());
            }
            total
        })
    });
    c.bench_function("agent frees up while items wait", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += black_box(world.free_up());
            }
            total
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
