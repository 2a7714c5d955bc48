//! The live path end to end: the real server on 127.0.0.1:0, a scripted
//! bridge and several agents as real gRPC clients, on every back-end. After
//! each test the database must hold a consistent lifecycle for every item.

mod common;

use common::TestServer;
use common::centre::{Centre, SUPPORT, agent, support_queue};
use common::sessions::{
    AgentClient, AgentKind, AgentKind2, BridgeClient, Instruction, Report, interaction_request,
};
use std::time::Duration;
use switchboard::config::ServeConfig;
use switchboard::domain::WorkItemId;
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::bridge_service_client::BridgeServiceClient;
use switchboard::proto::v1::presence_service_client::PresenceServiceClient;
use switchboard::store::records::EventKind as K;
use switchboard::store::records::{Record, UnsentInstruction};
use tonic::Code;

const VOICE: pb::Channel = pb::Channel::Voice;
const CHAT: pb::Channel = pb::Channel::Chat;

#[tokio::test]
async fn a_call_flows_from_submission_to_wrap_up_and_back_to_ready() {
    for backend in common::backends().await {
        let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
        let mut bridge = centre.bridge().await;
        let mut alice = centre.agent("alice").await;
        alice.state(pb::RoutingState::Ready).await;

        let submitted = bridge.submit("call-1", VOICE, SUPPORT).await;
        assert!(submitted.created);
        assert_eq!(submitted.queue, "support");
        let offer = alice.offer().await;
        assert_eq!(offer.work_item_id, submitted.work_item_id);
        assert_eq!(
            (offer.from_address.as_str(), offer.display_name.as_str()),
            ("sip:jane@consumer.example", "Jane Consumer")
        );
        assert_eq!(
            offer.attributes.get("page_url").map(String::as_str),
            Some("https://contoso.example/pricing")
        );
        assert_eq!(
            (offer.queue.as_str(), offer.channel),
            ("support", VOICE as i32)
        );
        assert!(offer.waited.is_some() && offer.expires_at.is_some());
        alice.state(pb::RoutingState::Reserved).await;

        alice.accept(&offer.work_item_id).await;
        alice.state(pb::RoutingState::Busy).await;
        let delivery = bridge.delivery(&offer.work_item_id).await;
        assert_eq!(
            (delivery.agent_id.as_str(), delivery.agent_address.as_str()),
            ("alice", "sip:alice@contoso.example")
        );
        assert_eq!(delivery.interaction_id, "call-1");

        let item = offer.work_item_id.clone();
        let ack = bridge
            .report(Report::Connected(pb::InteractionConnected {
                work_item_id: item.clone(),
            }))
            .await;
        assert_eq!(ack.code, 0, "{ack:?}");
        let ack = bridge
            .report(Report::Ended(pb::InteractionEnded {
                work_item_id: item.clone(),
            }))
            .await;
        assert_eq!(ack.code, 0, "{ack:?}");
        let ended = alice
            .event("item ended", |kind| matches!(kind, AgentKind::ItemEnded(_)))
            .await;
        let AgentKind::ItemEnded(ended) = ended else {
            unreachable!()
        };
        assert_eq!(ended.wrap_up.map(|d| d.seconds), Some(1));
        alice.state(pb::RoutingState::WrapUp).await;
        alice.state(pb::RoutingState::Ready).await;
        centre.server.stop().await;

        let lifecycles = common::check_lifecycles(&backend).await;
        assert_eq!(
            lifecycles,
            vec![vec![
                K::Queued,
                K::Offered,
                K::Answered,
                K::Connected,
                K::Ended,
                K::Completed
            ]],
            "on {}",
            backend.name
        );
        let store = switchboard::store::connect(&backend.url).await.unwrap();
        let states: Vec<String> = store
            .agent_states(&"alice".into())
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.state)
            .collect();
        assert_eq!(
            states,
            [
                "ready",
                "reserved",
                "busy",
                "wrap_up",
                "ready",
                "logged_out"
            ],
            "on {}",
            backend.name
        );
    }
}

#[tokio::test]
async fn a_declined_or_unanswered_offer_goes_to_another_agent() {
    for backend in common::backends().await {
        let centre = Centre::start(
            &backend,
            support_queue(),
            vec![agent("alice", 3), agent("bob", 3)],
        )
        .await;
        let mut bridge = centre.bridge().await;
        let mut first = centre.agent("alice").await;
        bridge.submit("call-1", VOICE, SUPPORT).await;
        let offer = first.offer().await;
        let mut second = centre.agent("bob").await;
        first
            .request(
                AgentKind2::Decline(pb::DeclineOffer {
                    work_item_id: offer.work_item_id.clone(),
                    reason: "busy".into(),
                }),
                Code::Ok,
            )
            .await;
        let again = second.offer().await;
        assert_eq!(
            again.work_item_id, offer.work_item_id,
            "the declined item goes to the other agent"
        );
        second.accept(&again.work_item_id).await;
        let rescinded = first
            .event("offer ended", |kind| {
                matches!(kind, AgentKind::OfferRescinded(_))
            })
            .await;
        assert!(matches!(rescinded, AgentKind::OfferRescinded(r) if r.reason == "declined"));

        // The second call is offered to the first agent (the other is busy) and left to time out.
        bridge.submit("call-2", VOICE, SUPPORT).await;
        let unanswered = first.offer().await;
        let timed_out = first
            .event(
                "offer timeout",
                |kind| matches!(kind, AgentKind::OfferRescinded(r) if r.reason == "timeout"),
            )
            .await;
        assert!(
            matches!(timed_out, AgentKind::OfferRescinded(r) if r.work_item_id == unanswered.work_item_id)
        );
        centre.server.stop().await;
        let lifecycles = common::check_lifecycles(&backend).await;
        assert!(
            lifecycles[0].starts_with(&[
                K::Queued,
                K::Offered,
                K::OfferDeclined,
                K::Offered,
                K::Answered
            ]),
            "{lifecycles:?}"
        );
        assert!(lifecycles[1].contains(&K::OfferTimedOut), "{lifecycles:?}");
    }
}

#[tokio::test]
async fn a_consumer_abandons_while_queued_and_while_offered() {
    for backend in common::backends().await {
        let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
        let mut bridge = centre.bridge().await;
        let queued = bridge.submit("call-1", VOICE, SUPPORT).await;
        assert_eq!(
            queued.position, 1,
            "nobody is signed in: the call waits first in line"
        );
        let ack = bridge
            .report(Report::ConsumerHungUp(pb::ConsumerHungUp {
                work_item_id: queued.work_item_id.clone(),
            }))
            .await;
        assert_eq!(ack.code, 0, "{ack:?}");

        let mut alice = centre.agent("alice").await;
        let offered = bridge.submit("call-2", VOICE, SUPPORT).await;
        let offer = alice.offer().await;
        assert_eq!(offer.work_item_id, offered.work_item_id);
        // The bridge repeats the hang-up, as after a lost answer: the
        // repeat names the same work item and changes nothing.
        for attempt in ["first", "repeated"] {
            let ended = bridge
                .client
                .end_interaction(pb::EndInteractionRequest {
                    interaction_id: "call-2".into(),
                    reason: "hung up".into(),
                })
                .await
                .unwrap_or_else(|status| panic!("the {attempt} hang-up: {status}"))
                .into_inner();
            assert_eq!(ended.work_item_id, offered.work_item_id);
        }
        let rescinded = alice
            .event("offer rescinded", |kind| {
                matches!(kind, AgentKind::OfferRescinded(_))
            })
            .await;
        assert!(
            matches!(rescinded, AgentKind::OfferRescinded(r) if r.work_item_id == offer.work_item_id)
        );
        alice.state(pb::RoutingState::Ready).await;
        centre.server.stop().await;
        let lifecycles = common::check_lifecycles(&backend).await;
        assert_eq!(lifecycles[0], [K::Queued, K::Abandoned]);
        assert_eq!(
            lifecycles[1],
            [K::Queued, K::Offered, K::OfferRescinded, K::Abandoned]
        );
    }
}

#[tokio::test]
async fn position_updates_tell_the_bridge_only_what_its_answers_did_not() {
    for backend in common::backends().await {
        let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
        let mut bridge = centre.bridge().await;
        let first = bridge.submit("call-1", VOICE, SUPPORT).await;
        let second = bridge.submit("call-2", VOICE, SUPPORT).await;
        assert_eq!((first.position, second.position), (1, 2));
        // At least one round of updates (every 2 s) passes while nothing
        // changes: the answers already told the bridge both places in line.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let ack = bridge
            .report(Report::ConsumerHungUp(pb::ConsumerHungUp {
                work_item_id: first.work_item_id.clone(),
            }))
            .await;
        assert_eq!(ack.code, 0, "{ack:?}");
        let update = bridge
            .instruction("a position update", |kind| {
                matches!(kind, Instruction::Position(_))
            })
            .await;
        assert!(
            matches!(&update, Instruction::Position(p) if p.work_item_id == second.work_item_id && p.position == 1),
            "the first update is the second call moving up: {update:?}"
        );
        centre.server.stop().await;
    }
}

#[tokio::test]
async fn a_call_that_has_ended_takes_no_second_end_nor_a_late_connect() {
    for backend in common::backends().await {
        let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
        let mut bridge = centre.bridge().await;
        let mut alice = centre.agent("alice").await;
        alice.state(pb::RoutingState::Ready).await;

        // The bridge sends its end report again, as after a lost ack.
        let first = bridge.submit("call-1", VOICE, SUPPORT).await;
        alice.offer().await;
        alice.accept(&first.work_item_id).await;
        let connected = Report::Connected(pb::InteractionConnected {
            work_item_id: first.work_item_id.clone(),
        });
        assert_eq!(bridge.report(connected).await.code, 0);
        for attempt in ["first", "repeated"] {
            let ended = Report::Ended(pb::InteractionEnded {
                work_item_id: first.work_item_id.clone(),
            });
            let ack = bridge.report(ended).await;
            assert_eq!(ack.code, 0, "the {attempt} end report: {ack:?}");
        }
        alice.state(pb::RoutingState::WrapUp).await;
        alice.state(pb::RoutingState::Ready).await;

        // The consumer hangs up before the bridge reports the call connected.
        let second = bridge.submit("call-2", VOICE, SUPPORT).await;
        alice.offer().await;
        alice.accept(&second.work_item_id).await;
        bridge.hang_up("call-2").await;
        let late = Report::Connected(pb::InteractionConnected {
            work_item_id: second.work_item_id.clone(),
        });
        let ack = bridge.report(late).await;
        assert_eq!(ack.code, Code::FailedPrecondition as i32, "{ack:?}");
        let ended = Report::Ended(pb::InteractionEnded {
            work_item_id: second.work_item_id.clone(),
        });
        assert_eq!(bridge.report(ended).await.code, 0);
        alice.state(pb::RoutingState::WrapUp).await;
        alice.state(pb::RoutingState::Ready).await;

        // A caller hangs up while offered; the bridge, missing the ack,
        // reports it again, then the end: both repeat what already ended
        // the item. A connected report for it is refused.
        let third = bridge.submit("call-3", VOICE, SUPPORT).await;
        alice.offer().await;
        for attempt in ["first", "repeated"] {
            let hung_up = Report::ConsumerHungUp(pb::ConsumerHungUp {
                work_item_id: third.work_item_id.clone(),
            });
            let ack = bridge.report(hung_up).await;
            assert_eq!(ack.code, 0, "the {attempt} hang-up: {ack:?}");
        }
        let ended = Report::Ended(pb::InteractionEnded {
            work_item_id: third.work_item_id.clone(),
        });
        assert_eq!(bridge.report(ended).await.code, 0);
        let late = Report::Connected(pb::InteractionConnected {
            work_item_id: third.work_item_id.clone(),
        });
        let ack = bridge.report(late).await;
        assert_eq!(ack.code, Code::FailedPrecondition as i32, "{ack:?}");
        centre.server.stop().await;

        let lifecycles = common::check_lifecycles(&backend).await;
        assert_eq!(
            lifecycles,
            [
                vec![
                    K::Queued,
                    K::Offered,
                    K::Answered,
                    K::Connected,
                    K::Ended,
                    K::Completed
                ],
                vec![K::Queued, K::Offered, K::Answered, K::Ended, K::Completed],
                vec![K::Queued, K::Offered, K::OfferRescinded, K::Abandoned],
            ],
            "on {}",
            backend.name
        );
    }
}

#[tokio::test]
async fn a_dropped_agent_stream_puts_the_offer_back_in_line() {
    for backend in common::backends().await {
        let centre = Centre::start(
            &backend,
            support_queue(),
            vec![agent("alice", 3), agent("bob", 3)],
        )
        .await;
        let mut bridge = centre.bridge().await;
        let mut alice = centre.agent("alice").await;
        let submitted = bridge.submit("call-1", VOICE, SUPPORT).await;
        let offer = alice.offer().await;
        assert_eq!(offer.work_item_id, submitted.work_item_id);
        alice.drop_stream();
        let mut bob = centre.agent("bob").await;
        let again = bob.offer().await;
        assert_eq!(
            again.work_item_id, submitted.work_item_id,
            "the offer went back in line and to bob"
        );
        centre.server.stop().await;
        let lifecycles = common::check_lifecycles(&backend).await;
        assert!(
            lifecycles[0].starts_with(&[K::Queued, K::Offered, K::OfferRescinded, K::Offered]),
            "{lifecycles:?}"
        );
        let store = switchboard::store::connect(&backend.url).await.unwrap();
        let states = store.agent_states(&"alice".into()).await.unwrap();
        assert_eq!(
            states.last().map(|s| s.state.as_str()),
            Some("logged_out"),
            "alice was signed out"
        );
    }
}

#[tokio::test]
async fn instructions_given_while_no_bridge_session_is_open_reach_the_next_one() {
    for backend in common::backends().await {
        let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
        // Submissions are unary: no bridge session is open yet.
        let mut submitter = BridgeServiceClient::new(centre.server.channel().await);
        let mut calls = Vec::new();
        for name in ["call-1", "call-2"] {
            let submitted = submitter
                .submit_interaction(interaction_request(name, VOICE, SUPPORT))
                .await
                .expect("a submission needs no bridge session")
                .into_inner();
            calls.push(submitted.work_item_id);
        }
        let mut alice = centre.agent("alice").await;
        let offer = alice.offer().await;
        assert_eq!(offer.work_item_id, calls[0]);
        alice.accept(&offer.work_item_id).await;
        let cancel = pb::CancelWorkItemRequest {
            work_item_id: calls[1].clone(),
            reason: "spam".into(),
        };
        centre
            .server
            .supervisor()
            .await
            .cancel_work_item(cancel)
            .await
            .expect("a waiting item can be cancelled");

        // The bridge comes back: it is told to put the first call through
        // to Alice and to disconnect the second caller.
        let mut bridge = centre.bridge().await;
        let delivery = bridge.delivery(&calls[0]).await;
        assert_eq!(delivery.agent_id, "alice");
        let disconnect = bridge.disconnect(&calls[1]).await;
        assert_eq!(disconnect.reason, "supervisor", "on {}", backend.name);
        drop(bridge);
        drop(alice);
        centre.server.stop().await;
        let lifecycles = common::check_lifecycles(&backend).await;
        assert_eq!(lifecycles[1].last(), Some(&K::Cancelled), "{lifecycles:?}");
    }
}

#[tokio::test]
async fn an_instruction_given_while_no_bridge_session_is_open_survives_a_crash() {
    for backend in common::backends().await {
        let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
        centre.server.stop().await;

        let server = common::ChildServer::start(&backend.url).await;
        let mut submitter = BridgeServiceClient::new(server.channel().await);
        let submit = |name: &'static str| interaction_request(name, VOICE, SUPPORT);
        let cancelled = submitter
            .submit_interaction(submit("call-1"))
            .await
            .expect("a submission needs no bridge session")
            .into_inner()
            .work_item_id;
        let cancel = pb::CancelWorkItemRequest {
            work_item_id: cancelled.clone(),
            reason: "spam".into(),
        };
        pb::supervisor_service_client::SupervisorServiceClient::new(server.channel().await)
            .cancel_work_item(cancel)
            .await
            .expect("a waiting item can be cancelled");
        // Records are committed in order: an acknowledged submission after
        // the cancel proves the cancel's records are stored too.
        submitter
            .submit_interaction(submit("call-2"))
            .await
            .expect("stored");
        server.kill().await;

        let restarted = TestServer::start(&backend.url).await;
        let mut bridge = BridgeClient::open(restarted.channel().await).await;
        let disconnect = bridge.disconnect(&cancelled).await;
        assert_eq!(
            (disconnect.kind, disconnect.reason.as_str()),
            (pb::DisconnectKind::Cancelled as i32, "supervisor"),
            "on {}",
            backend.name
        );
        let open = bridge.open_interactions().await;
        assert_eq!(open.len(), 1, "only call-2 is open: {open:?}");
        drop(bridge);
        restarted.stop().await;

        let store = switchboard::store::connect(&backend.url)
            .await
            .expect("the store opens");
        assert_eq!(
            store.unsent_instructions().await.unwrap(),
            [],
            "a received instruction is not kept to be sent again"
        );
        store.close().await;
        let lifecycles = common::check_lifecycles(&backend).await;
        assert_eq!(lifecycles[0].last(), Some(&K::Cancelled), "{lifecycles:?}");
    }
}

#[tokio::test]
async fn an_unreadable_stored_instruction_is_dropped_at_start() {
    for backend in common::backends().await {
        let centre = Centre::start(&backend, support_queue(), vec![]).await;
        let call = centre.bridge().await.submit("call-1", VOICE, SUPPORT).await;
        centre.server.stop().await;
        let store = switchboard::store::connect(&backend.url)
            .await
            .expect("the store opens");
        let garbled = UnsentInstruction {
            work_item: WorkItemId(call.work_item_id.parse().expect("a work item id")),
            at: switchboard::domain::Timestamp::from_millis(1),
            instruction: "{not json".into(),
        };
        store.append(&[Record::Unsent(garbled)]).await.unwrap();

        let restarted = TestServer::start(&backend.url).await;
        restarted.stop().await;
        assert_eq!(
            store.unsent_instructions().await.unwrap(),
            [],
            "on {}: logged once and dropped, not kept for every start",
            backend.name
        );
        store.close().await;
    }
}

#[tokio::test]
async fn one_agent_takes_three_chats_but_no_chat_during_a_call() {
    for backend in common::backends().await {
        let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
        let mut bridge = centre.bridge().await;
        let mut alice = centre.agent("alice").await;
        for n in 1..=4 {
            bridge.submit(&format!("chat-{n}"), CHAT, SUPPORT).await;
        }
        for _ in 0..3 {
            let offer = alice.offer().await;
            assert_eq!(offer.channel, CHAT as i32);
            alice.accept(&offer.work_item_id).await;
        }
        assert!(
            !alice.offered_within(Duration::from_millis(500)).await,
            "capacity 3: the fourth chat waits"
        );
        centre.server.stop().await;
        let lifecycles = common::check_lifecycles(&backend).await;
        let answered = lifecycles
            .iter()
            .filter(|kinds| kinds.contains(&K::Answered))
            .count();
        assert_eq!(answered, 3, "{lifecycles:?}");
    }
}

#[tokio::test]
async fn a_voice_call_blocks_chats_until_it_ends() {
    for backend in common::backends().await {
        let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
        let mut bridge = centre.bridge().await;
        let mut alice = centre.agent("alice").await;
        let call = bridge.submit("call-1", VOICE, SUPPORT).await;
        let offer = alice.offer().await;
        alice.accept(&offer.work_item_id).await;
        let chat = bridge.submit("chat-1", CHAT, SUPPORT).await;
        assert!(
            !alice.offered_within(Duration::from_millis(500)).await,
            "no chat while on a call"
        );
        let ack = bridge
            .report(Report::Ended(pb::InteractionEnded {
                work_item_id: call.work_item_id.clone(),
            }))
            .await;
        assert_eq!(ack.code, 0);
        let next = alice.offer().await;
        assert_eq!(
            next.work_item_id, chat.work_item_id,
            "the chat is offered once the call and its wrap-up end"
        );
        centre.server.stop().await;
        common::check_lifecycles(&backend).await;
    }
}

#[tokio::test]
async fn resubmitting_an_interaction_returns_the_same_work_item_across_a_restart() {
    for backend in common::backends().await {
        let centre = Centre::start(&backend, support_queue(), vec![]).await;
        let mut bridge = centre.bridge().await;
        let first = bridge.submit("call-1", VOICE, SUPPORT).await;
        let again = bridge.submit("call-1", VOICE, SUPPORT).await;
        assert_eq!(
            (again.work_item_id.as_str(), again.created),
            (first.work_item_id.as_str(), false)
        );
        // A finished interaction is known only to the store after a restart.
        let finished = bridge.submit("call-2", VOICE, SUPPORT).await;
        bridge.hang_up("call-2").await;
        drop(bridge);
        centre.server.stop().await;

        let restarted = TestServer::start(&backend.url).await;
        let mut client = switchboard::proto::v1::bridge_service_client::BridgeServiceClient::new(
            restarted.channel().await,
        );
        // Fresh interactions until the filter answers one: by then the
        // server has read the stored interactions, and the repeats below
        // meet the filter, not only the store.
        let mut probes = 0;
        loop {
            probes += 1;
            client
                .submit_interaction(interaction_request(
                    &format!("probe-{probes}"),
                    VOICE,
                    SUPPORT,
                ))
                .await
                .expect("a fresh submission is taken");
            let (_, metrics) = common::http_get(restarted.metrics_addr, "/metrics")
                .await
                .expect("the metrics port answers");
            let by_filter = "switchboard_store_lookups_total{answered_by=\"filter\"} ";
            if metrics
                .lines()
                .any(|line| line.starts_with(by_filter) && !line.ends_with(" 0"))
            {
                break;
            }
            assert!(probes < 100, "the filter never answered:\n{metrics}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (interaction, before) in [("call-1", &first), ("call-2", &finished)] {
            let after = client
                .submit_interaction(interaction_request(interaction, VOICE, SUPPORT))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                (after.work_item_id.as_str(), after.created),
                (before.work_item_id.as_str(), false),
                "{interaction} on {}",
                backend.name
            );
        }
        restarted.stop().await;
        assert_eq!(
            common::work_item_ids(&backend).await.len(),
            2 + probes,
            "no duplicate was stored"
        );
        common::check_lifecycles(&backend).await;
    }
}

#[tokio::test]
async fn estimate_wait_counts_agents_and_places_in_line() {
    for backend in common::backends().await {
        let centre = Centre::start(
            &backend,
            support_queue(),
            vec![agent("alice", 3), agent("bob", 1)],
        )
        .await;
        let mut bridge = centre.bridge().await;
        let request = |skill: &str, level: i32| pb::EstimateWaitRequest {
            target: Some(pb::estimate_wait_request::Target::EntryPoint(
                SUPPORT.into(),
            )),
            channel: VOICE as i32,
            language: String::new(),
            required_skills: vec![pb::SkillRequirement {
                skill: skill.into(),
                min_level: level,
            }],
        };
        let nobody = bridge
            .client
            .estimate_wait(request("billing", 1))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (
                nobody.queue.as_str(),
                nobody.agents_signed_in,
                nobody.agents_available,
                nobody.position
            ),
            ("support", 0, 0, 1)
        );
        let _alice = centre.agent("alice").await;
        let _bob = centre.agent("bob").await;
        let skilled = bridge
            .client
            .estimate_wait(request("billing", 2))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (skilled.agents_signed_in, skilled.agents_available),
            (1, 1),
            "only alice holds billing 2"
        );
        let unknown = bridge
            .client
            .estimate_wait(pb::EstimateWaitRequest {
                target: Some(pb::estimate_wait_request::Target::EntryPoint(
                    "sip:nowhere@contoso.example".into(),
                )),
                ..request("billing", 1)
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
        drop(bridge);
        centre.server.stop().await;
        assert!(
            common::check_lifecycles(&backend).await.is_empty(),
            "estimates create nothing"
        );
    }
}

#[tokio::test]
async fn a_routing_step_widens_while_the_item_waits() {
    for backend in common::backends().await {
        let queue = pb::Queue {
            steps: vec![
                pb::RoutingStep {
                    requirements: vec![pb::SkillRequirement {
                        skill: "billing".into(),
                        min_level: 4,
                    }],
                    match_language: false,
                    duration_secs: Some(1),
                },
                pb::RoutingStep {
                    requirements: vec![pb::SkillRequirement {
                        skill: "billing".into(),
                        min_level: 2,
                    }],
                    match_language: false,
                    duration_secs: None,
                },
            ],
            ..support_queue()
        };
        let centre = Centre::start(&backend, queue, vec![agent("bob", 2)]).await;
        let mut bridge = centre.bridge().await;
        let mut bob = centre.agent("bob").await;
        let submitted = bridge.submit("call-1", VOICE, SUPPORT).await;
        assert_eq!(
            submitted.position, 1,
            "step 1 needs billing 4: bob (billing 2) is not offered it"
        );
        let offer = bob.offer().await;
        assert_eq!(offer.work_item_id, submitted.work_item_id);
        let waited = offer
            .waited
            .expect("an offer says how long the consumer waited");
        assert!(
            waited.seconds >= 1,
            "offered only once step 2 began: waited {waited:?}"
        );
        centre.server.stop().await;
        common::check_lifecycles(&backend).await;
    }
}

#[tokio::test]
async fn bad_requests_get_a_clear_status_and_change_nothing() {
    for backend in common::backends().await {
        let centre = Centre::start(
            &backend,
            support_queue(),
            vec![agent("alice", 3), agent("bob", 3)],
        )
        .await;
        let mut bridge = centre.bridge().await;
        let unknown = bridge
            .client
            .submit_interaction(interaction_request(
                "call-x",
                VOICE,
                "sip:nowhere@contoso.example",
            ))
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
        assert!(
            unknown
                .message()
                .contains("entry point sip:nowhere@contoso.example"),
            "{unknown:?}"
        );
        let mut malformed = interaction_request("call-y", VOICE, SUPPORT);
        malformed.from_address = "jane".into();
        let status = bridge
            .client
            .submit_interaction(malformed)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with("from_address:"), "{status:?}");

        let nobody = AgentClient::open(centre.server.channel().await, "nobody", true)
            .await
            .err()
            .expect("unknown agents are refused");
        assert_eq!(nobody.code(), Code::NotFound, "{nobody:?}");

        let mut alice = centre.agent("alice").await;
        let submitted = bridge.submit("call-1", VOICE, SUPPORT).await;
        let offer = alice.offer().await;
        let never_delivered = bridge
            .report(Report::Connected(pb::InteractionConnected {
                work_item_id: offer.work_item_id.clone(),
            }))
            .await;
        assert_eq!(
            never_delivered.code,
            Code::FailedPrecondition as i32,
            "{never_delivered:?}"
        );
        let random = bridge
            .report(Report::Ended(pb::InteractionEnded {
                work_item_id: uuid::Uuid::new_v4().to_string(),
            }))
            .await;
        assert_eq!(random.code, Code::NotFound as i32, "{random:?}");

        let mut bob = centre.agent("bob").await;
        let not_yours = bob
            .request(
                AgentKind2::Accept(pb::AcceptOffer {
                    work_item_id: submitted.work_item_id.clone(),
                }),
                Code::FailedPrecondition,
            )
            .await;
        assert!(!not_yours.message.is_empty());
        let garbled = bob
            .request(
                AgentKind2::Accept(pb::AcceptOffer {
                    work_item_id: "call-1".into(),
                }),
                Code::InvalidArgument,
            )
            .await;
        assert!(
            garbled.message.starts_with("accept.work_item_id:"),
            "{garbled:?}"
        );
        alice.accept(&offer.work_item_id).await;

        // A second session for alice takes over; the first is told to go away.
        let mut second = AgentClient::sign_in(centre.server.channel().await, "alice", true).await;
        let away = alice
            .event("going away", |kind| matches!(kind, AgentKind::GoingAway(_)))
            .await;
        assert!(matches!(away, AgentKind::GoingAway(g) if g.reason.contains("another session")));
        second
            .request(AgentKind2::Heartbeat(pb::Heartbeat {}), Code::Ok)
            .await;
        centre.server.stop().await;
        let lifecycles = common::check_lifecycles(&backend).await;
        assert_eq!(
            lifecycles,
            vec![vec![K::Queued, K::Offered, K::Answered]],
            "refused requests left nothing behind"
        );
    }
}

#[tokio::test]
async fn informal_agents_are_routed_on_presence_alone() {
    for backend in common::backends().await {
        let informal = pb::Agent {
            kind: pb::AgentKind::Informal as i32,
            ..agent("carol", 3)
        };
        let centre = Centre::start(&backend, support_queue(), vec![informal]).await;
        let mut bridge = centre.bridge().await;
        let submitted = bridge.submit("call-1", VOICE, SUPPORT).await;
        assert_eq!(submitted.position, 1);
        let mut presence = PresenceServiceClient::new(centre.server.channel().await);
        let mut updates = vec![pb::PresenceUpdate {
            agent_id: "carol".into(),
            presence: pb::Presence::Available as i32,
            observed_at: None,
        }];
        for n in 0..2_000 {
            updates.push(pb::PresenceUpdate {
                agent_id: format!("ghost-{n}"),
                presence: pb::Presence::Away as i32,
                observed_at: None,
            });
        }
        let answer = presence
            .update_presence(pb::UpdatePresenceRequest { updates })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((answer.applied, answer.unknown_agents.len()), (1, 2_000));
        let wait = bridge.submit("call-1", VOICE, SUPPORT).await;
        assert_eq!(
            wait.position, 0,
            "carol, available, was offered the call at once"
        );
        let bad = presence
            .update_presence(pb::UpdatePresenceRequest {
                updates: vec![pb::PresenceUpdate {
                    agent_id: "carol".into(),
                    presence: 0,
                    observed_at: None,
                }],
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert!(bad.message().starts_with("updates[0].presence"), "{bad:?}");
        centre.server.stop().await;
        let lifecycles = common::check_lifecycles(&backend).await;
        assert_eq!(lifecycles, vec![vec![K::Queued, K::Offered]]);
    }
}

#[tokio::test]
async fn an_agent_whose_heartbeats_stop_is_signed_out() {
    for backend in common::backends().await {
        let config = ServeConfig {
            heartbeat_timeout_secs: 1,
            ..ServeConfig::ephemeral(&backend.url)
        };
        let centre = Centre::start_with(
            config,
            vec![support_queue()],
            vec![agent("alice", 3), agent("bob", 3)],
        )
        .await;
        let mut bridge = centre.bridge().await;
        let mut alice = centre.agent("alice").await;
        let submitted = bridge.submit("call-1", VOICE, SUPPORT).await;
        let offer = alice.offer().await;
        assert_eq!(offer.work_item_id, submitted.work_item_id);
        // Alice's client hangs: the stream stays open but sends nothing more.
        // Bob's keeps beating while it waits (a hang guard of 30 s).
        let mut bob = centre.agent("bob").await;
        let mut beats = 0;
        while !bob.offered_within(Duration::from_millis(200)).await {
            beats += 1;
            assert!(beats < 150, "the offer never went back in line");
            bob.send(AgentKind2::Heartbeat(pb::Heartbeat {}));
        }
        let again = bob.offer().await;
        assert_eq!(
            again.work_item_id, submitted.work_item_id,
            "the offer went back in line when alice was signed out"
        );
        bob.accept(&again.work_item_id).await;
        centre.server.stop().await;
        let store = switchboard::store::connect(&backend.url).await.unwrap();
        let states = store.agent_states(&"alice".into()).await.unwrap();
        assert_eq!(
            states.last().map(|s| s.state.as_str()),
            Some("logged_out"),
            "alice was signed out"
        );
        drop(alice);
        let lifecycles = common::check_lifecycles(&backend).await;
        assert_eq!(
            lifecycles,
            vec![vec![
                K::Queued,
                K::Offered,
                K::OfferRescinded,
                K::Offered,
                K::Answered
            ]]
        );
    }
}

#[tokio::test]
async fn a_transfer_queues_a_new_segment_of_the_same_interaction() {
    for backend in common::backends().await {
        let centre = Centre::start_with_sales(&backend, vec![agent("alice", 3)]).await;
        let mut bridge = centre.bridge().await;
        let mut alice = centre.agent("alice").await;
        let mut bob = centre.agent("bob").await;
        let submitted = bridge.submit("call-1", VOICE, SUPPORT).await;
        alice.offer().await;
        alice.accept(&submitted.work_item_id).await;
        bridge.delivery(&submitted.work_item_id).await;
        let transfer = Report::TransferRequested(pb::TransferRequested {
            work_item_id: submitted.work_item_id.clone(),
            queue: "sales".into(),
        });
        let ack = bridge.report(transfer).await;
        assert_eq!(ack.code, 0, "{ack:?}");
        let offer = bob.offer().await;
        assert_eq!(
            (offer.interaction_id.as_str(), offer.queue.as_str()),
            ("call-1", "sales")
        );
        assert_ne!(offer.work_item_id, submitted.work_item_id, "a new segment");
        let early = Report::TransferRequested(pb::TransferRequested {
            work_item_id: offer.work_item_id.clone(),
            queue: "support".into(),
        });
        assert_eq!(
            bridge.report(early).await.code,
            Code::FailedPrecondition as i32,
            "only answered items transfer"
        );
        bob.accept(&offer.work_item_id).await;
        let request = pb::EndInteractionRequest {
            interaction_id: "call-1".into(),
            reason: String::new(),
        };
        let ended = bridge
            .client
            .end_interaction(request)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            ended.work_item_id, offer.work_item_id,
            "ending the interaction ends its current segment"
        );
        centre.server.stop().await;
        let lifecycles = common::check_lifecycles(&backend).await;
        assert_eq!(lifecycles.len(), 2, "{lifecycles:?}");
        let store = switchboard::store::connect(&backend.url).await.unwrap();
        let first = store
            .find_work_item(&"call-1".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((first.item.segment, first.item.is_transfer), (0, false));
        assert!(
            matches!(first.state.as_str(), "wrap_up" | "completed"),
            "{}",
            first.state
        );
    }
}

#[tokio::test]
async fn waiting_too_long_overflows_then_disconnects_with_a_message() {
    for backend in common::backends().await {
        let limits = |disposition: pb::disposition::Kind| pb::QueueLimits {
            max_wait_secs: Some(1),
            when_max_wait: Some(pb::Disposition {
                kind: Some(disposition),
            }),
            ..Default::default()
        };
        let overflow = pb::Queue {
            id: "overflow".into(),
            limits: Some(limits(pb::disposition::Kind::DisconnectMessage(
                "please call back later".into(),
            ))),
            ..support_queue()
        };
        let support = pb::Queue {
            limits: Some(limits(pb::disposition::Kind::OverflowQueue(
                "overflow".into(),
            ))),
            ..support_queue()
        };
        let config = ServeConfig::ephemeral(&backend.url);
        let centre = Centre::start_with(config, vec![overflow, support], vec![]).await;
        let mut bridge = centre.bridge().await;
        let submitted = bridge.submit("call-1", VOICE, SUPPORT).await;
        let moved = bridge
            .instruction("an overflow", |kind| {
                matches!(kind, Instruction::Overflow(_))
            })
            .await;
        let Instruction::Overflow(moved) = moved else {
            unreachable!()
        };
        assert_eq!(
            (
                moved.work_item_id.as_str(),
                moved.to_queue.as_str(),
                moved.reason.as_str()
            ),
            (submitted.work_item_id.as_str(), "overflow", "max_wait")
        );
        let ended = bridge
            .instruction("a disconnect", |kind| {
                matches!(kind, Instruction::Disconnect(_))
            })
            .await;
        let Instruction::Disconnect(ended) = ended else {
            unreachable!()
        };
        assert_eq!(
            (ended.kind, ended.message.as_str()),
            (pb::DisconnectKind::Message as i32, "please call back later")
        );
        centre.server.stop().await;
        let lifecycles = common::check_lifecycles(&backend).await;
        assert_eq!(
            lifecycles,
            vec![vec![K::Queued, K::Overflowed, K::Queued, K::Disposed]]
        );
    }
}

#[tokio::test]
async fn open_work_items_are_recovered_after_a_crash() {
    // The queue turns callers away while nobody is signed in; at a restart
    // nobody is, yet the callers who were waiting keep their places.
    let queue = pb::Queue {
        limits: Some(pb::QueueLimits {
            when_no_agents: Some(pb::Disposition {
                kind: Some(pb::disposition::Kind::DisconnectMessage(
                    "nobody can take your call now".into(),
                )),
            }),
            ..Default::default()
        }),
        ..support_queue()
    };
    for backend in common::backends().await {
        let centre = Centre::start(
            &backend,
            queue.clone(),
            vec![agent("alice", 3), agent("bob", 3)],
        )
        .await;
        centre.server.stop().await;

        let server = common::ChildServer::start(&backend.url).await;
        let mut bridge = BridgeClient::open(server.channel().await).await;
        let mut alice = AgentClient::sign_in(server.channel().await, "alice", true).await;
        let answered = bridge.submit("call-1", VOICE, SUPPORT).await;
        alice.offer().await;
        alice.accept(&answered.work_item_id).await;
        bridge.delivery(&answered.work_item_id).await;
        let ack = bridge
            .report(Report::Connected(pb::InteractionConnected {
                work_item_id: answered.work_item_id.clone(),
            }))
            .await;
        assert_eq!(ack.code, 0);
        for n in 2..=4 {
            bridge.submit(&format!("call-{n}"), VOICE, SUPPORT).await;
        }
        let mut bob = AgentClient::sign_in(server.channel().await, "bob", true).await;
        let offered = bob.offer().await;
        // An acknowledged submission after the offer proves the offer's record is stored too.
        bridge.submit("call-5", VOICE, SUPPORT).await;
        server.kill().await;
        drop((alice, bob, bridge));

        let restarted = TestServer::start(&backend.url).await;
        let mut bridge = BridgeClient::open(restarted.channel().await).await;
        let open = bridge.open_interactions().await;
        let first = &open[0];
        assert_eq!(
            (
                first.work_item_id.as_str(),
                first.state.as_str(),
                first.agent_id.as_str()
            ),
            (answered.work_item_id.as_str(), "connected", "alice"),
            "a connected item stays connected to its agent"
        );
        assert_eq!(open.len(), 5);
        let mut positions = Vec::new();
        for n in 2..=5 {
            let again = bridge.submit(&format!("call-{n}"), VOICE, SUPPORT).await;
            assert!(!again.created);
            positions.push(again.position);
        }
        assert_eq!(
            positions,
            [1, 2, 3, 4],
            "waiting items keep their order; the offer in flight went back to its place"
        );
        // Alice is still on the call answered before the crash: signing in
        // again, ready, she is offered nothing until it ends.
        let mut alice_again = AgentClient::sign_in(restarted.channel().await, "alice", true).await;
        let after_sign_in = bridge.open_interactions().await;
        let states: Vec<&str> = after_sign_in[1..]
            .iter()
            .map(|interaction| interaction.state.as_str())
            .collect();
        assert_eq!(
            states, ["waiting"; 4],
            "the recovered call holds its agent's capacity"
        );
        let ack = bridge
            .report(Report::Ended(pb::InteractionEnded {
                work_item_id: answered.work_item_id.clone(),
            }))
            .await;
        assert_eq!(
            ack.code, 0,
            "the bridge can end an item answered before the crash: {ack:?}"
        );
        let next = alice_again.offer().await;
        assert_eq!(
            next.work_item_id, offered.work_item_id,
            "once the call ends and she has wrapped up, the first in line is offered first"
        );
        restarted.stop().await;
        let lifecycles = common::check_lifecycles(&backend).await;
        assert_eq!(
            lifecycles[0],
            [
                K::Queued,
                K::Offered,
                K::Answered,
                K::Connected,
                K::Ended,
                K::Completed
            ]
        );
        assert!(
            lifecycles[1].starts_with(&[K::Queued, K::Offered, K::OfferRescinded, K::Offered]),
            "{:?}",
            lifecycles[1]
        );
    }
}
