//! An agent's routing state inside the engine: interned skills and queues,
//! readiness, presence, load per channel, wrap-ups and the busy log used by
//! the least-occupied strategy.

use super::ix::{ItemIx, QueueIx, SkillIx};
use crate::domain::{
    Agent, AgentId, AgentKind, Channel, Presence, RoutingState, SkillLevel, Timestamp,
};
use std::collections::VecDeque;

/// The window the least-occupied strategy looks back over.
const OCCUPANCY_WINDOW_MS: i64 = 3_600_000;

/// What the agent (or a supervisor) last said about taking work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Wants work.
    Ready,
    /// Does not want work, for this reason.
    NotReady(String),
    /// Missed too many offers; no work until they set themselves ready.
    NotResponding,
}

/// After-contact work holding one unit of capacity on a channel.
#[derive(Debug, Clone)]
pub(crate) struct WrapUp {
    /// Tells this wrap-up's timer apart from later ones.
    pub(crate) id: u64,
    /// The channel whose capacity it holds.
    pub(crate) channel: Channel,
    /// The queue of the completed item, for the wrap-up-ended effect.
    pub(crate) queue: QueueIx,
    /// The completed item, for the wrap-up-ended effect.
    pub(crate) item: crate::domain::WorkItemId,
}

/// Busy spans over the last hour, for the least-occupied strategy.
#[derive(Debug, Default)]
pub(crate) struct BusyLog {
    /// Start of the current busy span, if the agent is busy now.
    since: Option<Timestamp>,
    /// Closed spans that may still overlap the window.
    spans: VecDeque<(Timestamp, Timestamp)>,
}

impl BusyLog {
    /// Opens or closes the current span when the agent starts or stops being busy.
    pub(crate) fn update(&mut self, busy: bool, now: Timestamp) {
        match (busy, self.since) {
            // Work picked up the moment the last ended continues that span,
            // so back-to-back work does not grow the log.
            (true, None) if self.spans.back().is_some_and(|span| span.1 == now) => {
                self.since = self.spans.pop_back().map(|span| span.0);
            }
            (true, None) => self.since = Some(now),
            (false, Some(start)) => {
                self.since = None;
                self.spans.push_back((start, now));
                let horizon = now.millis() - OCCUPANCY_WINDOW_MS;
                while self
                    .spans
                    .front()
                    .is_some_and(|span| span.1.millis() < horizon)
                {
                    self.spans.pop_front();
                }
            }
            _ => {}
        }
    }

    /// Milliseconds busy over the hour before `now`.
    pub(crate) fn last_hour(&self, now: Timestamp) -> i64 {
        let horizon = now.millis() - OCCUPANCY_WINDOW_MS;
        let mut total = 0;
        for (start, end) in &self.spans {
            total += (end.millis() - start.millis().max(horizon)).max(0);
        }
        if let Some(start) = self.since {
            total += now.millis() - start.millis().max(horizon);
        }
        total
    }
}

/// One agent as the engine sees it.
#[derive(Debug)]
pub(crate) struct AgentSlot {
    /// The agent's id, kept after removal for the logged-out effect.
    pub(crate) id: AgentId,
    /// The configuration; `None` once the agent is removed (the slot is kept
    /// so the id maps to the same index if the agent comes back).
    pub(crate) config: Option<Agent>,
    /// Skills held, sorted by skill index for binary search.
    pub(crate) skills: Vec<(SkillIx, SkillLevel)>,
    /// Queues served, interned.
    pub(crate) queues: Vec<QueueIx>,
    /// Whether a formal agent is signed in to the ACD.
    pub(crate) signed_in: bool,
    /// Ready, not ready or not responding.
    pub(crate) intent: Intent,
    /// The UC presence last reported.
    pub(crate) presence: Presence,
    /// Items offered to the agent and not yet answered.
    pub(crate) offers: Vec<ItemIx>,
    /// Items the agent is connected to.
    pub(crate) connected: Vec<ItemIx>,
    /// After-contact work in progress.
    pub(crate) wrap_ups: Vec<WrapUp>,
    /// Offers, connected items and wrap-ups per channel: the capacity in use.
    pub(crate) load: [u32; 3],
    /// When the agent last freed capacity or became routable; longest idle goes first.
    pub(crate) idle_since: Timestamp,
    /// Consecutive offers that timed out.
    pub(crate) missed: u32,
    /// Whether the agent was routable at the last refresh (to restart idle time).
    pub(crate) routable: bool,
    /// The routing state last published in an effect.
    pub(crate) published: RoutingState,
    /// The idle-since key under which the agent sits in its queues' free sets, per channel.
    pub(crate) indexed: [Option<Timestamp>; 3],
    /// Whether the agent waits in [`super::Engine`]'s re-index list.
    pub(crate) reindex: bool,
    /// Per channel, whether the agent counts in its queues' `staffed`.
    pub(crate) staffing: [bool; 3],
    /// Busy spans, for the least-occupied strategy.
    pub(crate) busy: BusyLog,
}

impl AgentSlot {
    /// A signed-out, offline agent with no work.
    pub(crate) fn new(id: AgentId, now: Timestamp) -> Self {
        Self {
            id,
            config: None,
            skills: Vec::new(),
            queues: Vec::new(),
            signed_in: false,
            intent: Intent::Ready,
            presence: Presence::Offline,
            offers: Vec::new(),
            connected: Vec::new(),
            wrap_ups: Vec::new(),
            load: [0; 3],
            idle_since: now,
            missed: 0,
            routable: false,
            published: RoutingState::LoggedOut,
            indexed: [None; 3],
            reindex: false,
            staffing: [false; 3],
            busy: BusyLog::default(),
        }
    }

    /// The agent's proficiency in a skill, if held.
    pub(crate) fn level(&self, skill: SkillIx) -> Option<SkillLevel> {
        let found = self
            .skills
            .binary_search_by_key(&skill, |held| held.0)
            .ok()?;
        Some(self.skills[found].1)
    }

    /// True when the agent holds every skill at or above the level required.
    pub(crate) fn meets(&self, requirements: &[(SkillIx, SkillLevel)]) -> bool {
        for (skill, min_level) in requirements {
            match self.level(*skill) {
                Some(level) if level >= *min_level => {}
                _ => return false,
            }
        }
        true
    }

    /// Total proficiency over the required skills, for the most-skilled strategy.
    pub(crate) fn proficiency(&self, requirements: &[(SkillIx, SkillLevel)]) -> u32 {
        let mut total = 0;
        for (skill, _) in requirements {
            total += u32::from(self.level(*skill).unwrap_or(0));
        }
        total
    }

    /// Signed in to the ACD (formal) or present in the UC system (informal).
    pub(crate) fn logged_in(&self) -> bool {
        match &self.config {
            None => false,
            Some(config) => match config.kind {
                AgentKind::Formal => self.signed_in,
                AgentKind::Informal => self.presence != Presence::Offline,
            },
        }
    }

    /// Whether the agent takes new work at all: formal agents signed in,
    /// ready and AVAILABLE; informal agents AVAILABLE and not set not-ready
    /// or not responding. Capacity is checked separately, per channel.
    pub(crate) fn wants_work(&self) -> bool {
        let Some(config) = &self.config else {
            return false;
        };
        if self.presence != Presence::Available || self.intent != Intent::Ready {
            return false;
        }
        config.kind == AgentKind::Informal || self.signed_in
    }

    /// Units of capacity free on a channel. Voice and video exclude any other
    /// work unless `chat_during_calls`, which lets chats and calls mix (two
    /// calls never do). Offers in flight and wrap-ups count as load.
    pub(crate) fn free_capacity(&self, channel: Channel) -> u32 {
        let Some(config) = &self.config else {
            return 0;
        };
        let voice = self.load[Channel::Voice.index()];
        let chat = self.load[Channel::Chat.index()];
        let video = self.load[Channel::Video.index()];
        let mixing = config.chat_during_calls;
        let blocked = match channel {
            Channel::Voice => video > 0 || (chat > 0 && !mixing),
            Channel::Video => voice > 0 || (chat > 0 && !mixing),
            Channel::Chat => voice + video > 0 && !mixing,
        };
        if blocked {
            return 0;
        }
        config
            .capacity
            .get(channel)
            .saturating_sub(self.load[channel.index()])
    }

    /// True when the agent is connected to something or wrapping up.
    pub(crate) fn engaged(&self) -> bool {
        !self.connected.is_empty() || !self.wrap_ups.is_empty()
    }

    /// What the agent is doing, before looking at what they said.
    fn activity(&self) -> Option<RoutingState> {
        if !self.logged_in() {
            return Some(RoutingState::LoggedOut);
        }
        if !self.connected.is_empty() {
            return Some(RoutingState::Busy);
        }
        if !self.offers.is_empty() {
            return Some(RoutingState::Reserved);
        }
        if !self.wrap_ups.is_empty() {
            return Some(RoutingState::WrapUp);
        }
        None
    }

    /// Whether `state` is what [`AgentSlot::routing_state`] would return now,
    /// without cloning a not-ready reason (presence updates must stay cheap).
    pub(crate) fn state_is(&self, state: &RoutingState) -> bool {
        if let Some(activity) = self.activity() {
            return activity == *state;
        }
        match (&self.intent, state) {
            (Intent::Ready, RoutingState::Ready) => true,
            (Intent::NotResponding, RoutingState::NotResponding) => true,
            (Intent::NotReady(ours), RoutingState::NotReady { reason }) => ours == reason,
            _ => false,
        }
    }

    /// The routing state: activity (busy, reserved, wrap-up) wins over what
    /// the agent said (ready, not ready, not responding).
    pub(crate) fn routing_state(&self) -> RoutingState {
        if let Some(activity) = self.activity() {
            return activity;
        }
        match &self.intent {
            Intent::Ready => RoutingState::Ready,
            Intent::NotReady(reason) => RoutingState::NotReady {
                reason: reason.clone(),
            },
            Intent::NotResponding => RoutingState::NotResponding,
        }
    }
}
