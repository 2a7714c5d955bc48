//! `PresenceService`: bulk presence from the UC feed. This version checks
//! requests; applying them to routing arrives with the live path.

use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::presence_service_server::PresenceService;
use tonic::{Request, Response, Status};

/// Most updates one call may carry.
pub const MAX_UPDATES: usize = 10_000;

/// Checks a bulk update entry by entry.
pub fn check_updates(request: &pb::UpdatePresenceRequest) -> Result<(), Error> {
    if request.updates.len() > MAX_UPDATES {
        return Err(Error::invalid(
            "updates",
            format!("at most {MAX_UPDATES} per call"),
        ));
    }
    for (i, update) in request.updates.iter().enumerate() {
        if update.agent_id.is_empty() {
            return Err(Error::invalid(
                format!("updates[{i}].agent_id"),
                "must not be empty",
            ));
        }
        match pb::Presence::try_from(update.presence) {
            Ok(pb::Presence::Unspecified) => {
                return Err(Error::invalid(
                    format!("updates[{i}].presence"),
                    "is required",
                ));
            }
            Ok(_) => {}
            Err(_) => {
                return Err(Error::invalid(
                    format!("updates[{i}].presence"),
                    format!("unknown presence {}", update.presence),
                ));
            }
        }
    }
    Ok(())
}

/// The presence service.
#[derive(Default)]
pub struct PresenceFeed;

#[tonic::async_trait]
impl PresenceService for PresenceFeed {
    async fn update_presence(
        &self,
        request: Request<pb::UpdatePresenceRequest>,
    ) -> Result<Response<pb::UpdatePresenceResponse>, Status> {
        check_updates(request.get_ref())?;
        Err(Status::unimplemented(
            "presence updates are not available in this version",
        ))
    }
}
