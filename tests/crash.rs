//! Crash safety: the server runs as a child process under traffic and is
//! killed with SIGKILL at a random moment, ten times on each back-end,
//! restarted each time on the same database. Throughout each round callers
//! arrive and some hang up while waiting, agent Alice takes offers and
//! accepts them, and the bridge reports her calls connected, then ended, so
//! a kill can land in any of these requests. Against the client's log of
//! what was acknowledged, after every kill: every acknowledged work item is
//! stored with every acknowledged lifecycle event, every stored lifecycle is
//! consistent, and no event is recorded twice. After every restart (one more
//! follows the last kill) every acknowledged item the client sent nothing
//! else for is still waiting, answered items no one ended are still open,
//! and the waiting items stand in line in the order they were acknowledged.
//!
//! On PostgreSQL a restart also waits for a batch the killed server left
//! committing, so that it never rebuilds routing from a state the database
//! then moves past.
//!
//! `SWITCHBOARD_SEED` replays the kill moments of a run.

mod common;

use common::centre::{Centre, SUPPORT, agent};
use common::sessions::interaction_request;
use common::{Backend, ChildServer};
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::agent_service_client::AgentServiceClient;
use switchboard::proto::v1::bridge_service_client::BridgeServiceClient;
use switchboard::store::records::EventKind;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

const VOICE: pb::Channel = pb::Channel::Voice;

/// Kills per back-end.
const ROUNDS: usize = 10;

/// Submissions per round at most; the kill comes long before.
const SUBMISSIONS: usize = 5_000;

/// Submissions a round waits for before its kill can come, so that every
/// round has something to lose however slow the machine is.
const ACKS_BEFORE_KILL: usize = 3;

/// The longest wait, in milliseconds, between those acknowledgements and the kill.
const KILL_WINDOW_MS: u64 = 700;

/// Alice's voice calls at once: one on the line while she takes the
/// next, so that she keeps taking calls all round.
const ALICE_CAPACITY: i32 = 2;

/// Resubmissions in flight at once when reading places in line.
const CONCURRENT_LOOKUPS: usize = 64;

/// What the server acknowledged for an interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Acked {
    /// The submission: the work item is stored.
    Submitted,
    /// Alice's accept: the answer is stored.
    Answered,
    /// The bridge's report that the consumer is connected.
    Connected,
    /// The bridge's report that the conversation ended.
    Ended,
    /// Alice's wrap-up done after the call ended: the item is completed.
    Completed,
    /// The bridge's `EndInteraction`: the caller hung up, an abandon while
    /// waiting or offered, the end of the call once answered.
    HungUp,
}

/// What the client knows of one interaction.
#[derive(Debug, Clone)]
struct Entry {
    /// The work item the server named for it.
    item: String,
    /// Every acknowledgement received for it.
    acked: BTreeSet<Acked>,
    /// Alice sent an accept: it may be answered without an acknowledgement.
    accept_sent: bool,
    /// A hang-up or an ended report was sent: it may be finished without
    /// an acknowledgement.
    ending_sent: bool,
}

/// The client-side log, shared by the round's tasks: every interaction the
/// server acknowledged anything of or the client sent anything for, and the
/// interactions in the order their submissions were acknowledged.
#[derive(Debug, Clone, Default)]
struct AckLog {
    /// What is known of each interaction, by interaction id.
    entries: BTreeMap<String, Entry>,
    /// Interaction ids in the order their submissions were acknowledged,
    /// which is their order in line in each queue: each was sent after the
    /// one before was acknowledged.
    order: Vec<String>,
}

impl AckLog {
    /// The entry of `interaction`, whose work item is `item`.
    fn entry(&mut self, interaction: &str, item: &str) -> &mut Entry {
        let entry = self
            .entries
            .entry(interaction.to_string())
            .or_insert_with(|| Entry {
                item: item.to_string(),
                acked: BTreeSet::new(),
                accept_sent: false,
                ending_sent: false,
            });
        assert_eq!(
            entry.item, item,
            "{interaction} was named as two work items"
        );
        entry
    }

    /// Notes an acknowledgement.
    fn acked(&mut self, interaction: &str, item: &str, acked: Acked) {
        self.entry(interaction, item).acked.insert(acked);
        if acked == Acked::Submitted {
            self.order.push(interaction.to_string());
        }
    }
}

/// Locks the log; a task that panicked holding it has already failed the test.
fn lock(log: &Mutex<AckLog>) -> std::sync::MutexGuard<'_, AckLog> {
    log.lock().expect("no task panics holding the log")
}

/// A call Alice answered: its interaction and work item.
type Call = (String, String);

/// Callers arrive one after another, every third in queue `sales`, where
/// no agent signs in, the others in Alice's queue `support`; after every
/// second arrival the caller before hangs up (`EndInteraction`). Runs until
/// the server dies, and returns why it stopped.
async fn callers(channel: Channel, round: usize, log: Arc<Mutex<AckLog>>) -> String {
    let mut bridge = BridgeServiceClient::new(channel);
    for n in 0..SUBMISSIONS {
        let interaction = format!("r{round}-c{n}");
        let mut request = interaction_request(&interaction, VOICE, SUPPORT);
        if n.is_multiple_of(3) {
            request.queue = "sales".into();
        }
        let item = match bridge.submit_interaction(request).await {
            Ok(answer) => answer.into_inner().work_item_id,
            Err(status) => return format!("submitting {interaction}: {status}"),
        };
        lock(&log).acked(&interaction, &item, Acked::Submitted);
        if n == 0 || !n.is_multiple_of(2) {
            continue;
        }
        let previous = format!("r{round}-c{}", n - 1);
        let previous_item = {
            let mut log = lock(&log);
            // Logged when its submission was acknowledged, just before this one's.
            let entry = log
                .entries
                .get_mut(&previous)
                .expect("the previous caller is logged");
            entry.ending_sent = true;
            entry.item.clone()
        };
        let hang_up = pb::EndInteractionRequest {
            interaction_id: previous.clone(),
            reason: "consumer hung up".into(),
        };
        match bridge.end_interaction(hang_up).await {
            Ok(_) => lock(&log).acked(&previous, &previous_item, Acked::HungUp),
            // Alice answered the call and it is over already.
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => return format!("hanging up {previous}: {status}"),
        }
    }
    "every submission was sent".into()
}

/// Alice's agent session, failing instead of panicking once the server dies.
struct Alice {
    /// Where her requests go.
    outbound: mpsc::UnboundedSender<pb::AgentMessage>,
    /// Where acks, offers and ended items come from.
    inbound: Streaming<pb::AgentEvent>,
    /// Offers and ended items that arrived while she waited for an ack.
    kept: VecDeque<pb::agent_event::Kind>,
    /// The id of her last request, which its ack names.
    last_request: u64,
}

impl Alice {
    /// Opens her session and signs her in, ready.
    async fn sign_in(channel: Channel) -> Result<Self, String> {
        let (outbound, requests) = mpsc::unbounded_channel();
        let inbound = AgentServiceClient::new(channel)
            .session(UnboundedReceiverStream::new(requests))
            .await
            .map_err(|status| format!("opening Alice's session: {status}"))?
            .into_inner();
        let mut alice = Self {
            outbound,
            inbound,
            kept: VecDeque::new(),
            last_request: 0,
        };
        let sign_in = pb::SignIn {
            agent_id: "alice".into(),
            ready: true,
        };
        let ack = alice
            .request(pb::agent_message::Kind::SignIn(sign_in))
            .await?;
        assert_eq!(ack.code, 0, "Alice's sign-in is refused: {ack:?}");
        Ok(alice)
    }

    /// The next message on her stream.
    async fn receive(&mut self) -> Result<pb::agent_event::Kind, String> {
        loop {
            match self.inbound.message().await {
                Ok(Some(pb::AgentEvent { kind: Some(kind) })) => return Ok(kind),
                Ok(Some(_)) => {}
                Ok(None) => return Err("Alice's session ended".into()),
                Err(status) => return Err(format!("Alice's session failed: {status}")),
            }
        }
    }

    /// Sends a request and waits for its ack, keeping offers and ended
    /// items for later.
    async fn request(&mut self, kind: pb::agent_message::Kind) -> Result<pb::Ack, String> {
        use pb::agent_event::Kind;
        self.last_request += 1;
        let request_id = self.last_request;
        let message = pb::AgentMessage {
            request_id,
            kind: Some(kind),
        };
        self.outbound
            .send(message)
            .map_err(|_| "Alice's request stream is closed".to_string())?;
        loop {
            match self.receive().await? {
                Kind::Ack(ack) if ack.request_id == request_id => return Ok(ack),
                kind @ (Kind::Offer(_) | Kind::ItemEnded(_)) => self.kept.push_back(kind),
                _ => {}
            }
        }
    }

    /// The next offer or ended item.
    async fn next(&mut self) -> Result<pb::agent_event::Kind, String> {
        use pb::agent_event::Kind;
        if let Some(kind) = self.kept.pop_front() {
            return Ok(kind);
        }
        loop {
            let kind = self.receive().await?;
            if matches!(kind, Kind::Offer(_) | Kind::ItemEnded(_)) {
                return Ok(kind);
            }
        }
    }
}

/// Alice accepts every offer and hands the calls she answered to the
/// bridge; when a call ends she is done with its wrap-up at once, so that
/// she keeps taking calls. Runs until the server dies, and returns why it
/// stopped.
async fn alice(
    channel: Channel,
    log: Arc<Mutex<AckLog>>,
    answered: mpsc::UnboundedSender<Call>,
) -> String {
    match take_calls(channel, &log, &answered).await {
        Ok(()) => "the bridge task stopped".into(),
        Err(why) => why,
    }
}

/// The work of [`alice`].
async fn take_calls(
    channel: Channel,
    log: &Mutex<AckLog>,
    answered: &mpsc::UnboundedSender<Call>,
) -> Result<(), String> {
    use pb::agent_event::Kind;
    let mut alice = Alice::sign_in(channel).await?;
    // Her calls' interactions, by work item.
    let mut interactions = HashMap::new();
    loop {
        match alice.next().await? {
            Kind::Offer(offer) => {
                let (interaction, item) = (offer.interaction_id, offer.work_item_id);
                lock(log).entry(&interaction, &item).accept_sent = true;
                let accept = pb::AcceptOffer {
                    work_item_id: item.clone(),
                };
                let ack = alice
                    .request(pb::agent_message::Kind::Accept(accept))
                    .await?;
                // A refusal means the caller hung up first.
                if ack.code != 0 {
                    continue;
                }
                lock(log).acked(&interaction, &item, Acked::Answered);
                interactions.insert(item.clone(), interaction.clone());
                if answered.send((interaction, item)).is_err() {
                    return Ok(());
                }
            }
            Kind::ItemEnded(ended) => {
                let done = pb::agent_message::Kind::WrapUpDone(pb::WrapUpDone {});
                let ack = alice.request(done).await?;
                // Calls answered before the restart are not hers to log; a
                // refusal means the timer or her last wrap-up done ended it.
                if let Some(interaction) = interactions.get(&ended.work_item_id)
                    && ack.code == 0
                {
                    lock(log).acked(interaction, &ended.work_item_id, Acked::Completed);
                }
            }
            _ => {}
        }
    }
}

/// The bridge's session, failing instead of panicking once the server dies.
struct Bridge {
    /// Where its reports go.
    outbound: mpsc::UnboundedSender<pb::BridgeMessage>,
    /// Where acks and instructions come from.
    inbound: Streaming<pb::BridgeInstruction>,
    /// The id of its last report, which its ack names.
    last_request: u64,
}

impl Bridge {
    /// Opens the session with hello.
    async fn open(channel: Channel) -> Result<Self, String> {
        let (outbound, requests) = mpsc::unbounded_channel();
        let inbound = BridgeServiceClient::new(channel)
            .session(UnboundedReceiverStream::new(requests))
            .await
            .map_err(|status| format!("opening the bridge session: {status}"))?
            .into_inner();
        let mut bridge = Self {
            outbound,
            inbound,
            last_request: 0,
        };
        let hello = pb::BridgeHello {
            bridge_id: "crash-bridge".into(),
        };
        let ack = bridge
            .request(pb::bridge_message::Kind::Hello(hello))
            .await?;
        assert_eq!(ack.code, 0, "the bridge's hello is refused: {ack:?}");
        Ok(bridge)
    }

    /// Sends a message and waits for its ack, skipping instructions.
    async fn request(&mut self, kind: pb::bridge_message::Kind) -> Result<pb::Ack, String> {
        self.last_request += 1;
        let request_id = self.last_request;
        let message = pb::BridgeMessage {
            request_id,
            kind: Some(kind),
        };
        self.outbound
            .send(message)
            .map_err(|_| "the bridge's request stream is closed".to_string())?;
        loop {
            match self.inbound.message().await {
                Ok(Some(pb::BridgeInstruction {
                    kind: Some(pb::bridge_instruction::Kind::Ack(ack)),
                })) if ack.request_id == request_id => return Ok(ack),
                Ok(Some(_)) => {}
                Ok(None) => return Err("the bridge session ended".into()),
                Err(status) => return Err(format!("the bridge session failed: {status}")),
            }
        }
    }

    /// Reports `call` connected; logs the ack.
    async fn connect(&mut self, call: &Call, log: &Mutex<AckLog>) -> Result<(), String> {
        let (interaction, item) = call;
        let connected = pb::InteractionConnected {
            work_item_id: item.clone(),
        };
        let ack = self
            .request(pb::bridge_message::Kind::Connected(connected))
            .await?;
        // A refusal means the caller hung up first.
        if ack.code == 0 {
            lock(log).acked(interaction, item, Acked::Connected);
        }
        Ok(())
    }

    /// Reports `call` ended; logs the ack.
    async fn end(&mut self, call: &Call, log: &Mutex<AckLog>) -> Result<(), String> {
        let (interaction, item) = call;
        lock(log).entry(interaction, item).ending_sent = true;
        let ended = pb::InteractionEnded {
            work_item_id: item.clone(),
        };
        let ack = self.request(pb::bridge_message::Kind::Ended(ended)).await?;
        // A refusal means the caller hung up first.
        if ack.code == 0 {
            lock(log).acked(interaction, item, Acked::Ended);
        }
        Ok(())
    }
}

/// The bridge first connects and ends the calls answered before the
/// restart, then reports each call Alice answers connected, and ends it
/// once the next one is connected. Runs until the server dies, and
/// returns why it stopped.
async fn calls(
    channel: Channel,
    round: usize,
    log: Arc<Mutex<AckLog>>,
    mut answered: mpsc::UnboundedReceiver<Call>,
) -> String {
    match put_through(channel, round, &log, &mut answered).await {
        Ok(()) => "Alice stopped".into(),
        Err(why) => why,
    }
}

/// The work of [`calls`].
async fn put_through(
    channel: Channel,
    round: usize,
    log: &Mutex<AckLog>,
    answered: &mut mpsc::UnboundedReceiver<Call>,
) -> Result<(), String> {
    let mut bridge = Bridge::open(channel.clone()).await?;
    let open = BridgeServiceClient::new(channel)
        .list_open_interactions(pb::ListOpenInteractionsRequest {})
        .await
        .map_err(|status| format!("listing open interactions: {status}"))?
        .into_inner()
        .interactions;
    let this_round = format!("r{round}-");
    for interaction in open {
        // This round's calls are Alice's, who hands them over below. One of
        // an earlier round that she answers meanwhile may be reported twice,
        // which the server takes as a repeat.
        let earlier = !interaction.interaction_id.starts_with(&this_round);
        if !earlier || !matches!(interaction.state.as_str(), "answered" | "connected") {
            continue;
        }
        let call = (interaction.interaction_id, interaction.work_item_id);
        if interaction.state == "answered" {
            bridge.connect(&call, log).await?;
        }
        bridge.end(&call, log).await?;
    }
    let mut on_the_line: Option<Call> = None;
    while let Some(call) = answered.recv().await {
        bridge.connect(&call, log).await?;
        if let Some(previous) = on_the_line.replace(call) {
            bridge.end(&previous, log).await?;
        }
    }
    Ok(())
}

/// Waits until the killed server's last transaction is over: PostgreSQL
/// still commits a transaction whose commit it received before the server
/// died, and the checks must read the database as the crash left it, not
/// half before and half after that commit. A transaction the server began
/// holds its tables' row locks until it ends, so share locks wait for it.
async fn settle(backend: &Backend) {
    if backend.name != "postgres" {
        return;
    }
    let pool = sqlx::PgPool::connect(&backend.url)
        .await
        .expect("the database opens");
    let mut transaction = pool.begin().await.expect("a transaction begins");
    sqlx::query("LOCK TABLE work_items, work_item_events, agent_state_history IN SHARE MODE")
        .execute(&mut *transaction)
        .await
        .expect("the tables can be locked");
    transaction.commit().await.expect("the transaction ends");
    pool.close().await;
}

/// Reads every stored work item of the interactions in `log`, by interaction.
async fn stored_items(
    store: &dyn switchboard::store::Store,
    log: &AckLog,
) -> HashMap<String, switchboard::store::records::StoredWorkItem> {
    let mut stored = HashMap::new();
    let interactions: Vec<_> = log
        .entries
        .keys()
        .map(|interaction| interaction.as_str().into())
        .collect();
    for chunk in interactions.chunks(500) {
        let found = store
            .find_work_items(chunk)
            .await
            .expect("the store answers");
        for item in found {
            stored.insert(item.item.interaction_id.to_string(), item);
        }
    }
    stored
}

/// Checks the database after a kill: every stored lifecycle is consistent
/// and records no event twice (offers aside, which a restart may repeat);
/// every acknowledged work item is stored as the item the client was told,
/// with every acknowledged event.
async fn check_stored(backend: &Backend, log: &AckLog) {
    use EventKind as K;
    let lifecycles: HashMap<String, Vec<EventKind>> = common::check_lifecycles_by_item(backend)
        .await
        .into_iter()
        .map(|(id, kinds)| (id.to_string(), kinds))
        .collect();
    for (item, kinds) in &lifecycles {
        for (index, kind) in kinds.iter().enumerate() {
            let offer = matches!(
                kind,
                K::Offered | K::OfferRescinded | K::OfferTimedOut | K::OfferDeclined
            );
            assert!(
                offer || !kinds[..index].contains(kind),
                "{item}: {kind:?} is recorded twice in {kinds:?} on {}",
                backend.name
            );
        }
    }
    let store = switchboard::store::connect(&backend.url)
        .await
        .expect("the store opens");
    let stored = stored_items(store.as_ref(), log).await;
    store.close().await;
    for (interaction, entry) in &log.entries {
        if entry.acked.is_empty() {
            continue;
        }
        let item = stored
            .get(interaction)
            .unwrap_or_else(|| panic!("{interaction} was acknowledged but is not stored"));
        assert_eq!(
            item.item.id.to_string(),
            entry.item,
            "{interaction}: another item"
        );
        let kinds = &lifecycles[&entry.item];
        for acked in &entry.acked {
            let kept = match acked {
                Acked::Submitted => true,
                Acked::Answered => kinds.contains(&K::Answered),
                Acked::Connected => kinds.contains(&K::Connected),
                Acked::Ended => kinds.contains(&K::Ended),
                Acked::Completed => kinds.contains(&K::Completed),
                Acked::HungUp if entry.accept_sent => {
                    kinds.contains(&K::Abandoned) || kinds.contains(&K::Ended)
                }
                Acked::HungUp => kinds.contains(&K::Abandoned),
            };
            assert!(
                kept,
                "{interaction}: acknowledged {acked:?}, stored {} with events {kinds:?} on {}",
                item.state, backend.name
            );
        }
    }
}

/// Checks a restarted server against the log: an acknowledged item the
/// client sent nothing else for is waiting; one Alice accepted and no one
/// ended is waiting (the accept was lost) or still answered, or connected
/// once acknowledged so; and the waiting items stand in line in the order
/// their submissions were acknowledged. Returns how many were waiting.
async fn check_open(server: &ChildServer, log: &AckLog) -> usize {
    let channel = server.channel().await;
    let mut bridge = BridgeServiceClient::new(channel);
    let open: HashMap<String, String> = bridge
        .list_open_interactions(pb::ListOpenInteractionsRequest {})
        .await
        .expect("open interactions are listed")
        .into_inner()
        .interactions
        .into_iter()
        .map(|open| (open.interaction_id, open.state))
        .collect();
    for (interaction, entry) in &log.entries {
        // Nothing acknowledged: the item may never have been stored.
        if entry.ending_sent || entry.acked.is_empty() {
            continue;
        }
        let state = open.get(interaction).map(String::as_str);
        let allowed: &[&str] = if !entry.accept_sent {
            &["waiting"]
        } else if entry.acked.contains(&Acked::Connected) {
            &["connected"]
        } else if entry.acked.contains(&Acked::Answered) {
            &["answered", "connected"]
        } else {
            &["waiting", "answered", "connected"]
        };
        assert!(
            state.is_some_and(|state| allowed.contains(&state)),
            "{interaction}: acknowledged {:?}, {} after the restart",
            entry.acked,
            state.unwrap_or("not open")
        );
    }
    let mut waiting = Vec::new();
    for interaction in &log.order {
        if open
            .get(interaction)
            .is_some_and(|state| state == "waiting")
        {
            waiting.push(interaction.clone());
        }
    }
    // No agent is signed in, so places in line hold still while they are read.
    let mut positions = Vec::with_capacity(waiting.len());
    for chunk in waiting.chunks(CONCURRENT_LOOKUPS) {
        let mut lookups = Vec::with_capacity(chunk.len());
        for interaction in chunk {
            let mut client = bridge.clone();
            let request = interaction_request(interaction, VOICE, SUPPORT);
            lookups.push(tokio::spawn(async move {
                client.submit_interaction(request).await
            }));
        }
        for (interaction, lookup) in chunk.iter().zip(lookups) {
            let again = lookup
                .await
                .expect("the lookup does not panic")
                .unwrap_or_else(|status| panic!("submitting {interaction} again: {status}"))
                .into_inner();
            assert!(!again.created, "{interaction} is found again, not created");
            positions.push((again.queue, again.position));
        }
    }
    let mut last_positions = HashMap::new();
    for (interaction, (queue, position)) in waiting.iter().zip(positions) {
        let last_position = last_positions.entry(queue).or_insert(0);
        assert!(
            position > *last_position,
            "{interaction} is at {position} after {last_position}: waiting items keep their order"
        );
        *last_position = position;
    }
    waiting.len()
}

/// The round's traffic: callers, Alice and the bridge, each a task.
struct Traffic {
    /// Each task ends only when the server dies, saying why.
    tasks: Vec<JoinHandle<String>>,
}

impl Traffic {
    /// Starts the round's tasks against a freshly started server.
    async fn start(server: &ChildServer, round: usize, log: &Arc<Mutex<AckLog>>) -> Self {
        let (answered, to_put_through) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(callers(server.channel().await, round, log.clone())),
            tokio::spawn(alice(server.channel().await, log.clone(), answered)),
            tokio::spawn(calls(
                server.channel().await,
                round,
                log.clone(),
                to_put_through,
            )),
        ];
        Self { tasks }
    }

    /// True once a task has stopped.
    fn any_stopped(&self) -> bool {
        self.tasks.iter().any(JoinHandle::is_finished)
    }

    /// Why a task stopped before the kill, if one did.
    async fn stopped(&mut self) -> Option<String> {
        for task in &mut self.tasks {
            if task.is_finished() {
                return Some(match task.await {
                    Ok(why) => why,
                    Err(error) => format!("a task failed: {error}"),
                });
            }
        }
        None
    }

    /// Stops the tasks after the kill.
    async fn abort(self) {
        for task in self.tasks {
            task.abort();
            if let Err(error) = task.await
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }
}

#[tokio::test]
async fn sigkill_under_traffic_loses_no_acknowledged_work() {
    let seed: u64 = std::env::var("SWITCHBOARD_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (SWITCHBOARD_SEED replays it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for backend in common::backends().await {
        let alice = pb::Agent {
            capacity: Some(pb::ChannelCapacity {
                voice: ALICE_CAPACITY,
                chat: 0,
                video: 0,
            }),
            ..agent("alice", 3)
        };
        let centre = Centre::start_with_sales(&backend, vec![alice]).await;
        centre.server.stop().await;
        let log = Arc::new(Mutex::new(AckLog::default()));
        for round in 0..ROUNDS {
            let server = ChildServer::start(&backend.url).await;
            let before = lock(&log).clone();
            let waiting = check_open(&server, &before).await;
            let mut traffic = Traffic::start(&server, round, &log).await;
            // Once the round has a few submissions acknowledged, kill at a
            // random moment while callers, Alice and the bridge are busy.
            let enough = before.order.len() + ACKS_BEFORE_KILL;
            let acknowledged = tokio::time::timeout(Duration::from_secs(60), async {
                while lock(&log).order.len() < enough && !traffic.any_stopped() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            assert!(
                acknowledged.is_ok(),
                "round {round} acknowledged fewer than {ACKS_BEFORE_KILL} submissions in a minute: {:?}",
                traffic.stopped().await
            );
            let kill_after = Duration::from_millis(rng.random_range(0..KILL_WINDOW_MS));
            tokio::time::sleep(kill_after).await;
            let stopped = traffic.stopped().await;
            assert!(
                stopped.is_none(),
                "round {round}: the traffic stopped before the kill: {stopped:?}"
            );
            server.kill().await;
            traffic.abort().await;
            settle(&backend).await;
            let after = lock(&log).clone();
            check_stored(&backend, &after).await;
            let mut counts = BTreeMap::new();
            for entry in after.entries.values() {
                for acked in &entry.acked {
                    *counts.entry(*acked).or_insert(0) += 1;
                }
            }
            eprintln!(
                "round {round} on {}: {waiting} waiting at the start, killed after {kill_after:?}; acknowledged so far: {counts:?}",
                backend.name,
            );
        }
        let server = ChildServer::start(&backend.url).await;
        let last = lock(&log).clone();
        let waiting = check_open(&server, &last).await;
        eprintln!("after the last kill on {}: {waiting} waiting", backend.name);
        server.kill().await;
    }
}

/// A server killed while PostgreSQL commits its last batch leaves the
/// database to finish that commit; a restart must wait for it before it
/// reads the open work items. The test plays the dead server's batch: a
/// transaction holding the schema's batch lock, as every batch does.
#[tokio::test]
async fn a_restart_waits_for_a_commit_the_killed_server_left_under_way() {
    use sqlx::Connection;
    let Some(backend) = common::postgres().await else {
        return;
    };
    let centre = Centre::start(&backend, common::centre::support_queue(), Vec::new()).await;
    centre.server.stop().await;
    let mut dead_servers_batch = sqlx::PgConnection::connect(&backend.url)
        .await
        .expect("the test reaches the database");
    sqlx::query("BEGIN")
        .execute(&mut dead_servers_batch)
        .await
        .expect("a transaction begins");
    sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtext(current_schema()))")
        .execute(&mut dead_servers_batch)
        .await
        .expect("the batch lock is taken, shared");

    let url = backend.url.clone();
    let restart = tokio::spawn(async move { switchboard::store::connect(&url).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !restart.is_finished(),
        "the store opened while an earlier batch was still committing"
    );
    sqlx::query("COMMIT")
        .execute(&mut dead_servers_batch)
        .await
        .expect("the batch commits");
    let store = tokio::time::timeout(Duration::from_secs(30), restart)
        .await
        .expect("the store opens once the batch is over")
        .expect("the task ran")
        .expect("the store opens");
    store.close().await;
}
