//! One conformance suite for every store back-end: each test runs against a
//! fresh SQLite file and, when `SWITCHBOARD_TEST_POSTGRES_URL` is set, a fresh
//! PostgreSQL schema.

mod common;

use switchboard::domain::{
    Agent, AgentKind, ChannelCapacity, Disposition, EntryPoint, Queue, RoutingStep,
    SelectionStrategy, Skill, SkillRequirement, Timestamp,
};
use switchboard::domain::{Channel, WorkItemId};
use switchboard::error::Error;
use switchboard::store::records::{
    AgentStateRecord, EventKind, Record, WorkItemEvent, WorkItemRecord,
};
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
}
