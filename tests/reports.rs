//! Interval reports over gRPC on every back-end: live traffic (answered,
//! abandoned, still offered) shows up in `GetIntervalReport` as counted in
//! the database, and bad requests are refused naming the field.

mod common;

use common::centre::{Centre, SUPPORT, agent, support_queue};
use common::sessions::Report;
use switchboard::proto::v1 as pb;
use tonic::Code;

const VOICE: pb::Channel = pb::Channel::Voice;

/// A protobuf timestamp `offset_secs` from now.
fn from_now(offset_secs: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + offset_secs,
        nanos: 0,
    }
}

/// A report request for the day around now.
fn around_now(interval: pb::ReportInterval) -> pb::GetIntervalReportRequest {
    pb::GetIntervalReportRequest {
        from: Some(from_now(-86_400)),
        to: Some(from_now(86_400)),
        interval: interval.into(),
        queue_ids: vec!["support".into()],
    }
}

#[tokio::test]
async fn live_traffic_is_reported_from_the_database() {
    for backend in common::backends().await {
        let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
        let mut bridge = centre.bridge().await;
        let mut alice = centre.agent("alice").await;
        alice.state(pb::RoutingState::Ready).await;

        let answered = bridge.submit("call-1", VOICE, SUPPORT).await;
        let offer = alice.offer().await;
        alice.accept(&offer.work_item_id).await;
        let ack = bridge
            .report(Report::Connected(pb::InteractionConnected {
                work_item_id: answered.work_item_id.clone(),
            }))
            .await;
        assert_eq!(ack.code, 0, "{ack:?}");
        // Alice is on the call, so the second caller waits, then hangs up.
        let abandoned = bridge.submit("call-2", VOICE, SUPPORT).await;
        let ack = bridge
            .report(Report::ConsumerHungUp(pb::ConsumerHungUp {
                work_item_id: abandoned.work_item_id.clone(),
            }))
            .await;
        assert_eq!(ack.code, 0, "{ack:?}");
        let ack = bridge
            .report(Report::Ended(pb::InteractionEnded {
                work_item_id: answered.work_item_id.clone(),
            }))
            .await;
        assert_eq!(ack.code, 0, "{ack:?}");
        alice.state(pb::RoutingState::WrapUp).await;
        alice.state(pb::RoutingState::Ready).await;
        // Acknowledged once committed, after the wrap-up's record (the
        // writer commits in order); it is left waiting.
        bridge.submit("call-3", VOICE, SUPPORT).await;

        let mut supervisor = centre.server.supervisor().await;
        let rows = supervisor
            .get_interval_report(around_now(pb::ReportInterval::Day))
            .await
            .expect("a report")
            .into_inner()
            .rows;
        let voice: Vec<&pb::IntervalRow> = rows
            .iter()
            .filter(|row| row.queue == "support" && row.channel == VOICE as i32)
            .collect();
        assert_eq!(voice.len(), 1, "on {}: {rows:?}", backend.name);
        let row = voice[0];
        assert_eq!(
            (
                row.offered,
                row.answered,
                row.answered_within_threshold,
                row.abandoned,
                row.abandoned_within_threshold,
                row.short_abandons,
            ),
            (3, 1, 1, 1, 1, 1),
            "on {}: {row:?}",
            backend.name
        );
        // The short abandon is left out: 1 answered within T of 1 counted.
        assert_eq!(row.service_level, Some(1.0), "on {}", backend.name);
        assert_eq!(row.service_level_sl2, Some(1.0), "on {}", backend.name);
        let aht = row.aht.expect("an AHT");
        assert!(aht.seconds >= 1, "talk plus the 1 s wrap-up: {aht:?}");
        let occupancy = row.occupancy.expect("alice was ready and busy");
        assert!(occupancy > 0.0 && occupancy <= 1.0, "{occupancy}");

        let quarter_hours = supervisor
            .get_interval_report(around_now(pb::ReportInterval::ReportInterval15Minutes))
            .await
            .expect("a report")
            .into_inner()
            .rows;
        let offered: u64 = quarter_hours
            .iter()
            .filter(|row| row.channel == VOICE as i32)
            .map(|row| row.offered)
            .sum();
        assert_eq!(offered, 3, "on {}", backend.name);
        for row in &quarter_hours {
            let start = row.start.expect("a start").seconds;
            assert_eq!(start % 900, 0, "quarter hours start on the quarter");
        }
        centre.server.stop().await;
    }
}

#[tokio::test]
async fn bad_report_requests_name_the_field() {
    let backend = common::sqlite();
    let centre = Centre::start(&backend, support_queue(), Vec::new()).await;
    let mut supervisor = centre.server.supervisor().await;
    let day = pb::ReportInterval::Day;
    let cases = [
        (
            pb::GetIntervalReportRequest {
                from: None,
                ..around_now(day)
            },
            "from: is required",
        ),
        (
            pb::GetIntervalReportRequest {
                to: Some(from_now(-90_000)),
                ..around_now(day)
            },
            "to: must be after from",
        ),
        (
            pb::GetIntervalReportRequest {
                interval: pb::ReportInterval::Unspecified.into(),
                ..around_now(day)
            },
            "interval: must be 15, 30 or 60 minutes or a day, got 0",
        ),
        (
            pb::GetIntervalReportRequest {
                from: Some(from_now(-200 * 86_400)),
                ..around_now(pb::ReportInterval::ReportInterval15Minutes)
            },
            "to: the range holds",
        ),
        (
            pb::GetIntervalReportRequest {
                queue_ids: vec![String::new()],
                ..around_now(day)
            },
            "queue_ids[0]: must not be empty",
        ),
    ];
    for (request, message) in cases {
        let status = supervisor
            .get_interval_report(request)
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(message),
            "{:?} should start with {message:?}",
            status.message()
        );
    }
    centre.server.stop().await;
}
