//! Configuration through SupervisorService, end to end: the real server
//! in-process on 127.0.0.1:0, a generated tonic client, every CRUD call with
//! its error cases, on every back-end, and a restart in between.

mod common;

use common::TestServer;
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::supervisor_service_client::SupervisorServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};

type Client = SupervisorServiceClient<Channel>;

fn skill(name: &str) -> pb::Skill {
    pb::Skill {
        name: name.into(),
        description: format!("{name} skill"),
    }
}

fn requirement(skill: &str, min_level: i32) -> pb::SkillRequirement {
    pb::SkillRequirement {
        skill: skill.into(),
        min_level,
    }
}

fn sales_queue() -> pb::Queue {
    pb::Queue {
        id: "sales".into(),
        description: "Sales".into(),
        steps: vec![
            pb::RoutingStep {
                requirements: vec![requirement("billing", 4)],
                match_language: true,
                duration_secs: Some(30),
            },
            pb::RoutingStep {
                requirements: vec![requirement("billing", 2)],
                match_language: false,
                duration_secs: None,
            },
        ],
        strategy: pb::SelectionStrategy::MostSkilled as i32,
        sl_thresholds: Some(pb::ChannelThresholds {
            voice: 20,
            chat: 60,
            video: 30,
        }),
        wrap_up_secs: 15,
        ..Default::default()
    }
}

fn agent(id: &str) -> pb::Agent {
    pb::Agent {
        id: id.into(),
        display_name: id.to_uppercase(),
        uc_address: format!("sip:{id}@contoso.example"),
        kind: pb::AgentKind::Formal as i32,
        skills: vec![pb::AgentSkill {
            skill: "billing".into(),
            level: 4,
        }],
        capacity: Some(pb::ChannelCapacity {
            voice: 1,
            chat: 3,
            video: 1,
        }),
        chat_during_calls: false,
        queues: vec!["sales".into()],
    }
}

fn entry_point() -> pb::EntryPoint {
    pb::EntryPoint {
        address: "sip:sales@contoso.example".into(),
        queue: "sales".into(),
        description: "web".into(),
    }
}

/// Asserts a call failed with `code` and a message containing `needle`.
fn assert_status<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, Status>,
    code: Code,
    needle: &str,
) {
    let status = result.expect_err("the call must fail");
    assert_eq!(status.code(), code, "status: {status:?}");
    assert!(
        status.message().contains(needle),
        "message {:?} lacks {needle:?}",
        status.message()
    );
}

async fn create_skills(client: &mut Client) {
    for name in ["billing", "lang:fr"] {
        let created = client
            .create_skill(pb::CreateSkillRequest {
                skill: Some(skill(name)),
            })
            .await
            .unwrap();
        assert_eq!(created.into_inner(), skill(name));
    }
}

#[tokio::test]
async fn skills_crud_and_errors() {
    for backend in common::backends().await {
        let server = TestServer::start(&backend.url).await;
        let mut client = server.supervisor().await;
        create_skills(&mut client).await;
        assert_status(
            client
                .create_skill(pb::CreateSkillRequest {
                    skill: Some(skill("billing")),
                })
                .await,
            Code::AlreadyExists,
            "skill billing already exists",
        );
        assert_status(
            client
                .create_skill(pb::CreateSkillRequest {
                    skill: Some(skill("")),
                })
                .await,
            Code::InvalidArgument,
            "name: must not be empty",
        );
        assert_status(
            client
                .create_skill(pb::CreateSkillRequest { skill: None })
                .await,
            Code::InvalidArgument,
            "skill: is required",
        );
        let got = client
            .get_skill(pb::GetSkillRequest {
                name: "billing".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got, skill("billing"));
        let listed = client
            .list_skills(pb::ListSkillsRequest {})
            .await
            .unwrap()
            .into_inner()
            .skills;
        assert_eq!(listed, vec![skill("billing"), skill("lang:fr")]);
        let changed = pb::Skill {
            name: "billing".into(),
            description: "refunds".into(),
        };
        client
            .update_skill(pb::UpdateSkillRequest {
                skill: Some(changed.clone()),
            })
            .await
            .unwrap();
        assert_eq!(
            client
                .get_skill(pb::GetSkillRequest {
                    name: "billing".into()
                })
                .await
                .unwrap()
                .into_inner(),
            changed
        );
        assert_status(
            client
                .update_skill(pb::UpdateSkillRequest {
                    skill: Some(skill("golf")),
                })
                .await,
            Code::NotFound,
            "skill golf not found",
        );
        assert_status(
            client
                .get_skill(pb::GetSkillRequest {
                    name: "golf".into(),
                })
                .await,
            Code::NotFound,
            "skill golf not found",
        );
        client
            .delete_skill(pb::DeleteSkillRequest {
                name: "lang:fr".into(),
            })
            .await
            .unwrap();
        assert_status(
            client
                .delete_skill(pb::DeleteSkillRequest {
                    name: "lang:fr".into(),
                })
                .await,
            Code::NotFound,
            "skill lang:fr not found",
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn queues_crud_and_errors() {
    for backend in common::backends().await {
        let server = TestServer::start(&backend.url).await;
        let mut client = server.supervisor().await;
        create_skills(&mut client).await;
        let created = client
            .create_queue(pb::CreateQueueRequest {
                queue: Some(sales_queue()),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            created.offer_timeout_secs,
            Some(15),
            "absent options get their documented defaults"
        );
        assert_eq!(created.max_no_answer, Some(3));
        assert_eq!(
            client
                .get_queue(pb::GetQueueRequest { id: "sales".into() })
                .await
                .unwrap()
                .into_inner(),
            created
        );
        assert_status(
            client
                .create_queue(pb::CreateQueueRequest {
                    queue: Some(sales_queue()),
                })
                .await,
            Code::AlreadyExists,
            "queue sales already exists",
        );

        let mut bad = sales_queue();
        bad.id = "bad".into();
        bad.steps[1].requirements[0].skill = "golf".into();
        assert_status(
            client
                .create_queue(pb::CreateQueueRequest {
                    queue: Some(bad.clone()),
                })
                .await,
            Code::InvalidArgument,
            "steps[1].requirements[0].skill: unknown skill golf",
        );
        bad.steps[1].requirements[0] = requirement("billing", 0);
        assert_status(
            client
                .create_queue(pb::CreateQueueRequest {
                    queue: Some(bad.clone()),
                })
                .await,
            Code::InvalidArgument,
            "steps[1].requirements[0].min_level: proficiency must be between 1 and 5, got 0",
        );
        bad.steps[1].requirements[0] = requirement("billing", 6);
        assert_status(
            client
                .create_queue(pb::CreateQueueRequest {
                    queue: Some(bad.clone()),
                })
                .await,
            Code::InvalidArgument,
            "got 6",
        );
        bad.steps[1].requirements[0] = requirement("billing", 2);
        bad.sl_thresholds = Some(pb::ChannelThresholds {
            voice: -5,
            chat: 60,
            video: 20,
        });
        assert_status(
            client
                .create_queue(pb::CreateQueueRequest {
                    queue: Some(bad.clone()),
                })
                .await,
            Code::InvalidArgument,
            "sl_thresholds.voice: must not be negative",
        );
        bad.sl_thresholds = None;
        bad.id = String::new();
        assert_status(
            client
                .create_queue(pb::CreateQueueRequest {
                    queue: Some(bad.clone()),
                })
                .await,
            Code::InvalidArgument,
            "id: must not be empty",
        );
        bad.id = "bad".into();
        bad.steps[0].duration_secs = None;
        assert_status(
            client
                .create_queue(pb::CreateQueueRequest { queue: Some(bad) })
                .await,
            Code::InvalidArgument,
            "steps[0].duration_secs: only the last step may last for ever",
        );
        assert_status(
            client
                .get_queue(pb::GetQueueRequest { id: "bad".into() })
                .await,
            Code::NotFound,
            "queue bad not found",
        );

        let mut changed = created.clone();
        changed.steps.remove(0);
        changed.priority = 7;
        let updated = client
            .update_queue(pb::UpdateQueueRequest {
                queue: Some(changed.clone()),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(updated, changed);
        let listed = client
            .list_queues(pb::ListQueuesRequest {})
            .await
            .unwrap()
            .into_inner()
            .queues;
        assert_eq!(listed, vec![changed]);
        let mut missing = sales_queue();
        missing.id = "nowhere".into();
        assert_status(
            client
                .update_queue(pb::UpdateQueueRequest {
                    queue: Some(missing),
                })
                .await,
            Code::NotFound,
            "queue nowhere not found",
        );

        assert_status(
            client
                .delete_skill(pb::DeleteSkillRequest {
                    name: "billing".into(),
                })
                .await,
            Code::FailedPrecondition,
            "skill billing is still required by a routing step of queue sales",
        );
        client
            .delete_queue(pb::DeleteQueueRequest { id: "sales".into() })
            .await
            .unwrap();
        assert_status(
            client
                .delete_queue(pb::DeleteQueueRequest { id: "sales".into() })
                .await,
            Code::NotFound,
            "queue sales not found",
        );
        client
            .delete_skill(pb::DeleteSkillRequest {
                name: "billing".into(),
            })
            .await
            .unwrap();
        server.stop().await;
    }
}

#[tokio::test]
async fn entry_points_crud_and_errors() {
    for backend in common::backends().await {
        let server = TestServer::start(&backend.url).await;
        let mut client = server.supervisor().await;
        create_skills(&mut client).await;
        client
            .create_queue(pb::CreateQueueRequest {
                queue: Some(sales_queue()),
            })
            .await
            .unwrap();
        let created = client
            .create_entry_point(pb::CreateEntryPointRequest {
                entry_point: Some(entry_point()),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(created, entry_point());
        assert_status(
            client
                .create_entry_point(pb::CreateEntryPointRequest {
                    entry_point: Some(entry_point()),
                })
                .await,
            Code::AlreadyExists,
            "entry point sip:sales@contoso.example already exists",
        );
        let malformed = pb::EntryPoint {
            address: "sales".into(),
            ..entry_point()
        };
        assert_status(
            client
                .create_entry_point(pb::CreateEntryPointRequest {
                    entry_point: Some(malformed),
                })
                .await,
            Code::InvalidArgument,
            "address: must be a sip:user@host",
        );
        let unknown_queue = pb::EntryPoint {
            address: "sip:x@contoso.example".into(),
            queue: "nowhere".into(),
            description: String::new(),
        };
        assert_status(
            client
                .create_entry_point(pb::CreateEntryPointRequest {
                    entry_point: Some(unknown_queue),
                })
                .await,
            Code::InvalidArgument,
            "queue: unknown queue nowhere",
        );
        assert_status(
            client
                .delete_queue(pb::DeleteQueueRequest { id: "sales".into() })
                .await,
            Code::FailedPrecondition,
            "queue sales still serves entry point sip:sales@contoso.example",
        );
        let changed = pb::EntryPoint {
            description: "click to call".into(),
            ..entry_point()
        };
        client
            .update_entry_point(pb::UpdateEntryPointRequest {
                entry_point: Some(changed.clone()),
            })
            .await
            .unwrap();
        let got = client
            .get_entry_point(pb::GetEntryPointRequest {
                address: entry_point().address,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got, changed);
        let listed = client
            .list_entry_points(pb::ListEntryPointsRequest {})
            .await
            .unwrap()
            .into_inner()
            .entry_points;
        assert_eq!(listed, vec![changed]);
        let other = pb::EntryPoint {
            address: "sip:other@contoso.example".into(),
            ..entry_point()
        };
        assert_status(
            client
                .update_entry_point(pb::UpdateEntryPointRequest {
                    entry_point: Some(other),
                })
                .await,
            Code::NotFound,
            "entry point sip:other@contoso.example not found",
        );
        client
            .delete_entry_point(pb::DeleteEntryPointRequest {
                address: entry_point().address,
            })
            .await
            .unwrap();
        assert_status(
            client
                .get_entry_point(pb::GetEntryPointRequest {
                    address: entry_point().address,
                })
                .await,
            Code::NotFound,
            "not found",
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn agents_crud_and_errors() {
    for backend in common::backends().await {
        let server = TestServer::start(&backend.url).await;
        let mut client = server.supervisor().await;
        create_skills(&mut client).await;
        client
            .create_queue(pb::CreateQueueRequest {
                queue: Some(sales_queue()),
            })
            .await
            .unwrap();
        let created = client
            .create_agent(pb::CreateAgentRequest {
                agent: Some(agent("alice")),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(created, agent("alice"));
        assert_status(
            client
                .create_agent(pb::CreateAgentRequest {
                    agent: Some(agent("alice")),
                })
                .await,
            Code::AlreadyExists,
            "agent alice already exists",
        );
        let mut bad = agent("bob");
        bad.skills[0].level = 6;
        assert_status(
            client
                .create_agent(pb::CreateAgentRequest {
                    agent: Some(bad.clone()),
                })
                .await,
            Code::InvalidArgument,
            "skills[0].level: proficiency must be between 1 and 5, got 6",
        );
        bad.skills[0].level = 0;
        assert_status(
            client
                .create_agent(pb::CreateAgentRequest {
                    agent: Some(bad.clone()),
                })
                .await,
            Code::InvalidArgument,
            "skills[0].level",
        );
        bad.skills[0] = pb::AgentSkill {
            skill: "golf".into(),
            level: 3,
        };
        assert_status(
            client
                .create_agent(pb::CreateAgentRequest {
                    agent: Some(bad.clone()),
                })
                .await,
            Code::InvalidArgument,
            "skills[0].skill: unknown skill golf",
        );
        let mut bad = agent("bob");
        bad.uc_address = "bob".into();
        assert_status(
            client
                .create_agent(pb::CreateAgentRequest { agent: Some(bad) })
                .await,
            Code::InvalidArgument,
            "uc_address",
        );
        let mut bad = agent("bob");
        bad.capacity = Some(pb::ChannelCapacity {
            voice: -1,
            chat: 3,
            video: 1,
        });
        assert_status(
            client
                .create_agent(pb::CreateAgentRequest { agent: Some(bad) })
                .await,
            Code::InvalidArgument,
            "capacity.voice: must not be negative",
        );
        assert_status(
            client
                .get_agent(pb::GetAgentRequest { id: "bob".into() })
                .await,
            Code::NotFound,
            "agent bob not found",
        );

        let mut changed = agent("alice");
        changed.skills.push(pb::AgentSkill {
            skill: "lang:fr".into(),
            level: 5,
        });
        changed.kind = pb::AgentKind::Informal as i32;
        client
            .update_agent(pb::UpdateAgentRequest {
                agent: Some(changed.clone()),
            })
            .await
            .unwrap();
        assert_eq!(
            client
                .get_agent(pb::GetAgentRequest { id: "alice".into() })
                .await
                .unwrap()
                .into_inner(),
            changed
        );
        assert_eq!(
            client
                .list_agents(pb::ListAgentsRequest {})
                .await
                .unwrap()
                .into_inner()
                .agents,
            vec![changed]
        );
        assert_status(
            client
                .update_agent(pb::UpdateAgentRequest {
                    agent: Some(agent("bob")),
                })
                .await,
            Code::NotFound,
            "agent bob not found",
        );
        assert_status(
            client
                .delete_skill(pb::DeleteSkillRequest {
                    name: "lang:fr".into(),
                })
                .await,
            Code::FailedPrecondition,
            "skill lang:fr is still held by agent alice",
        );
        client
            .delete_agent(pb::DeleteAgentRequest { id: "alice".into() })
            .await
            .unwrap();
        assert_status(
            client
                .delete_agent(pb::DeleteAgentRequest { id: "alice".into() })
                .await,
            Code::NotFound,
            "agent alice not found",
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn configuration_survives_a_restart() {
    for backend in common::backends().await {
        let server = TestServer::start(&backend.url).await;
        let mut client = server.supervisor().await;
        create_skills(&mut client).await;
        let queue = client
            .create_queue(pb::CreateQueueRequest {
                queue: Some(sales_queue()),
            })
            .await
            .unwrap()
            .into_inner();
        client
            .create_entry_point(pb::CreateEntryPointRequest {
                entry_point: Some(entry_point()),
            })
            .await
            .unwrap();
        client
            .create_agent(pb::CreateAgentRequest {
                agent: Some(agent("alice")),
            })
            .await
            .unwrap();
        server.stop().await;

        let restarted = TestServer::start(&backend.url).await;
        let mut client = restarted.supervisor().await;
        assert_eq!(
            client
                .list_skills(pb::ListSkillsRequest {})
                .await
                .unwrap()
                .into_inner()
                .skills
                .len(),
            2,
            "on {}",
            backend.name
        );
        assert_eq!(
            client
                .get_queue(pb::GetQueueRequest { id: "sales".into() })
                .await
                .unwrap()
                .into_inner(),
            queue
        );
        assert_eq!(
            client
                .get_entry_point(pb::GetEntryPointRequest {
                    address: entry_point().address
                })
                .await
                .unwrap()
                .into_inner(),
            entry_point()
        );
        assert_eq!(
            client
                .get_agent(pb::GetAgentRequest { id: "alice".into() })
                .await
                .unwrap()
                .into_inner(),
            agent("alice")
        );
        restarted.stop().await;
    }
}

#[tokio::test]
async fn the_actor_header_reaches_the_audit_log() {
    let backend = common::sqlite();
    let server = TestServer::start(&backend.url).await;
    let mut client = server.supervisor().await;
    let mut request = tonic::Request::new(pb::CreateSkillRequest {
        skill: Some(skill("billing")),
    });
    request
        .metadata_mut()
        .insert("x-switchboard-actor", "carol".parse().unwrap());
    client.create_skill(request).await.unwrap();
    client
        .create_skill(pb::CreateSkillRequest {
            skill: Some(skill("lang:fr")),
        })
        .await
        .unwrap();
    server.stop().await;
    let store = switchboard::store::connect(&backend.url).await.unwrap();
    let log = store.audit_log(0, 10).await.unwrap();
    assert_eq!(log[0].actor, "carol");
    assert!(
        log[1].actor.starts_with("peer:127.0.0.1:"),
        "without the header the peer is recorded: {}",
        log[1].actor
    );
}
