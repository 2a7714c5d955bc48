//! The load generator of `switchboard bench`: submitters acting as the
//! interop bridge (`SubmitInteraction`, then `Connected` and `Ended` on the
//! bridge's session when an item is delivered) and agents accepting every
//! offer and finishing wrap-up at once. Each item's earliest offer is timed
//! from the moment its submission was acknowledged to the moment it reached
//! an agent's stream.

use super::BenchError;
use super::probe::{Probe, between};
use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_client::AgentServiceClient;
use crate::proto::v1::bridge_service_client::BridgeServiceClient;
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint};

/// The entry point of the benchmark centre.
pub const ENTRY_POINT: &str = "sip:bench@bench.example";

/// Shortest and longest wait, after the last submission, for offered items
/// to finish their flows and for waiting items to be offered: as long as
/// the submissions lasted, within these bounds. Ending the interactions of
/// submissions answered UNAVAILABLE takes at most the longest too.
const DRAIN: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(10));

/// How often agents' sessions send a heartbeat, well inside the server's timeout.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Highest latency the histograms hold, microseconds (a minute).
const HIGHEST_MICROS: u64 = 60_000_000;

/// How submissions are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the server answers, `concurrency` at a time.
    Max,
    /// This many per second, evenly spaced.
    Rate(f64),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The server's gRPC URL.
    pub url: String,
    /// How submissions are paced.
    pub pace: Pace,
    /// How long submissions go on.
    pub duration: Duration,
    /// Agents signed in and accepting.
    pub agents: u32,
    /// Submissions in flight at once.
    pub concurrency: u32,
    /// HTTP/2 connections they are spread over.
    pub connections: u32,
}

/// What a load run measured.
pub struct LoadResult {
    /// Submissions acknowledged, hence durable.
    pub submitted: u64,
    /// Submissions refused for a passing reason (queue full, unavailable).
    pub rejected: u64,
    /// Seconds from the first submission to the last answer.
    pub submit_secs: f64,
    /// The server's CPU time over those seconds, when the probe reads it.
    pub submit_cpu_secs: Option<f64>,
    /// First offers of acknowledged items that reached an agent, each timed.
    pub offers: u64,
    /// Further offers of items already offered once (after a decline, a
    /// timeout or a rescind), and offers of items whose submission was
    /// answered UNAVAILABLE (its commit hold ran out, though the item was
    /// made); not timed.
    pub reoffers: u64,
    /// Offers that reached an agent before the submitter had the answer
    /// (recorded as zero latency).
    pub offers_before_ack: u64,
    /// Acknowledged items never offered within the drain (hung up at the end).
    pub unoffered: u64,
    /// Complete flows: submit, offer, accept, connected, ended, wrap-up done.
    pub flows: u64,
    /// Seconds from the first submission to the last completed flow.
    pub flow_secs: f64,
    /// Seconds from the first submission to the end of the drain.
    pub total_secs: f64,
    /// Acknowledgement to offer, microseconds.
    pub arrival_to_offer: Histogram<u64>,
    /// Submission sent to acknowledgement received, microseconds.
    pub submit_latency: Histogram<u64>,
    /// Under `--rate`, the most any submission was sent after its slot:
    /// every submitter was waiting for an answer meanwhile, or the load
    /// generator was short of CPU.
    pub schedule_slip: Duration,
    /// Submissions answered UNAVAILABLE whose interactions could not be
    /// ended afterwards: their items may still wait on the server.
    pub unended: u64,
}

/// The id of the n-th benchmark agent (1-based).
pub fn agent_id(n: u32) -> String {
    format!("bench-agent-{n}")
}

/// A histogram of microseconds up to [`HIGHEST_MICROS`].
pub fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 3)
        .map_err(|error| BenchError::Failed(format!("cannot make a histogram: {error}")))
}

/// A duration in microseconds, at most the histograms' top.
fn histogram_micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros())
        .unwrap_or(u64::MAX)
        .min(HIGHEST_MICROS)
}

/// Records a duration, saturating at the histogram's top.
fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    histogram.saturating_record(histogram_micros(elapsed));
}

/// The bridge's id of the n-th interaction of run `run`.
fn interaction_id(run: &str, n: u64) -> String {
    format!("bench-{run}-{n}")
}

/// The submission of the n-th interaction of run `run`; the echo ceiling
/// sends the same.
pub fn request(run: &str, n: u64) -> pb::SubmitInteractionRequest {
    pb::SubmitInteractionRequest {
        interaction_id: interaction_id(run, n),
        channel: pb::Channel::Voice as i32,
        from_address: format!("sip:consumer-{n}@consumer.example"),
        display_name: format!("Consumer {n}"),
        entry_point: ENTRY_POINT.into(),
        attributes: [(
            "page_url".to_string(),
            "https://bench.example/help".to_string(),
        )]
        .into(),
        ..Default::default()
    }
}

/// Opens `count` connections to `url`.
pub async fn connect(url: &str, count: u32) -> Result<Vec<Channel>, BenchError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| BenchError::Input(format!("server: {url}: {error}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    let mut channels = Vec::new();
    for _ in 0..count {
        let channel = endpoint.connect().await.map_err(|error| {
            BenchError::Failed(format!("cannot reach the server at {url}: {error}"))
        })?;
        channels.push(channel);
    }
    Ok(channels)
}

/// An item seen at one moment: a submission's answer or an offer. The run
/// keeps one per answer and one per offer until it ends, about 100 bytes
/// each: a minute at 30,000 submissions a second holds some 360 MB.
struct Seen {
    /// The item the server named.
    work_item_id: String,
    /// When the answer or the offer reached the benchmark.
    at: Instant,
}

/// The offers one agent received while they were being counted.
struct Offers {
    /// False once the drain is over: later offers are not counted, their
    /// items are being hung up.
    counting: bool,
    /// Each offer's item and when it reached the agent.
    seen: Vec<Seen>,
}

/// What the agents share: the count of completed flows and when the latest
/// completed. Submitters and agents keep what they time to themselves, to
/// be matched once the run is over: a shared map, locked at every answer
/// and every offer, would add its own cost to every submission measured.
struct Shared {
    start: Instant,
    flows: AtomicU64,
    /// Microseconds from the start to the latest completed flow.
    last_flow: AtomicU64,
}

impl Shared {
    /// A flow completed.
    fn flow_done(&self) {
        self.flows.fetch_add(1, Ordering::Relaxed);
        let since_start = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_flow.fetch_max(since_start, Ordering::Relaxed);
    }
}

/// Acknowledgements matched with offers.
struct Matched {
    /// Acknowledgement to first offer, microseconds.
    arrival_to_offer: Histogram<u64>,
    /// First offers matched with their acknowledgement.
    offers: u64,
    /// Of those, offers that reached the agent before the submitter had
    /// the answer (recorded as zero latency).
    before_ack: u64,
    /// Further offers of items offered once already, and offers of items
    /// never acknowledged.
    reoffers: u64,
    /// Acknowledged items never offered.
    unoffered: Vec<String>,
}

/// Matches every acknowledgement with the earliest offer of its item, in
/// `arrival_to_offer` (empty on entry). Offers come agent by agent, so the
/// earliest of an item's offers may come last.
fn match_offers(acks: Vec<Seen>, offers: Vec<Seen>, arrival_to_offer: Histogram<u64>) -> Matched {
    let mut first = HashMap::with_capacity(offers.len());
    let mut reoffers = 0;
    for offer in offers {
        match first.entry(offer.work_item_id) {
            Entry::Vacant(slot) => {
                slot.insert(offer.at);
            }
            Entry::Occupied(mut slot) => {
                reoffers += 1;
                if offer.at < *slot.get() {
                    slot.insert(offer.at);
                }
            }
        }
    }
    let mut matched = Matched {
        arrival_to_offer,
        offers: 0,
        before_ack: 0,
        reoffers,
        unoffered: Vec::new(),
    };
    for ack in acks {
        let Some(offered) = first.remove(&ack.work_item_id) else {
            matched.unoffered.push(ack.work_item_id);
            continue;
        };
        matched.offers += 1;
        if offered < ack.at {
            matched.before_ack += 1;
        }
        record(
            &mut matched.arrival_to_offer,
            offered.saturating_duration_since(ack.at),
        );
    }
    matched.reoffers += first.len() as u64;
    matched
}

/// What one submitter measured, up to its end or its failure.
struct Submitted {
    /// Each acknowledged submission's item and when the answer came.
    acks: Vec<Seen>,
    /// Submissions refused for a passing reason.
    rejected: u64,
    /// Submission sent to acknowledgement received, microseconds.
    submit_latency: Vec<u64>,
    /// The numbers of the submissions answered UNAVAILABLE: their items
    /// may have been made all the same.
    unavailable: Vec<u64>,
    /// The most a submission was sent after its slot, under `--rate`.
    slip: Duration,
    /// What stopped the submitter early, if anything did.
    failure: Option<BenchError>,
}

/// The bridge's session: its outgoing messages, numbered.
#[derive(Clone)]
struct Bridge {
    sender: mpsc::UnboundedSender<pb::BridgeMessage>,
    next: Arc<AtomicU64>,
}

impl Bridge {
    fn send(&self, kind: pb::bridge_message::Kind) {
        let _ = self.sender.send(pb::BridgeMessage {
            request_id: self.next.fetch_add(1, Ordering::Relaxed),
            kind: Some(kind),
        });
    }
}

/// Runs the load: signs the agents in, opens the bridge's session, submits
/// for the plan's duration, waits for the flows to finish, then signs out.
/// The server's CPU time is read from `probe` as submissions start and end.
pub async fn run(plan: &LoadPlan, probe: &Probe) -> Result<LoadResult, BenchError> {
    // Made before anything runs, so that no error after the submissions
    // can leave their items waiting on the server.
    let arrival_to_offer = histogram()?;
    let mut submit_latency = histogram()?;
    let channels = connect(&plan.url, plan.connections).await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let (bridge, bridge_reader) = open_bridge(channels[0].clone(), &run_id).await?;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        flows: AtomicU64::new(0),
        last_flow: AtomicU64::new(0),
    });
    let (stop_agents, stopped) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<()>();
    let mut agents = Vec::new();
    let mut offers_seen = Vec::new();
    for n in 1..=plan.agents {
        let channel = channels[n as usize % channels.len()].clone();
        let agent_offers = Arc::new(Mutex::new(Offers {
            counting: true,
            seen: Vec::new(),
        }));
        offers_seen.push(Arc::clone(&agent_offers));
        agents.push(tokio::spawn(agent(
            agent_id(n),
            channel,
            agent_offers,
            Arc::clone(&shared),
            stopped.clone(),
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    let bridge_task = tokio::spawn(read_bridge(bridge_reader, bridge.clone()));
    // Every agent is ready before the clock starts, so the first offers are
    // not waiting for sign-ins.
    let mut ready = 0;
    let signed_in = tokio::time::timeout(Duration::from_secs(30), async {
        while ready < plan.agents && ready_rx.recv().await.is_some() {
            ready += 1;
        }
    })
    .await;
    if signed_in.is_err() || ready < plan.agents {
        let _ = stop_agents.send(true);
        for task in agents {
            if let Ok(Err(error)) = task.await {
                return Err(error);
            }
        }
        return Err(BenchError::Failed(format!(
            "agents: only {ready} of {} signed in ready",
            plan.agents
        )));
    }

    // A CPU reading that fails leaves the figure out, not the run.
    let cpu_now = || async { probe.sample().await.ok().and_then(|sample| sample.cpu_secs) };
    let cpu_at_start = cpu_now().await;
    let start = Instant::now();
    let end = start + plan.duration;
    let next = Arc::new(AtomicU64::new(0));
    // Set by a submitter that fails, so that the others stop too.
    let failed = Arc::new(AtomicBool::new(false));
    let mut submitters = Vec::new();
    for worker in 0..plan.concurrency {
        let client = BridgeServiceClient::new(channels[worker as usize % channels.len()].clone());
        submitters.push(tokio::spawn(submit(
            client,
            plan.pace,
            start,
            end,
            Arc::clone(&next),
            Arc::clone(&failed),
            run_id.clone(),
        )));
    }
    let mut acks = Vec::new();
    let mut rejected = 0;
    let mut unavailable = Vec::new();
    let mut schedule_slip = Duration::ZERO;
    let mut failure = None;
    for task in submitters {
        match task.await {
            Ok(part) => {
                acks.extend(part.acks);
                rejected += part.rejected;
                unavailable.extend(part.unavailable);
                schedule_slip = schedule_slip.max(part.slip);
                for latency in part.submit_latency {
                    submit_latency.saturating_record(latency);
                }
                failure = failure.or(part.failure);
            }
            // A submitter that panicked takes its answers with it; their
            // items are left to the server's own timers.
            Err(error) => {
                failure = failure.or(Some(BenchError::Failed(format!(
                    "a submitter failed: {error}"
                ))));
            }
        }
    }
    let submit_secs = start.elapsed().as_secs_f64();
    let submitted = acks.len() as u64;
    let submit_cpu_secs = between(cpu_at_start, cpu_now().await);

    let drained = Instant::now() + plan.duration.clamp(DRAIN.0, DRAIN.1);
    while failure.is_none()
        && shared.flows.load(Ordering::Relaxed) < submitted
        && Instant::now() < drained
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total_secs = start.elapsed().as_secs_f64();
    // Flows completed from here on are the clean-up's, not the run's.
    let flows = shared.flows.load(Ordering::Relaxed);
    let last_flow = Duration::from_micros(shared.last_flow.load(Ordering::Relaxed));
    // Whatever was never offered is hung up, so that a running server is
    // left with nothing of this run waiting.
    let mut offers = Vec::new();
    for agent_offers in &offers_seen {
        if let Ok(mut locked) = agent_offers.lock() {
            locked.counting = false;
            offers.append(&mut locked.seen);
        }
    }
    let matched = match_offers(acks, offers, arrival_to_offer);
    for work_item_id in &matched.unoffered {
        bridge.send(pb::bridge_message::Kind::ConsumerHungUp(
            pb::ConsumerHungUp {
                work_item_id: work_item_id.clone(),
            },
        ));
    }
    let unended = end_refused(&channels, &run_id, unavailable).await;
    let _ = stop_agents.send(true);
    for task in agents {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failure = failure.or(Some(error)),
            Err(error) => {
                failure = failure.or(Some(BenchError::Failed(format!(
                    "an agent failed: {error}"
                ))));
            }
        }
    }
    drop(bridge);
    bridge_task.abort();
    if let Some(error) = failure {
        return Err(error);
    }
    let flow_secs = last_flow
        .saturating_sub(start.saturating_duration_since(shared.start))
        .as_secs_f64();
    Ok(LoadResult {
        submitted,
        rejected,
        submit_secs,
        submit_cpu_secs,
        offers: matched.offers,
        reoffers: matched.reoffers,
        offers_before_ack: matched.before_ack,
        unoffered: matched.unoffered.len() as u64,
        flows,
        flow_secs,
        total_secs,
        arrival_to_offer: matched.arrival_to_offer,
        submit_latency,
        schedule_slip,
        unended,
    })
}

/// Ends the interactions of the submissions answered UNAVAILABLE, numbered
/// `numbers`: the server may have made their items all the same (the
/// commit hold ran out). `EndInteraction` makes nothing: an interaction
/// never made is not found. The calls share the connections; whatever is
/// not ended within the longest [`DRAIN`] is counted, and answered.
async fn end_refused(channels: &[Channel], run_id: &str, numbers: Vec<u64>) -> u64 {
    let total = numbers.len() as u64;
    let ended = Arc::new(AtomicU64::new(0));
    let mut share: Vec<Vec<u64>> = vec![Vec::new(); channels.len()];
    for (index, n) in numbers.into_iter().enumerate() {
        share[index % channels.len()].push(n);
    }
    let mut enders = tokio::task::JoinSet::new();
    for (channel, mine) in channels.iter().zip(share) {
        let mut client = BridgeServiceClient::new(channel.clone());
        let run = run_id.to_owned();
        let count = Arc::clone(&ended);
        enders.spawn(async move {
            for n in mine {
                let answer = client
                    .end_interaction(pb::EndInteractionRequest {
                        interaction_id: interaction_id(&run, n),
                        reason: "the benchmark's clean-up".into(),
                    })
                    .await;
                if answer.is_ok()
                    || answer.is_err_and(|status| status.code() == tonic::Code::NotFound)
                {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let _ = tokio::time::timeout(DRAIN.1, enders.join_all()).await;
    total - ended.load(Ordering::Relaxed)
}

/// One submitter: takes the next slot, waits for its time when paced, submits.
async fn submit(
    mut client: BridgeServiceClient<Channel>,
    pace: Pace,
    start: Instant,
    end: Instant,
    next: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    run_id: String,
) -> Submitted {
    let mut part = Submitted {
        acks: Vec::new(),
        rejected: 0,
        submit_latency: Vec::new(),
        unavailable: Vec::new(),
        slip: Duration::ZERO,
        failure: None,
    };
    while !failed.load(Ordering::Relaxed) {
        let n = next.fetch_add(1, Ordering::Relaxed);
        // When the submission is due: under --rate, its slot in the
        // schedule, so that a stalled server's backlog counts in the
        // latency (no coordinated omission); as fast as possible, now.
        let sent = match pace {
            Pace::Max if Instant::now() >= end => break,
            Pace::Max => Instant::now(),
            Pace::Rate(rate) => {
                let at = start + Duration::from_secs_f64(n as f64 / rate);
                if at >= end {
                    break;
                }
                tokio::time::sleep_until(at).await;
                part.slip = part.slip.max(Instant::now().saturating_duration_since(at));
                at
            }
        };
        match client.submit_interaction(request(&run_id, n)).await {
            Ok(answer) => {
                let at = Instant::now();
                part.submit_latency.push(histogram_micros(at - sent));
                part.acks.push(Seen {
                    work_item_id: answer.into_inner().work_item_id,
                    at,
                });
            }
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                part.rejected += 1;
            }
            Err(status) if status.code() == tonic::Code::Unavailable => {
                part.rejected += 1;
                part.unavailable.push(n);
            }
            Err(status) => {
                // What was acknowledged so far goes back all the same, so
                // that its items are hung up; the other submitters stop.
                failed.store(true, Ordering::Relaxed);
                part.failure = Some(status.into());
                break;
            }
        }
    }
    part
}

/// Opens the bridge's session and waits for its hello to be acknowledged.
async fn open_bridge(
    channel: Channel,
    run_id: &str,
) -> Result<(Bridge, tonic::Streaming<pb::BridgeInstruction>), BenchError> {
    let (sender, requests) = mpsc::unbounded_channel();
    let bridge = Bridge {
        sender,
        next: Arc::new(AtomicU64::new(1)),
    };
    bridge.send(pb::bridge_message::Kind::Hello(pb::BridgeHello {
        bridge_id: format!("bench-{run_id}"),
    }));
    let mut stream = BridgeServiceClient::new(channel)
        .session(UnboundedReceiverStream::new(requests))
        .await?
        .into_inner();
    loop {
        let message = stream.message().await?.ok_or_else(|| {
            BenchError::Failed("the bridge session ended before its hello was answered".into())
        })?;
        if let Some(pb::bridge_instruction::Kind::Ack(ack)) = message.kind {
            if ack.code != 0 {
                return Err(BenchError::Failed(format!(
                    "bridge hello refused: {}",
                    ack.message
                )));
            }
            return Ok((bridge, stream));
        }
    }
}

/// The bridge's side of a delivery: the consumer is connected, and the
/// conversation ends at once.
async fn read_bridge(mut stream: tonic::Streaming<pb::BridgeInstruction>, bridge: Bridge) {
    while let Ok(Some(message)) = stream.message().await {
        match message.kind {
            Some(pb::bridge_instruction::Kind::Deliver(deliver)) => {
                bridge.send(pb::bridge_message::Kind::Connected(
                    pb::InteractionConnected {
                        work_item_id: deliver.work_item_id.clone(),
                    },
                ));
                bridge.send(pb::bridge_message::Kind::Ended(pb::InteractionEnded {
                    work_item_id: deliver.work_item_id,
                }));
            }
            Some(pb::bridge_instruction::Kind::GoingAway(_)) => return,
            _ => {}
        }
    }
}

/// One agent: signs in ready, accepts every offer, finishes wrap-up at once;
/// notes each offer in `offers` while they are counted.
async fn agent(
    id: String,
    channel: Channel,
    offers: Arc<Mutex<Offers>>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
    ready: mpsc::UnboundedSender<()>,
) -> Result<(), BenchError> {
    use pb::agent_event::Kind as Event;
    use pb::agent_message::Kind as Message;
    let (sender, requests) = mpsc::unbounded_channel();
    let mut next = 1;
    let mut send = |kind: Message| {
        let request_id = next;
        next += 1;
        let _ = sender.send(pb::AgentMessage {
            request_id,
            kind: Some(kind),
        });
        request_id
    };
    let sign_in = send(Message::SignIn(pb::SignIn {
        agent_id: id.clone(),
        ready: true,
    }));
    let mut stream = AgentServiceClient::new(channel)
        .session(UnboundedReceiverStream::new(requests))
        .await?
        .into_inner();
    let mut wrap_up: Option<u64> = None;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        let message = tokio::select! {
            _ = stopped.changed() => break,
            _ = heartbeat.tick() => {
                send(Message::Heartbeat(pb::Heartbeat {}));
                continue;
            }
            message = stream.message() => message?,
        };
        let Some(event) = message else { break };
        match event.kind {
            Some(Event::Offer(offer)) => {
                let work_item_id = offer.work_item_id;
                let at = Instant::now();
                if let Ok(mut locked) = offers.lock()
                    && locked.counting
                {
                    locked.seen.push(Seen {
                        work_item_id: work_item_id.clone(),
                        at,
                    });
                }
                send(Message::Accept(pb::AcceptOffer { work_item_id }));
            }
            Some(Event::ItemEnded(_)) => {
                wrap_up = Some(send(Message::WrapUpDone(pb::WrapUpDone {})));
            }
            Some(Event::Ack(ack)) if ack.request_id == sign_in => {
                if ack.code != 0 {
                    return Err(BenchError::Failed(format!(
                        "agent {id}: sign-in refused: {}",
                        ack.message
                    )));
                }
                let _ = ready.send(());
            }
            Some(Event::Ack(ack)) if Some(ack.request_id) == wrap_up => {
                wrap_up = None;
                if ack.code == 0 {
                    shared.flow_done();
                }
            }
            Some(Event::GoingAway(_)) => break,
            _ => {}
        }
    }
    send(Message::SignOut(pb::SignOut {}));
    drop(sender);
    // The server closes the session once the sign-out is taken.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.message().await {}
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServeConfig;
    use crate::sim::command::TempDatabase;
    use crate::sim::live::EmbeddedServer;

    #[tokio::test]
    async fn interactions_answered_unavailable_are_ended_whether_or_not_they_were_made() {
        let database = TempDatabase::new("bench-end");
        let server = EmbeddedServer::start(ServeConfig::ephemeral(database.url()))
            .await
            .expect("the server starts");
        super::super::apply_centre(&server.url(), 1)
            .await
            .expect("the centre is applied");
        let channels = connect(&server.url(), 2).await.expect("connects");
        let mut bridge = BridgeServiceClient::new(channels[0].clone());
        // Numbers 0 and 1 were made, as when a commit hold runs out; 2 never was.
        for n in 0..2 {
            bridge
                .submit_interaction(request("end", n))
                .await
                .expect("submitted");
        }

        let open = async |bridge: &mut BridgeServiceClient<Channel>| {
            bridge
                .list_open_interactions(pb::ListOpenInteractionsRequest {})
                .await
                .expect("listed")
                .into_inner()
                .interactions
                .len()
        };
        assert_eq!(open(&mut bridge).await, 2, "both wait for an agent");

        let unended = end_refused(&channels, "end", vec![0, 1, 2]).await;

        assert_eq!(unended, 0, "made or not, every interaction is dealt with");
        assert_eq!(open(&mut bridge).await, 0, "nothing of the run waits");
        server.stop().await.expect("the server stops");
    }

    /// An item seen `millis` after `base`.
    fn seen(base: Instant, work_item_id: &str, millis: u64) -> Seen {
        Seen {
            work_item_id: work_item_id.into(),
            at: base + Duration::from_millis(millis),
        }
    }

    #[test]
    fn an_answer_is_timed_to_the_earliest_offer_of_its_item_whichever_agent_had_it() {
        let base = Instant::now();
        let acks = vec![seen(base, "a", 0), seen(base, "b", 10)];
        // Agent one's offers come first, though agent two had "a" earlier.
        let offers = vec![seen(base, "a", 9), seen(base, "b", 12), seen(base, "a", 4)];

        let matched = match_offers(acks, offers, histogram().unwrap());

        assert_eq!(matched.offers, 2);
        assert_eq!(matched.reoffers, 1);
        assert_eq!(matched.before_ack, 0);
        assert!(matched.unoffered.is_empty());
        assert_eq!(matched.arrival_to_offer.len(), 2);
        assert_eq!(matched.arrival_to_offer.min(), 2_000);
        assert!(
            matched
                .arrival_to_offer
                .equivalent(matched.arrival_to_offer.max(), 4_000)
        );
    }

    #[test]
    fn answers_never_offered_are_named_and_offers_never_answered_are_counted() {
        let base = Instant::now();
        let acks = vec![seen(base, "a", 5), seen(base, "b", 6)];
        // "a" reached its agent before its submitter had the answer; "c"
        // was answered to a submitter that failed.
        let offers = vec![seen(base, "a", 3), seen(base, "c", 7)];

        let matched = match_offers(acks, offers, histogram().unwrap());

        assert_eq!(matched.offers, 1);
        assert_eq!(matched.before_ack, 1);
        assert_eq!(matched.unoffered, vec!["b".to_string()]);
        assert_eq!(matched.reoffers, 1);
        assert_eq!(matched.arrival_to_offer.max(), 0);
    }
}
