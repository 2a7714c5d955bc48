//! A small contact centre for the live-path tests: skills, queue `support`,
//! its entry point, and agents, created through the supervisor API.

use super::sessions::{AgentClient, BridgeClient};
use super::{Backend, TestServer};
use switchboard::config::ServeConfig;
use switchboard::proto::v1 as pb;

/// The entry point of queue `support`.
pub const SUPPORT: &str = "sip:support@contoso.example";

/// A server with a small centre: skills billing and lang:fr, queue `support`
/// (any agent, 2 s offer timeout, 1 s wrap-up), its entry point, and agents.
pub struct Centre {
    /// The server.
    pub server: TestServer,
}

/// An agent of queue `support` with billing at `billing`.
pub fn agent(id: &str, billing: i32) -> pb::Agent {
    pb::Agent {
        id: id.into(),
        display_name: id.to_uppercase(),
        uc_address: format!("sip:{id}@contoso.example"),
        skills: vec![pb::AgentSkill {
            skill: "billing".into(),
            level: billing,
        }],
        queues: vec!["support".into()],
        ..Default::default()
    }
}

/// Queue `support`: any agent, 2 s offer timeout, 1 s wrap-up.
pub fn support_queue() -> pb::Queue {
    pb::Queue {
        id: "support".into(),
        offer_timeout_secs: Some(2),
        wrap_up_secs: 1,
        reoffer_delay_secs: Some(60),
        ..Default::default()
    }
}

impl Centre {
    /// Starts the centre on `backend` with queue `support`, its agents
    /// `agents`, and a second queue `sales` (like `support`) served by Bob.
    pub async fn start_with_sales(backend: &Backend, mut agents: Vec<pb::Agent>) -> Self {
        let sales = pb::Queue {
            id: "sales".into(),
            ..support_queue()
        };
        agents.push(pb::Agent {
            queues: vec!["sales".into()],
            ..agent("bob", 3)
        });
        let config = ServeConfig::ephemeral(&backend.url);
        Self::start_with(config, vec![support_queue(), sales], agents).await
    }

    /// Starts the centre on `backend` with one queue.
    pub async fn start(backend: &Backend, queue: pb::Queue, agents: Vec<pb::Agent>) -> Self {
        Self::start_with(ServeConfig::ephemeral(&backend.url), vec![queue], agents).await
    }

    /// Starts the centre with a configuration and queues of one's own.
    pub async fn start_with(
        config: ServeConfig,
        queues: Vec<pb::Queue>,
        agents: Vec<pb::Agent>,
    ) -> Self {
        let server = TestServer::start_with(config).await;
        let mut supervisor = server.supervisor().await;
        for name in ["billing", "lang:fr"] {
            let skill = pb::Skill {
                name: name.into(),
                description: String::new(),
            };
            supervisor
                .create_skill(pb::CreateSkillRequest { skill: Some(skill) })
                .await
                .unwrap();
        }
        for queue in queues {
            supervisor
                .create_queue(pb::CreateQueueRequest { queue: Some(queue) })
                .await
                .unwrap();
        }
        let entry = pb::EntryPoint {
            address: SUPPORT.into(),
            queue: "support".into(),
            description: String::new(),
        };
        supervisor
            .create_entry_point(pb::CreateEntryPointRequest {
                entry_point: Some(entry),
            })
            .await
            .unwrap();
        for agent in agents {
            supervisor
                .create_agent(pb::CreateAgentRequest { agent: Some(agent) })
                .await
                .unwrap();
        }
        Self { server }
    }

    /// Opens a bridge session.
    pub async fn bridge(&self) -> BridgeClient {
        BridgeClient::open(self.server.channel().await).await
    }

    /// Signs an agent in, ready.
    pub async fn agent(&self, id: &str) -> AgentClient {
        AgentClient::sign_in(self.server.channel().await, id, true).await
    }
}
