//! `SupervisorService`: configuration CRUD written to the store and applied
//! to routing at once, supervisor actions recorded in the audit log,
//! real-time statistics and watch streams from the router, and interval
//! reports computed by the store.

use super::convert;
use super::watch::{self, Selection, WatchStream};
use crate::domain::{
    Agent, AgentId, EntryPoint, EntryPointAddress, Queue, QueueId, RoutingState, Skill, Timestamp,
};
use crate::engine::Command;
use crate::error::Error;
use crate::live::{Live, StatsFrame};
use crate::proto::v1 as pb;
use crate::proto::v1::supervisor_service_server::SupervisorService;
use crate::store::{Actor, Store};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The metadata key a supervisor's tool may set to name who acts; it goes to the audit log.
pub const ACTOR_HEADER: &str = "x-switchboard-actor";

/// Who made a request: the `x-switchboard-actor` header, else the peer address.
pub fn actor<T>(request: &Request<T>) -> Actor {
    let header = request
        .metadata()
        .get(ACTOR_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|name| !name.is_empty());
    let name = match (header, request.remote_addr()) {
        (Some(name), _) => name.to_string(),
        (None, Some(peer)) => format!("peer:{peer}"),
        (None, None) => "unknown".to_string(),
    };
    Actor {
        name,
        at: Timestamp::now(),
    }
}

/// Fails with `INVALID_ARGUMENT` when a required text field is empty.
fn non_empty<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty").into());
    }
    Ok(value)
}

/// Whether a write creates a new object or replaces an existing one.
#[derive(Clone, Copy)]
enum Write {
    /// `ALREADY_EXISTS` if the id is taken.
    Create,
    /// `NOT_FOUND` if the id is unknown.
    Update,
}

/// The supervisor service.
pub struct Supervisor {
    /// Where configuration lives.
    store: Arc<dyn Store>,
    /// Routing, which every configuration change reaches at once.
    live: Live,
}

impl Supervisor {
    /// A supervisor service writing to `store` and configuring `live`.
    pub fn new(store: Arc<dyn Store>, live: Live) -> Self {
        Self { store, live }
    }

    async fn write_skill(
        &self,
        by: &Actor,
        skill: &Option<pb::Skill>,
        write: Write,
    ) -> Result<Response<pb::Skill>, Status> {
        let skill: Skill = convert::skill_from_proto(convert::required("skill", skill)?)?;
        match write {
            Write::Create => self.store.create_skill(&skill, by).await?,
            Write::Update => self.store.update_skill(&skill, by).await?,
        }
        Ok(Response::new(convert::skill_to_proto(skill)))
    }

    async fn write_queue(
        &self,
        by: &Actor,
        queue: &Option<pb::Queue>,
        write: Write,
    ) -> Result<Response<pb::Queue>, Status> {
        let queue: Queue = convert::queue_from_proto(convert::required("queue", queue)?)?;
        match write {
            Write::Create => self.store.create_queue(&queue, by).await?,
            Write::Update => self.store.update_queue(&queue, by).await?,
        }
        self.live.apply(Command::UpsertQueue(queue.clone())).await?;
        Ok(Response::new(convert::queue_to_proto(queue)))
    }

    async fn write_entry_point(
        &self,
        by: &Actor,
        entry_point: &Option<pb::EntryPoint>,
        write: Write,
    ) -> Result<Response<pb::EntryPoint>, Status> {
        let entry_point: EntryPoint =
            convert::entry_point_from_proto(convert::required("entry_point", entry_point)?)?;
        match write {
            Write::Create => self.store.create_entry_point(&entry_point, by).await?,
            Write::Update => self.store.update_entry_point(&entry_point, by).await?,
        }
        self.live
            .map_entry_point(entry_point.address.clone(), Some(entry_point.clone()))
            .await?;
        Ok(Response::new(convert::entry_point_to_proto(entry_point)))
    }

    async fn write_agent(
        &self,
        by: &Actor,
        agent: &Option<pb::Agent>,
        write: Write,
    ) -> Result<Response<pb::Agent>, Status> {
        let agent: Agent = convert::agent_from_proto(convert::required("agent", agent)?)?;
        match write {
            Write::Create => self.store.create_agent(&agent, by).await?,
            Write::Update => self.store.update_agent(&agent, by).await?,
        }
        self.live.apply(Command::UpsertAgent(agent.clone())).await?;
        Ok(Response::new(convert::agent_to_proto(agent)))
    }

    /// Applies a supervisor action to routing and records it in the audit log.
    async fn act(
        &self,
        by: &Actor,
        action: &str,
        target: &str,
        command: Command,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let detail = serde_json::json!({ "command": format!("{command:?}") }).to_string();
        self.live.apply(command).await?;
        let audit_id = self
            .store
            .record_action(by, action, target, &detail)
            .await?;
        Ok(Response::new(pb::ActionResponse { audit_id }))
    }
}

#[tonic::async_trait]
impl SupervisorService for Supervisor {
    async fn create_skill(
        &self,
        request: Request<pb::CreateSkillRequest>,
    ) -> Result<Response<pb::Skill>, Status> {
        self.write_skill(&actor(&request), &request.get_ref().skill, Write::Create)
            .await
    }

    async fn get_skill(
        &self,
        request: Request<pb::GetSkillRequest>,
    ) -> Result<Response<pb::Skill>, Status> {
        let name = non_empty("name", &request.get_ref().name)?;
        let skill = self.store.get_skill(&name.into()).await?;
        Ok(Response::new(convert::skill_to_proto(skill)))
    }

    async fn list_skills(
        &self,
        _: Request<pb::ListSkillsRequest>,
    ) -> Result<Response<pb::ListSkillsResponse>, Status> {
        let skills = self.store.list_skills().await?;
        Ok(Response::new(pb::ListSkillsResponse {
            skills: skills.into_iter().map(convert::skill_to_proto).collect(),
        }))
    }

    async fn update_skill(
        &self,
        request: Request<pb::UpdateSkillRequest>,
    ) -> Result<Response<pb::Skill>, Status> {
        self.write_skill(&actor(&request), &request.get_ref().skill, Write::Update)
            .await
    }

    async fn delete_skill(
        &self,
        request: Request<pb::DeleteSkillRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let by = actor(&request);
        let name = non_empty("name", &request.get_ref().name)?;
        self.store.delete_skill(&name.into(), &by).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_queue(
        &self,
        request: Request<pb::CreateQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        self.write_queue(&actor(&request), &request.get_ref().queue, Write::Create)
            .await
    }

    async fn get_queue(
        &self,
        request: Request<pb::GetQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        let id = non_empty("id", &request.get_ref().id)?;
        let queue = self.store.get_queue(&id.into()).await?;
        Ok(Response::new(convert::queue_to_proto(queue)))
    }

    async fn list_queues(
        &self,
        _: Request<pb::ListQueuesRequest>,
    ) -> Result<Response<pb::ListQueuesResponse>, Status> {
        let queues = self.store.list_queues().await?;
        Ok(Response::new(pb::ListQueuesResponse {
            queues: queues.into_iter().map(convert::queue_to_proto).collect(),
        }))
    }

    async fn update_queue(
        &self,
        request: Request<pb::UpdateQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        self.write_queue(&actor(&request), &request.get_ref().queue, Write::Update)
            .await
    }

    async fn delete_queue(
        &self,
        request: Request<pb::DeleteQueueRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let by = actor(&request);
        let id: QueueId = non_empty("id", &request.get_ref().id)?.into();
        let queue = self.store.get_queue(&id).await?;
        self.live.apply(Command::RemoveQueue(id.clone())).await?;
        if let Err(error) = self.store.delete_queue(&id, &by).await {
            // The store keeps the queue, so routing must keep it too.
            self.live.apply(Command::UpsertQueue(queue)).await?;
            return Err(error.into());
        }
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_entry_point(
        &self,
        request: Request<pb::CreateEntryPointRequest>,
    ) -> Result<Response<pb::EntryPoint>, Status> {
        self.write_entry_point(
            &actor(&request),
            &request.get_ref().entry_point,
            Write::Create,
        )
        .await
    }

    async fn get_entry_point(
        &self,
        request: Request<pb::GetEntryPointRequest>,
    ) -> Result<Response<pb::EntryPoint>, Status> {
        let address = non_empty("address", &request.get_ref().address)?;
        let entry_point = self.store.get_entry_point(&address.into()).await?;
        Ok(Response::new(convert::entry_point_to_proto(entry_point)))
    }

    async fn list_entry_points(
        &self,
        _: Request<pb::ListEntryPointsRequest>,
    ) -> Result<Response<pb::ListEntryPointsResponse>, Status> {
        let entry_points = self.store.list_entry_points().await?;
        Ok(Response::new(pb::ListEntryPointsResponse {
            entry_points: entry_points
                .into_iter()
                .map(convert::entry_point_to_proto)
                .collect(),
        }))
    }

    async fn update_entry_point(
        &self,
        request: Request<pb::UpdateEntryPointRequest>,
    ) -> Result<Response<pb::EntryPoint>, Status> {
        self.write_entry_point(
            &actor(&request),
            &request.get_ref().entry_point,
            Write::Update,
        )
        .await
    }

    async fn delete_entry_point(
        &self,
        request: Request<pb::DeleteEntryPointRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let by = actor(&request);
        let address: EntryPointAddress = non_empty("address", &request.get_ref().address)?.into();
        self.store.delete_entry_point(&address, &by).await?;
        self.live.map_entry_point(address, None).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_agent(
        &self,
        request: Request<pb::CreateAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        self.write_agent(&actor(&request), &request.get_ref().agent, Write::Create)
            .await
    }

    async fn get_agent(
        &self,
        request: Request<pb::GetAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let id = non_empty("id", &request.get_ref().id)?;
        let agent = self.store.get_agent(&id.into()).await?;
        Ok(Response::new(convert::agent_to_proto(agent)))
    }

    async fn list_agents(
        &self,
        _: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let agents = self.store.list_agents().await?;
        Ok(Response::new(pb::ListAgentsResponse {
            agents: agents.into_iter().map(convert::agent_to_proto).collect(),
        }))
    }

    async fn update_agent(
        &self,
        request: Request<pb::UpdateAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        self.write_agent(&actor(&request), &request.get_ref().agent, Write::Update)
            .await
    }

    async fn delete_agent(
        &self,
        request: Request<pb::DeleteAgentRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let by = actor(&request);
        let id: AgentId = non_empty("id", &request.get_ref().id)?.into();
        let agent = self.store.get_agent(&id).await?;
        self.live.apply(Command::RemoveAgent(id.clone())).await?;
        if let Err(error) = self.store.delete_agent(&id, &by).await {
            // The store keeps the agent, so routing must keep them too.
            self.live.apply(Command::UpsertAgent(agent)).await?;
            return Err(error.into());
        }
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn get_queue_stats(
        &self,
        request: Request<pb::GetQueueStatsRequest>,
    ) -> Result<Response<pb::GetQueueStatsResponse>, Status> {
        let frame = self.live.stats().await?;
        let selection = Selection::queues(&request.get_ref().queue_ids, &frame)?;
        Ok(Response::new(pb::GetQueueStatsResponse {
            stats: selection.queue_stats(&frame),
        }))
    }

    async fn get_agent_stats(
        &self,
        request: Request<pb::GetAgentStatsRequest>,
    ) -> Result<Response<pb::GetAgentStatsResponse>, Status> {
        let frame = self.live.stats().await?;
        let selection = Selection::agents(&request.get_ref().agent_ids, &frame)?;
        Ok(Response::new(pb::GetAgentStatsResponse {
            stats: selection.agent_stats(&frame),
        }))
    }

    type WatchQueuesStream = WatchStream<pb::QueueStatsUpdate>;

    async fn watch_queues(
        &self,
        request: Request<pb::WatchQueuesRequest>,
    ) -> Result<Response<Self::WatchQueuesStream>, Status> {
        let ids = request.into_inner().queue_ids;
        let select = move |frame: &StatsFrame| Selection::queues(&ids, frame);
        let stream = watch::watch(self.live.clone(), select, watch::queue_update).await?;
        Ok(Response::new(stream))
    }

    type WatchAgentsStream = WatchStream<pb::AgentStatsUpdate>;

    async fn watch_agents(
        &self,
        request: Request<pb::WatchAgentsRequest>,
    ) -> Result<Response<Self::WatchAgentsStream>, Status> {
        let ids = request.into_inner().agent_ids;
        let select = move |frame: &StatsFrame| Selection::agents(&ids, frame);
        let stream = watch::watch(self.live.clone(), select, watch::agent_update).await?;
        Ok(Response::new(stream))
    }

    async fn force_agent_state(
        &self,
        request: Request<pb::ForceAgentStateRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let by = actor(&request);
        let request = request.into_inner();
        let agent: AgentId = non_empty("agent_id", &request.agent_id)?.into();
        let state = match pb::RoutingState::try_from(request.state) {
            Ok(pb::RoutingState::Ready) => RoutingState::Ready,
            Ok(pb::RoutingState::LoggedOut) => RoutingState::LoggedOut,
            Ok(pb::RoutingState::NotReady) => RoutingState::NotReady {
                reason: non_empty("reason", &request.reason)?.to_string(),
            },
            _ => {
                return Err(
                    Error::invalid("state", "must be READY, NOT_READY or LOGGED_OUT").into(),
                );
            }
        };
        let command = Command::ForceState {
            agent: agent.clone(),
            state,
        };
        self.act(&by, "force_agent_state", agent.as_str(), command)
            .await
    }

    async fn move_work_item(
        &self,
        request: Request<pb::MoveWorkItemRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let by = actor(&request);
        let item = convert::work_item_id("work_item_id", &request.get_ref().work_item_id)?;
        let queue = non_empty("queue", &request.get_ref().queue)?.into();
        self.act(
            &by,
            "move_work_item",
            &item.to_string(),
            Command::Move { item, queue },
        )
        .await
    }

    async fn reprioritise_work_item(
        &self,
        request: Request<pb::ReprioritiseWorkItemRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let by = actor(&request);
        let item = convert::work_item_id("work_item_id", &request.get_ref().work_item_id)?;
        let priority = request.get_ref().priority;
        if !(-100..=100).contains(&priority) {
            return Err(Error::invalid(
                "priority",
                format!("must be between -100 and 100, got {priority}"),
            )
            .into());
        }
        self.act(
            &by,
            "reprioritise_work_item",
            &item.to_string(),
            Command::Reprioritise { item, priority },
        )
        .await
    }

    async fn cancel_work_item(
        &self,
        request: Request<pb::CancelWorkItemRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let by = actor(&request);
        let item = convert::work_item_id("work_item_id", &request.get_ref().work_item_id)?;
        self.act(
            &by,
            "cancel_work_item",
            &item.to_string(),
            Command::Cancel(item),
        )
        .await
    }

    async fn assign_work_item(
        &self,
        request: Request<pb::AssignWorkItemRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let by = actor(&request);
        let item = convert::work_item_id("work_item_id", &request.get_ref().work_item_id)?;
        let agent = non_empty("agent_id", &request.get_ref().agent_id)?.into();
        self.act(
            &by,
            "assign_work_item",
            &item.to_string(),
            Command::Assign { item, agent },
        )
        .await
    }

    async fn get_interval_report(
        &self,
        request: Request<pb::GetIntervalReportRequest>,
    ) -> Result<Response<pb::GetIntervalReportResponse>, Status> {
        let range = convert::report_range(request.get_ref())?;
        let rows = self.store.interval_report(&range, Timestamp::now()).await?;
        let rows = rows.iter().map(convert::interval_row).collect();
        Ok(Response::new(pb::GetIntervalReportResponse { rows }))
    }
}
