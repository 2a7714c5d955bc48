//! `BridgeService`: the interop bridge's entry. This version checks requests;
//! routing them arrives with the live path.

use super::convert;
use crate::domain::{Channel, is_address};
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::bridge_service_server::BridgeService;
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// Most attributes one interaction may carry.
const MAX_ATTRIBUTES: usize = 64;
/// Longest attribute key, in bytes.
const MAX_ATTRIBUTE_KEY: usize = 128;
/// Longest attribute value, in bytes.
const MAX_ATTRIBUTE_VALUE: usize = 4096;

/// Reads a required channel.
pub fn channel(field: &str, value: i32) -> Result<Channel, Error> {
    match pb::Channel::try_from(value) {
        Ok(pb::Channel::Voice) => Ok(Channel::Voice),
        Ok(pb::Channel::Chat) => Ok(Channel::Chat),
        Ok(pb::Channel::Video) => Ok(Channel::Video),
        Ok(pb::Channel::Unspecified) => Err(Error::invalid(field, "is required")),
        Err(_) => Err(Error::invalid(field, format!("unknown channel {value}"))),
    }
}

/// Checks a submission field by field.
pub fn check_submission(request: &pb::SubmitInteractionRequest) -> Result<Channel, Error> {
    if request.interaction_id.is_empty() {
        return Err(Error::invalid("interaction_id", "must not be empty"));
    }
    let channel = channel("channel", request.channel)?;
    if !is_address(&request.from_address) {
        return Err(Error::invalid(
            "from_address",
            "must be a sip:user@host, sips:user@host or tel:+digits address",
        ));
    }
    if !request.to_address.is_empty() && !is_address(&request.to_address) {
        return Err(Error::invalid(
            "to_address",
            "must be a sip:user@host, sips:user@host or tel:+digits address",
        ));
    }
    if request.entry_point.is_empty() && request.queue.is_empty() {
        return Err(Error::invalid(
            "entry_point",
            "an entry point or a queue is required",
        ));
    }
    if !(-100..=100).contains(&request.priority) {
        return Err(Error::invalid(
            "priority",
            format!("must be between -100 and 100, got {}", request.priority),
        ));
    }
    if request.attributes.len() > MAX_ATTRIBUTES {
        return Err(Error::invalid(
            "attributes",
            format!("at most {MAX_ATTRIBUTES} entries"),
        ));
    }
    for (key, value) in &request.attributes {
        if key.is_empty() || key.len() > MAX_ATTRIBUTE_KEY {
            return Err(Error::invalid(
                "attributes",
                format!("keys must be 1 to {MAX_ATTRIBUTE_KEY} bytes"),
            ));
        }
        if value.len() > MAX_ATTRIBUTE_VALUE {
            return Err(Error::invalid(
                format!("attributes[{key}]"),
                format!("must be at most {MAX_ATTRIBUTE_VALUE} bytes"),
            ));
        }
    }
    convert::requirements("required_skills", &request.required_skills)?;
    Ok(channel)
}

/// The bridge service.
#[derive(Default)]
pub struct Bridge;

/// The answer to an RPC whose behaviour is not built yet.
fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not available in this version"))
}

type InstructionStream =
    Pin<Box<dyn Stream<Item = Result<pb::BridgeInstruction, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl BridgeService for Bridge {
    async fn submit_interaction(
        &self,
        request: Request<pb::SubmitInteractionRequest>,
    ) -> Result<Response<pb::SubmitInteractionResponse>, Status> {
        check_submission(request.get_ref())?;
        Err(not_yet("routing interactions"))
    }

    type SessionStream = InstructionStream;

    async fn session(
        &self,
        _: Request<Streaming<pb::BridgeMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        Err(not_yet("bridge sessions"))
    }

    async fn end_interaction(
        &self,
        request: Request<pb::EndInteractionRequest>,
    ) -> Result<Response<pb::EndInteractionResponse>, Status> {
        if request.get_ref().interaction_id.is_empty() {
            return Err(Error::invalid("interaction_id", "must not be empty").into());
        }
        Err(not_yet("ending interactions"))
    }

    async fn estimate_wait(
        &self,
        request: Request<pb::EstimateWaitRequest>,
    ) -> Result<Response<pb::EstimateWaitResponse>, Status> {
        let request = request.get_ref();
        if request.target.is_none() {
            return Err(Error::invalid("target", "an entry point or a queue is required").into());
        }
        channel("channel", request.channel)?;
        convert::requirements("required_skills", &request.required_skills)?;
        Err(not_yet("wait estimates"))
    }

    async fn list_open_interactions(
        &self,
        _: Request<pb::ListOpenInteractionsRequest>,
    ) -> Result<Response<pb::ListOpenInteractionsResponse>, Status> {
        Err(not_yet("listing open interactions"))
    }
}
