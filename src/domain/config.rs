//! The contact centre's configuration: skills, queues with their routing
//! steps, entry points and agents. Supervisors manage it; the store keeps it;
//! the engine routes with it.

use super::{AgentId, Channel, EntryPointAddress, QueueId, SkillName};
use serde::{Deserialize, Serialize};

/// A proficiency from 1 (novice) to 5 (expert).
pub type SkillLevel = u8;

/// A named ability agents can hold, such as `billing` or `lang:fr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skill {
    /// The unique name routing steps and agents refer to.
    pub name: SkillName,
    /// Free text for supervisors.
    pub description: String,
}

/// "This skill at this level or better".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SkillRequirement {
    /// The skill required.
    pub skill: SkillName,
    /// The lowest acceptable proficiency, 1–5.
    pub min_level: SkillLevel,
}

/// One stage of a queue's routing policy: what an agent must have while an
/// item has waited less than the step's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingStep {
    /// Skills an agent needs during this step. Empty means any agent of the queue.
    pub requirements: Vec<SkillRequirement>,
    /// When true, the agent must also hold `lang:<language>` for the item's language.
    pub match_language: bool,
    /// How long the step lasts, measured from the end of the previous one.
    /// `None` means the step lasts for ever; only the last step may say so.
    pub duration_secs: Option<u32>,
}

/// How a queue picks among several agents who could take an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SelectionStrategy {
    /// The agent idle the longest (the default, and the fairest to agents).
    #[default]
    LongestIdle,
    /// Highest total proficiency over the required skills, ties to the longest idle.
    MostSkilled,
    /// Agents in turn, in a fixed circular order.
    RoundRobin,
    /// The agent with the least busy time over the last hour.
    LeastOccupied,
}

impl SelectionStrategy {
    /// The snake-case name used in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SelectionStrategy::LongestIdle => "longest_idle",
            SelectionStrategy::MostSkilled => "most_skilled",
            SelectionStrategy::RoundRobin => "round_robin",
            SelectionStrategy::LeastOccupied => "least_occupied",
        }
    }

    /// Parses a name written by [`SelectionStrategy::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "longest_idle" => Some(SelectionStrategy::LongestIdle),
            "most_skilled" => Some(SelectionStrategy::MostSkilled),
            "round_robin" => Some(SelectionStrategy::RoundRobin),
            "least_occupied" => Some(SelectionStrategy::LeastOccupied),
            _ => None,
        }
    }
}

/// What happens to an item a queue cannot or will not keep waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Disposition {
    /// Refuse the item (only meaningful when the queue is full).
    Reject,
    /// Move the item to another queue, keeping its first arrival time for SLA.
    Overflow {
        /// The queue that takes the item.
        queue: QueueId,
    },
    /// Tell the bridge to send the consumer to voicemail.
    Voicemail,
    /// Tell the bridge to offer the consumer a callback.
    Callback,
    /// Tell the bridge to disconnect, after playing or showing a message.
    Disconnect {
        /// The message to play or show.
        message: String,
    },
}

/// A queue's limits and what happens when one is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct QueueLimits {
    /// Most items that may wait at once; `None` is unlimited.
    pub max_waiting: Option<u32>,
    /// What to do with an arrival beyond `max_waiting` (reject when `None`).
    pub when_full: Option<Disposition>,
    /// Longest an item may wait; `None` is unlimited.
    pub max_wait_secs: Option<u32>,
    /// What to do with an item that waited `max_wait_secs` (disconnect when `None`).
    pub when_max_wait: Option<Disposition>,
    /// What to do at once when no signed-in agent could ever take the item;
    /// `None` keeps it waiting for someone to sign in.
    pub when_no_agents: Option<Disposition>,
}

/// A per-channel service-level threshold, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelThresholds {
    /// Voice threshold (industry default 20 s).
    pub voice: u32,
    /// Chat threshold (commonly 60 s).
    pub chat: u32,
    /// Video threshold (as voice, 20 s).
    pub video: u32,
}

impl ChannelThresholds {
    /// The threshold for one channel.
    pub fn get(&self, channel: Channel) -> u32 {
        match channel {
            Channel::Voice => self.voice,
            Channel::Chat => self.chat,
            Channel::Video => self.video,
        }
    }
}

impl Default for ChannelThresholds {
    fn default() -> Self {
        Self {
            voice: 20,
            chat: 60,
            video: 20,
        }
    }
}

/// A queue of waiting work items sharing one routing policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    /// The queue's unique name.
    pub id: QueueId,
    /// Free text for supervisors.
    pub description: String,
    /// Routing steps in order; an item's step follows from how long it waited.
    pub steps: Vec<RoutingStep>,
    /// How an agent is chosen among several eligible ones.
    pub strategy: SelectionStrategy,
    /// Weight of this queue against others when an agent frees up (higher first).
    pub priority: i32,
    /// Adds +1 to an item's priority for every this many seconds waited; `None` disables aging.
    pub priority_aging_secs: Option<u32>,
    /// Service-level threshold per channel.
    pub sl_thresholds: ChannelThresholds,
    /// Target service level as a fraction (0.8 for "80 % within T"), for dashboards and alerts.
    pub sl_target: f64,
    /// How long an offer alerts before it times out (default 15 s).
    pub offer_timeout_secs: u32,
    /// After-contact work per completed item, holding the agent's capacity.
    pub wrap_up_secs: u32,
    /// Consecutive missed offers before an agent goes NOT_RESPONDING (default 3).
    pub max_no_answer: u32,
    /// How long an agent who declined or missed an item is not offered it again.
    pub reoffer_delay_secs: u32,
    /// Limits and overflow.
    pub limits: QueueLimits,
}

impl Queue {
    /// A queue with the documented defaults and a single "any agent" step.
    pub fn new(id: QueueId) -> Self {
        Self {
            id,
            description: String::new(),
            steps: vec![RoutingStep {
                requirements: Vec::new(),
                match_language: false,
                duration_secs: None,
            }],
            strategy: SelectionStrategy::LongestIdle,
            priority: 0,
            priority_aging_secs: None,
            sl_thresholds: ChannelThresholds::default(),
            sl_target: 0.8,
            offer_timeout_secs: 15,
            wrap_up_secs: 0,
            max_no_answer: 3,
            reoffer_delay_secs: 30,
            limits: QueueLimits::default(),
        }
    }
}

/// A service address mapped to the queue that serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPoint {
    /// The address the consumer dialled or clicked, e.g. `sip:sales@contoso.example`.
    pub address: EntryPointAddress,
    /// The queue arrivals at this address join.
    pub queue: QueueId,
    /// Free text for supervisors.
    pub description: String,
}

/// Formal agents sign in to the ACD; informal agents are routable on presence alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Must sign in and set themselves ready (a contact-centre agent).
    #[default]
    Formal,
    /// Routable whenever their UC presence is AVAILABLE (a Lync Response Group member).
    Informal,
}

impl AgentKind {
    /// The snake-case name used in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Formal => "formal",
            AgentKind::Informal => "informal",
        }
    }
}

/// How many items of each channel an agent may handle at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelCapacity {
    /// Concurrent voice calls (usually 1).
    pub voice: u32,
    /// Concurrent chats (commonly 3).
    pub chat: u32,
    /// Concurrent video sessions (usually 1).
    pub video: u32,
}

impl ChannelCapacity {
    /// The capacity for one channel.
    pub fn get(&self, channel: Channel) -> u32 {
        match channel {
            Channel::Voice => self.voice,
            Channel::Chat => self.chat,
            Channel::Video => self.video,
        }
    }
}

impl Default for ChannelCapacity {
    fn default() -> Self {
        Self {
            voice: 1,
            chat: 3,
            video: 1,
        }
    }
}

/// A person who handles work items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// The agent's unique id (usually the login name).
    pub id: AgentId,
    /// The name shown to supervisors.
    pub display_name: String,
    /// The agent's UC address, where the bridge delivers accepted interactions.
    pub uc_address: String,
    /// Formal or informal.
    pub kind: AgentKind,
    /// Skills held, with proficiency 1–5.
    pub skills: Vec<(SkillName, SkillLevel)>,
    /// Concurrent items per channel.
    pub capacity: ChannelCapacity,
    /// When true, chats may be offered while on a voice or video call; by
    /// default voice and video exclude any other work.
    pub chat_during_calls: bool,
    /// Queues this agent serves.
    pub queues: Vec<QueueId>,
}
