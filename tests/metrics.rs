//! `/metrics` as operations scrape it: the routing, store and gRPC families
//! move with real traffic, and no label carries an unbounded id.

mod common;

use common::TestServer;
use common::sessions::{AgentClient, BridgeClient, interaction_request};
use switchboard::proto::v1 as pb;

/// Fetches `/metrics` with a plain HTTP/1.0 request.
async fn scrape(server: &TestServer) -> String {
    let (status, body) = common::http_get(server.metrics_addr, "/metrics")
        .await
        .expect("the metrics port answers");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample whose name and labels start as `series` says.
fn sample(scrape: &str, series: &str) -> f64 {
    for line in scrape.lines() {
        if line.starts_with(series) {
            let value = line.rsplit(' ').next().expect("a sample has a value");
            return value.parse().expect("a sample's value is a number");
        }
    }
    panic!("no sample {series} in the scrape");
}

#[tokio::test]
async fn traffic_moves_the_service_level_families() {
    let backend = common::sqlite();
    let server = TestServer::start(&backend.url).await;
    let mut supervisor = server.supervisor().await;
    let queue = pb::Queue {
        id: "support".into(),
        ..Default::default()
    };
    supervisor
        .create_queue(pb::CreateQueueRequest { queue: Some(queue) })
        .await
        .unwrap();
    let entry = pb::EntryPoint {
        address: "sip:support@contoso.example".into(),
        queue: "support".into(),
        description: String::new(),
    };
    supervisor
        .create_entry_point(pb::CreateEntryPointRequest {
            entry_point: Some(entry),
        })
        .await
        .unwrap();
    let agent = pb::Agent {
        id: "alice".into(),
        uc_address: "sip:alice@contoso.example".into(),
        queues: vec!["support".into()],
        ..Default::default()
    };
    supervisor
        .create_agent(pb::CreateAgentRequest { agent: Some(agent) })
        .await
        .unwrap();

    let mut bridge = BridgeClient::open(server.channel().await).await;
    let mut alice = AgentClient::sign_in(server.channel().await, "alice", true).await;
    let submitted = bridge
        .submit("call-1", pb::Channel::Voice, "sip:support@contoso.example")
        .await;
    alice.offer().await;
    alice.accept(&submitted.work_item_id).await;
    bridge.delivery(&submitted.work_item_id).await;
    bridge
        .submit("call-2", pb::Channel::Voice, "sip:support@contoso.example")
        .await;
    let mut bad = interaction_request("call-3", pb::Channel::Voice, "sip:support@contoso.example");
    bad.from_address = "jane".into();
    bridge.client.submit_interaction(bad).await.unwrap_err();
    bridge
        .client
        .end_interaction(pb::EndInteractionRequest {
            interaction_id: "call-2".into(),
            reason: String::new(),
        })
        .await
        .unwrap();

    let text = scrape(&server).await;
    let support = r#"{channel="voice",queue="support"}"#;
    assert_eq!(
        sample(&text, &format!("switchboard_arrivals_total{support}")),
        2.0
    );
    assert_eq!(
        sample(&text, &format!("switchboard_answered_total{support}")),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("switchboard_answered_within_threshold_total{support}")
        ),
        1.0
    );
    assert_eq!(
        sample(&text, &format!("switchboard_abandoned_total{support}")),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("switchboard_abandoned_short_total{support}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"switchboard_offers_total{channel="voice",queue="support",result="accepted"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"switchboard_wait_seconds_count{channel="voice",outcome="answered",queue="support"}"#
        ),
        1.0
    );
    assert!(text.contains(r#"switchboard_wait_seconds_bucket{channel="voice",outcome="answered",queue="support",le="20"}"#), "the voice threshold is a bucket");
    assert_eq!(
        sample(
            &text,
            &format!("switchboard_service_level_threshold_seconds{support}")
        ),
        20.0
    );
    assert_eq!(
        sample(
            &text,
            r#"switchboard_answered_within_threshold_total{channel="chat",queue="support"}"#
        ),
        0.0,
        "a configured queue's outcome counters start at zero, untouched channels too"
    );
    assert!(sample(&text, "switchboard_store_batch_records_count") >= 1.0);
    assert!(sample(&text, "switchboard_routing_decision_seconds_count") >= 3.0);
    let submit = r#"grpc_server_handled_total{grpc_code="OK",grpc_method="SubmitInteraction",grpc_service="switchboard.v1.BridgeService",grpc_type="unary"}"#;
    assert_eq!(sample(&text, submit), 2.0);
    let refused = r#"grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="SubmitInteraction",grpc_service="switchboard.v1.BridgeService",grpc_type="unary"}"#;
    assert_eq!(sample(&text, refused), 1.0);
    assert!(text.contains("process_resident_memory_bytes"));
    assert!(
        !text.contains(&submitted.work_item_id) && !text.contains("call-1"),
        "no unbounded ids in labels"
    );

    // A threshold set while the server runs is a bucket at once, holding
    // every wait before it.
    supervisor
        .update_queue(pb::UpdateQueueRequest {
            queue: Some(pb::Queue {
                id: "support".into(),
                sl_thresholds: Some(pb::ChannelThresholds {
                    voice: 25,
                    chat: 60,
                    video: 20,
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let text = scrape(&server).await;
    let answered =
        r#"switchboard_wait_seconds_bucket{channel="voice",outcome="answered",queue="support",le="#;
    assert_eq!(sample(&text, &format!(r#"{answered}"25"}}"#)), 1.0);
    assert_eq!(
        sample(&text, &format!(r#"{answered}"20"}}"#)),
        1.0,
        "the old threshold stays a bucket"
    );
    drop((alice, bridge));
    server.stop().await;
}
