//! Supervisors acting on work items over gRPC, on every back-end: cancel
//! (the bridge is told to disconnect), move, reprioritise and assign change
//! who gets what, bad requests name the field, and each action is in the
//! audit log with who did it.

mod common;

use common::centre::{Centre, SUPPORT, agent};
use common::sessions::AgentClient;
use switchboard::proto::v1 as pb;
use tonic::Code;

const VOICE: pb::Channel = pb::Channel::Voice;

/// A request naming carol as the supervisor who acts.
fn as_carol<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-switchboard-actor", "carol".parse().unwrap());
    request
}

#[tokio::test]
async fn cancel_move_reprioritise_and_assign_change_the_routing_and_are_audited() {
    for backend in common::backends().await {
        let agents = vec![agent("alice", 3), agent("dave", 3)];
        let centre = Centre::start_with_sales(&backend, agents).await;
        let mut bridge = centre.bridge().await;
        let mut calls = Vec::new();
        for name in ["call-1", "call-2", "call-3", "call-4"] {
            calls.push(bridge.submit(name, VOICE, SUPPORT).await.work_item_id);
        }
        let mut supervisor = centre.server.supervisor().await;

        let cancel = pb::CancelWorkItemRequest {
            work_item_id: calls[0].clone(),
            reason: "spam".into(),
        };
        let cancelled = supervisor
            .cancel_work_item(as_carol(cancel))
            .await
            .expect("a waiting item can be cancelled")
            .into_inner();
        bridge.disconnect(&calls[0]).await;
        let moved = pb::MoveWorkItemRequest {
            work_item_id: calls[1].clone(),
            queue: "sales".into(),
        };
        let moved = supervisor
            .move_work_item(as_carol(moved))
            .await
            .expect("a waiting item can be moved")
            .into_inner();
        let raised = pb::ReprioritiseWorkItemRequest {
            work_item_id: calls[3].clone(),
            priority: 10,
        };
        let raised = supervisor
            .reprioritise_work_item(as_carol(raised))
            .await
            .expect("a waiting item can be reprioritised")
            .into_inner();

        // Call 4 now goes before call 3; call 2 waits in sales for Bob.
        let mut dave = centre.agent("dave").await;
        assert_eq!(
            dave.offer().await.work_item_id,
            calls[3],
            "on {}",
            backend.name
        );
        let mut bob = centre.agent("bob").await;
        assert_eq!(
            bob.offer().await.work_item_id,
            calls[1],
            "on {}",
            backend.name
        );
        // Alice is not ready, yet a supervisor may hand her call 3.
        let mut alice = AgentClient::sign_in(centre.server.channel().await, "alice", false).await;
        let assign = pb::AssignWorkItemRequest {
            work_item_id: calls[2].clone(),
            agent_id: "alice".into(),
        };
        let assigned = supervisor
            .assign_work_item(as_carol(assign))
            .await
            .expect("an item can be assigned to a signed-in agent")
            .into_inner();
        assert_eq!(
            alice.offer().await.work_item_id,
            calls[2],
            "on {}",
            backend.name
        );

        let unknown = pb::MoveWorkItemRequest {
            work_item_id: uuid::Uuid::new_v4().to_string(),
            queue: "sales".into(),
        };
        let status = supervisor.move_work_item(unknown).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        let malformed = pb::CancelWorkItemRequest {
            work_item_id: "call-1".into(),
            reason: String::new(),
        };
        let status = supervisor.cancel_work_item(malformed).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with("work_item_id:"), "{status:?}");
        let too_high = pb::ReprioritiseWorkItemRequest {
            work_item_id: calls[2].clone(),
            priority: 101,
        };
        let status = supervisor
            .reprioritise_work_item(too_high)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with("priority:"), "{status:?}");
        let nobody = pb::AssignWorkItemRequest {
            work_item_id: calls[2].clone(),
            agent_id: String::new(),
        };
        let status = supervisor.assign_work_item(nobody).await.unwrap_err();
        assert!(status.message().starts_with("agent_id:"), "{status:?}");
        drop((alice, bob, dave));
        centre.server.stop().await;

        let store = switchboard::store::connect(&backend.url).await.unwrap();
        let item = store
            .find_work_item(&"call-1".into())
            .await
            .unwrap()
            .expect("call 1 is stored");
        assert_eq!(item.state, "cancelled", "on {}", backend.name);
        let item = store
            .find_work_item(&"call-2".into())
            .await
            .unwrap()
            .expect("call 2 is stored");
        assert_eq!(item.item.queue.as_str(), "sales", "on {}", backend.name);
        let log = store.audit_log(0, 100).await.unwrap();
        let expected = [
            (cancelled.audit_id, "cancel_work_item", &calls[0]),
            (moved.audit_id, "move_work_item", &calls[1]),
            (raised.audit_id, "reprioritise_work_item", &calls[3]),
            (assigned.audit_id, "assign_work_item", &calls[2]),
        ];
        for (id, action, target) in expected {
            let entry = log
                .iter()
                .find(|entry| entry.id == id)
                .unwrap_or_else(|| panic!("{action} is in the audit log"));
            assert_eq!(
                (
                    entry.action.as_str(),
                    entry.target.as_str(),
                    entry.actor.as_str()
                ),
                (action, target.as_str(), "carol"),
                "on {}",
                backend.name
            );
        }
        store.close().await;
    }
}
