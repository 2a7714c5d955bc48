//! `SupervisorService`: configuration CRUD backed by the store. Statistics,
//! watch streams, actions and reports arrive with the live path.

use super::convert;
use crate::domain::Timestamp;
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::supervisor_service_server::SupervisorService;
use crate::store::{Actor, Store};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
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

/// The supervisor service over a store.
pub struct Supervisor {
    /// Where configuration lives.
    store: Arc<dyn Store>,
}

impl Supervisor {
    /// A supervisor service writing to `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

/// The answer to an RPC whose behaviour is not built yet.
fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not available in this version"))
}

type WatchStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl SupervisorService for Supervisor {
    async fn create_skill(
        &self,
        request: Request<pb::CreateSkillRequest>,
    ) -> Result<Response<pb::Skill>, Status> {
        let by = actor(&request);
        let skill =
            convert::skill_from_proto(convert::required("skill", &request.get_ref().skill)?)?;
        self.store.create_skill(&skill, &by).await?;
        Ok(Response::new(convert::skill_to_proto(skill)))
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
        let by = actor(&request);
        let skill =
            convert::skill_from_proto(convert::required("skill", &request.get_ref().skill)?)?;
        self.store.update_skill(&skill, &by).await?;
        Ok(Response::new(convert::skill_to_proto(skill)))
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
        let by = actor(&request);
        let queue =
            convert::queue_from_proto(convert::required("queue", &request.get_ref().queue)?)?;
        self.store.create_queue(&queue, &by).await?;
        Ok(Response::new(convert::queue_to_proto(queue)))
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
        let by = actor(&request);
        let queue =
            convert::queue_from_proto(convert::required("queue", &request.get_ref().queue)?)?;
        self.store.update_queue(&queue, &by).await?;
        Ok(Response::new(convert::queue_to_proto(queue)))
    }

    async fn delete_queue(
        &self,
        request: Request<pb::DeleteQueueRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let by = actor(&request);
        let id = non_empty("id", &request.get_ref().id)?;
        self.store.delete_queue(&id.into(), &by).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_entry_point(
        &self,
        request: Request<pb::CreateEntryPointRequest>,
    ) -> Result<Response<pb::EntryPoint>, Status> {
        let by = actor(&request);
        let entry_point = convert::entry_point_from_proto(convert::required(
            "entry_point",
            &request.get_ref().entry_point,
        )?)?;
        self.store.create_entry_point(&entry_point, &by).await?;
        Ok(Response::new(convert::entry_point_to_proto(entry_point)))
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
        let by = actor(&request);
        let entry_point = convert::entry_point_from_proto(convert::required(
            "entry_point",
            &request.get_ref().entry_point,
        )?)?;
        self.store.update_entry_point(&entry_point, &by).await?;
        Ok(Response::new(convert::entry_point_to_proto(entry_point)))
    }

    async fn delete_entry_point(
        &self,
        request: Request<pb::DeleteEntryPointRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let by = actor(&request);
        let address = non_empty("address", &request.get_ref().address)?;
        self.store.delete_entry_point(&address.into(), &by).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn create_agent(
        &self,
        request: Request<pb::CreateAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        let by = actor(&request);
        let agent =
            convert::agent_from_proto(convert::required("agent", &request.get_ref().agent)?)?;
        self.store.create_agent(&agent, &by).await?;
        Ok(Response::new(convert::agent_to_proto(agent)))
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
        let by = actor(&request);
        let agent =
            convert::agent_from_proto(convert::required("agent", &request.get_ref().agent)?)?;
        self.store.update_agent(&agent, &by).await?;
        Ok(Response::new(convert::agent_to_proto(agent)))
    }

    async fn delete_agent(
        &self,
        request: Request<pb::DeleteAgentRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let by = actor(&request);
        let id = non_empty("id", &request.get_ref().id)?;
        self.store.delete_agent(&id.into(), &by).await?;
        Ok(Response::new(pb::DeleteResponse {}))
    }

    async fn get_queue_stats(
        &self,
        _: Request<pb::GetQueueStatsRequest>,
    ) -> Result<Response<pb::GetQueueStatsResponse>, Status> {
        Err(not_yet("queue statistics"))
    }

    async fn get_agent_stats(
        &self,
        _: Request<pb::GetAgentStatsRequest>,
    ) -> Result<Response<pb::GetAgentStatsResponse>, Status> {
        Err(not_yet("agent statistics"))
    }

    type WatchQueuesStream = WatchStream<pb::QueueStatsUpdate>;

    async fn watch_queues(
        &self,
        _: Request<pb::WatchQueuesRequest>,
    ) -> Result<Response<Self::WatchQueuesStream>, Status> {
        Err(not_yet("watching queues"))
    }

    type WatchAgentsStream = WatchStream<pb::AgentStatsUpdate>;

    async fn watch_agents(
        &self,
        _: Request<pb::WatchAgentsRequest>,
    ) -> Result<Response<Self::WatchAgentsStream>, Status> {
        Err(not_yet("watching agents"))
    }

    async fn force_agent_state(
        &self,
        request: Request<pb::ForceAgentStateRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        non_empty("agent_id", &request.get_ref().agent_id)?;
        Err(not_yet("forcing an agent's state"))
    }

    async fn move_work_item(
        &self,
        request: Request<pb::MoveWorkItemRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        non_empty("work_item_id", &request.get_ref().work_item_id)?;
        Err(not_yet("moving a work item"))
    }

    async fn reprioritise_work_item(
        &self,
        request: Request<pb::ReprioritiseWorkItemRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        non_empty("work_item_id", &request.get_ref().work_item_id)?;
        Err(not_yet("reprioritising a work item"))
    }

    async fn cancel_work_item(
        &self,
        request: Request<pb::CancelWorkItemRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        non_empty("work_item_id", &request.get_ref().work_item_id)?;
        Err(not_yet("cancelling a work item"))
    }

    async fn assign_work_item(
        &self,
        request: Request<pb::AssignWorkItemRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        non_empty("work_item_id", &request.get_ref().work_item_id)?;
        Err(not_yet("assigning a work item"))
    }

    async fn get_interval_report(
        &self,
        _: Request<pb::GetIntervalReportRequest>,
    ) -> Result<Response<pb::GetIntervalReportResponse>, Status> {
        Err(not_yet("interval reports"))
    }
}
