//! The database going away under traffic. PostgreSQL is reached through a
//! loopback proxy the test cuts (every connection dropped, new ones refused)
//! for 20 s and then restores, or turns into a black hole (nothing passes,
//! nothing is closed) for 15 s; SQLite runs on a small tmpfs whose free space
//! the test takes while the server runs (a full disk: this needs root, and
//! is skipped elsewhere) and then gives back. Submissions arrive in the
//! background every 30 ms before, during and after the outage, each checked
//! against the store the moment it is acknowledged.
//!
//! While the store is down health says NOT_SERVING, every submission is
//! refused with UNAVAILABLE and none is acknowledged, and routing goes on
//! from memory: the bridge ends calls and a waiting caller hangs up, agents
//! wrap up, a newcomer signs in, and each is offered a waiting call and
//! accepts it, and the bridge is told at once to put the call through.
//! Those requests take effect at once but answer UNAVAILABLE, since they
//! cannot be stored; an agent retrying the accept is acknowledged once the
//! store is back. Once
//! the database is back the writer catches up: every answer given during
//! the outage is stored, the refused submissions are accepted when the
//! bridge retries them, everything submitted is stored, and nothing is
//! stored twice.
//!
//! Narrower cases: the proxy breaks the connection just as PostgreSQL
//! commits, or goes silent just after the COMMIT is sent, holding its answer
//! (either way the batch is stored, the server cannot know it, and its retry
//! must not store it again), and a SQLite file opened read-only refuses new
//! work and says NOT_SERVING.

mod common;

use common::Backend;
use common::centre::{Centre, SUPPORT, agent, support_queue};
use common::sessions::{
    AgentClient, AgentKind, AgentKind2, BridgeClient, Instruction, Report, interaction_request,
};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::config::ServeConfig;
use switchboard::domain::{InteractionId, WorkItemId};
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::bridge_service_client::BridgeServiceClient;
use switchboard::store::Store;
use switchboard::store::records::EventKind as K;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{AbortHandle, JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The channel of every call.
const VOICE: pb::Channel = pb::Channel::Voice;

/// How often the background traffic submits a call.
const SUBMIT_EVERY: Duration = Duration::from_millis(30);

/// Longest wait for the server to change state: a hang guard, not a
/// timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// A TCP proxy on loopback in front of the database, which the test can cut
/// or turn into a black hole.
struct Proxy {
    /// Where the server connects instead of the database.
    addr: SocketAddr,
    /// Shared with the forwarding tasks.
    state: Arc<ProxyState>,
    /// The task taking connections, stopped with the proxy.
    accept: AbortHandle,
}

/// What the proxy's tasks share.
#[derive(Default)]
struct ProxyState {
    /// Set while the database is cut off: new connections are dropped.
    refusing: AtomicBool,
    /// What becomes of the next COMMIT a client sends, if anything.
    next_commit: Mutex<Option<CommitTrap>>,
    /// Bytes before whose next sending the path turns into a black hole.
    silence_before: Mutex<Option<Vec<u8>>>,
    /// True while the path is a black hole, as when a network drops packets
    /// without resetting anything: every byte is held, both ways, and so is
    /// a close, yet no socket is closed; connections made meanwhile are
    /// accepted and held alike. Once false again, everything held passes,
    /// as TCP's retransmissions would deliver it.
    silent: watch::Sender<bool>,
    /// The forwarding tasks of open connections.
    connections: Mutex<Vec<AbortHandle>>,
}

impl ProxyState {
    /// Drops every open connection and refuses new ones.
    fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().expect("not poisoned").drain(..) {
            connection.abort();
        }
    }

    /// Waits while the path is a black hole.
    async fn passable(&self) {
        let mut silent = self.silent.subscribe();
        // The sender lives as long as `self`.
        let _ = silent.wait_for(|silent| !silent).await;
    }
}

impl Proxy {
    /// Starts forwarding a free loopback port to `target`.
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let state = Arc::new(ProxyState::default());
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if shared.refusing.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let forwarding = tokio::spawn(forward(inbound, outbound, shared.clone()));
                shared
                    .connections
                    .lock()
                    .expect("not poisoned")
                    .push(forwarding.abort_handle());
            }
        })
        .abort_handle();
        Self {
            addr,
            state,
            accept,
        }
    }

    /// The outage: every open connection is dropped, new ones are refused.
    fn cut(&self) {
        self.state.cut();
    }

    /// The outage begins with the next COMMIT a client sends, as `trap`
    /// says, so that the client never learns whether it committed.
    fn trap_next_commit(&self, trap: CommitTrap) {
        *self.state.next_commit.lock().expect("not poisoned") = Some(trap);
    }

    /// The path turns into a black hole just before the next message
    /// carrying `bytes` (a query's parameter, say) leaves the server.
    fn silence_before(&self, bytes: &[u8]) {
        *self.state.silence_before.lock().expect("not poisoned") = Some(bytes.to_vec());
    }

    /// The database is reachable again; whatever a black hole held passes.
    fn restore(&self) {
        self.state.refusing.store(false, Ordering::SeqCst);
        self.state.silent.send_replace(false);
    }

    /// A proxy in front of the test database, and the URL of `backend`
    /// through it.
    async fn in_front_of(backend: &Backend) -> (Self, String) {
        let proxy = Proxy::start("127.0.0.1:5432".parse().expect("an address")).await;
        let url = backend
            .url
            .replace("127.0.0.1:5432", &proxy.addr.to_string());
        assert_ne!(
            url, backend.url,
            "the test database is reached through the proxy"
        );
        (proxy, url)
    }
}

/// How the proxy begins an outage at a COMMIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommitTrap {
    /// The COMMIT reaches the database, and the connection breaks as the
    /// answer comes back.
    CutAnswer,
    /// The COMMIT reaches the database, and the path then turns into a
    /// black hole: the answer is held until the test restores the path.
    HoldAnswer,
    /// The path turns into a black hole just before the COMMIT leaves: the
    /// transaction stays open and idle, its locks held, until the test
    /// restores the path and the COMMIT arrives late.
    HoldCommit,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Forwards one connection both ways until either side closes, or until
/// the database answers the COMMIT whose answer is to be lost: then
/// everything is cut before the answer is passed on. While the path is a
/// black hole, what is read (a close too) waits to be passed on.
async fn forward(inbound: TcpStream, outbound: TcpStream, state: Arc<ProxyState>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_database, mut to_database) = outbound.into_split();
    let answer_lost = AtomicBool::new(false);
    let upstream = async {
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            let received = from_client.read(&mut buffer).await;
            state.passable().await;
            let Ok(read @ 1..) = received else {
                return;
            };
            let chunk = &buffer[..read];
            let trap = if chunk.windows(7).any(|window| window == b"COMMIT\0") {
                state.next_commit.lock().expect("not poisoned").take()
            } else {
                None
            };
            let carries = |bytes: &mut Vec<u8>| chunk.windows(bytes.len()).any(|w| w == bytes);
            // Silent before the chunk leaves: it stays held, as does the
            // transaction or query it is part of.
            let mut hold = state
                .silence_before
                .lock()
                .expect("not poisoned")
                .take_if(carries)
                .is_some();
            match trap {
                Some(CommitTrap::CutAnswer) => answer_lost.store(true, Ordering::SeqCst),
                // Silent before the COMMIT leaves, so that its answer is held.
                Some(CommitTrap::HoldAnswer) => {
                    state.silent.send_replace(true);
                }
                Some(CommitTrap::HoldCommit) => hold = true,
                None => {}
            }
            if hold {
                state.silent.send_replace(true);
                state.passable().await;
            }
            if to_database.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            let received = from_database.read(&mut buffer).await;
            state.passable().await;
            let Ok(read @ 1..) = received else {
                return;
            };
            if answer_lost.load(Ordering::SeqCst) {
                // The database has answered the COMMIT, so it committed;
                // the client never hears of it.
                state.cut();
                return;
            }
            if to_client.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

/// A small tmpfs mounted for one test, holding the SQLite database; the
/// test takes its free space while the server runs (a full disk) and gives
/// it back.
struct SmallDisk {
    /// The mount point.
    dir: tempfile::TempDir,
    /// The file that takes the free space.
    filler: PathBuf,
}

impl SmallDisk {
    /// Mounts a 32 MiB tmpfs on a fresh directory; `None`, with a warning
    /// (a failure in CI), where mounting is not permitted, as for a user
    /// other than root.
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().expect("a temporary directory can be made");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
            .arg(dir.path())
            .output();
        let refusal = match mounted {
            Ok(output) if output.status.success() => {
                let filler = dir.path().join("filler");
                return Some(Self { dir, filler });
            }
            Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_string(),
            Err(error) => error.to_string(),
        };
        common::skipped_outside_ci(
            &format!("a tmpfs cannot be mounted here ({refusal})"),
            "the full-disk SQLite test is skipped (it needs root)",
        );
        None
    }

    /// Takes every free byte of the disk. SQLite's write-ahead log is first
    /// checkpointed and truncated, so that every commit from now on must
    /// grow it and finds the disk full.
    async fn fill(&self, database_url: &str) {
        let pool = sqlx::SqlitePool::connect(database_url)
            .await
            .expect("the test opens the database");
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            // Busy (1) while a reader or the writer is in the way.
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&pool)
                .await
                .expect("the log can be checkpointed");
            if busy == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the log never checkpointed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        pool.close().await;
        let filler = self.filler.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::create(&filler).expect("the filler file is created");
            let block = vec![0_u8; 64 * 1024];
            loop {
                match file.write(&block) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::StorageFull => return,
                    Err(error) => panic!("filling the disk failed: {error}"),
                }
            }
        })
        .await
        .expect("filling the disk does not panic");
    }

    /// Gives the space back.
    fn free(&self) {
        std::fs::remove_file(&self.filler).expect("the filler file can be removed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily, so that a test failing with the server still running does
        // not leave the disk mounted.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A way of taking the store away from a running server and giving it back.
trait Outage {
    /// Takes the store away.
    async fn begin(&mut self);
    /// Gives it back.
    async fn end(&mut self);
}

impl Outage for Proxy {
    async fn begin(&mut self) {
        self.cut();
    }

    async fn end(&mut self) {
        self.restore();
    }
}

/// A network path to PostgreSQL that goes silent: no packet passes, no
/// connection is reset or closed. It begins with a batch under way, just
/// before its COMMIT reaches the database.
struct BlackHole(Proxy);

impl Outage for BlackHole {
    async fn begin(&mut self) {
        self.0.trap_next_commit(CommitTrap::HoldCommit);
    }

    async fn end(&mut self) {
        self.0.restore();
    }
}

/// A full disk under a SQLite database.
struct FullDisk {
    /// The disk the database is on.
    disk: SmallDisk,
    /// The database, whose log is truncated before the disk fills.
    database_url: String,
}

impl Outage for FullDisk {
    async fn begin(&mut self) {
        self.disk.fill(&self.database_url).await;
    }

    async fn end(&mut self) {
        self.disk.free();
    }
}

/// The server's overall health now.
async fn health_now(channel: Channel) -> i32 {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status
}

/// Waits until the server's overall health is `wanted` (a hang guard of
/// 30 s, not a timing assertion).
async fn health_becomes(channel: Channel, wanted: ServingStatus) {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let status = health_now(channel.clone()).await;
        if status == wanted as i32 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "health stayed {status}, expected {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits and expects UNAVAILABLE: nothing is acknowledged unstored.
async fn submit_refused(bridge: &mut BridgeClient, interaction: &str) {
    let request = interaction_request(interaction, VOICE, SUPPORT);
    let status = bridge
        .client
        .submit_interaction(request)
        .await
        .expect_err("a submission is refused while the store is down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

/// Re-raises a spawned task's panic, so that its message is the test's.
fn joined<T>(result: Result<T, JoinError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("a test task was cancelled: {error}"),
    }
}

/// Where the run stands when a submission is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    /// The store takes writes.
    Up = 0,
    /// The store was just taken away; the server may not know it yet.
    Failing = 1,
    /// Health has said NOT_SERVING, and the store is still away.
    Down = 2,
    /// The store is given back.
    Back = 3,
}

impl Phase {
    /// The phase stored in `cell`.
    fn load(cell: &AtomicU8) -> Self {
        match cell.load(Ordering::SeqCst) {
            0 => Phase::Up,
            1 => Phase::Failing,
            2 => Phase::Down,
            _ => Phase::Back,
        }
    }
}

/// What became of one submission of the background traffic.
#[derive(Debug, Clone)]
struct Outcome {
    /// The interaction submitted.
    interaction: String,
    /// The phase when the answer came.
    phase: Phase,
    /// The answer.
    answer: Answer,
}

/// The server's answer to a submission, as the test saw it.
#[derive(Debug, Clone)]
enum Answer {
    /// Acknowledged, and in the store right after: the work item's id.
    Stored(String),
    /// Acknowledged, yet not in the store right after: a broken promise.
    NotStored,
    /// Refused, with this code and message.
    Refused(Code, String),
}

impl Answer {
    /// True unless the submission was refused.
    fn acknowledged(&self) -> bool {
        !matches!(self, Answer::Refused(..))
    }
}

/// Submissions every [`SUBMIT_EVERY`] in the background, each answer logged,
/// each acknowledgement checked against the store at once.
struct Traffic {
    /// The phase the test is in, set by the test.
    phase: Arc<AtomicU8>,
    /// Every answer so far, in the order they came.
    log: Arc<Mutex<Vec<Outcome>>>,
    /// Tells the submitting task to stop.
    stop: oneshot::Sender<()>,
    /// The submitting task, which ends once every answer is in.
    task: JoinHandle<()>,
}

impl Traffic {
    /// Starts submitting calls `call-1`, `call-2`, … to the server on
    /// `channel`; `store` reaches the same database directly.
    fn start(channel: Channel, store: Arc<dyn Store>) -> Self {
        let phase = Arc::new(AtomicU8::new(Phase::Up as u8));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = oneshot::channel();
        let client = BridgeServiceClient::new(channel);
        let (phase_seen, logged) = (phase.clone(), log.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SUBMIT_EVERY);
            let mut in_flight = JoinSet::new();
            let mut n = 0;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                n += 1;
                let submission = submit_and_check(
                    client.clone(),
                    store.clone(),
                    format!("call-{n}"),
                    phase_seen.clone(),
                );
                let outcomes = logged.clone();
                in_flight.spawn(async move {
                    let outcome = submission.await;
                    outcomes.lock().expect("not poisoned").push(outcome);
                });
                while let Some(done) = in_flight.try_join_next() {
                    joined(done);
                }
            }
            while let Some(done) = in_flight.join_next().await {
                joined(done);
            }
        });
        Self {
            phase,
            log,
            stop,
            task,
        }
    }

    /// Notes the phase the run is in, for the answers that follow.
    fn enter(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    /// Every answer so far.
    fn outcomes(&self) -> Vec<Outcome> {
        self.log.lock().expect("not poisoned").clone()
    }

    /// Waits until `count` submissions were acknowledged in `phase` (a hang
    /// guard of 30 s).
    async fn acknowledged_in(&self, phase: Phase, count: usize) {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let acknowledged = self
                .outcomes()
                .iter()
                .filter(|outcome| outcome.phase == phase && outcome.answer.acknowledged())
                .count();
            if acknowledged >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {acknowledged} submissions acknowledged in {phase:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops submitting, waits for the answers still due and returns them all.
    async fn stop(self) -> Vec<Outcome> {
        let Traffic {
            log, stop, task, ..
        } = self;
        let _ = stop.send(());
        joined(task.await);
        log.lock().expect("not poisoned").clone()
    }
}

/// Submits one call and, once it is acknowledged, looks it up in the store.
async fn submit_and_check(
    mut client: BridgeServiceClient<Channel>,
    store: Arc<dyn Store>,
    interaction: String,
    phase: Arc<AtomicU8>,
) -> Outcome {
    let request = interaction_request(&interaction, VOICE, SUPPORT);
    let answered = client.submit_interaction(request).await;
    let phase_then = Phase::load(&phase);
    let answer = match answered {
        Err(status) => Answer::Refused(status.code(), status.message().to_string()),
        Ok(response) => {
            let item = response.into_inner().work_item_id;
            let stored = store
                .find_work_item(&InteractionId::from(interaction.as_str()))
                .await
                .expect("the test reads the store directly");
            if stored.is_some_and(|found| found.item.id.to_string() == item) {
                Answer::Stored(item)
            } else {
                Answer::NotStored
            }
        }
    };
    Outcome {
        interaction,
        phase: phase_then,
        answer,
    }
}

/// An offer an agent took while the store was away, and how their accept
/// was answered.
struct Taken {
    /// The agent, still signed in.
    agent: AgentClient,
    /// The work item accepted.
    item: String,
    /// The last answer to the accept: the first that was not UNAVAILABLE.
    last: pb::Ack,
}

/// Takes the agent's next offer and accepts it, retrying while the answer
/// is UNAVAILABLE, as a client does; `first` receives the first answer as
/// soon as it comes.
fn take_next_call(mut agent: AgentClient, first: oneshot::Sender<pb::Ack>) -> JoinHandle<Taken> {
    tokio::spawn(async move {
        let offer = agent.offer().await;
        accept_until_stored(agent, offer.work_item_id, first).await
    })
}

/// Accepts `item`, retrying while the answer is UNAVAILABLE; `first`
/// receives the first answer as soon as it comes.
async fn accept_until_stored(
    mut agent: AgentClient,
    item: String,
    first: oneshot::Sender<pb::Ack>,
) -> Taken {
    let mut first = Some(first);
    let mut attempts = 0;
    loop {
        let request = agent.send(AgentKind2::Accept(pb::AcceptOffer {
            work_item_id: item.clone(),
        }));
        let ack = agent.ack(request).await;
        if let Some(first) = first.take() {
            let _ = first.send(ack.clone());
        }
        if ack.code != Code::Unavailable as i32 {
            return Taken {
                agent,
                item,
                last: ack,
            };
        }
        attempts += 1;
        assert!(attempts < 30, "{}: {item} is never accepted", agent.id);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Routing from memory while the store is away. The bridge reports the end
/// of the first agent's call, the caller of the second hanging up, and the
/// caller `waiting` hanging up before being answered; both agents, once
/// wrapped up, and `newcomer`, signing in now, are each offered a waiting
/// call and accept it. Every request takes effect at once, yet answers
/// UNAVAILABLE, since it cannot be stored. Returns the agents' accepts,
/// still retrying, and the calls that ended.
async fn route_while_down(
    centre: &Centre,
    bridge: &mut BridgeClient,
    on_calls: Vec<(AgentClient, String)>,
    newcomer: &str,
    waiting: &str,
) -> (Vec<JoinHandle<Taken>>, Vec<String>, HashMap<String, String>) {
    let mut reports = Vec::new();
    let mut agents = Vec::new();
    let mut ended = Vec::new();
    for (agent, item) in on_calls {
        let report = if ended.is_empty() {
            Report::Ended(pb::InteractionEnded {
                work_item_id: item.clone(),
            })
        } else {
            Report::ConsumerHungUp(pb::ConsumerHungUp {
                work_item_id: item.clone(),
            })
        };
        reports.push(bridge.send_report(report));
        ended.push(item);
        agents.push(agent);
    }
    reports.push(
        bridge.send_report(Report::ConsumerHungUp(pb::ConsumerHungUp {
            work_item_id: waiting.to_string(),
        })),
    );
    agents.push(centre.agent(newcomer).await);
    let mut takes = Vec::new();
    let mut firsts = Vec::new();
    for agent in agents {
        let (first, answered) = oneshot::channel();
        takes.push(take_next_call(agent, first));
        firsts.push(answered);
    }
    for request in reports {
        let ack = bridge.ack(request).await;
        assert_eq!(
            ack.code,
            Code::Unavailable as i32,
            "a report is not acknowledged while it cannot be stored: {ack:?}"
        );
    }
    let mut delivered = HashMap::new();
    for answered in firsts {
        let ack = answered
            .await
            .expect("each agent is offered a call (else see the agent task's panic)");
        assert_eq!(
            ack.code,
            Code::Unavailable as i32,
            "an accept is not acknowledged while the answer cannot be stored: {ack:?}"
        );
        let delivery = bridge
            .instruction("a call put through while the store is away", |kind| {
                matches!(kind, Instruction::Deliver(_))
            })
            .await;
        let Instruction::Deliver(delivery) = delivery else {
            unreachable!("matched a delivery")
        };
        delivered.insert(delivery.work_item_id, delivery.agent_id);
    }
    (takes, ended, delivered)
}

/// What a run through an outage did, to check against the store.
struct Run {
    /// Every submission's answer, the bridge's retries of refused ones last.
    outcomes: Vec<Outcome>,
    /// Calls accepted while the store was away, with their agents.
    answered: Vec<(String, String)>,
    /// Calls that ended (by the agent or the caller) while the store was away.
    ended: Vec<String>,
    /// The caller who hung up while waiting, while the store was away.
    abandoned: String,
}

/// Runs a centre on `server_url` (the database of `backend`, maybe through
/// a proxy) with traffic before, during and after an outage of at least
/// `length`, then checks that nothing was lost.
async fn outage_under_traffic(
    backend: &Backend,
    server_url: &str,
    outage: &mut impl Outage,
    length: Duration,
) {
    // Server logs go to the test's captured output; a second init is harmless.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    let started = Instant::now();
    let staff = vec![agent("alice", 3), agent("bob", 3), agent("dave", 3)];
    let config = ServeConfig::ephemeral(server_url);
    let centre = Centre::start_with(config, vec![support_queue()], staff).await;
    let mut bridge = centre.bridge().await;
    health_becomes(centre.server.channel().await, ServingStatus::Serving).await;
    let direct = switchboard::store::connect(&backend.url)
        .await
        .expect("the test reaches the database directly");
    let traffic = Traffic::start(centre.server.channel().await, direct.clone());
    traffic.acknowledged_in(Phase::Up, 30).await;

    // Alice and Bob answer the first two callers, who are put through.
    let mut on_calls = Vec::new();
    for id in ["alice", "bob"] {
        let mut agent = centre.agent(id).await;
        let offer = agent.offer().await;
        agent.accept(&offer.work_item_id).await;
        bridge.delivery(&offer.work_item_id).await;
        let connected = pb::InteractionConnected {
            work_item_id: offer.work_item_id.clone(),
        };
        let ack = bridge.report(Report::Connected(connected)).await;
        assert_eq!(ack.code, 0, "{ack:?}");
        on_calls.push((agent, offer.work_item_id));
    }
    // The caller last in line hangs up during the outage.
    let mut last_in_line = None;
    for outcome in traffic.outcomes() {
        if let Answer::Stored(item) = outcome.answer {
            last_in_line = Some(item);
        }
    }
    let waiting = last_in_line.expect("calls were acknowledged before the outage");

    traffic.enter(Phase::Failing);
    outage.begin().await;
    let began = Instant::now();
    health_becomes(centre.server.channel().await, ServingStatus::NotServing).await;
    traffic.enter(Phase::Down);
    let (takes, ended, delivered) =
        route_while_down(&centre, &mut bridge, on_calls, "dave", &waiting).await;
    // The store stays away a while longer: submissions go on being refused
    // and the writer retries with backoff.
    tokio::time::sleep_until(began + length).await;
    assert_eq!(
        health_now(centre.server.channel().await).await,
        ServingStatus::NotServing as i32,
        "health says NOT_SERVING as long as the store is away"
    );

    traffic.enter(Phase::Back);
    outage.end().await;
    health_becomes(centre.server.channel().await, ServingStatus::Serving).await;
    // Each accept given during the outage is acknowledged once stored; its
    // call was put through at once, from memory.
    let mut answered = Vec::new();
    let mut agents = Vec::new();
    for take in takes {
        let taken = joined(take.await);
        assert_eq!(
            taken.last.code, 0,
            "{}: once the store is back, the retried accept of {} is acknowledged: {:?}",
            taken.agent.id, taken.item, taken.last
        );
        assert_eq!(
            delivered.get(&taken.item),
            Some(&taken.agent.id),
            "{} was put through to its agent during the outage",
            taken.item
        );
        let connected = pb::InteractionConnected {
            work_item_id: taken.item.clone(),
        };
        let ack = bridge.report(Report::Connected(connected)).await;
        assert_eq!(ack.code, 0, "{ack:?}");
        answered.push((taken.item, taken.agent.id.clone()));
        agents.push(taken.agent);
    }
    traffic.acknowledged_in(Phase::Back, 20).await;
    let mut outcomes = traffic.stop().await;
    // The bridge retries every refused submission, with the same interaction id.
    let back = Arc::new(AtomicU8::new(Phase::Back as u8));
    let mut retried = Vec::new();
    for outcome in &outcomes {
        if !outcome.answer.acknowledged() {
            let client = bridge.client.clone();
            let interaction = outcome.interaction.clone();
            retried.push(submit_and_check(client, direct.clone(), interaction, back.clone()).await);
        }
    }
    outcomes.extend(retried);
    drop(agents);
    drop(bridge);
    centre.server.stop().await;
    direct.close().await;
    eprintln!(
        "{}: outage of {:?} in a run of {:?}",
        backend.name,
        began.elapsed().min(length),
        started.elapsed()
    );
    let run = Run {
        outcomes,
        answered,
        ended,
        abandoned: waiting,
    };
    check_nothing_lost(backend, &run).await;
}

/// Checks the answers the traffic had and, with the server stopped, the
/// store: every refusal was UNAVAILABLE, nothing was acknowledged unstored
/// or while the store was down, everything submitted is stored once with
/// the work item it was acknowledged with, and what routing did during the
/// outage is stored.
async fn check_nothing_lost(backend: &Backend, run: &Run) {
    let mut by_phase: HashMap<(Phase, bool), usize> = HashMap::new();
    for outcome in &run.outcomes {
        *by_phase
            .entry((outcome.phase, outcome.answer.acknowledged()))
            .or_default() += 1;
    }
    eprintln!(
        "{}: submissions by (phase, acknowledged): {by_phase:?}",
        backend.name
    );
    let mut wrong = Vec::new();
    for outcome in &run.outcomes {
        let fine = match &outcome.answer {
            Answer::Stored(_) => outcome.phase != Phase::Down,
            Answer::NotStored => false,
            // UNAVAILABLE, telling nothing of the database's whereabouts.
            Answer::Refused(code, message) => {
                *code == Code::Unavailable
                    && !message.contains("127.0.0.1")
                    && !message.contains("switchboard.db")
            }
        };
        if !fine {
            wrong.push(outcome);
        }
    }
    assert!(
        wrong.is_empty(),
        "refused otherwise than with a plain UNAVAILABLE, acknowledged while the store was down, or acknowledged but not stored: {wrong:#?}"
    );
    assert!(
        by_phase.get(&(Phase::Down, false)).copied().unwrap_or(0) > 0,
        "traffic ran through the outage"
    );

    // The last answer for each interaction: every one is acknowledged.
    let mut acknowledged = HashMap::new();
    for outcome in &run.outcomes {
        acknowledged.insert(outcome.interaction.clone(), outcome.answer.clone());
    }
    let store = switchboard::store::connect(&backend.url)
        .await
        .expect("the store opens");
    let interactions: Vec<InteractionId> = acknowledged
        .keys()
        .map(|interaction| InteractionId::from(interaction.as_str()))
        .collect();
    let found = store
        .find_work_items(&interactions)
        .await
        .expect("work items can be read");
    let mut stored = HashMap::new();
    for item in found {
        stored.insert(
            item.item.interaction_id.to_string(),
            item.item.id.to_string(),
        );
    }
    for (interaction, answer) in &acknowledged {
        let Answer::Stored(item) = answer else {
            panic!("{interaction} was never acknowledged: {answer:?}");
        };
        assert_eq!(
            stored.get(interaction),
            Some(item),
            "{interaction} is stored as acknowledged"
        );
    }
    let ids = common::work_item_ids(backend).await;
    assert_eq!(
        ids.len(),
        acknowledged.len(),
        "one work item per interaction submitted, nothing else"
    );

    // Every lifecycle is consistent and no event is stored twice.
    common::check_lifecycles(backend).await;
    let mut events_of = HashMap::new();
    for id in ids {
        let events = store
            .work_item_events(id)
            .await
            .expect("events can be read");
        for once in [K::Queued, K::Answered, K::Connected, K::Ended] {
            let count = events.iter().filter(|event| event.kind == once).count();
            assert!(
                count <= 1,
                "{id}: {once:?} stored {count} times: {events:?}"
            );
        }
        events_of.insert(id.to_string(), events);
    }
    let kinds = |item: &str| -> Vec<K> { events_of[item].iter().map(|event| event.kind).collect() };
    for (item, agent) in &run.answered {
        let answer = events_of[item]
            .iter()
            .find(|event| event.kind == K::Answered)
            .unwrap_or_else(|| panic!("the answer of {item} during the outage is stored"));
        assert_eq!(
            answer.agent.as_ref().map(ToString::to_string).as_deref(),
            Some(agent.as_str())
        );
        assert!(
            kinds(item).contains(&K::Connected),
            "{item}: {:?}",
            kinds(item)
        );
    }
    for item in &run.ended {
        assert!(
            kinds(item).contains(&K::Ended),
            "{item} ended during the outage: {:?}",
            kinds(item)
        );
    }
    assert!(
        kinds(&run.abandoned).contains(&K::Abandoned),
        "the caller hung up during the outage: {:?}",
        kinds(&run.abandoned)
    );
    store.close().await;
}

#[tokio::test]
async fn a_postgres_outage_under_traffic_loses_nothing() {
    let Some(backend) = common::postgres().await else {
        return;
    };
    let (mut proxy, url) = Proxy::in_front_of(&backend).await;
    outage_under_traffic(&backend, &url, &mut proxy, Duration::from_secs(20)).await;
}

/// The path to PostgreSQL drops every packet and resets nothing: no query
/// fails, none is answered. The server must not wait for ever: it says
/// NOT_SERVING, holds what it cannot write, and catches up once the path
/// is back, storing each batch once, whether or not its transaction had
/// begun (or committed) in the silence.
#[tokio::test]
async fn a_black_holed_postgres_under_traffic_loses_nothing() {
    let Some(backend) = common::postgres().await else {
        return;
    };
    let (proxy, url) = Proxy::in_front_of(&backend).await;
    let mut hole = BlackHole(proxy);
    outage_under_traffic(&backend, &url, &mut hole, Duration::from_secs(15)).await;
}

#[tokio::test]
async fn a_full_disk_under_sqlite_under_traffic_loses_nothing() {
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let backend = common::sqlite_in(disk.dir.path());
    let mut full = FullDisk {
        disk,
        database_url: backend.url.clone(),
    };
    outage_under_traffic(&backend, &backend.url, &mut full, Duration::from_secs(8)).await;
}

/// A server on a SQLite file it cannot write, which holds one waiting call
/// (`call-1`, stored before), and a bridge session to it.
struct ReadOnly {
    /// The server.
    server: common::TestServer,
    /// The bridge's session.
    bridge: BridgeClient,
    /// The stored call.
    stored: pb::SubmitInteractionResponse,
}

impl ReadOnly {
    /// Stores `call-1` through a server that can write, stops it, and
    /// starts one on the same file opened read-only (as a full or
    /// read-only disk would leave it; root ignores file modes, so the test
    /// asks SQLite itself).
    async fn start() -> Self {
        let backend = common::sqlite();
        let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
        let mut bridge = centre.bridge().await;
        let stored = bridge.submit("call-1", VOICE, SUPPORT).await;
        drop(bridge);
        centre.server.stop().await;
        let read_only = ServeConfig::ephemeral(format!("{}?mode=ro", backend.url));
        let server = common::TestServer::start_with(read_only).await;
        let bridge = BridgeClient::open(server.channel().await).await;
        Self {
            server,
            bridge,
            stored,
        }
    }
}

#[tokio::test]
async fn a_read_only_sqlite_file_refuses_new_work_and_says_not_serving() {
    let ReadOnly {
        server,
        mut bridge,
        stored,
    } = ReadOnly::start().await;
    // Reads still work, so the first write finds out: that submission is
    // held for the commit hold (5 s), then refused, never acknowledged.
    submit_refused(&mut bridge, "call-2").await;
    health_becomes(server.channel().await, ServingStatus::NotServing).await;
    submit_refused(&mut bridge, "call-3").await;
    let open = bridge
        .client
        .list_open_interactions(pb::ListOpenInteractionsRequest {})
        .await
        .expect("open interactions are listed from memory")
        .into_inner()
        .interactions;
    assert!(
        open.iter().all(|item| item.interaction_id != "call-3"),
        "a submission refused at once leaves nothing behind: {open:?}"
    );
    assert_eq!(
        open[0].work_item_id, stored.work_item_id,
        "the stored caller still waits"
    );
    drop(bridge);
    server.stop().await;
}

/// An agent's session goes on while their accept waits for a store that
/// cannot take it: the call is put through at once, and when the caller
/// then hangs up the agent hears of it at once, before the accept is
/// answered (UNAVAILABLE, once its commit hold runs out).
#[tokio::test]
async fn an_agent_session_goes_on_while_an_accept_waits_for_the_store() {
    let ReadOnly {
        server,
        mut bridge,
        stored: call,
    } = ReadOnly::start().await;
    let mut alice = AgentClient::sign_in(server.channel().await, "alice", true).await;
    let offer = alice.offer().await;
    assert_eq!(offer.work_item_id, call.work_item_id);
    let accept = alice.send(AgentKind2::Accept(pb::AcceptOffer {
        work_item_id: offer.work_item_id.clone(),
    }));
    bridge.delivery(&call.work_item_id).await;
    bridge.send_report(Report::ConsumerHungUp(pb::ConsumerHungUp {
        work_item_id: call.work_item_id.clone(),
    }));
    let first = alice
        .event("the call's end or the accept's answer", |kind| {
            matches!(kind, AgentKind::ItemEnded(_))
                || matches!(kind, AgentKind::Ack(ack) if ack.request_id == accept)
        })
        .await;
    assert!(
        matches!(&first, AgentKind::ItemEnded(ended) if ended.work_item_id == call.work_item_id),
        "the hang-up reaches alice while her accept waits: {first:?}"
    );
    let answer = alice.ack(accept).await;
    assert_eq!(answer.code, Code::Unavailable as i32, "{answer:?}");
    drop(alice);
    drop(bridge);
    server.stop().await;
}

/// The connection breaks while PostgreSQL commits: the batch is stored, the
/// server cannot know it, and the writer's retry must not store it again.
#[tokio::test]
async fn a_commit_whose_answer_is_lost_is_not_stored_twice() {
    commit_answer_lost(CommitTrap::CutAnswer).await;
}

/// The path goes silent just after a COMMIT is sent: the batch is stored,
/// its answer is held (nothing is closed), the server gives up waiting, and
/// its retry, once the path is back, must not store the batch again.
#[tokio::test]
async fn a_commit_whose_answer_is_held_in_a_black_hole_is_not_stored_twice() {
    commit_answer_lost(CommitTrap::HoldAnswer).await;
}

/// PostgreSQL behind a proxy, and a centre over it with Alice; none
/// outside CI without PostgreSQL.
async fn proxied_centre() -> Option<(Backend, Proxy, Centre)> {
    let backend = common::postgres().await?;
    let (proxy, url) = Proxy::in_front_of(&backend).await;
    let config = ServeConfig::ephemeral(&url);
    let centre = Centre::start_with(config, vec![support_queue()], vec![agent("alice", 3)]).await;
    Some((backend, proxy, centre))
}

/// A submission first asks whether its interaction came before; one the
/// lookups' filter may have seen, like a repeat, is asked of the store.
/// When the path goes silent under that question, the submission is
/// refused with UNAVAILABLE while the path is still silent, not held until
/// it comes back.
#[tokio::test]
async fn a_submission_whose_lookup_meets_a_black_hole_is_refused() {
    let Some((backend, proxy, centre)) = proxied_centre().await else {
        return;
    };
    let mut bridge = centre.bridge().await;
    bridge.submit("call-1", VOICE, SUPPORT).await;
    // The repeat's query carries the interaction id as a parameter.
    proxy.silence_before(b"call-1");
    let request = interaction_request("call-1", VOICE, SUPPORT);
    let status = tokio::time::timeout(HANG_GUARD, bridge.client.submit_interaction(request))
        .await
        .expect("the submission is answered while the path is silent")
        .expect_err("and refused: nothing is acknowledged unstored");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    proxy.restore();
    health_becomes(centre.server.channel().await, ServingStatus::Serving).await;
    bridge.submit("call-2", VOICE, SUPPORT).await;
    drop(bridge);
    centre.server.stop().await;
    let lifecycles = common::check_lifecycles(&backend).await;
    assert_eq!(lifecycles, [vec![K::Queued], vec![K::Queued]]);
}

/// Alice's accept is committed but its answer is lost (`trap`); it is
/// stored once, and acknowledged once the database is back.
async fn commit_answer_lost(trap: CommitTrap) {
    let Some((backend, proxy, centre)) = proxied_centre().await else {
        return;
    };
    let mut bridge = centre.bridge().await;
    let call = bridge.submit("call-1", VOICE, SUPPORT).await;
    let mut alice = centre.agent("alice").await;
    let offer = alice.offer().await;
    assert_eq!(offer.work_item_id, call.work_item_id);
    let direct = switchboard::store::connect(&backend.url)
        .await
        .expect("the test reaches the database directly");
    let item = WorkItemId(call.work_item_id.parse().expect("a work item id"));
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let events = direct
            .work_item_events(item)
            .await
            .expect("events can be read");
        if events.iter().any(|event| event.kind == K::Offered) {
            break;
        }
        assert!(Instant::now() < deadline, "the offer is never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    direct.close().await;

    // Alice's answer is committed, but the server never hears so.
    proxy.trap_next_commit(trap);
    let (first, answered) = oneshot::channel();
    let take = tokio::spawn(accept_until_stored(
        alice,
        offer.work_item_id.clone(),
        first,
    ));
    let ack = answered.await.expect("alice's accept is answered");
    assert_eq!(ack.code, Code::Unavailable as i32, "{ack:?}");
    health_becomes(centre.server.channel().await, ServingStatus::NotServing).await;
    proxy.restore();
    health_becomes(centre.server.channel().await, ServingStatus::Serving).await;
    let taken = joined(take.await);
    assert_eq!(taken.last.code, 0, "{:?}", taken.last);
    bridge.delivery(&call.work_item_id).await;
    drop(taken);
    drop(bridge);
    centre.server.stop().await;
    let lifecycles = common::check_lifecycles(&backend).await;
    assert_eq!(lifecycles, [vec![K::Queued, K::Offered, K::Answered]]);
}
