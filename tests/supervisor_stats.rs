//! Supervisors' real-time statistics over gRPC: queue and agent figures as
//! traffic flows, watch streams (snapshot, then changes), a slow watcher
//! skipping to a fresh snapshot, and forcing an agent out.

mod common;

use common::centre::{Centre, SUPPORT, agent, support_queue};
use common::sessions::{AgentKind, AgentKind2, PATIENCE, Report};
use common::sqlite;
use std::time::Duration;
use switchboard::config::ServeConfig;
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::presence_service_client::PresenceServiceClient;
use switchboard::proto::v1::supervisor_service_client::SupervisorServiceClient;
use tonic::Code;
use tonic::transport::Channel;

const VOICE: pb::Channel = pb::Channel::Voice;

async fn queue_stats(supervisor: &mut SupervisorServiceClient<Channel>) -> pb::QueueStats {
    let stats = supervisor
        .get_queue_stats(pb::GetQueueStatsRequest {
            queue_ids: vec!["support".into()],
        })
        .await
        .expect("the queue's figures")
        .into_inner()
        .stats;
    assert_eq!(stats.len(), 3, "one row per channel: {stats:?}");
    stats
        .into_iter()
        .find(|row| row.channel == VOICE as i32)
        .expect("a voice row")
}

async fn agent_stats(
    supervisor: &mut SupervisorServiceClient<Channel>,
    id: &str,
) -> pb::AgentStats {
    let mut stats = supervisor
        .get_agent_stats(pb::GetAgentStatsRequest {
            agent_ids: vec![id.into()],
        })
        .await
        .expect("the agent's figures")
        .into_inner()
        .stats;
    assert_eq!(stats.len(), 1);
    stats.remove(0)
}

#[tokio::test]
async fn queue_and_agent_figures_follow_the_traffic() {
    let backend = sqlite();
    let centre = Centre::start(
        &backend,
        support_queue(),
        vec![agent("alice", 3), agent("bob", 3)],
    )
    .await;
    let mut supervisor = centre.server.supervisor().await;
    let mut bridge = centre.bridge().await;
    let mut alice = centre.agent("alice").await;
    alice.state(pb::RoutingState::Ready).await;
    let mut bob = centre.agent("bob").await;
    bob.request(
        AgentKind2::SetNotReady(pb::SetNotReady {
            reason: "lunch".into(),
        }),
        Code::Ok,
    )
    .await;

    let quiet = queue_stats(&mut supervisor).await;
    assert_eq!(
        (quiet.agents_signed_in, quiet.agents_ready, quiet.waiting),
        (2, 1, 0)
    );
    assert_eq!(quiet.agents_not_ready.get("lunch"), Some(&1));
    assert_eq!(quiet.service_level_today, None, "no outcome yet");

    let first = bridge.submit("call-1", VOICE, SUPPORT).await;
    let offer = alice.offer().await;
    alice.accept(&offer.work_item_id).await;
    alice.state(pb::RoutingState::Busy).await;
    let second = bridge.submit("call-2", VOICE, SUPPORT).await;

    let busy = queue_stats(&mut supervisor).await;
    assert_eq!(
        (busy.waiting, busy.agents_busy, busy.agents_ready),
        (1, 1, 0)
    );
    assert_eq!((busy.offered_today, busy.answered_today), (2, 1));
    assert!(busy.longest_wait.is_some());
    assert_eq!(busy.service_level_today, Some(1.0));
    assert_eq!(busy.service_level_15m, Some(1.0));
    let working = agent_stats(&mut supervisor, "alice").await;
    assert_eq!(working.state, pb::RoutingState::Busy as i32);
    assert_eq!(working.presence, pb::Presence::Available as i32);
    assert_eq!(
        working.current_work_item_ids,
        vec![first.work_item_id.clone()]
    );
    assert_eq!(working.handled_today, 0);
    assert!(working.occupancy.is_some_and(|o| o > 0.0 && o <= 1.0));
    let lunching = agent_stats(&mut supervisor, "bob").await;
    assert_eq!(
        (lunching.state, lunching.reason.as_str()),
        (pb::RoutingState::NotReady as i32, "lunch")
    );

    // The waiting caller hangs up within the threshold: counted as
    // abandoned, left out of the default service level.
    let ack = bridge
        .report(Report::ConsumerHungUp(pb::ConsumerHungUp {
            work_item_id: second.work_item_id.clone(),
        }))
        .await;
    assert_eq!(ack.code, 0, "{ack:?}");
    let ack = bridge
        .report(Report::Ended(pb::InteractionEnded {
            work_item_id: first.work_item_id.clone(),
        }))
        .await;
    assert_eq!(ack.code, 0, "{ack:?}");
    alice
        .event("item ended", |kind| matches!(kind, AgentKind::ItemEnded(_)))
        .await;
    let after = queue_stats(&mut supervisor).await;
    assert_eq!(
        (after.waiting, after.answered_today, after.abandoned_today),
        (0, 1, 1)
    );
    assert_eq!(after.service_level_today, Some(1.0));
    let wrapping = agent_stats(&mut supervisor, "alice").await;
    assert_eq!(wrapping.handled_today, 1);
    assert_eq!(wrapping.state, pb::RoutingState::WrapUp as i32);
    assert_eq!(wrapping.current_work_item_ids, vec![first.work_item_id]);

    let unknown = supervisor
        .get_queue_stats(pb::GetQueueStatsRequest {
            queue_ids: vec!["nowhere".into()],
        })
        .await
        .expect_err("an unknown queue");
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("nowhere"), "{unknown:?}");
    let unknown = supervisor
        .get_agent_stats(pb::GetAgentStatsRequest {
            agent_ids: vec!["mallory".into()],
        })
        .await
        .expect_err("an unknown agent");
    assert_eq!(unknown.code(), Code::NotFound);
    centre.server.stop().await;
}

/// Reads watch messages until one satisfies `wanted`.
async fn next_matching<T>(
    stream: &mut tonic::Streaming<T>,
    what: &str,
    mut wanted: impl FnMut(&T) -> bool,
) -> T {
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            let message = stream
                .message()
                .await
                .expect("the watch stays open")
                .expect("the watch does not end");
            if wanted(&message) {
                return message;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no watch message with {what}"))
}

#[tokio::test]
async fn a_watch_sends_a_snapshot_then_the_changes() {
    let backend = sqlite();
    let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
    let mut supervisor = centre.server.supervisor().await;
    let mut queues = supervisor
        .watch_queues(pb::WatchQueuesRequest {
            queue_ids: vec!["support".into()],
        })
        .await
        .expect("the queue watch opens")
        .into_inner();
    let mut agents = supervisor
        .watch_agents(pb::WatchAgentsRequest { agent_ids: vec![] })
        .await
        .expect("the agent watch opens")
        .into_inner();

    let snapshot = queues.message().await.unwrap().expect("a snapshot");
    assert!(snapshot.snapshot);
    assert_eq!(snapshot.stats.len(), 3);
    assert!(snapshot.stats.iter().all(|row| row.waiting == 0));
    let snapshot = agents.message().await.unwrap().expect("a snapshot");
    assert!(snapshot.snapshot);
    assert_eq!(snapshot.stats.len(), 1);
    assert_eq!(snapshot.stats[0].state, pb::RoutingState::LoggedOut as i32);

    let mut bridge = centre.bridge().await;
    bridge.submit("call-1", VOICE, SUPPORT).await;
    let update = next_matching(&mut queues, "one call waiting", |update| {
        update
            .stats
            .iter()
            .any(|row| row.channel == VOICE as i32 && row.waiting == 1)
    })
    .await;
    assert!(!update.snapshot);

    let mut alice = centre.agent("alice").await;
    let offer = alice.offer().await;
    next_matching(&mut agents, "alice reserved", |update| {
        update.stats.iter().any(|row| {
            row.agent_id == "alice"
                && row.state == pb::RoutingState::Reserved as i32
                && row.current_work_item_ids == vec![offer.work_item_id.clone()]
        })
    })
    .await;
    next_matching(&mut queues, "nobody waiting", |update| {
        update
            .stats
            .iter()
            .any(|row| row.channel == VOICE as i32 && row.waiting == 0)
    })
    .await;

    let unknown = supervisor
        .watch_queues(pb::WatchQueuesRequest {
            queue_ids: vec!["nowhere".into()],
        })
        .await
        .expect_err("an unknown queue");
    assert_eq!(unknown.code(), Code::NotFound);
    drop(alice);
    centre.server.stop().await;
    // The server's shutdown ends the watch with UNAVAILABLE.
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            match queues.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status.code()),
            }
        }
    })
    .await
    .expect("the watch ends at shutdown");
    assert!(
        matches!(end, None | Some(Code::Unavailable)),
        "the watch ended with {end:?}"
    );
}

#[tokio::test]
async fn a_slow_watcher_skips_to_a_fresh_snapshot_and_routing_goes_on() {
    let backend = sqlite();
    let config = ServeConfig {
        stats_interval_ms: 10,
        ..ServeConfig::ephemeral(&backend.url)
    };
    let centre = Centre::start_with(config, vec![support_queue()], vec![agent("alice", 3)]).await;
    // A watcher whose window holds a few hundred bytes: the server can send
    // it almost nothing until it reads.
    let narrow = Channel::from_shared(format!("http://{}", centre.server.grpc_addr))
        .expect("a loopback URI is valid")
        .initial_stream_window_size(512)
        .initial_connection_window_size(512)
        .connect()
        .await
        .expect("the server accepts connections");
    let mut watcher = SupervisorServiceClient::new(narrow)
        .watch_agents(pb::WatchAgentsRequest {
            agent_ids: vec!["alice".into()],
        })
        .await
        .expect("the watch opens")
        .into_inner();

    // Presence flips far more often than the watcher reads; routing answers
    // every update all the same.
    let mut presence = PresenceServiceClient::new(centre.server.channel().await);
    let states = [pb::Presence::Busy, pb::Presence::Available];
    for round in 0..120 {
        let update = pb::PresenceUpdate {
            agent_id: "alice".into(),
            presence: states[round % 2] as i32,
            observed_at: None,
        };
        presence
            .update_presence(pb::UpdatePresenceRequest {
                updates: vec![update],
            })
            .await
            .expect("presence is applied");
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let last = pb::Presence::Busy as i32;
    presence
        .update_presence(pb::UpdatePresenceRequest {
            updates: vec![pb::PresenceUpdate {
                agent_id: "alice".into(),
                presence: last,
                observed_at: None,
            }],
        })
        .await
        .expect("presence is applied");

    let first = watcher.message().await.unwrap().expect("a snapshot");
    assert!(first.snapshot);
    let mut received = 1;
    let resnapshot = next_matching(&mut watcher, "a fresh snapshot", |update| {
        received += 1;
        update.snapshot
    })
    .await;
    assert!(
        received < 120,
        "the watcher skipped intermediate states ({received} messages)"
    );
    let latest = resnapshot.stats.last().map(|row| row.presence);
    if latest != Some(last) {
        next_matching(&mut watcher, "the latest presence", |update| {
            update.stats.iter().any(|row| row.presence == last)
        })
        .await;
    }
    centre.server.stop().await;
}

#[tokio::test]
async fn a_supervisor_signs_an_agent_out_and_the_audit_log_says_who() {
    let backend = sqlite();
    let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
    let mut alice = centre.agent("alice").await;
    alice.state(pb::RoutingState::Ready).await;
    let mut supervisor = centre.server.supervisor().await;
    let mut request = tonic::Request::new(pb::ForceAgentStateRequest {
        agent_id: "alice".into(),
        state: pb::RoutingState::LoggedOut as i32,
        reason: String::new(),
    });
    request
        .metadata_mut()
        .insert("x-switchboard-actor", "carol".parse().unwrap());
    let action = supervisor
        .force_agent_state(request)
        .await
        .expect("the agent is signed out")
        .into_inner();
    alice.state(pb::RoutingState::LoggedOut).await;
    assert_eq!(
        agent_stats(&mut supervisor, "alice").await.state,
        pb::RoutingState::LoggedOut as i32
    );
    let stats = queue_stats(&mut supervisor).await;
    assert_eq!(stats.agents_signed_in, 0);
    centre.server.stop().await;

    let store = switchboard::store::connect(&backend.url).await.unwrap();
    let log = store.audit_log(0, 100).await.unwrap();
    let entry = log
        .iter()
        .find(|entry| entry.id == action.audit_id)
        .expect("the action is in the audit log");
    assert_eq!(
        (entry.action.as_str(), entry.target.as_str()),
        ("force_agent_state", "alice")
    );
    assert_eq!(entry.actor, "carol");
    store.close().await;
}
