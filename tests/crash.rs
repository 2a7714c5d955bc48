//! Crash safety: the server runs as a child process under traffic and is
//! killed with SIGKILL at a random moment, ten times on each back-end,
//! restarted each time on the same database. Against the client's log of
//! what was acknowledged, every acknowledged work item is stored in its
//! acknowledged state, nothing is stored twice, and after each restart the
//! waiting items come back in the order they were acknowledged.
//!
//! `SWITCHBOARD_SEED` replays the kill moments of a run.

mod common;

use common::centre::{Centre, SUPPORT, agent, support_queue};
use common::sessions::{AgentClient, BridgeClient, Report, interaction_request};
use common::{Backend, ChildServer};
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::bridge_service_client::BridgeServiceClient;
use tonic::transport::Channel;

const VOICE: pb::Channel = pb::Channel::Voice;

/// Kills per back-end.
const ROUNDS: usize = 10;

/// Submissions per round at most; the kill comes long before.
const SUBMISSIONS: usize = 5_000;

/// Acknowledgements a round waits for before its kill can come, so that
/// every round has something to lose however slow the machine is.
const ACKS_BEFORE_KILL: usize = 3;

/// What the client was told, per interaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Acked {
    /// The submission was acknowledged: the item is stored.
    Submitted,
    /// The bridge's report that the consumer hung up was acknowledged.
    Abandoned,
    /// The report that the consumer is connected was acknowledged.
    Connected,
    /// The report that the conversation ended was acknowledged.
    Ended,
}

/// The client-side log: interaction id → work item id and what was acked,
/// and the interactions in the order their submissions were acknowledged.
#[derive(Debug, Clone, Default)]
struct AckLog {
    items: BTreeMap<String, (String, Acked)>,
    order: Vec<String>,
}

impl AckLog {
    fn submitted(&mut self, interaction: &str, item: &str) {
        self.items.insert(
            interaction.to_string(),
            (item.to_string(), Acked::Submitted),
        );
        self.order.push(interaction.to_string());
    }

    fn interaction_of(&self, item: &str) -> Option<String> {
        for (interaction, (stored, _)) in &self.items {
            if stored == item {
                return Some(interaction.clone());
            }
        }
        None
    }

    fn reported(&mut self, interaction: &str, acked: Acked) {
        if let Some(entry) = self.items.get_mut(interaction) {
            entry.1 = entry.1.max(acked);
        }
    }
}

/// One round of traffic until the server dies: submissions, hang-ups of
/// some waiting callers (`EndInteraction`), and one call answered,
/// connected and ended. Every acknowledgement goes into the log.
async fn drive(channel: Channel, round: usize, log: Arc<Mutex<AckLog>>) {
    let mut bridge = BridgeServiceClient::new(channel.clone());
    for n in 0..SUBMISSIONS {
        let interaction = format!("r{round}-c{n}");
        let request = interaction_request(&interaction, VOICE, SUPPORT);
        let Ok(answer) = bridge.submit_interaction(request).await else {
            return;
        };
        let item = answer.into_inner().work_item_id;
        log.lock()
            .expect("not poisoned")
            .submitted(&interaction, &item);
        if n == 1 {
            answer_one(channel.clone(), &log).await;
        } else if n >= 2 && n % 2 == 0 {
            let previous = format!("r{round}-c{}", n - 1);
            let hang_up = pb::EndInteractionRequest {
                interaction_id: previous.clone(),
                reason: "consumer hung up".into(),
            };
            if bridge.end_interaction(hang_up).await.is_err() {
                return;
            }
            log.lock()
                .expect("not poisoned")
                .reported(&previous, Acked::Abandoned);
        }
    }
}

/// Alice takes the first caller in line, and the bridge reports the call
/// connected, then ended.
async fn answer_one(channel: Channel, log: &Mutex<AckLog>) {
    let mut bridge = BridgeClient::open(channel.clone()).await;
    let mut alice = AgentClient::sign_in(channel, "alice", true).await;
    let offer = alice.offer().await;
    alice.accept(&offer.work_item_id).await;
    let interaction = log
        .lock()
        .expect("not poisoned")
        .interaction_of(&offer.work_item_id);
    let item = offer.work_item_id;
    let reports = [
        (
            Report::Connected(pb::InteractionConnected {
                work_item_id: item.clone(),
            }),
            Acked::Connected,
        ),
        (
            Report::Ended(pb::InteractionEnded { work_item_id: item }),
            Acked::Ended,
        ),
    ];
    for (report, acked) in reports {
        assert_eq!(bridge.report(report).await.code, 0, "the report is stored");
        if let Some(interaction) = &interaction {
            log.lock()
                .expect("not poisoned")
                .reported(interaction, acked);
        }
    }
}

/// Checks the database against the log: every acknowledged item is there,
/// once, in at least its acknowledged state.
async fn check_stored(backend: &Backend, log: &AckLog) {
    let store = switchboard::store::connect(&backend.url)
        .await
        .expect("the store opens");
    for (interaction, (item, acked)) in &log.items {
        let stored = store
            .find_work_item(&interaction.as_str().into())
            .await
            .expect("the store answers")
            .unwrap_or_else(|| panic!("{interaction} was acknowledged but is not stored"));
        assert_eq!(
            stored.item.id.to_string(),
            *item,
            "{interaction}: another item"
        );
        let state = stored.state.as_str();
        let consistent = match acked {
            Acked::Submitted => true,
            Acked::Abandoned => state == "abandoned",
            Acked::Connected => matches!(state, "connected" | "wrap_up" | "completed"),
            Acked::Ended => stored.ended_at.is_some(),
        };
        assert!(
            consistent,
            "{interaction}: acknowledged {acked:?}, stored {state} on {}",
            backend.name
        );
    }
    let ids = common::work_item_ids(backend).await;
    let distinct: HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "no work item is stored twice");
    store.close().await;
}

/// After a restart the waiting items the log knows stand in line in the
/// order their submissions were acknowledged.
async fn check_order(server: &ChildServer, log: &AckLog) {
    let mut bridge = BridgeClient::open(server.channel().await).await;
    let open = bridge
        .client
        .list_open_interactions(pb::ListOpenInteractionsRequest {})
        .await
        .expect("open interactions are listed")
        .into_inner()
        .interactions;
    let waiting: HashSet<&str> = open
        .iter()
        .filter(|item| item.state == "waiting")
        .map(|item| item.interaction_id.as_str())
        .collect();
    let mut last_position = 0;
    for interaction in &log.order {
        if !waiting.contains(interaction.as_str()) {
            continue;
        }
        let again = bridge.submit(interaction, VOICE, SUPPORT).await;
        assert!(!again.created, "{interaction} is found again, not created");
        assert!(
            again.position > last_position,
            "{interaction} is at {} after {last_position}: waiting items keep their order",
            again.position
        );
        last_position = again.position;
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
        let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
        centre.server.stop().await;
        let log = Arc::new(Mutex::new(AckLog::default()));
        for round in 0..ROUNDS {
            let server = ChildServer::start(&backend.url).await;
            let before = log.lock().expect("not poisoned").clone();
            check_order(&server, &before).await;
            let traffic = tokio::spawn(drive(server.channel().await, round, log.clone()));
            // Once the round has acknowledged a few items, kill at a random
            // moment among the submissions, hang-ups and the answered call.
            let enough = before.items.len() + ACKS_BEFORE_KILL;
            let acknowledged = tokio::time::timeout(Duration::from_secs(60), async {
                while log.lock().expect("not poisoned").items.len() < enough {
                    if traffic.is_finished() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            assert!(
                acknowledged.is_ok() && !traffic.is_finished(),
                "round {round} acknowledged fewer than {ACKS_BEFORE_KILL} items in a minute: {:?}",
                traffic.is_finished().then_some("the traffic ended")
            );
            let kill_after = Duration::from_millis(rng.random_range(0..700));
            tokio::time::sleep(kill_after).await;
            assert!(
                !traffic.is_finished(),
                "the traffic ended before the kill: {:?}",
                traffic.await
            );
            server.kill().await;
            traffic.abort();
            let _ = traffic.await;
            let after = log.lock().expect("not poisoned").clone();
            check_stored(&backend, &after).await;
            eprintln!(
                "round {round} on {}: killed after {kill_after:?}, {} items acknowledged so far",
                backend.name,
                after.items.len()
            );
        }
    }
}
