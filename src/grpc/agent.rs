//! `AgentService`: one session stream per signed-in agent. The first message
//! signs in; offers and state changes flow back; the session ends, and the
//! agent is signed out, when the stream drops or heartbeats stop.

use super::acks::{ack, spawn_acks};
use super::convert;
use crate::domain::AgentId;
use crate::engine::{Command, OfferEndReason};
use crate::error::Error;
use crate::live::{AgentNotice, Live, OfferNotice};
use crate::proto::v1 as pb;
use crate::proto::v1::agent_service_server::AgentService;
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Longest not-ready reason, in bytes.
const MAX_REASON: usize = 64;

/// An agent notice as a proto event, boxed for the session's channel.
fn event(notice: AgentNotice) -> Box<pb::AgentEvent> {
    use pb::agent_event::Kind;
    let kind = match notice {
        AgentNotice::Offer(offer) => {
            let OfferNotice {
                item,
                interaction,
                channel,
                from_address,
                display_name,
                attributes,
                language,
                queue,
                waited,
                expires_at,
            } = *offer;
            Kind::Offer(pb::Offer {
                work_item_id: item.to_string(),
                interaction_id: interaction.to_string(),
                channel: convert::channel_to_proto(channel) as i32,
                from_address,
                display_name,
                attributes: attributes.into_iter().collect(),
                queue: queue.to_string(),
                waited: Some(convert::duration(waited)),
                expires_at: Some(convert::timestamp(expires_at)),
                language: language.unwrap_or_default(),
            })
        }
        AgentNotice::OfferEnded { item, reason } => Kind::OfferRescinded(pb::OfferRescinded {
            work_item_id: item.to_string(),
            reason: match reason {
                OfferEndReason::Declined => "declined",
                OfferEndReason::TimedOut => "timeout",
                OfferEndReason::Rescinded => "rescinded",
            }
            .to_string(),
        }),
        AgentNotice::State { state, since } => {
            let (state, reason) = convert::routing_state(&state);
            Kind::StateChanged(pb::AgentStateChanged {
                state: state as i32,
                reason,
                since: Some(convert::timestamp(since)),
            })
        }
        AgentNotice::ItemEnded { item, wrap_up } => Kind::ItemEnded(pb::ItemEnded {
            work_item_id: item.to_string(),
            wrap_up: Some(convert::duration(wrap_up)),
        }),
        AgentNotice::GoingAway { reason } => Kind::GoingAway(pb::GoingAway {
            reason: reason.to_string(),
        }),
    };
    Box::new(pb::AgentEvent { kind: Some(kind) })
}

/// Reads a message of a signed-in agent: the command it asks for, or
/// `None` for a heartbeat, which only keeps the session alive.
fn request(agent: &AgentId, kind: pb::agent_message::Kind) -> Result<Option<Command>, Error> {
    use pb::agent_message::Kind;
    let command = match kind {
        Kind::SignIn(_) => {
            return Err(Error::FailedPrecondition(
                "already signed in on this session".into(),
            ));
        }
        Kind::Heartbeat(_) => return Ok(None),
        Kind::SignOut(_) => Command::SignOut(agent.clone()),
        Kind::SetReady(_) => Command::SetReady(agent.clone()),
        Kind::SetNotReady(m) => {
            if m.reason.is_empty() || m.reason.len() > MAX_REASON {
                return Err(Error::invalid(
                    "set_not_ready.reason",
                    format!("must be 1 to {MAX_REASON} bytes"),
                ));
            }
            Command::SetNotReady {
                agent: agent.clone(),
                reason: m.reason,
            }
        }
        Kind::Accept(m) => Command::Accept {
            item: convert::work_item_id("accept.work_item_id", &m.work_item_id)?,
            agent: agent.clone(),
        },
        Kind::Decline(m) => Command::Decline {
            item: convert::work_item_id("decline.work_item_id", &m.work_item_id)?,
            agent: agent.clone(),
        },
        Kind::WrapUpDone(_) => Command::FinishWrapUp(agent.clone()),
    };
    Ok(Some(command))
}

/// Where a session's events go out. They are boxed: the channel sets aside
/// room for 32 messages up front, which unboxed took about 8 KiB of the
/// 22 KiB a connected agent cost the server (boxed, 512 bytes).
type Outbound = mpsc::UnboundedSender<OutboundMessage>;

/// One message out on a session's stream.
type OutboundMessage = Result<Box<pb::AgentEvent>, Status>;

/// Sends an ack; false once the client has gone.
fn send_ack(out: &Outbound, request_id: u64, result: Result<(), Status>) -> bool {
    let kind = pb::agent_event::Kind::Ack(ack(request_id, result));
    out.send(Ok(Box::new(pb::AgentEvent { kind: Some(kind) })))
        .is_ok()
}

/// Runs one agent session until sign-out, a dropped stream, a lost
/// heartbeat, a takeover or shutdown.
async fn run_session(live: Live, mut inbound: Streaming<pb::AgentMessage>, out: Outbound) {
    let heartbeat = live.config().heartbeat_timeout;
    let first = match tokio::time::timeout(heartbeat, inbound.message()).await {
        Ok(Ok(Some(first))) => first,
        _ => return,
    };
    let Some(pb::agent_message::Kind::SignIn(sign_in)) = first.kind else {
        let _ = out.send(Err(Error::invalid(
            "kind",
            "the first message must be sign_in",
        )
        .into()));
        return;
    };
    if sign_in.agent_id.is_empty() {
        let _ = out.send(Err(
            Error::invalid("sign_in.agent_id", "must not be empty").into()
        ));
        return;
    }
    let agent = AgentId::new(&sign_in.agent_id);
    let (session, mut notices) = match live.sign_in(agent.clone(), sign_in.ready).await {
        Ok(opened) => opened,
        Err(error) => {
            let _ = out.send(Err(error.into()));
            return;
        }
    };
    if !send_ack(&out, first.request_id, Ok(())) {
        live.session_ended(agent, session).await;
        return;
    }
    let acks = spawn_acks(out.clone(), |ack| {
        Box::new(pb::AgentEvent {
            kind: Some(pb::agent_event::Kind::Ack(ack)),
        })
    });
    let mut deadline = Instant::now() + heartbeat;
    loop {
        tokio::select! {
            message = inbound.message() => {
                let Ok(Some(message)) = message else { break };
                deadline = Instant::now() + heartbeat;
                let signing_out = matches!(message.kind, Some(pb::agent_message::Kind::SignOut(_)));
                let result = match message.kind.map(|kind| request(&agent, kind)) {
                    None => Err(Error::invalid("kind", "is required")),
                    Some(Err(error)) => Err(error),
                    Some(Ok(None)) => Ok(None),
                    Some(Ok(Some(command))) => live.agent_command(session, command).await.map(Some),
                };
                // Signed out once applied; the ack follows when it is stored.
                let signed_out = signing_out && result.is_ok();
                if acks.send((message.request_id, result)).is_err() || signed_out {
                    break;
                }
            }
            notice = notices.recv() => {
                let Some(notice) = notice else { break };
                let going_away = matches!(notice, AgentNotice::GoingAway { .. });
                if out.send(Ok(event(notice))).is_err() || going_away {
                    break;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                tracing::info!(agent = %agent, "no heartbeat from the agent's client; ending the session");
                break;
            }
            () = live.stopping() => {
                let _ = out.send(Ok(event(AgentNotice::GoingAway { reason: "the server is shutting down" })));
                break;
            }
        }
    }
    live.session_ended(agent, session).await;
}

/// The agent service.
pub struct Agents {
    /// The live path.
    live: Live,
}

impl Agents {
    /// The agent service over the live path.
    pub fn new(live: Live) -> Self {
        Self { live }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AgentEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AgentService for Agents {
    type SessionStream = EventStream;

    async fn session(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let (out, events) = mpsc::unbounded_channel();
        tokio::spawn(run_session(self.live.clone(), request.into_inner(), out));
        let stream = UnboundedReceiverStream::new(events).map(|sent| sent.map(|boxed| *boxed));
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    /// A session's outgoing channel sets aside room for 32 messages per
    /// connected agent, so they travel boxed.
    #[test]
    fn a_sessions_outgoing_message_stays_small() {
        let size = std::mem::size_of::<super::OutboundMessage>();
        assert!(size <= 16, "an outgoing session message is {size} bytes");
    }
}
