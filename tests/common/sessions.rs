//! Scripted session clients for the live-path tests: an agent's client and
//! the interop bridge, each a real tonic client on a bidirectional stream.

use std::collections::VecDeque;
use std::time::Duration;
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::agent_service_client::AgentServiceClient;
use switchboard::proto::v1::bridge_service_client::BridgeServiceClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

/// Longest wait for an expected message: a hang guard, not a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Messages received but not yet consumed, and the stream they come from.
struct Inbox<T> {
    stream: Streaming<T>,
    kept: VecDeque<T>,
}

impl<T> Inbox<T> {
    /// The first message matching `wanted`, keeping the others for later.
    async fn wait_for(&mut self, what: &str, wanted: impl Fn(&T) -> bool) -> T {
        if let Some(position) = self.kept.iter().position(&wanted) {
            return self
                .kept
                .remove(position)
                .expect("the position is in range");
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.message())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
            let message = next
                .unwrap_or_else(|status| panic!("stream failed waiting for {what}: {status:?}"))
                .unwrap_or_else(|| panic!("stream ended waiting for {what}"));
            if wanted(&message) {
                return message;
            }
            self.kept.push_back(message);
        }
    }

    /// True if a message matching `wanted` arrives within `within`.
    async fn arrives(&mut self, within: Duration, wanted: impl Fn(&T) -> bool) -> bool {
        if self.kept.iter().any(&wanted) {
            return true;
        }
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(Ok(Some(message))) =
            tokio::time::timeout_at(deadline, self.stream.message()).await
        {
            let found = wanted(&message);
            self.kept.push_back(message);
            if found {
                return true;
            }
        }
        false
    }
}

/// An agent's client with an open session.
pub struct AgentClient {
    /// The agent's id.
    pub id: String,
    outbound: Option<mpsc::UnboundedSender<pb::AgentMessage>>,
    inbox: Inbox<pb::AgentEvent>,
    next_request: u64,
}

/// The kind of an agent event, for matching.
pub type AgentKind = pb::agent_event::Kind;

impl AgentClient {
    /// Opens a session and signs in; panics unless the sign-in is acknowledged.
    pub async fn sign_in(channel: Channel, id: &str, ready: bool) -> Self {
        let mut client = Self::open(channel, id, ready)
            .await
            .expect("the agent session opens");
        let ack = client.ack(1).await;
        assert_eq!(ack.code, 0, "sign-in of {id} refused: {}", ack.message);
        client
    }

    /// Opens a session and sends sign-in, returning the stream's error status if refused.
    pub async fn open(channel: Channel, id: &str, ready: bool) -> Result<Self, tonic::Status> {
        let (outbound, requests) = mpsc::unbounded_channel();
        let sign_in = pb::AgentMessage {
            request_id: 1,
            kind: Some(pb::agent_message::Kind::SignIn(pb::SignIn {
                agent_id: id.into(),
                ready,
            })),
        };
        outbound.send(sign_in).expect("the request stream is open");
        let mut client = AgentServiceClient::new(channel);
        let stream = client
            .session(UnboundedReceiverStream::new(requests))
            .await?
            .into_inner();
        let mut inbox = Inbox {
            stream,
            kept: VecDeque::new(),
        };
        // The first message tells whether the sign-in was taken: an ack, or an error status.
        let first = tokio::time::timeout(PATIENCE, inbox.stream.message())
            .await
            .expect("an answer to sign-in")?;
        inbox.kept.extend(first);
        Ok(Self {
            id: id.into(),
            outbound: Some(outbound),
            inbox,
            next_request: 1,
        })
    }

    /// Sends a message and returns its request id.
    pub fn send(&mut self, kind: pb::agent_message::Kind) -> u64 {
        self.next_request += 1;
        let message = pb::AgentMessage {
            request_id: self.next_request,
            kind: Some(kind),
        };
        self.outbound
            .as_ref()
            .expect("the session is open")
            .send(message)
            .expect("the request stream is open");
        self.next_request
    }

    /// The ack of request `id`.
    pub async fn ack(&mut self, id: u64) -> pb::Ack {
        let event = self
            .inbox
            .wait_for(
                "an ack",
                |event| matches!(&event.kind, Some(AgentKind::Ack(ack)) if ack.request_id == id),
            )
            .await;
        let Some(AgentKind::Ack(ack)) = event.kind else {
            unreachable!("matched an ack")
        };
        ack
    }

    /// Sends a message and asserts it is acknowledged with `code`.
    pub async fn request(&mut self, kind: pb::agent_message::Kind, code: Code) -> pb::Ack {
        let id = self.send(kind);
        let ack = self.ack(id).await;
        assert_eq!(ack.code, code as i32, "{}: unexpected ack {ack:?}", self.id);
        ack
    }

    /// The next offer.
    pub async fn offer(&mut self) -> pb::Offer {
        let event = self
            .inbox
            .wait_for("an offer", |event| {
                matches!(event.kind, Some(AgentKind::Offer(_)))
            })
            .await;
        let Some(AgentKind::Offer(offer)) = event.kind else {
            unreachable!("matched an offer")
        };
        offer
    }

    /// True if an offer arrives within `within`.
    pub async fn offered_within(&mut self, within: Duration) -> bool {
        self.inbox
            .arrives(within, |event| {
                matches!(event.kind, Some(AgentKind::Offer(_)))
            })
            .await
    }

    /// Waits until the agent's routing state becomes `state`.
    pub async fn state(&mut self, state: pb::RoutingState) -> pb::AgentStateChanged {
        let event = self
            .inbox
            .wait_for("a state change", |event| {
                matches!(&event.kind, Some(AgentKind::StateChanged(changed)) if changed.state == state as i32)
            })
            .await;
        let Some(AgentKind::StateChanged(changed)) = event.kind else {
            unreachable!("matched a state")
        };
        changed
    }

    /// Waits for an event matching `wanted`.
    pub async fn event(&mut self, what: &str, wanted: impl Fn(&AgentKind) -> bool) -> AgentKind {
        let event = self
            .inbox
            .wait_for(what, |event| event.kind.as_ref().is_some_and(&wanted))
            .await;
        event.kind.expect("matched a kind")
    }

    /// Accepts an offer and checks the ack.
    pub async fn accept(&mut self, item: &str) {
        self.request(
            AgentKind2::Accept(pb::AcceptOffer {
                work_item_id: item.into(),
            }),
            Code::Ok,
        )
        .await;
    }

    /// Drops the session without signing out, as a crashed client would.
    pub fn drop_stream(mut self) {
        self.outbound = None;
    }
}

/// The kind of an agent message.
pub type AgentKind2 = pb::agent_message::Kind;

/// The interop bridge with an open session.
pub struct BridgeClient {
    /// Unary calls.
    pub client: BridgeServiceClient<Channel>,
    outbound: mpsc::UnboundedSender<pb::BridgeMessage>,
    inbox: Inbox<pb::BridgeInstruction>,
    next_request: u64,
}

/// The kind of a bridge instruction, for matching.
pub type Instruction = pb::bridge_instruction::Kind;

impl BridgeClient {
    /// Opens a session with hello.
    pub async fn open(channel: Channel) -> Self {
        let (outbound, requests) = mpsc::unbounded_channel();
        let hello = pb::BridgeMessage {
            request_id: 1,
            kind: Some(pb::bridge_message::Kind::Hello(pb::BridgeHello {
                bridge_id: "test-bridge".into(),
            })),
        };
        outbound.send(hello).expect("the request stream is open");
        let mut client = BridgeServiceClient::new(channel);
        let stream = client
            .session(UnboundedReceiverStream::new(requests))
            .await
            .expect("the bridge session opens")
            .into_inner();
        let mut bridge = Self {
            client,
            outbound,
            inbox: Inbox {
                stream,
                kept: VecDeque::new(),
            },
            next_request: 1,
        };
        let ack = bridge.ack(1).await;
        assert_eq!(ack.code, 0, "hello refused: {}", ack.message);
        bridge
    }

    /// Submits a voice call (or `channel`) at an entry point.
    pub async fn submit(
        &mut self,
        interaction: &str,
        channel: pb::Channel,
        entry_point: &str,
    ) -> pb::SubmitInteractionResponse {
        self.client
            .submit_interaction(interaction_request(interaction, channel, entry_point))
            .await
            .unwrap_or_else(|status| panic!("submitting {interaction} failed: {status:?}"))
            .into_inner()
    }

    /// Ends an interaction by its id (the consumer hung up) and returns its
    /// work item.
    pub async fn hang_up(&mut self, interaction: &str) -> String {
        self.client
            .end_interaction(pb::EndInteractionRequest {
                interaction_id: interaction.into(),
                reason: "hung up".into(),
            })
            .await
            .unwrap_or_else(|status| panic!("hanging up {interaction} failed: {status:?}"))
            .into_inner()
            .work_item_id
    }

    /// The open interactions, as the bridge lists them after reconnecting.
    pub async fn open_interactions(&mut self) -> Vec<pb::OpenInteraction> {
        self.client
            .list_open_interactions(pb::ListOpenInteractionsRequest {})
            .await
            .expect("open interactions are listed")
            .into_inner()
            .interactions
    }

    /// Sends a lifecycle report and returns its ack.
    pub async fn report(&mut self, kind: pb::bridge_message::Kind) -> pb::Ack {
        let id = self.send_report(kind);
        self.ack(id).await
    }

    /// Sends a lifecycle report without waiting for its ack; returns its
    /// request id, for [`BridgeClient::ack`].
    pub fn send_report(&mut self, kind: pb::bridge_message::Kind) -> u64 {
        self.next_request += 1;
        let id = self.next_request;
        self.outbound
            .send(pb::BridgeMessage {
                request_id: id,
                kind: Some(kind),
            })
            .expect("the request stream is open");
        id
    }

    /// The ack of request `id`.
    pub async fn ack(&mut self, id: u64) -> pb::Ack {
        let message = self
            .inbox
            .wait_for(
                "an ack",
                |m| matches!(&m.kind, Some(Instruction::Ack(ack)) if ack.request_id == id),
            )
            .await;
        let Some(Instruction::Ack(ack)) = message.kind else {
            unreachable!("matched an ack")
        };
        ack
    }

    /// Waits for an instruction matching `wanted`.
    pub async fn instruction(
        &mut self,
        what: &str,
        wanted: impl Fn(&Instruction) -> bool,
    ) -> Instruction {
        let message = self
            .inbox
            .wait_for(what, |m| m.kind.as_ref().is_some_and(&wanted))
            .await;
        message.kind.expect("matched a kind")
    }

    /// Waits for the delivery of `item`.
    pub async fn delivery(&mut self, item: &str) -> pb::DeliverToAgent {
        let kind = self
            .instruction(
                "a delivery",
                |kind| matches!(kind, Instruction::Deliver(d) if d.work_item_id == item),
            )
            .await;
        let Instruction::Deliver(delivery) = kind else {
            unreachable!("matched a delivery")
        };
        delivery
    }

    /// Waits for the instruction to disconnect `item`.
    pub async fn disconnect(&mut self, item: &str) -> pb::Disconnect {
        let kind = self
            .instruction(
                "a disconnect",
                |kind| matches!(kind, Instruction::Disconnect(d) if d.work_item_id == item),
            )
            .await;
        let Instruction::Disconnect(disconnect) = kind else {
            unreachable!("matched a disconnect")
        };
        disconnect
    }
}

/// A submission request with sensible consumer details.
pub fn interaction_request(
    interaction: &str,
    channel: pb::Channel,
    entry_point: &str,
) -> pb::SubmitInteractionRequest {
    pb::SubmitInteractionRequest {
        interaction_id: interaction.into(),
        channel: channel as i32,
        from_address: "sip:jane@consumer.example".into(),
        display_name: "Jane Consumer".into(),
        entry_point: entry_point.into(),
        attributes: [(
            "page_url".to_string(),
            "https://contoso.example/pricing".to_string(),
        )]
        .into(),
        ..Default::default()
    }
}

/// A lifecycle report kind.
pub type Report = pb::bridge_message::Kind;
