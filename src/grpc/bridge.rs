//! `BridgeService`: the interop bridge's entry. Submissions and lifecycle
//! reports go to the live path and are answered once durably stored; the
//! session stream carries routing instructions back.

use super::acks::{ack, spawn_acks};
use super::convert;
use crate::domain::{EntryPointAddress, is_address};
use crate::error::Error;
use crate::live::{BridgeNotice, BridgeReport, DisconnectKind, Live, Submission, WaitTarget};
use crate::proto::v1 as pb;
use crate::proto::v1::bridge_service_server::BridgeService;
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Most attributes one interaction may carry.
const MAX_ATTRIBUTES: usize = 64;
/// Longest attribute key, in bytes.
const MAX_ATTRIBUTE_KEY: usize = 128;
/// Longest attribute value, in bytes.
const MAX_ATTRIBUTE_VALUE: usize = 4096;
/// The message of a malformed address.
const ADDRESS_FORMAT: &str = "must be a sip:user@host, sips:user@host or tel:+digits address";

/// An optional text field: `None` when empty.
fn optional(value: &str) -> Option<&str> {
    if value.is_empty() { None } else { Some(value) }
}

/// Checks a submission field by field and turns it into the live path's form.
pub fn submission_from_proto(request: pb::SubmitInteractionRequest) -> Result<Submission, Error> {
    if request.interaction_id.is_empty() {
        return Err(Error::invalid("interaction_id", "must not be empty"));
    }
    let channel = convert::channel("channel", request.channel)?;
    if !is_address(&request.from_address) {
        return Err(Error::invalid("from_address", ADDRESS_FORMAT));
    }
    if !request.to_address.is_empty() && !is_address(&request.to_address) {
        return Err(Error::invalid("to_address", ADDRESS_FORMAT));
    }
    if !request.entry_point.is_empty() && !is_address(&request.entry_point) {
        return Err(Error::invalid("entry_point", ADDRESS_FORMAT));
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
    let required_skills = convert::requirements("required_skills", &request.required_skills)?;
    Ok(Submission {
        interaction_id: request.interaction_id.into(),
        channel,
        from_address: request.from_address,
        to_address: request.to_address,
        display_name: request.display_name,
        entry_point: optional(&request.entry_point).map(EntryPointAddress::from),
        queue: optional(&request.queue).map(Into::into),
        language: optional(&request.language).map(ToString::to_string),
        attributes: request.attributes.into_iter().collect(),
        priority: request.priority,
        required_skills,
    })
}

/// A bridge notice as a proto instruction.
fn instruction(notice: BridgeNotice) -> pb::BridgeInstruction {
    use pb::bridge_instruction::Kind;
    let kind = match notice {
        BridgeNotice::Deliver {
            item,
            interaction,
            agent,
            address,
        } => Kind::Deliver(pb::DeliverToAgent {
            work_item_id: item.to_string(),
            interaction_id: interaction.to_string(),
            agent_id: agent.to_string(),
            agent_address: address,
        }),
        BridgeNotice::Position {
            item,
            position,
            estimated_wait,
        } => Kind::Position(pb::PositionUpdate {
            work_item_id: item.to_string(),
            position,
            estimated_wait: estimated_wait.map(convert::duration),
        }),
        BridgeNotice::Overflow {
            item,
            from,
            to,
            reason,
        } => Kind::Overflow(pb::Overflow {
            work_item_id: item.to_string(),
            from_queue: from.to_string(),
            to_queue: to.to_string(),
            reason,
        }),
        BridgeNotice::Disconnect {
            item,
            kind,
            message,
            reason,
        } => {
            let kind = match kind {
                DisconnectKind::Message => pb::DisconnectKind::Message,
                DisconnectKind::Voicemail => pb::DisconnectKind::Voicemail,
                DisconnectKind::Callback => pb::DisconnectKind::Callback,
                DisconnectKind::Cancelled => pb::DisconnectKind::Cancelled,
            };
            Kind::Disconnect(pb::Disconnect {
                work_item_id: item.to_string(),
                kind: kind as i32,
                message,
                reason,
            })
        }
        BridgeNotice::GoingAway => Kind::GoingAway(pb::GoingAway {
            reason: "the server is shutting down".into(),
        }),
    };
    pb::BridgeInstruction { kind: Some(kind) }
}

/// Reads a lifecycle report.
fn report(kind: pb::bridge_message::Kind) -> Result<BridgeReport, Error> {
    use pb::bridge_message::Kind;
    match kind {
        Kind::Hello(_) => Err(Error::FailedPrecondition(
            "the session is already open".into(),
        )),
        Kind::Connected(m) => Ok(BridgeReport::Connected(convert::work_item_id(
            "connected.work_item_id",
            &m.work_item_id,
        )?)),
        Kind::ConsumerHungUp(m) => Ok(BridgeReport::HungUp(convert::work_item_id(
            "consumer_hung_up.work_item_id",
            &m.work_item_id,
        )?)),
        Kind::Ended(m) => Ok(BridgeReport::Ended(convert::work_item_id(
            "ended.work_item_id",
            &m.work_item_id,
        )?)),
        Kind::TransferRequested(m) => {
            let item = convert::work_item_id("transfer_requested.work_item_id", &m.work_item_id)?;
            if m.queue.is_empty() {
                return Err(Error::invalid(
                    "transfer_requested.queue",
                    "must not be empty",
                ));
            }
            Ok(BridgeReport::Transfer {
                item,
                queue: m.queue.into(),
            })
        }
    }
}

type Outbound = mpsc::UnboundedSender<Result<pb::BridgeInstruction, Status>>;

/// Sends an instruction; false once the client has gone.
fn send(out: &Outbound, kind: pb::bridge_instruction::Kind) -> bool {
    out.send(Ok(pb::BridgeInstruction { kind: Some(kind) }))
        .is_ok()
}

/// Runs one bridge session until the stream ends or the server stops.
async fn run_session(live: Live, mut inbound: Streaming<pb::BridgeMessage>, out: Outbound) {
    let first = match inbound.message().await {
        Ok(Some(first)) => first,
        _ => return,
    };
    let bridge_id = match first.kind {
        Some(pb::bridge_message::Kind::Hello(hello)) if !hello.bridge_id.is_empty() => {
            hello.bridge_id
        }
        Some(pb::bridge_message::Kind::Hello(_)) => {
            let _ = out.send(Err(
                Error::invalid("hello.bridge_id", "must not be empty").into()
            ));
            return;
        }
        _ => {
            let _ = out.send(Err(Error::invalid(
                "kind",
                "the first message must be hello",
            )
            .into()));
            return;
        }
    };
    let (session, mut notices) = match live.open_bridge(bridge_id).await {
        Ok(opened) => opened,
        Err(error) => {
            let _ = out.send(Err(error.into()));
            return;
        }
    };
    if send(
        &out,
        pb::bridge_instruction::Kind::Ack(ack(first.request_id, Ok(()))),
    ) {
        let acks = spawn_acks(out.clone(), |ack| pb::BridgeInstruction {
            kind: Some(pb::bridge_instruction::Kind::Ack(ack)),
        });
        loop {
            tokio::select! {
                message = inbound.message() => {
                    let Ok(Some(message)) = message else { break };
                    let result = match message.kind {
                        None => Err(Error::invalid("kind", "is required")),
                        Some(kind) => match report(kind) {
                            Ok(report) => live.report(report).await.map(Some),
                            Err(error) => Err(error),
                        },
                    };
                    if acks.send((message.request_id, result)).is_err() {
                        break;
                    }
                }
                notice = notices.recv() => {
                    let Some(notice) = notice else { break };
                    if out.send(Ok(instruction(notice))).is_err() {
                        break;
                    }
                }
                () = live.stopping() => {
                    let _ = out.send(Ok(instruction(BridgeNotice::GoingAway)));
                    break;
                }
            }
        }
    }
    live.close_bridge(session).await;
}

/// The bridge service.
pub struct Bridge {
    /// The live path.
    live: Live,
}

impl Bridge {
    /// The bridge service over the live path.
    pub fn new(live: Live) -> Self {
        Self { live }
    }
}

type InstructionStream =
    Pin<Box<dyn Stream<Item = Result<pb::BridgeInstruction, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl BridgeService for Bridge {
    async fn submit_interaction(
        &self,
        request: Request<pb::SubmitInteractionRequest>,
    ) -> Result<Response<pb::SubmitInteractionResponse>, Status> {
        let submission = submission_from_proto(request.into_inner())?;
        let submitted = self.live.submit(submission).await?;
        Ok(Response::new(pb::SubmitInteractionResponse {
            work_item_id: submitted.item.to_string(),
            queue: submitted.queue.to_string(),
            position: submitted.position,
            estimated_wait: submitted.estimated_wait.map(convert::duration),
            created: submitted.created,
        }))
    }

    type SessionStream = InstructionStream;

    async fn session(
        &self,
        request: Request<Streaming<pb::BridgeMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let (out, instructions) = mpsc::unbounded_channel();
        tokio::spawn(run_session(self.live.clone(), request.into_inner(), out));
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(
            instructions,
        ))))
    }

    async fn end_interaction(
        &self,
        request: Request<pb::EndInteractionRequest>,
    ) -> Result<Response<pb::EndInteractionResponse>, Status> {
        let request = request.into_inner();
        if request.interaction_id.is_empty() {
            return Err(Error::invalid("interaction_id", "must not be empty").into());
        }
        let item = self
            .live
            .end_interaction(request.interaction_id.into())
            .await?;
        Ok(Response::new(pb::EndInteractionResponse {
            work_item_id: item.to_string(),
        }))
    }

    async fn estimate_wait(
        &self,
        request: Request<pb::EstimateWaitRequest>,
    ) -> Result<Response<pb::EstimateWaitResponse>, Status> {
        let request = request.into_inner();
        let target = match request.target {
            Some(pb::estimate_wait_request::Target::EntryPoint(address)) if !address.is_empty() => {
                WaitTarget::EntryPoint(address.into())
            }
            Some(pb::estimate_wait_request::Target::Queue(queue)) if !queue.is_empty() => {
                WaitTarget::Queue(queue.into())
            }
            _ => {
                return Err(
                    Error::invalid("target", "an entry point or a queue is required").into(),
                );
            }
        };
        let channel = convert::channel("channel", request.channel)?;
        let skills = convert::requirements("required_skills", &request.required_skills)?;
        let language = optional(&request.language).map(ToString::to_string);
        let (queue, estimate) = self
            .live
            .estimate_wait(target, channel, language, skills)
            .await?;
        Ok(Response::new(pb::EstimateWaitResponse {
            queue: queue.to_string(),
            agents_signed_in: estimate.agents_signed_in,
            agents_available: estimate.agents_available,
            position: estimate.position,
            estimated_wait: estimate.estimated_wait.map(convert::duration),
        }))
    }

    async fn list_open_interactions(
        &self,
        _: Request<pb::ListOpenInteractionsRequest>,
    ) -> Result<Response<pb::ListOpenInteractionsResponse>, Status> {
        let open = self.live.open_interactions().await?;
        let mut interactions = Vec::with_capacity(open.len());
        for interaction in open {
            interactions.push(pb::OpenInteraction {
                work_item_id: interaction.item.to_string(),
                interaction_id: interaction.interaction.to_string(),
                queue: interaction.queue.to_string(),
                state: interaction.state.to_string(),
                agent_id: interaction
                    .agent
                    .map(|agent| agent.to_string())
                    .unwrap_or_default(),
                arrived_at: Some(convert::timestamp(interaction.arrived_at)),
            });
        }
        Ok(Response::new(pb::ListOpenInteractionsResponse {
            interactions,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::SubmitInteractionRequest {
        pb::SubmitInteractionRequest {
            interaction_id: "call-1".into(),
            channel: pb::Channel::Voice as i32,
            from_address: "sip:jane@consumer.example".into(),
            entry_point: "sip:sales@contoso.example".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_malformed_address_is_refused_naming_the_field() {
        let mut bad = request();
        bad.from_address = "jane".into();
        assert_eq!(
            submission_from_proto(bad).unwrap_err(),
            Error::invalid("from_address", ADDRESS_FORMAT)
        );
        let mut bad = request();
        bad.entry_point = "sales".into();
        assert_eq!(
            submission_from_proto(bad).unwrap_err(),
            Error::invalid("entry_point", ADDRESS_FORMAT)
        );
    }

    #[test]
    fn channel_and_priority_are_checked() {
        let mut bad = request();
        bad.channel = 0;
        assert_eq!(
            submission_from_proto(bad).unwrap_err(),
            Error::invalid("channel", "is required")
        );
        let mut bad = request();
        bad.priority = 101;
        assert_eq!(
            submission_from_proto(bad).unwrap_err(),
            Error::invalid("priority", "must be between -100 and 100, got 101")
        );
    }
}
