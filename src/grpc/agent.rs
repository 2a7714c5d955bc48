//! `AgentService`: agents' session streams; they arrive with the live path.

use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_server::AgentService;
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The agent service.
#[derive(Default)]
pub struct Agents;

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AgentEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AgentService for Agents {
    type SessionStream = EventStream;

    async fn session(
        &self,
        _: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        Err(Status::unimplemented(
            "agent sessions are not available in this version",
        ))
    }
}
