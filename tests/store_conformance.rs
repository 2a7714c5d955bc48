//! One conformance suite for every store back-end: each test runs against a
//! fresh SQLite file and, when `SWITCHBOARD_TEST_POSTGRES_URL` is set, a fresh
//! PostgreSQL schema.

mod common;

use std::time::Duration;
use switchboard::domain::{
    Agent, AgentKind, ChannelCapacity, Disposition, EntryPoint, Queue, RoutingStep,
    SelectionStrategy, Skill, SkillRequirement, Timestamp,
};
use switchboard::domain::{Channel, WorkItemId};
use switchboard::error::Error;
use switchboard::store::records::{
    AgentStateRecord, EventKind, Record, UnsentInstruction, WorkItemEvent, WorkItemRecord,
};
use switchboard::store::report::{IntervalRow, ReportInterval, ReportRange};
use switchboard::store::{self, Actor, Store};

/// Runs one suite function against every back-end.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                for backend in common::backends().await {
                    let store = store::connect(&backend.url).await.expect("the store opens");
                    suite::$name(store.as_ref()).await;
                    store.close().await;
                    eprintln!("{} passed on {}", stringify!($name), backend.name);
                }
            }
        )*
    };
}

conformance!(
    skills_round_trip,
    queues_round_trip_with_steps_and_limits,
    entry_points_and_agents_round_trip,
    references_must_exist,
    deletes_refuse_while_in_use,
    failed_writes_leave_nothing_behind,
    every_change_is_audited,
    work_item_lifecycle_is_recorded,
    a_failed_batch_writes_nothing,
    unsent_instructions_are_kept_until_sent,
    a_batch_leaves_what_its_records_one_at_a_time_leave,
    many_open_items_come_back_whole_and_in_order,
    every_submitted_interaction_is_read_once,
    interval_report_matches_the_hand_computed_fixture,
);

#[tokio::test]
async fn data_survives_reopening() {
    for backend in common::backends().await {
        let store = store::connect(&backend.url).await.expect("the store opens");
        seed(store.as_ref()).await;
        store.close().await;
        let reopened = store::connect(&backend.url)
            .await
            .expect("the store reopens");
        assert_eq!(
            reopened.get_queue(&"billing".into()).await.unwrap(),
            billing_queue(),
            "on {}",
            backend.name
        );
        assert_eq!(
            reopened.list_agents().await.unwrap(),
            vec![alice()],
            "on {}",
            backend.name
        );
        assert_eq!(
            reopened.list_skills().await.unwrap().len(),
            2,
            "on {}",
            backend.name
        );
        reopened.close().await;
    }
}

fn supervisor(at: i64) -> Actor {
    Actor {
        name: "alice".into(),
        at: Timestamp::from_millis(at),
    }
}

fn skill(name: &str) -> Skill {
    Skill {
        name: name.into(),
        description: format!("{name} skill"),
    }
}

fn billing_queue() -> Queue {
    let mut queue = Queue::new("billing".into());
    queue.description = "Billing questions".into();
    queue.strategy = SelectionStrategy::MostSkilled;
    queue.priority = 3;
    queue.priority_aging_secs = Some(60);
    queue.sl_thresholds.chat = 45;
    queue.sl_target = 0.9;
    queue.wrap_up_secs = 10;
    queue.steps = vec![
        RoutingStep {
            requirements: vec![
                SkillRequirement {
                    skill: "billing".into(),
                    min_level: 4,
                },
                SkillRequirement {
                    skill: "lang:fr".into(),
                    min_level: 2,
                },
            ],
            match_language: true,
            duration_secs: Some(30),
        },
        RoutingStep {
            requirements: vec![SkillRequirement {
                skill: "billing".into(),
                min_level: 2,
            }],
            match_language: false,
            duration_secs: Some(60),
        },
        RoutingStep {
            requirements: Vec::new(),
            match_language: false,
            duration_secs: None,
        },
    ];
    queue.limits.max_waiting = Some(50);
    queue.limits.when_full = Some(Disposition::Overflow {
        queue: "general".into(),
    });
    queue.limits.max_wait_secs = Some(900);
    queue.limits.when_max_wait = Some(Disposition::Disconnect {
        message: "please call back".into(),
    });
    queue.limits.when_no_agents = Some(Disposition::Voicemail);
    queue
}

fn alice() -> Agent {
    Agent {
        id: "alice".into(),
        display_name: "Alice".into(),
        uc_address: "sip:alice@contoso.example".into(),
        kind: AgentKind::Informal,
        skills: vec![("billing".into(), 5), ("lang:fr".into(), 3)],
        capacity: ChannelCapacity {
            voice: 1,
            chat: 4,
            video: 0,
        },
        chat_during_calls: true,
        queues: vec!["billing".into(), "general".into()],
    }
}

/// Creates the skills, queues and agent the suites build on.
async fn seed(store: &dyn Store) {
    let by = supervisor(1_000);
    for name in ["billing", "lang:fr"] {
        store.create_skill(&skill(name), &by).await.unwrap();
    }
    store
        .create_queue(&Queue::new("general".into()), &by)
        .await
        .unwrap();
    store.create_queue(&billing_queue(), &by).await.unwrap();
    store.create_agent(&alice(), &by).await.unwrap();
}

fn work_item(interaction: &str, arrived: i64) -> WorkItemRecord {
    WorkItemRecord {
        id: WorkItemId::new(),
        interaction_id: interaction.into(),
        segment: 0,
        channel: Channel::Chat,
        from_address: "sip:jane@consumer.example".into(),
        to_address: "sip:billing@contoso.example".into(),
        display_name: "Jane".into(),
        entry_point: Some("sip:billing@contoso.example".into()),
        language: Some("fr".into()),
        attributes: [(
            "page_url".to_string(),
            "https://contoso.example/pricing".to_string(),
        )]
        .into(),
        required_skills: vec![SkillRequirement {
            skill: "billing".into(),
            min_level: 2,
        }],
        priority: 1,
        is_transfer: false,
        queue: "billing".into(),
        arrived_at: Timestamp::from_millis(arrived),
        enqueued_at: Timestamp::from_millis(arrived),
    }
}

fn event(item: &WorkItemRecord, at: i64, kind: EventKind, agent: Option<&str>) -> Record {
    Record::Event(WorkItemEvent {
        work_item: item.id,
        at: Timestamp::from_millis(at),
        kind,
        queue: item.queue.clone(),
        agent: agent.map(Into::into),
        priority: None,
        detail: "{}".into(),
    })
}

mod suite {
    use super::*;

    /// The lifecycles the batch test writes: an item answered after a
    /// decline and completed, and one back to waiting, reprioritised, then
    /// moved to another queue (where it joins the line anew).
    fn lifecycles(done: &WorkItemRecord, waiting: &WorkItemRecord) -> Vec<Record> {
        let reprioritised = Record::Event(WorkItemEvent {
            priority: Some(7),
            ..match event(waiting, 4_000, EventKind::Reprioritised, None) {
                Record::Event(event) => event,
                _ => unreachable!("event() makes events"),
            }
        });
        let moved = Record::Event(WorkItemEvent {
            queue: "general".into(),
            ..match event(waiting, 4_500, EventKind::Moved, None) {
                Record::Event(event) => event,
                _ => unreachable!("event() makes events"),
            }
        });
        vec![
            Record::Created(done.clone()),
            Record::Created(waiting.clone()),
            event(done, 1_000, EventKind::Queued, None),
            event(waiting, 1_000, EventKind::Queued, None),
            event(done, 2_000, EventKind::Offered, Some("alice")),
            event(waiting, 2_000, EventKind::Offered, Some("bob")),
            event(done, 3_000, EventKind::OfferDeclined, Some("alice")),
            event(waiting, 3_000, EventKind::OfferTimedOut, Some("bob")),
            reprioritised,
            moved,
            event(done, 5_000, EventKind::Offered, Some("bob")),
            event(done, 6_000, EventKind::Answered, Some("bob")),
            event(done, 7_000, EventKind::Connected, Some("bob")),
            event(done, 8_000, EventKind::Ended, Some("bob")),
            event(done, 9_000, EventKind::Completed, Some("bob")),
            Record::AgentState(AgentStateRecord {
                agent: "bob".into(),
                at: Timestamp::from_millis(9_000),
                state: "ready".into(),
                reason: None,
            }),
        ]
    }

    /// A group commit writes many records in a few statements; what it
    /// leaves must be what the same records, appended one at a time, leave.
    pub async fn a_batch_leaves_what_its_records_one_at_a_time_leave(store: &dyn Store) {
        seed(store).await;
        let singles = (
            work_item("single-done", 1_000),
            work_item("single-waiting", 1_000),
        );
        for record in lifecycles(&singles.0, &singles.1) {
            store.append(&[record]).await.unwrap();
        }
        let batched = (
            work_item("batch-done", 1_000),
            work_item("batch-waiting", 1_000),
        );
        store
            .append(&lifecycles(&batched.0, &batched.1))
            .await
            .unwrap();
        let found = store
            .find_work_items(&[
                "single-done".into(),
                "batch-done".into(),
                "single-waiting".into(),
                "batch-waiting".into(),
                "never-submitted".into(),
            ])
            .await
            .unwrap();
        assert_eq!(found.len(), 4, "every submitted interaction is found, once");
        let by_interaction = |interaction: &str| {
            found
                .iter()
                .find(|stored| stored.item.interaction_id.as_str() == interaction)
                .expect("found")
                .clone()
        };
        for (single, batch) in [(&singles.0, &batched.0), (&singles.1, &batched.1)] {
            let one_at_a_time = by_interaction(single.interaction_id.as_str());
            let together = by_interaction(batch.interaction_id.as_str());
            assert_eq!(
                (
                    &together.state,
                    &together.agent,
                    together.answered_at,
                    together.ended_at
                ),
                (
                    &one_at_a_time.state,
                    &one_at_a_time.agent,
                    one_at_a_time.answered_at,
                    one_at_a_time.ended_at
                ),
                "{} and {} differ",
                single.interaction_id,
                batch.interaction_id
            );
            assert_eq!(together.item.priority, one_at_a_time.item.priority);
            assert_eq!(
                (&together.item.queue, together.item.enqueued_at),
                (&one_at_a_time.item.queue, one_at_a_time.item.enqueued_at)
            );
            let events = |id| async move {
                store
                    .work_item_events(id)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|event| (event.at, event.kind, event.agent))
                    .collect::<Vec<_>>()
            };
            assert_eq!(events(batch.id).await, events(single.id).await);
        }
        let done = by_interaction("batch-done");
        assert_eq!(
            (
                done.state.as_str(),
                done.agent.as_ref().map(|agent| agent.as_str())
            ),
            ("completed", Some("bob"))
        );
        assert_eq!(done.answered_at, Some(Timestamp::from_millis(6_000)));
        assert_eq!(done.ended_at, Some(Timestamp::from_millis(8_000)));
        let waiting = by_interaction("batch-waiting");
        assert_eq!(
            (waiting.state.as_str(), waiting.agent.clone()),
            ("waiting", None)
        );
        assert_eq!(waiting.item.priority, 7);
        assert_eq!(
            (waiting.item.queue.as_str(), waiting.item.enqueued_at),
            ("general", Timestamp::from_millis(4_500)),
            "a moved item stands in its new queue's line from when it moved"
        );
        assert_eq!(store.agent_states(&"bob".into()).await.unwrap().len(), 2);
        let mut open: Vec<String> = store
            .open_work_items()
            .await
            .unwrap()
            .into_iter()
            .map(|stored| stored.item.interaction_id.to_string())
            .collect();
        open.sort();
        assert_eq!(
            open,
            ["batch-waiting", "single-waiting"],
            "a completed item is no longer open, however it was written"
        );
    }

    /// More open items than one read of the store takes at a time (SQLite
    /// reads 10,000 at once), with ties in enqueue time, transfers among
    /// them, and some finished in between.
    pub async fn many_open_items_come_back_whole_and_in_order(store: &dyn Store) {
        seed(store).await;
        const ITEMS: i64 = 12_000;
        let mut expected = Vec::new();
        let mut records = Vec::new();
        for n in 0..ITEMS {
            let mut item = work_item(&format!("many-{n}"), 100_000 + n / 3);
            item.is_transfer = n % 2 == 1;
            item.segment = u32::from(item.is_transfer);
            records.push(Record::Created(item.clone()));
            records.push(event(
                &item,
                item.enqueued_at.millis(),
                EventKind::Queued,
                None,
            ));
            if n % 7 == 0 {
                records.push(event(&item, 200_000, EventKind::Abandoned, None));
            } else {
                expected.push(item);
            }
            if records.len() >= 5_000 {
                store.append(&records).await.unwrap();
                records.clear();
            }
        }
        store.append(&records).await.unwrap();
        expected.sort_by_key(|item| (item.enqueued_at, item.id.to_string()));

        let open = store.open_work_items().await.unwrap();
        assert_eq!(open.len(), expected.len(), "every open item, once");
        for (stored, item) in open.iter().zip(&expected) {
            assert_eq!(&stored.item, item, "in enqueue order, ties by id");
            assert_eq!(stored.state, "waiting");
        }
    }

    /// More interactions than one page of the read (10,000), some with
    /// transfers: each submitted interaction is read once.
    pub async fn every_submitted_interaction_is_read_once(store: &dyn Store) {
        seed(store).await;
        const INTERACTIONS: usize = 10_500;
        let mut records = Vec::new();
        for n in 0..INTERACTIONS {
            let item = work_item(&format!("ix-{n:05}"), 100_000);
            if n % 100 == 0 {
                let mut transfer = work_item(&format!("ix-{n:05}"), 100_001);
                transfer.segment = 1;
                transfer.is_transfer = true;
                records.push(Record::Created(transfer));
            }
            records.push(Record::Created(item));
        }
        for chunk in records.chunks(5_000) {
            store.append(chunk).await.unwrap();
        }
        let mut read = Vec::new();
        store
            .each_interaction(&mut |interaction| read.push(interaction.to_string()))
            .await
            .unwrap();
        read.sort();
        let expected: Vec<String> = (0..INTERACTIONS).map(|n| format!("ix-{n:05}")).collect();
        assert_eq!(read.len(), INTERACTIONS, "each interaction once");
        assert_eq!(read, expected);
    }

    pub async fn work_item_lifecycle_is_recorded(store: &dyn Store) {
        let done = work_item("call-1", 10_000);
        let waiting = work_item("call-2", 11_000);
        let talking = work_item("call-3", 12_000);
        let earlier = work_item("call-4", 9_000);
        store
            .append(&[
                Record::Created(done.clone()),
                event(&done, 10_000, EventKind::Queued, None),
                Record::Created(waiting.clone()),
                event(&waiting, 11_000, EventKind::Queued, None),
                event(&done, 12_000, EventKind::Offered, Some("alice")),
                Record::AgentState(AgentStateRecord {
                    agent: "alice".into(),
                    at: Timestamp::from_millis(12_000),
                    state: "reserved".into(),
                    reason: None,
                }),
            ])
            .await
            .unwrap();
        store
            .append(&[
                event(&done, 13_000, EventKind::Answered, Some("alice")),
                event(&done, 13_500, EventKind::Connected, Some("alice")),
                event(&done, 60_000, EventKind::Ended, Some("alice")),
                event(&done, 70_000, EventKind::Completed, Some("alice")),
                Record::Created(talking.clone()),
                event(&talking, 12_000, EventKind::Offered, Some("bob")),
                event(&talking, 12_500, EventKind::Answered, Some("bob")),
                Record::Created(earlier.clone()),
            ])
            .await
            .unwrap();

        let kinds: Vec<EventKind> = store
            .work_item_events(done.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                EventKind::Queued,
                EventKind::Offered,
                EventKind::Answered,
                EventKind::Connected,
                EventKind::Ended,
                EventKind::Completed
            ]
        );
        let found = store
            .find_work_item(&"call-1".into())
            .await
            .unwrap()
            .expect("submitted before");
        assert_eq!(found.item, done);
        assert_eq!(found.state, "completed");
        assert_eq!(found.answered_at, Some(Timestamp::from_millis(13_000)));
        assert_eq!(found.ended_at, Some(Timestamp::from_millis(60_000)));
        assert!(
            store
                .find_work_item(&"call-9".into())
                .await
                .unwrap()
                .is_none()
        );

        let open = store.open_work_items().await.unwrap();
        let ids: Vec<WorkItemId> = open.iter().map(|o| o.item.id).collect();
        assert_eq!(
            ids,
            [earlier.id, waiting.id, talking.id],
            "open items come back in enqueue order"
        );
        assert_eq!(open[1].item, waiting);
        assert_eq!(
            (open[1].state.as_str(), open[1].agent.clone()),
            ("waiting", None)
        );
        assert_eq!(
            (open[2].state.as_str(), open[2].agent.clone()),
            ("answered", Some("bob".into()))
        );
        let states = store.agent_states(&"alice".into()).await.unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].state, "reserved");
    }

    pub async fn a_failed_batch_writes_nothing(store: &dyn Store) {
        let item = work_item("call-1", 10_000);
        let stranger = work_item("call-2", 10_000);
        let failed = store
            .append(&[
                Record::Created(item.clone()),
                event(&stranger, 10_000, EventKind::Queued, None),
            ])
            .await;
        assert!(
            failed.is_err(),
            "an event for an unknown work item is refused"
        );
        assert!(
            store
                .find_work_item(&"call-1".into())
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.open_work_items().await.unwrap().is_empty());
        let duplicate = work_item("call-3", 10_000);
        store
            .append(&[Record::Created(duplicate.clone())])
            .await
            .unwrap();
        let again = WorkItemRecord {
            id: WorkItemId::new(),
            ..duplicate
        };
        assert!(
            store.append(&[Record::Created(again)]).await.is_err(),
            "a segment is stored once"
        );
        assert_eq!(store.open_work_items().await.unwrap().len(), 1);
    }

    /// Bridge instructions given while no bridge session was open stay in
    /// the store, the latest per work item, until a session receives them;
    /// in one batch, each item's last record is the one that counts.
    pub async fn unsent_instructions_are_kept_until_sent(store: &dyn Store) {
        let items: Vec<WorkItemRecord> = (0..3)
            .map(|n| work_item(&format!("call-{n}"), 1_000))
            .collect();
        let unsent = |item: &WorkItemRecord, at: i64, instruction: &str| {
            Record::Unsent(UnsentInstruction {
                work_item: item.id,
                at: Timestamp::from_millis(at),
                instruction: instruction.into(),
            })
        };
        let mut records: Vec<Record> = items.iter().cloned().map(Record::Created).collect();
        records.extend([
            unsent(&items[0], 2_000, r#"{"instruction":"overflow"}"#),
            unsent(&items[1], 3_000, r#"{"instruction":"overflow"}"#),
            unsent(&items[2], 4_000, r#"{"instruction":"overflow"}"#),
            Record::Sent(items[1].id),
        ]);
        store.append(&records).await.unwrap();
        store
            .append(&[
                unsent(&items[0], 5_000, r#"{"instruction":"disconnect"}"#),
                Record::Sent(items[2].id),
                unsent(&items[2], 6_000, r#"{"instruction":"disconnect"}"#),
            ])
            .await
            .unwrap();
        let kept = store.unsent_instructions().await.unwrap();
        let expected = vec![
            UnsentInstruction {
                work_item: items[0].id,
                at: Timestamp::from_millis(5_000),
                instruction: r#"{"instruction":"disconnect"}"#.into(),
            },
            UnsentInstruction {
                work_item: items[2].id,
                at: Timestamp::from_millis(6_000),
                instruction: r#"{"instruction":"disconnect"}"#.into(),
            },
        ];
        assert_eq!(kept, expected, "the latest per item, oldest first");
        store
            .append(&[Record::Sent(items[0].id), Record::Sent(items[1].id)])
            .await
            .unwrap();
        assert_eq!(store.unsent_instructions().await.unwrap(), expected[1..]);
        let stranger = work_item("never-stored", 1_000);
        assert!(
            store
                .append(&[unsent(&stranger, 7_000, "{}")])
                .await
                .is_err(),
            "an instruction is about a stored work item"
        );
    }

    pub async fn skills_round_trip(store: &dyn Store) {
        let by = supervisor(1_000);
        store.create_skill(&skill("billing"), &by).await.unwrap();
        store.create_skill(&skill("lang:fr"), &by).await.unwrap();
        assert_eq!(
            store.get_skill(&"billing".into()).await.unwrap(),
            skill("billing")
        );
        let names: Vec<String> = store
            .list_skills()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name.to_string())
            .collect();
        assert_eq!(names, ["billing", "lang:fr"]);
        let duplicate = store
            .create_skill(&skill("billing"), &by)
            .await
            .unwrap_err();
        assert_eq!(
            duplicate,
            Error::AlreadyExists {
                what: "skill",
                id: "billing".into()
            }
        );
        let renamed = Skill {
            name: "billing".into(),
            description: "invoices and refunds".into(),
        };
        store.update_skill(&renamed, &by).await.unwrap();
        assert_eq!(store.get_skill(&"billing".into()).await.unwrap(), renamed);
        store.delete_skill(&"billing".into(), &by).await.unwrap();
        assert_eq!(
            store.get_skill(&"billing".into()).await.unwrap_err(),
            Error::not_found("skill", "billing")
        );
        assert_eq!(
            store.update_skill(&renamed, &by).await.unwrap_err(),
            Error::not_found("skill", "billing")
        );
        assert_eq!(
            store
                .delete_skill(&"billing".into(), &by)
                .await
                .unwrap_err(),
            Error::not_found("skill", "billing")
        );
    }

    pub async fn queues_round_trip_with_steps_and_limits(store: &dyn Store) {
        seed(store).await;
        assert_eq!(
            store.get_queue(&"billing".into()).await.unwrap(),
            billing_queue()
        );
        let ids: Vec<String> = store
            .list_queues()
            .await
            .unwrap()
            .into_iter()
            .map(|q| q.id.to_string())
            .collect();
        assert_eq!(ids, ["billing", "general"]);
        let mut changed = billing_queue();
        changed.steps.remove(0);
        changed.strategy = SelectionStrategy::RoundRobin;
        changed.limits = Default::default();
        store
            .update_queue(&changed, &supervisor(2_000))
            .await
            .unwrap();
        assert_eq!(store.get_queue(&"billing".into()).await.unwrap(), changed);
        let missing = Queue::new("nowhere".into());
        assert_eq!(
            store
                .update_queue(&missing, &supervisor(2_000))
                .await
                .unwrap_err(),
            Error::not_found("queue", "nowhere")
        );
        let duplicate = store
            .create_queue(&Queue::new("general".into()), &supervisor(2_000))
            .await
            .unwrap_err();
        assert_eq!(
            duplicate,
            Error::AlreadyExists {
                what: "queue",
                id: "general".into()
            }
        );
    }

    pub async fn entry_points_and_agents_round_trip(store: &dyn Store) {
        seed(store).await;
        let by = supervisor(2_000);
        let entry = EntryPoint {
            address: "sip:billing@contoso.example".into(),
            queue: "billing".into(),
            description: "web".into(),
        };
        store.create_entry_point(&entry, &by).await.unwrap();
        assert_eq!(store.get_entry_point(&entry.address).await.unwrap(), entry);
        assert_eq!(
            store.create_entry_point(&entry, &by).await.unwrap_err(),
            Error::AlreadyExists {
                what: "entry point",
                id: "sip:billing@contoso.example".into()
            }
        );
        let moved = EntryPoint {
            queue: "general".into(),
            ..entry.clone()
        };
        store.update_entry_point(&moved, &by).await.unwrap();
        assert_eq!(
            store.list_entry_points().await.unwrap(),
            vec![moved.clone()]
        );

        assert_eq!(store.get_agent(&"alice".into()).await.unwrap(), alice());
        let mut changed = alice();
        changed.skills = vec![("lang:fr".into(), 5)];
        changed.queues = vec!["general".into()];
        changed.kind = AgentKind::Formal;
        store.update_agent(&changed, &by).await.unwrap();
        assert_eq!(store.list_agents().await.unwrap(), vec![changed]);
        store.delete_agent(&"alice".into(), &by).await.unwrap();
        assert!(store.list_agents().await.unwrap().is_empty());
        store.delete_entry_point(&moved.address, &by).await.unwrap();
        assert!(store.list_entry_points().await.unwrap().is_empty());
    }

    pub async fn references_must_exist(store: &dyn Store) {
        seed(store).await;
        let by = supervisor(2_000);
        let mut queue = Queue::new("vip".into());
        queue.steps[0].requirements.push(SkillRequirement {
            skill: "golf".into(),
            min_level: 1,
        });
        assert_eq!(
            store.create_queue(&queue, &by).await.unwrap_err(),
            Error::invalid("steps[0].requirements[0].skill", "unknown skill golf")
        );
        let mut queue = Queue::new("vip".into());
        queue.limits.when_max_wait = Some(Disposition::Overflow {
            queue: "nowhere".into(),
        });
        assert_eq!(
            store.create_queue(&queue, &by).await.unwrap_err(),
            Error::invalid("limits.when_max_wait.queue", "unknown queue nowhere")
        );
        let mut agent = alice();
        agent.id = "bob".into();
        agent.queues.push("nowhere".into());
        assert_eq!(
            store.create_agent(&agent, &by).await.unwrap_err(),
            Error::invalid("queues[2]", "unknown queue nowhere")
        );
        let entry = EntryPoint {
            address: "sip:x@contoso.example".into(),
            queue: "nowhere".into(),
            description: String::new(),
        };
        assert_eq!(
            store.create_entry_point(&entry, &by).await.unwrap_err(),
            Error::invalid("queue", "unknown queue nowhere")
        );
    }

    pub async fn deletes_refuse_while_in_use(store: &dyn Store) {
        seed(store).await;
        let by = supervisor(2_000);
        let err = store
            .delete_skill(&"billing".into(), &by)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            Error::FailedPrecondition(
                "skill billing is still required by a routing step of queue billing".into()
            )
        );
        let mut queue = billing_queue();
        queue.steps = Queue::new("billing".into()).steps;
        store.update_queue(&queue, &by).await.unwrap();
        let err = store
            .delete_skill(&"billing".into(), &by)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            Error::FailedPrecondition("skill billing is still held by agent alice".into())
        );
        let err = store
            .delete_queue(&"general".into(), &by)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            Error::FailedPrecondition(
                "queue general is still the overflow target of queue billing".into()
            )
        );
        let entry = EntryPoint {
            address: "sip:billing@contoso.example".into(),
            queue: "billing".into(),
            description: String::new(),
        };
        store.create_entry_point(&entry, &by).await.unwrap();
        let err = store
            .delete_queue(&"billing".into(), &by)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            Error::FailedPrecondition(
                "queue billing still serves entry point sip:billing@contoso.example".into()
            )
        );
        store.delete_entry_point(&entry.address, &by).await.unwrap();
        store.delete_queue(&"billing".into(), &by).await.unwrap();
        assert_eq!(
            store.get_agent(&"alice".into()).await.unwrap().queues,
            vec!["general".into()]
        );
    }

    pub async fn failed_writes_leave_nothing_behind(store: &dyn Store) {
        seed(store).await;
        let by = supervisor(2_000);
        let mut queue = billing_queue();
        queue.id = "half".into();
        queue.steps[1].requirements[0].skill = "golf".into();
        store.create_queue(&queue, &by).await.unwrap_err();
        assert_eq!(
            store.get_queue(&"half".into()).await.unwrap_err(),
            Error::not_found("queue", "half")
        );
        let mut broken = billing_queue();
        broken.steps[2].requirements.push(SkillRequirement {
            skill: "golf".into(),
            min_level: 1,
        });
        store.update_queue(&broken, &by).await.unwrap_err();
        assert_eq!(
            store.get_queue(&"billing".into()).await.unwrap(),
            billing_queue()
        );
        let mut agent = alice();
        agent.skills.push(("golf".into(), 2));
        store.update_agent(&agent, &by).await.unwrap_err();
        assert_eq!(store.get_agent(&"alice".into()).await.unwrap(), alice());
        let audited = store.audit_log(0, 100).await.unwrap();
        assert!(
            audited.iter().all(|entry| entry.target != "half"),
            "a failed write left an audit row"
        );
    }

    pub async fn every_change_is_audited(store: &dyn Store) {
        seed(store).await;
        let by = Actor {
            name: "bob".into(),
            at: Timestamp::from_millis(5_000),
        };
        store.delete_agent(&"alice".into(), &by).await.unwrap();
        let id = store
            .record_action(&by, "force_agent_state", "carol", r#"{"state":"ready"}"#)
            .await
            .unwrap();
        let log = store.audit_log(0, 100).await.unwrap();
        let actions: Vec<(&str, &str)> = log
            .iter()
            .map(|e| (e.action.as_str(), e.target.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("create_skill", "billing"),
                ("create_skill", "lang:fr"),
                ("create_queue", "general"),
                ("create_queue", "billing"),
                ("create_agent", "alice"),
                ("delete_agent", "alice"),
                ("force_agent_state", "carol"),
            ]
        );
        let last = log.last().unwrap();
        assert_eq!(
            (last.id, last.actor.as_str(), last.at),
            (id, "bob", Timestamp::from_millis(5_000))
        );
        assert_eq!(
            store.audit_log(log[4].id, 1).await.unwrap()[0].action,
            "delete_agent"
        );
    }

    /// The fixture's figures below were worked out by hand from the
    /// timeline in `report_fixture`; each comment shows the sum.
    pub async fn interval_report_matches_the_hand_computed_fixture(store: &dyn Store) {
        report_fixture(store).await;
        let range = ReportRange {
            from: at(0),
            to: at(1_800),
            interval: ReportInterval::Minutes15,
            queues: Vec::new(),
        };
        let later = at(5_000);
        let rows = store.interval_report(&range, later).await.unwrap();
        let keys: Vec<(i64, &str, Channel)> = rows
            .iter()
            .map(|row| {
                (
                    (row.start.millis() - BASE) / 1000,
                    row.queue.as_str(),
                    row.channel,
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                (0, "billing", Channel::Voice),
                (0, "general", Channel::Voice),
                (0, "general", Channel::Chat),
                (900, "general", Channel::Voice),
            ],
            "rows are ordered by interval, queue and channel; the item before the range is left out"
        );

        // Billing: the item that overflowed to general counts there, and
        // here only as overflowed out. Alice is open 900 s, busy 230 s.
        let billing = &rows[0];
        assert_eq!((billing.offered, billing.overflowed_out), (0, 1));
        assert_eq!(billing.service_level(), None);
        assert_eq!(billing.asa(), Duration::ZERO);
        assert_close(billing.occupancy(), 230.0 / 900.0);

        let voice = &rows[1];
        assert_eq!(
            counts(voice),
            // offered a–g; answered a, b, f, g; within a (10 s), f (5 s);
            // abandoned c (3 s, short, within), d (35 s); removed within a, c, f.
            [7, 4, 2, 2, 1, 1, 3, 0, 1]
        );
        assert_close(voice.service_level(), 2.0 / (4.0 + 2.0 - 1.0));
        assert_close(voice.service_level_answered(), 2.0 / 4.0);
        assert_close(voice.service_level_sl2(), (2.0 + 1.0) / (4.0 + 2.0));
        assert_close(voice.service_level_removed(), 3.0 / 7.0);
        // (10 + 30 + 5 + 50) / 4 s; (130 + 110 + 105 + 50) / 4 s; max of the
        // waits of items that left the queue (e still waits).
        assert_eq!(voice.asa(), Duration::from_millis(23_750));
        assert_eq!(voice.aht(), Duration::from_millis(98_750));
        assert_eq!(voice.max_wait, Duration::from_secs(50));
        // Alice 230 of 900 s, Bob 145 of 250 s.
        assert_close(voice.occupancy(), (230.0 + 145.0) / (900.0 + 250.0));

        let chat = &rows[2];
        assert_eq!(counts(chat), [1, 1, 1, 0, 0, 0, 1, 0, 0]);
        assert_close(chat.service_level(), 1.0);
        assert_eq!(chat.asa(), Duration::from_secs(55));
        assert_eq!(chat.aht(), Duration::from_secs(145));

        // Second interval: i rejected at once, j answered after 1 s and still
        // talking. Alice busy 100 s, not ready 200 s, ready 600 s; Bob gone.
        let second = &rows[3];
        assert_eq!(counts(second), [2, 1, 1, 0, 0, 0, 2, 0, 0]);
        assert_close(second.service_level(), 1.0);
        assert_close(second.service_level_removed(), 1.0);
        assert_eq!(second.asa(), Duration::from_secs(1));
        assert_eq!(second.aht(), Duration::ZERO);
        assert_eq!(second.max_wait, Duration::from_secs(1));
        assert_close(second.occupancy(), 100.0 / 700.0);

        // Agents' current states count only up to now.
        let early = store.interval_report(&range, at(1_000)).await.unwrap();
        assert_close(early[3].occupancy(), 1.0);

        let only_billing = ReportRange {
            queues: vec!["billing".into()],
            ..range.clone()
        };
        let rows = store.interval_report(&only_billing, later).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].queue.as_str(), "billing");

        let daily = ReportRange {
            interval: ReportInterval::Day,
            ..range
        };
        let rows = store.interval_report(&daily, later).await.unwrap();
        let voice = rows
            .iter()
            .find(|row| row.queue.as_str() == "general" && row.channel == Channel::Voice)
            .expect("a daily general voice row");
        assert_eq!(
            voice.start.millis(),
            BASE - 9 * 3_600_000,
            "days start at midnight UTC"
        );
        assert_eq!((voice.offered, voice.answered), (9, 5));
    }
}

/// 2026-11-30T09:00:00Z, the start of the report fixture.
const BASE: i64 = 1_796_029_200_000;

/// `secs` seconds after [`BASE`].
fn at(secs: i64) -> Timestamp {
    Timestamp::from_millis(BASE + secs * 1000)
}

/// A row's counts: offered, answered, answered within T, abandoned,
/// abandoned within T, short abandons, removed within T, overflowed out,
/// transfers.
fn counts(row: &IntervalRow) -> [u64; 9] {
    [
        row.offered,
        row.answered,
        row.answered_within,
        row.abandoned,
        row.abandoned_within,
        row.short_abandons,
        row.removed_within,
        row.overflowed_out,
        row.transfers,
    ]
}

fn assert_close(actual: Option<f64>, expected: f64) {
    let actual = actual.expect("the ratio is defined");
    assert!(
        (actual - expected).abs() < 1e-9,
        "got {actual}, expected {expected}"
    );
}

/// One fixture item: its name, arrival (seconds after [`BASE`]), channel,
/// and its events after the first `queued` one.
type Timeline = (&'static str, i64, Channel, &'static [(i64, EventKind)]);

/// Writes the report fixture: queues general (voice T = 20 s, chat 60 s)
/// and billing, agents Alice (both queues) and Bob (general), and this
/// timeline, in seconds after [`BASE`]:
///
/// | item | arrives | then |
/// |---|---|---|
/// | a | 0 | answered 10, ended 130, wrap-up done 140 |
/// | b | 60 | answered 90, ended and done 200 |
/// | c | 120 | abandoned 123 |
/// | d | 180 | abandoned 215 |
/// | e | 240 | still waiting |
/// | f (transfer) | 300 | answered 305, ended 400, done 410 |
/// | g | 0 in billing | overflowed to general 30, answered 50, done 100 |
/// | h (chat) | 400 | answered 455, done 600 |
/// | i | 1000 | rejected at once |
/// | j | 1100 | answered 1101, still talking |
/// | before | −100 | answered −90, outside the range |
async fn report_fixture(store: &dyn Store) {
    seed(store).await;
    let bob = Agent {
        id: "bob".into(),
        skills: Vec::new(),
        queues: vec!["general".into()],
        ..alice()
    };
    store.create_agent(&bob, &supervisor(1_000)).await.unwrap();

    use EventKind::{Abandoned, Answered, Completed, Ended, Overflowed, Rejected};
    let timelines: [Timeline; 11] = [
        (
            "a",
            0,
            Channel::Voice,
            &[(10, Answered), (130, Ended), (140, Completed)],
        ),
        (
            "b",
            60,
            Channel::Voice,
            &[(90, Answered), (200, Ended), (200, Completed)],
        ),
        ("c", 120, Channel::Voice, &[(123, Abandoned)]),
        ("d", 180, Channel::Voice, &[(215, Abandoned)]),
        ("e", 240, Channel::Voice, &[]),
        (
            "f",
            300,
            Channel::Voice,
            &[(305, Answered), (400, Ended), (410, Completed)],
        ),
        (
            "g",
            0,
            Channel::Voice,
            &[
                (30, Overflowed),
                (50, Answered),
                (100, Ended),
                (100, Completed),
            ],
        ),
        (
            "h",
            400,
            Channel::Chat,
            &[(455, Answered), (600, Ended), (600, Completed)],
        ),
        ("i", 1_000, Channel::Voice, &[(1_000, Rejected)]),
        ("j", 1_100, Channel::Voice, &[(1_101, Answered)]),
        ("before", -100, Channel::Voice, &[(-90, Answered)]),
    ];
    let mut records = Vec::new();
    for (name, arrives, channel, events) in timelines {
        let mut item = work_item(&format!("report-{name}"), at(arrives).millis());
        item.channel = channel;
        item.is_transfer = name == "f";
        item.queue = if name == "g" { "billing" } else { "general" }.into();
        records.push(Record::Created(item.clone()));
        records.push(event(&item, at(arrives).millis(), EventKind::Queued, None));
        for (secs, kind) in events {
            if *kind == Overflowed {
                item.queue = "general".into();
            }
            let agent = matches!(kind, Answered | Ended | Completed).then_some("alice");
            records.push(event(&item, at(*secs).millis(), *kind, agent));
        }
    }
    let states = [
        ("alice", -600, "ready"),
        ("alice", 10, "busy"),
        ("alice", 130, "wrap_up"),
        ("alice", 140, "ready"),
        ("alice", 800, "busy"),
        ("alice", 1_000, "not_ready"),
        ("alice", 1_200, "ready"),
        ("bob", 450, "ready"),
        ("bob", 455, "busy"),
        ("bob", 600, "ready"),
        ("bob", 700, "logged_out"),
    ];
    for (agent, secs, state) in states {
        records.push(Record::AgentState(AgentStateRecord {
            agent: agent.into(),
            at: at(secs),
            state: state.into(),
            reason: (state == "not_ready").then(|| "lunch".to_string()),
        }));
    }
    store.append(&records).await.unwrap();
}
