//! The live driver: runs a scenario against a real server over gRPC, as the
//! interop bridge (submitting interactions, reporting connected, ended and
//! hung up) and as every agent (a session each: sign in, accept or decline
//! offers, finish wrap-up), in real time or sped up by a factor.
//!
//! Scenario times (gaps between arrivals, talk, patience, wrap-up, shifts)
//! are divided by the speed; waits are measured by the bridge from submit to
//! delivery and multiplied back. The server's own timers (offer timeouts,
//! routing steps, its default wrap-up) run in real time, so a large speed-up
//! stretches them relative to the scenario. A wait under
//! [`LATENCY_ALLOWANCE`] of real time counts as no wait at all, for P(wait).

use super::report::{Report, Tally};
use super::scenario::{Scenario, SimAgent, Traffic};
use crate::cli::apply::apply;
use crate::cli::centre::{AgentEntry, CentreFile};
use crate::cli::{ClientOptions, Supervisor};
use crate::config::ServeConfig;
use crate::domain::{Channel, QueueId};
use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_client::AgentServiceClient;
use crate::proto::v1::bridge_service_client::BridgeServiceClient;
use crate::server::{self, Listeners};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel as GrpcChannel, Endpoint};

/// Real time under which a wait counts as none: the round trips of a
/// submission, an offer and an accept on loopback.
pub const LATENCY_ALLOWANCE: Duration = Duration::from_millis(50);

/// Longest real time to wait, after the last arrival, for the items in
/// progress to be answered or abandoned, and ended.
const DRAIN: Duration = Duration::from_secs(30);

/// How often agents' sessions send a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Why a live run failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The server could not be started or reached, or refused a call.
    #[error("{0}")]
    Server(String),
}

impl From<tonic::Status> for LiveError {
    fn from(status: tonic::Status) -> Self {
        LiveError::Server(format!("{:?}: {}", status.code(), status.message()))
    }
}

impl From<crate::cli::CliError> for LiveError {
    fn from(error: crate::cli::CliError) -> Self {
        LiveError::Server(error.to_string())
    }
}

/// How far a live run is, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LiveProgress {
    /// Which replication is running, from 1.
    pub replication: u32,
    /// Replications in the run.
    pub replications: u32,
    /// Simulated seconds so far.
    pub simulated_secs: f64,
    /// Simulated seconds of arrivals.
    pub duration_secs: f64,
    /// Arrivals submitted.
    pub offered: u64,
    /// Delivered to an agent.
    pub answered: u64,
    /// Hung up while waiting.
    pub abandoned: u64,
    /// Submitted and not yet answered or abandoned.
    pub waiting: u64,
}

/// A server started in-process on loopback ports, for a live run or the demo.
pub struct EmbeddedServer {
    /// Where its gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// Where its `/metrics` listens.
    pub metrics_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<crate::error::Result<()>>,
}

impl EmbeddedServer {
    /// Binds and starts a server with this configuration.
    pub async fn start(config: ServeConfig) -> Result<Self, LiveError> {
        let listeners = Listeners::bind(&config)
            .await
            .map_err(|error| LiveError::Server(error.to_string()))?;
        let address = |listener: &tokio::net::TcpListener| {
            listener
                .local_addr()
                .map_err(|error| LiveError::Server(format!("cannot read a bound address: {error}")))
        };
        let grpc_addr = address(&listeners.grpc)?;
        let metrics_addr = address(&listeners.metrics)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(config, listeners, async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            grpc_addr,
            metrics_addr,
            stop,
            task,
        })
    }

    /// The URL clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Stops it gracefully and waits until its store is closed.
    pub async fn stop(self) -> Result<(), LiveError> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(result) => result.map_err(|error| LiveError::Server(error.to_string())),
            Err(error) => Err(LiveError::Server(format!(
                "the server task failed: {error}"
            ))),
        }
    }
}

/// One submitted item as the bridge tracks it.
#[derive(Debug, Clone, Copy)]
struct Pending {
    stream: usize,
    submitted: Instant,
    counted: bool,
    /// Talk time drawn on arrival, scenario seconds.
    talk_secs: f64,
}

/// What the bridge and the arrival tasks share.
#[derive(Default)]
struct Floor {
    /// Submitted, not yet delivered or hung up, by work item id.
    waiting: HashMap<String, Pending>,
    /// Delivered before the submission's answer came back.
    early: HashMap<String, Instant>,
    /// Connected, by work item id.
    connected: HashMap<String, Pending>,
    tallies: BTreeMap<(QueueId, Channel), Tally>,
    progress: LiveProgress,
}

/// The fixed facts of a run, shared by its tasks.
struct Plan {
    speed: f64,
    /// Distinguishes this replication's interaction ids from any other's.
    run_id: String,
    start: Instant,
    warmup: Duration,
    end: Duration,
    keys: Vec<(QueueId, Channel)>,
    thresholds: Vec<f64>,
    wrap_ups: Vec<f64>,
}

impl Plan {
    /// Scenario seconds as real time.
    fn real(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs / self.speed).max(0.0))
    }

    /// Real time as scenario seconds.
    fn simulated(&self, real: Duration) -> f64 {
        real.as_secs_f64() * self.speed
    }
}

/// Runs a scenario's replications against the server at `url`, one after
/// another (each with its own seed, agents' sessions and bridge session,
/// starting from an empty floor), reporting progress about twice a second.
pub async fn run(
    scenario: &Scenario,
    url: &str,
    speed: f64,
    progress: &(dyn Fn(&LiveProgress) + Sync),
) -> Result<Report, LiveError> {
    if !(speed.is_finite() && speed > 0.0) {
        return Err(LiveError::Server(format!(
            "speed: must be a positive factor, got {speed}"
        )));
    }
    let channel = Endpoint::from_shared(url.to_owned())
        .map_err(|error| LiveError::Server(format!("{url}: {error}")))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|error| LiveError::Server(format!("cannot reach the server at {url}: {error}")))?;
    let agents = scenario.agents();
    let mut centre: CentreFile = scenario.centre.clone();
    centre.agents = agents.iter().map(|a| AgentEntry(a.agent.clone())).collect();
    let options = ClientOptions {
        server: url.to_owned(),
        json: false,
        actor: Some("simulator".into()),
    };
    let mut supervisor = Supervisor::connect(&options).await?;
    apply(&mut supervisor, &centre, false).await?;

    let seeds = scenario.run.seeds();
    let mut replications = Vec::with_capacity(seeds.len());
    for (number, &seed) in (1..).zip(&seeds) {
        let counter = (number, scenario.run.replications);
        replications
            .push(replicate(scenario, &agents, &channel, speed, seed, counter, progress).await?);
    }
    Ok(Report::new("live", scenario, seeds, &replications))
}

/// One replication with `seed`, `counter` saying which of how many; returns
/// its tallies.
async fn replicate(
    scenario: &Scenario,
    agents: &[SimAgent],
    channel: &GrpcChannel,
    speed: f64,
    seed: u64,
    counter: (u32, u32),
    progress: &(dyn Fn(&LiveProgress) + Sync),
) -> Result<BTreeMap<(QueueId, Channel), Tally>, LiveError> {
    let mut keys = Vec::new();
    let mut thresholds = Vec::new();
    let mut wrap_ups = Vec::new();
    for traffic in &scenario.traffic {
        // Checked on reading: every stream's entry point leads to a queue.
        let Some(queue) = scenario.queue_for(traffic) else {
            return Err(LiveError::Server(format!(
                "{}: no queue behind this entry point",
                traffic.entry_point
            )));
        };
        keys.push((queue.id.clone(), traffic.channel));
        thresholds.push(f64::from(queue.sl_thresholds.get(traffic.channel)));
        wrap_ups.push(f64::from(queue.wrap_up_secs));
    }
    // Traffic starts a moment after the always-on agents begin signing in.
    let lead = Duration::from_millis(500);
    let mut plan = Plan {
        speed,
        run_id: uuid::Uuid::new_v4().simple().to_string(),
        start: Instant::now() + lead,
        warmup: Duration::ZERO,
        end: Duration::ZERO,
        keys,
        thresholds,
        wrap_ups,
    };
    plan.warmup = plan.real(f64::from(scenario.run.warmup_secs));
    plan.end = plan.real(f64::from(scenario.duration_secs()));
    let plan = Arc::new(plan);
    let floor = Arc::new(Mutex::new(Floor::default()));
    if let Ok(mut floor) = floor.lock() {
        for key in &plan.keys {
            floor.tallies.entry(key.clone()).or_default();
        }
        floor.progress.duration_secs = f64::from(scenario.duration_secs());
        (floor.progress.replication, floor.progress.replications) = counter;
    }

    let (stop_agents, stopped) = tokio::sync::watch::channel(false);
    let mut agent_tasks = Vec::new();
    for (ix, agent) in agents.iter().enumerate() {
        let session = AgentSession {
            id: agent.agent.id.to_string(),
            keys: plan
                .keys
                .iter()
                .filter(|(queue, _)| agent.agent.queues.contains(queue))
                .cloned()
                .collect(),
            habits: agent.habits,
            shift: agent
                .shift
                .map(|s| (f64::from(s.start_secs), f64::from(s.end_secs))),
            rng: SmallRng::seed_from_u64(seed.wrapping_mul(7919).wrapping_add(ix as u64)),
        };
        agent_tasks.push(tokio::spawn(session.run(
            channel.clone(),
            Arc::clone(&plan),
            stopped.clone(),
        )));
    }

    let (stream, outbound) = open_bridge(channel.clone()).await?;
    let reader = tokio::spawn(read_bridge(
        stream,
        outbound.clone(),
        Arc::clone(&plan),
        Arc::clone(&floor),
    ));
    let mut arrivals = Vec::new();
    for (stream, traffic) in scenario.traffic.iter().enumerate() {
        let source = Arrivals {
            stream,
            entry_point: traffic.entry_point.clone(),
            channel: traffic.channel,
            language: traffic.language.clone().unwrap_or_default(),
            rng: SmallRng::seed_from_u64(seed.wrapping_add(stream as u64)),
            traffic: traffic.clone(),
        };
        arrivals.push(tokio::spawn(source.run(
            BridgeServiceClient::new(channel.clone()),
            outbound.clone(),
            Arc::clone(&plan),
            Arc::clone(&floor),
        )));
    }

    // Arrivals until the end, then a drain until every counted item has its
    // outcome and its end, so that waits and handle times are not biased
    // towards the short ones.
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let drain_until = plan.start + plan.end + DRAIN;
    loop {
        ticker.tick().await;
        let (snapshot, counted_waiting) = match floor.lock() {
            Ok(mut floor) => {
                floor.progress.simulated_secs = plan.simulated(plan.start.elapsed());
                let waiting = floor.waiting.values().filter(|p| p.counted).count();
                let connected = floor.connected.values().filter(|p| p.counted).count();
                (floor.progress, waiting + connected)
            }
            Err(_) => break,
        };
        progress(&snapshot);
        let arrivals_over = arrivals.iter().all(|task| task.is_finished());
        if arrivals_over && (counted_waiting == 0 || Instant::now() >= drain_until) {
            break;
        }
    }
    for task in arrivals {
        task.await
            .map_err(|error| LiveError::Server(format!("an arrival task failed: {error}")))??;
    }
    // Whoever is still waiting hangs up; whoever is connected ends.
    let (waiting, connected) = match floor.lock() {
        Ok(floor) => (
            floor.waiting.keys().cloned().collect::<Vec<_>>(),
            floor.connected.keys().cloned().collect::<Vec<_>>(),
        ),
        Err(_) => (Vec::new(), Vec::new()),
    };
    for work_item_id in waiting {
        outbound.send(pb::bridge_message::Kind::ConsumerHungUp(
            pb::ConsumerHungUp { work_item_id },
        ));
    }
    for work_item_id in connected {
        outbound.send(pb::bridge_message::Kind::Ended(pb::InteractionEnded {
            work_item_id,
        }));
    }
    let _ = stop_agents.send(true);
    let mut busy = Vec::new();
    for task in agent_tasks {
        busy.push(
            task.await
                .map_err(|error| LiveError::Server(format!("an agent task failed: {error}")))??,
        );
    }
    outbound.close();
    reader.abort();
    let tallies = match floor.lock() {
        Ok(mut floor) => {
            for booked in busy {
                for (key, (busy_secs, staffed_secs)) in booked {
                    let tally = floor.tallies.entry(key).or_default();
                    tally.busy_secs += busy_secs;
                    tally.staffed_secs += staffed_secs;
                }
            }
            floor.tallies.clone()
        }
        Err(_) => BTreeMap::new(),
    };
    Ok(tallies)
}

/// Sends the bridge's lifecycle reports on its session, numbering them.
#[derive(Clone)]
struct Outbound {
    sender: Arc<Mutex<Option<mpsc::UnboundedSender<pb::BridgeMessage>>>>,
    next: Arc<AtomicU64>,
}

impl Outbound {
    /// Sends a report; after [`Outbound::close`] it is dropped (the run is over).
    fn send(&self, kind: pb::bridge_message::Kind) {
        let request_id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(sender) = self.sender.lock()
            && let Some(sender) = sender.as_ref()
        {
            let _ = sender.send(pb::BridgeMessage {
                request_id,
                kind: Some(kind),
            });
        }
    }

    /// Ends the session's request stream.
    fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
    }
}

/// Opens the bridge's session and waits for its hello to be acknowledged.
async fn open_bridge(
    channel: GrpcChannel,
) -> Result<(tonic::Streaming<pb::BridgeInstruction>, Outbound), LiveError> {
    let (sender, requests) = mpsc::unbounded_channel();
    let outbound = Outbound {
        sender: Arc::new(Mutex::new(Some(sender))),
        next: Arc::new(AtomicU64::new(1)),
    };
    outbound.send(pb::bridge_message::Kind::Hello(pb::BridgeHello {
        bridge_id: "simulator".into(),
    }));
    let mut stream = BridgeServiceClient::new(channel)
        .session(UnboundedReceiverStream::new(requests))
        .await?
        .into_inner();
    loop {
        let message = stream.message().await?.ok_or_else(|| {
            LiveError::Server("the bridge session ended before its hello was answered".into())
        })?;
        if let Some(pb::bridge_instruction::Kind::Ack(ack)) = message.kind {
            if ack.code != 0 {
                return Err(LiveError::Server(format!("hello refused: {}", ack.message)));
            }
            return Ok((stream, outbound));
        }
    }
}

/// Reads the bridge's instructions: a delivery connects the consumer, a
/// disconnect ends their wait.
async fn read_bridge(
    mut stream: tonic::Streaming<pb::BridgeInstruction>,
    outbound: Outbound,
    plan: Arc<Plan>,
    floor: Arc<Mutex<Floor>>,
) {
    use pb::bridge_instruction::Kind;
    while let Ok(Some(message)) = stream.message().await {
        match message.kind {
            Some(Kind::Deliver(deliver)) => {
                let now = Instant::now();
                let pending = match floor.lock() {
                    Ok(mut floor) => match floor.waiting.remove(&deliver.work_item_id) {
                        Some(pending) => Some(pending),
                        None => {
                            floor.early.insert(deliver.work_item_id.clone(), now);
                            None
                        }
                    },
                    Err(_) => return,
                };
                if let Some(pending) = pending {
                    connect(&outbound, &plan, &floor, deliver.work_item_id, pending, now);
                }
            }
            Some(Kind::Disconnect(disconnect)) => {
                if let Ok(mut floor) = floor.lock()
                    && let Some(pending) = floor.waiting.remove(&disconnect.work_item_id)
                {
                    floor.progress.waiting = floor.progress.waiting.saturating_sub(1);
                    if pending.counted {
                        let key = plan.keys[pending.stream].clone();
                        floor.tallies.entry(key).or_default().other += 1;
                    }
                }
            }
            Some(Kind::GoingAway(_)) => return,
            _ => {}
        }
    }
}

/// Counts a delivered item, reports it connected and ends it after its talk time.
fn connect(
    outbound: &Outbound,
    plan: &Arc<Plan>,
    floor: &Arc<Mutex<Floor>>,
    work_item_id: String,
    pending: Pending,
    delivered: Instant,
) {
    let real_wait = delivered.saturating_duration_since(pending.submitted);
    let waited = if real_wait <= LATENCY_ALLOWANCE {
        0.0
    } else {
        plan.simulated(real_wait)
    };
    if let Ok(mut floor) = floor.lock() {
        floor.progress.answered += 1;
        floor.progress.waiting = floor.progress.waiting.saturating_sub(1);
        if pending.counted {
            let key = plan.keys[pending.stream].clone();
            let threshold = plan.thresholds[pending.stream];
            floor
                .tallies
                .entry(key)
                .or_default()
                .resolve(true, waited, threshold);
        }
        floor.connected.insert(work_item_id.clone(), pending);
    }
    outbound.send(pb::bridge_message::Kind::Connected(
        pb::InteractionConnected {
            work_item_id: work_item_id.clone(),
        },
    ));
    let outbound = outbound.clone();
    let plan = Arc::clone(plan);
    let floor = Arc::clone(floor);
    tokio::spawn(async move {
        tokio::time::sleep(plan.real(pending.talk_secs)).await;
        let ended = match floor.lock() {
            Ok(mut floor) => {
                let ended = floor.connected.remove(&work_item_id).is_some();
                if ended && pending.counted {
                    let key = plan.keys[pending.stream].clone();
                    let tally = floor.tallies.entry(key).or_default();
                    tally.handled += 1;
                    tally.handle_secs += pending.talk_secs + plan.wrap_ups[pending.stream];
                }
                ended
            }
            Err(_) => false,
        };
        if ended {
            outbound.send(pb::bridge_message::Kind::Ended(pb::InteractionEnded {
                work_item_id,
            }));
        }
    });
}

/// One arrival stream, submitting interactions as the bridge would.
struct Arrivals {
    stream: usize,
    entry_point: String,
    channel: Channel,
    language: String,
    rng: SmallRng,
    traffic: Traffic,
}

impl Arrivals {
    async fn run(
        mut self,
        mut client: BridgeServiceClient<GrpcChannel>,
        outbound: Outbound,
        plan: Arc<Plan>,
        floor: Arc<Mutex<Floor>>,
    ) -> Result<(), LiveError> {
        let end = plan.simulated(plan.end);
        let handle = self.traffic.handle.sampler();
        let patience = self.traffic.patience.map(|p| p.sampler());
        let mut secs = 0.0;
        let mut n: u64 = 0;
        while let Some(at) = self.traffic.next_arrival(&mut self.rng, secs, end) {
            secs = at;
            n += 1;
            tokio::time::sleep_until(plan.start + plan.real(at)).await;
            let talk_secs = handle.sample(&mut self.rng);
            let patience_secs = patience.map(|p| p.sample(&mut self.rng));
            let submitted = Instant::now();
            let request = pb::SubmitInteractionRequest {
                interaction_id: format!("sim-{}-{}-{n}", plan.run_id, self.stream),
                channel: crate::grpc::convert::channel_to_proto(self.channel) as i32,
                from_address: format!("sip:consumer-{n}@consumer.example"),
                display_name: format!("Consumer {n}"),
                entry_point: self.entry_point.clone(),
                language: self.language.clone(),
                ..Default::default()
            };
            let answer = client.submit_interaction(request).await?.into_inner();
            let pending = Pending {
                stream: self.stream,
                submitted,
                counted: submitted.saturating_duration_since(plan.start) >= plan.warmup,
                talk_secs,
            };
            let id = answer.work_item_id;
            let early = match floor.lock() {
                Ok(mut floor) => {
                    floor.progress.offered += 1;
                    floor.progress.waiting += 1;
                    if pending.counted {
                        let key = plan.keys[self.stream].clone();
                        floor.tallies.entry(key).or_default().offered += 1;
                    }
                    let early = floor.early.remove(&id);
                    if early.is_none() {
                        floor.waiting.insert(id.clone(), pending);
                    }
                    early
                }
                Err(_) => None,
            };
            if let Some(delivered) = early {
                connect(&outbound, &plan, &floor, id, pending, delivered);
                continue;
            }
            if let Some(patience_secs) = patience_secs {
                tokio::spawn(abandon_after(
                    id,
                    patience_secs,
                    outbound.clone(),
                    Arc::clone(&plan),
                    Arc::clone(&floor),
                ));
            }
        }
        Ok(())
    }
}

/// Hangs up for the consumer if they are still waiting when patience runs out.
async fn abandon_after(
    work_item_id: String,
    patience_secs: f64,
    outbound: Outbound,
    plan: Arc<Plan>,
    floor: Arc<Mutex<Floor>>,
) {
    tokio::time::sleep(plan.real(patience_secs)).await;
    let gone = match floor.lock() {
        Ok(mut floor) => match floor.waiting.remove(&work_item_id) {
            Some(pending) => {
                floor.progress.abandoned += 1;
                floor.progress.waiting = floor.progress.waiting.saturating_sub(1);
                if pending.counted {
                    let key = plan.keys[pending.stream].clone();
                    let threshold = plan.thresholds[pending.stream];
                    floor.tallies.entry(key).or_default().resolve(
                        false,
                        plan.simulated(pending.submitted.elapsed()),
                        threshold,
                    );
                }
                true
            }
            None => false,
        },
        Err(_) => false,
    };
    if gone {
        outbound.send(pb::bridge_message::Kind::ConsumerHungUp(
            pb::ConsumerHungUp { work_item_id },
        ));
    }
}

/// Busy and staffed scenario seconds an agent booked, per queue and channel.
type Booked = Vec<((QueueId, Channel), (f64, f64))>;

/// One agent's client.
struct AgentSession {
    id: String,
    keys: Vec<(QueueId, Channel)>,
    habits: super::scenario::Habits,
    shift: Option<(f64, f64)>,
    rng: SmallRng,
}

impl AgentSession {
    /// Works the agent's shift: signs in, answers offers by its habits,
    /// finishes wrap-up on the scenario's time, signs out at the shift's end
    /// or when the run stops.
    async fn run(
        mut self,
        channel: GrpcChannel,
        plan: Arc<Plan>,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Booked, LiveError> {
        use pb::agent_event::Kind as Event;
        use pb::agent_message::Kind as Message;
        let (on, off) = match self.shift {
            Some((on, off)) => (
                plan.start + plan.real(on),
                Some(plan.start + plan.real(off)),
            ),
            None => (Instant::now(), None),
        };
        tokio::select! {
            _ = tokio::time::sleep_until(on) => {}
            _ = stopped.changed() => return Ok(Vec::new()),
        }
        let (sender, requests) = mpsc::unbounded_channel();
        let next = Arc::new(AtomicU64::new(1));
        let send = move |kind: Message| {
            let _ = sender.send(pb::AgentMessage {
                request_id: next.fetch_add(1, Ordering::Relaxed),
                kind: Some(kind),
            });
        };
        send(Message::SignIn(pb::SignIn {
            agent_id: self.id.clone(),
            ready: true,
        }));
        let mut stream = AgentServiceClient::new(channel)
            .session(UnboundedReceiverStream::new(requests))
            .await?
            .into_inner();
        let window = (plan.start + plan.warmup, plan.start + plan.end);
        let mut state = (pb::RoutingState::LoggedOut, Instant::now());
        let (mut busy, mut staffed) = (0.0, 0.0);
        let mut book = |state: pb::RoutingState, from: Instant, to: Instant| {
            let from = from.max(window.0);
            let to = to.min(window.1);
            if to <= from {
                return;
            }
            let secs = plan.simulated(to - from);
            match state {
                pb::RoutingState::Busy | pb::RoutingState::WrapUp => {
                    busy += secs;
                    staffed += secs;
                }
                pb::RoutingState::Ready | pb::RoutingState::Reserved => staffed += secs,
                _ => {}
            }
        };
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let shift_end = tokio::time::sleep_until(off.unwrap_or(window.1 + DRAIN * 10));
        tokio::pin!(shift_end);
        loop {
            let message = tokio::select! {
                _ = stopped.changed() => break,
                _ = &mut shift_end => break,
                _ = heartbeat.tick() => {
                    send(Message::Heartbeat(pb::Heartbeat {}));
                    continue;
                }
                message = stream.message() => message,
            };
            let Ok(Some(event)) = message else { break };
            match event.kind {
                Some(Event::Offer(offer)) => {
                    let draw = self.rng.random::<f64>();
                    if draw < self.habits.no_answer_probability {
                        continue;
                    }
                    let accept =
                        draw >= self.habits.no_answer_probability + self.habits.decline_probability;
                    let work_item_id = offer.work_item_id;
                    let kind = if accept {
                        Message::Accept(pb::AcceptOffer { work_item_id })
                    } else {
                        Message::Decline(pb::DeclineOffer {
                            work_item_id,
                            reason: "simulated".into(),
                        })
                    };
                    let delay = plan.real(self.habits.answer_delay_secs);
                    if delay.is_zero() {
                        send(kind);
                    } else {
                        let send = send.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            send(kind);
                        });
                    }
                }
                Some(Event::StateChanged(changed)) => {
                    let now = Instant::now();
                    book(state.0, state.1, now);
                    let next_state = pb::RoutingState::try_from(changed.state)
                        .unwrap_or(pb::RoutingState::Unspecified);
                    state = (next_state, now);
                }
                Some(Event::ItemEnded(ended)) => {
                    let wrap = ended
                        .wrap_up
                        .map_or(0.0, |d| d.seconds as f64 + f64::from(d.nanos) / 1e9);
                    if wrap > 0.0 {
                        let delay = plan.real(wrap);
                        let send = send.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            send(Message::WrapUpDone(pb::WrapUpDone {}));
                        });
                    }
                }
                Some(Event::GoingAway(_)) => break,
                _ => {}
            }
        }
        book(state.0, state.1, Instant::now());
        send(Message::SignOut(pb::SignOut {}));
        drop(send);
        // The server closes the session once the sign-out is taken.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = stream.message().await {}
        })
        .await;
        Ok(self
            .keys
            .iter()
            .map(|key| (key.clone(), (busy, staffed)))
            .collect())
    }
}
