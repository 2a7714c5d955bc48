//! `PresenceService`: bulk presence from the UC feed, applied to routing at once.

use super::convert;
use crate::domain::{AgentId, Presence};
use crate::error::Error;
use crate::live::Live;
use crate::proto::v1 as pb;
use crate::proto::v1::presence_service_server::PresenceService;
use tonic::{Request, Response, Status};

/// Most updates one call may carry.
pub const MAX_UPDATES: usize = 10_000;

/// Checks a bulk update entry by entry and reads it.
pub fn updates_from_proto(
    request: &pb::UpdatePresenceRequest,
) -> Result<Vec<(AgentId, Presence)>, Error> {
    if request.updates.len() > MAX_UPDATES {
        return Err(Error::invalid(
            "updates",
            format!("at most {MAX_UPDATES} per call"),
        ));
    }
    let mut updates = Vec::with_capacity(request.updates.len());
    for (i, update) in request.updates.iter().enumerate() {
        if update.agent_id.is_empty() {
            return Err(Error::invalid(
                format!("updates[{i}].agent_id"),
                "must not be empty",
            ));
        }
        let presence =
            convert::presence_from_proto(&format!("updates[{i}].presence"), update.presence)?;
        updates.push((AgentId::new(&update.agent_id), presence));
    }
    Ok(updates)
}

/// The presence service.
pub struct PresenceFeed {
    /// The live path.
    live: Live,
}

impl PresenceFeed {
    /// The presence service over the live path.
    pub fn new(live: Live) -> Self {
        Self { live }
    }
}

#[tonic::async_trait]
impl PresenceService for PresenceFeed {
    async fn update_presence(
        &self,
        request: Request<pb::UpdatePresenceRequest>,
    ) -> Result<Response<pb::UpdatePresenceResponse>, Status> {
        let updates = updates_from_proto(request.get_ref())?;
        let (applied, unknown) = self.live.update_presence(updates).await?;
        Ok(Response::new(pb::UpdatePresenceResponse {
            applied,
            unknown_agents: unknown.iter().map(ToString::to_string).collect(),
        }))
    }
}
