//! Domain types shared by every layer: ids, channels, presence, and the
//! configuration of skills, queues, entry points and agents.
//!
//! Nothing here knows about gRPC, SQL or Prometheus. The gRPC adapters convert
//! proto messages into these types, the store persists them, and the routing
//! engine routes with them.

mod config;
mod ids;
mod time;
mod validate;

pub use config::{
    Agent, AgentKind, ChannelCapacity, ChannelThresholds, Disposition, EntryPoint, Queue,
    QueueLimits, RoutingStep, SelectionStrategy, Skill, SkillLevel, SkillRequirement,
};
pub use ids::{AgentId, EntryPointAddress, InteractionId, QueueId, SkillName, WorkItemId};
pub use time::Timestamp;
pub use validate::{Validate, is_address};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Abandons quicker than this are "short": the consumer hung up before
/// anyone could have answered, so the default service level leaves them out.
pub const SHORT_ABANDON: Duration = Duration::from_secs(5);

/// The longest service-level threshold a queue may have: a day. Waits are
/// counted per second up to it, so that a threshold set at any time has an
/// exact bucket in the wait-time histogram.
pub const MAX_SL_THRESHOLD_SECS: u32 = 86_400;

/// The medium of an interaction. Each channel has its own agent capacity and
/// its own service-level threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// A voice call.
    Voice,
    /// A text chat; agents commonly handle several at once.
    Chat,
    /// A video session.
    Video,
}

impl Channel {
    /// Every channel, in a stable order (used to index per-channel arrays).
    pub const ALL: [Channel; 3] = [Channel::Voice, Channel::Chat, Channel::Video];

    /// A dense index for per-channel arrays.
    pub fn index(self) -> usize {
        match self {
            Channel::Voice => 0,
            Channel::Chat => 1,
            Channel::Video => 2,
        }
    }

    /// The lowercase name used in labels, logs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Voice => "voice",
            Channel::Chat => "chat",
            Channel::Video => "video",
        }
    }

    /// Parses the lowercase name written by [`Channel::as_str`].
    pub fn parse(name: &str) -> Option<Channel> {
        match name {
            "voice" => Some(Channel::Voice),
            "chat" => Some(Channel::Chat),
            "video" => Some(Channel::Video),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the agent's unified-communications client says about them (Lync
/// presence states). Only `Available` makes an agent routable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Free to take work.
    Available,
    /// In a call or meeting outside the ACD.
    Busy,
    /// Asked not to be disturbed.
    DoNotDisturb,
    /// Stepped away briefly.
    BeRightBack,
    /// Idle at the client for a while.
    Away,
    /// Outside working hours.
    OffWork,
    /// No client signed in to the UC system.
    Offline,
}

impl Presence {
    /// The snake-case name used in the database and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Available => "available",
            Presence::Busy => "busy",
            Presence::DoNotDisturb => "do_not_disturb",
            Presence::BeRightBack => "be_right_back",
            Presence::Away => "away",
            Presence::OffWork => "off_work",
            Presence::Offline => "offline",
        }
    }
}

/// What the ACD says of an agent. An agent handling several chats is `Busy`
/// while any item is connected, `WrapUp` while only wrap-up holds capacity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingState {
    /// Not signed in to the ACD.
    LoggedOut,
    /// Signed in but not taking work, with the reason the agent gave.
    NotReady {
        /// The agent's reason code, e.g. `lunch` or `training`.
        reason: String,
    },
    /// Signed in and waiting for work.
    Ready,
    /// An offer is alerting at the agent.
    Reserved,
    /// Connected to at least one work item.
    Busy,
    /// Doing after-contact work.
    WrapUp,
    /// Missed too many offers in a row; no offers until they set themselves ready.
    NotResponding,
}

impl RoutingState {
    /// The snake-case name used in the database, labels and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            RoutingState::LoggedOut => "logged_out",
            RoutingState::NotReady { .. } => "not_ready",
            RoutingState::Ready => "ready",
            RoutingState::Reserved => "reserved",
            RoutingState::Busy => "busy",
            RoutingState::WrapUp => "wrap_up",
            RoutingState::NotResponding => "not_responding",
        }
    }
}
