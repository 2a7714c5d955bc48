//! A graceful stop: `switchboard serve` as a child process, sent SIGTERM as
//! a service manager would, on every back-end. Its open bridge and agent
//! sessions are told the server is going away, new work is refused (with
//! UNAVAILABLE, or the connection closes), the process exits cleanly once the writer has flushed (the
//! agent signed out by the stop is stored), and a restart finds every open
//! call where it was.

mod common;

use common::ChildServer;
use common::centre::{Centre, SUPPORT, agent, support_queue};
use common::sessions::{AgentClient, AgentKind, BridgeClient, Instruction, Report};
use switchboard::proto::v1 as pb;
use tonic::Code;

const VOICE: pb::Channel = pb::Channel::Voice;

#[tokio::test]
async fn sigterm_tells_sessions_to_go_away_refuses_new_work_and_flushes() {
    for backend in common::backends().await {
        let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
        centre.server.stop().await;
        let server = ChildServer::start(&backend.url).await;
        let mut bridge = BridgeClient::open(server.channel().await).await;
        let mut alice = AgentClient::sign_in(server.channel().await, "alice", true).await;
        let answered = bridge.submit("call-1", VOICE, SUPPORT).await;
        let waiting = bridge.submit("call-2", VOICE, SUPPORT).await;
        let offer = alice.offer().await;
        assert_eq!(offer.work_item_id, answered.work_item_id);
        alice.accept(&offer.work_item_id).await;
        bridge.delivery(&offer.work_item_id).await;
        let connected = pb::InteractionConnected {
            work_item_id: offer.work_item_id.clone(),
        };
        assert_eq!(bridge.report(Report::Connected(connected)).await.code, 0);

        server.terminate().await;
        bridge
            .instruction("the bridge's going-away", |kind| {
                matches!(kind, Instruction::GoingAway(_))
            })
            .await;
        alice
            .event("alice's going-away", |kind| {
                matches!(kind, AgentKind::GoingAway(_))
            })
            .await;
        let late = bridge
            .client
            .submit_interaction(common::sessions::interaction_request(
                "call-3", VOICE, SUPPORT,
            ))
            .await
            .expect_err("no new work is accepted while the server stops");
        // Refused by the draining server, or the connection went with it:
        // either way the bridge knows to retry elsewhere or later.
        let transport_closed =
            late.message() == "transport error" || late.message() == "operation was canceled";
        assert!(
            late.code() == Code::Unavailable || transport_closed,
            "{late:?}"
        );
        let status = server.exited().await;
        assert!(
            status.success(),
            "a clean exit on {}: {status}",
            backend.name
        );

        // The writer flushed before the exit: the sign-out the stop caused
        // is stored, and so is every lifecycle.
        let store = switchboard::store::connect(&backend.url)
            .await
            .expect("the store opens");
        let states = store.agent_states(&"alice".into()).await.unwrap();
        assert_eq!(
            states.last().map(|change| change.state.as_str()),
            Some("logged_out"),
            "alice's sign-out on {}",
            backend.name
        );
        let late_item = store.find_work_item(&"call-3".into()).await.unwrap();
        assert!(late_item.is_none(), "the refused call left nothing behind");
        store.close().await;
        common::check_lifecycles(&backend).await;

        let again = ChildServer::start(&backend.url).await;
        let mut bridge_again = BridgeClient::open(again.channel().await).await;
        let open = bridge_again.open_interactions().await;
        let states: Vec<(&str, &str)> = open
            .iter()
            .map(|item| (item.work_item_id.as_str(), item.state.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                (answered.work_item_id.as_str(), "connected"),
                (waiting.work_item_id.as_str(), "waiting")
            ],
            "every open call is back after the restart"
        );
        again.kill().await;
    }
}
