//! Conversions between proto messages and domain types. Incoming messages are
//! checked field by field here; errors name the field's path.

use crate::domain::{
    Agent, AgentKind, Channel, ChannelCapacity, ChannelThresholds, Disposition, EntryPoint,
    Presence, Queue, QueueLimits, RoutingState, RoutingStep, SelectionStrategy, Skill,
    SkillRequirement, Timestamp, Validate, WorkItemId,
};
use crate::error::{Error, Result};
use crate::live::{AgentStats, QueueStats};
use crate::proto::v1 as pb;
use crate::store::report::{IntervalRow, ReportInterval, ReportRange};

/// Reads a count or duration field that must not be negative.
fn non_negative(field: &str, value: i32) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| Error::invalid(field, format!("must not be negative, got {value}")))
}

/// Reads a proficiency field: 1 to 5.
fn level(field: &str, value: i32) -> Result<u8> {
    match u8::try_from(value) {
        Ok(level @ 1..=5) => Ok(level),
        _ => Err(Error::invalid(
            field,
            format!("proficiency must be between 1 and 5, got {value}"),
        )),
    }
}

/// Reads a work-item id field.
pub fn work_item_id(field: &str, value: &str) -> Result<WorkItemId> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    uuid::Uuid::parse_str(value)
        .map(WorkItemId)
        .map_err(|_| Error::invalid(field, format!("{value:?} is not a work item id")))
}

/// A duration as a protobuf `Duration`.
pub fn duration(value: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(value).unwrap_or_default()
}

/// A timestamp as a protobuf `Timestamp`.
pub fn timestamp(value: Timestamp) -> prost_types::Timestamp {
    let millis = value.millis();
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: i32::try_from(millis.rem_euclid(1000) * 1_000_000).unwrap_or_default(),
    }
}

/// Reads a required timestamp field.
fn required_timestamp(field: &str, value: Option<&prost_types::Timestamp>) -> Result<Timestamp> {
    let Some(value) = value else {
        return Err(Error::invalid(field, "is required"));
    };
    let millis = value
        .seconds
        .checked_mul(1000)
        .and_then(|millis| millis.checked_add(i64::from(value.nanos / 1_000_000)));
    match millis {
        Some(millis) if (0..=MAX_REPORT_TIME).contains(&millis) => {
            Ok(Timestamp::from_millis(millis))
        }
        _ => Err(Error::invalid(field, "must be between 1970 and 9999")),
    }
}

/// The last millisecond of the year 9999, the latest time a report may name.
const MAX_REPORT_TIME: i64 = 253_402_300_799_999;

/// The most intervals one report may cover (a year of hours, or 104 days of
/// quarter hours), so a typo cannot make the database scan for ever.
pub const MAX_REPORT_INTERVALS: i64 = 10_000;

/// Reads an interval report request.
pub fn report_range(request: &pb::GetIntervalReportRequest) -> Result<ReportRange> {
    let from = required_timestamp("from", request.from.as_ref())?;
    let to = required_timestamp("to", request.to.as_ref())?;
    if to <= from {
        return Err(Error::invalid("to", "must be after from"));
    }
    let interval = match pb::ReportInterval::try_from(request.interval) {
        Ok(pb::ReportInterval::ReportInterval15Minutes) => ReportInterval::Minutes15,
        Ok(pb::ReportInterval::ReportInterval30Minutes) => ReportInterval::Minutes30,
        Ok(pb::ReportInterval::ReportInterval60Minutes) => ReportInterval::Minutes60,
        Ok(pb::ReportInterval::Day) => ReportInterval::Day,
        Ok(pb::ReportInterval::Unspecified) | Err(_) => {
            return Err(Error::invalid(
                "interval",
                format!(
                    "must be 15, 30 or 60 minutes or a day, got {}",
                    request.interval
                ),
            ));
        }
    };
    let length = interval.millis();
    let intervals = (to.millis() - from.millis() + length - 1) / length;
    if intervals > MAX_REPORT_INTERVALS {
        return Err(Error::invalid(
            "to",
            format!(
                "the range holds {intervals} intervals, at most {MAX_REPORT_INTERVALS} are allowed"
            ),
        ));
    }
    let mut queues = Vec::with_capacity(request.queue_ids.len());
    for (i, queue) in request.queue_ids.iter().enumerate() {
        if queue.is_empty() {
            return Err(Error::invalid(
                format!("queue_ids[{i}]"),
                "must not be empty",
            ));
        }
        queues.push(queue.as_str().into());
    }
    Ok(ReportRange {
        from,
        to,
        interval,
        queues,
    })
}

/// A report row as its proto message.
pub fn interval_row(row: &IntervalRow) -> pb::IntervalRow {
    pb::IntervalRow {
        start: Some(timestamp(row.start)),
        queue: row.queue.to_string(),
        channel: channel_to_proto(row.channel).into(),
        offered: row.offered,
        answered: row.answered,
        abandoned: row.abandoned,
        short_abandons: row.short_abandons,
        answered_within_threshold: row.answered_within,
        abandoned_within_threshold: row.abandoned_within,
        service_level: row.service_level(),
        service_level_answered: row.service_level_answered(),
        service_level_sl2: row.service_level_sl2(),
        service_level_removed: row.service_level_removed(),
        asa: Some(duration(row.asa())),
        aht: Some(duration(row.aht())),
        max_wait: Some(duration(row.max_wait)),
        occupancy: row.occupancy(),
        overflowed_out: row.overflowed_out,
        transfers: row.transfers,
    }
}

/// A routing state as its proto enum value, with the not-ready reason apart.
pub fn routing_state(state: &RoutingState) -> (pb::RoutingState, String) {
    match state {
        RoutingState::LoggedOut => (pb::RoutingState::LoggedOut, String::new()),
        RoutingState::NotReady { reason } => (pb::RoutingState::NotReady, reason.clone()),
        RoutingState::Ready => (pb::RoutingState::Ready, String::new()),
        RoutingState::Reserved => (pb::RoutingState::Reserved, String::new()),
        RoutingState::Busy => (pb::RoutingState::Busy, String::new()),
        RoutingState::WrapUp => (pb::RoutingState::WrapUp, String::new()),
        RoutingState::NotResponding => (pb::RoutingState::NotResponding, String::new()),
    }
}

/// A channel as its proto enum value.
pub fn channel_to_proto(channel: Channel) -> pb::Channel {
    match channel {
        Channel::Voice => pb::Channel::Voice,
        Channel::Chat => pb::Channel::Chat,
        Channel::Video => pb::Channel::Video,
    }
}

/// Reads a required channel.
pub fn channel(field: &str, value: i32) -> Result<Channel> {
    match pb::Channel::try_from(value) {
        Ok(pb::Channel::Voice) => Ok(Channel::Voice),
        Ok(pb::Channel::Chat) => Ok(Channel::Chat),
        Ok(pb::Channel::Video) => Ok(Channel::Video),
        Ok(pb::Channel::Unspecified) => Err(Error::invalid(field, "is required")),
        Err(_) => Err(Error::invalid(field, format!("unknown channel {value}"))),
    }
}

/// Reads a required sub-message.
pub fn required<'a, T>(field: &str, value: &'a Option<T>) -> Result<&'a T> {
    value
        .as_ref()
        .ok_or_else(|| Error::invalid(field, "is required"))
}

/// Reads skill requirements.
pub fn requirements(field: &str, list: &[pb::SkillRequirement]) -> Result<Vec<SkillRequirement>> {
    let mut out = Vec::with_capacity(list.len());
    for (i, requirement) in list.iter().enumerate() {
        out.push(SkillRequirement {
            skill: requirement.skill.as_str().into(),
            min_level: level(&format!("{field}[{i}].min_level"), requirement.min_level)?,
        });
    }
    Ok(out)
}

/// Proto skill → domain skill, validated.
pub fn skill_from_proto(skill: &pb::Skill) -> Result<Skill> {
    let skill = Skill {
        name: skill.name.as_str().into(),
        description: skill.description.clone(),
    };
    skill.validate()?;
    Ok(skill)
}

/// Domain skill → proto skill.
pub fn skill_to_proto(skill: Skill) -> pb::Skill {
    pb::Skill {
        name: skill.name.to_string(),
        description: skill.description,
    }
}

/// Reads an optional disposition.
fn disposition_from_proto(
    field: &str,
    disposition: &Option<pb::Disposition>,
) -> Result<Option<Disposition>> {
    let Some(disposition) = disposition else {
        return Ok(None);
    };
    let Some(kind) = &disposition.kind else {
        return Err(Error::invalid(field, "a disposition needs a kind"));
    };
    let disposition = match kind {
        pb::disposition::Kind::Reject(_) => Disposition::Reject,
        pb::disposition::Kind::OverflowQueue(queue) => Disposition::Overflow {
            queue: queue.as_str().into(),
        },
        pb::disposition::Kind::Voicemail(_) => Disposition::Voicemail,
        pb::disposition::Kind::Callback(_) => Disposition::Callback,
        pb::disposition::Kind::DisconnectMessage(message) => Disposition::Disconnect {
            message: message.clone(),
        },
    };
    Ok(Some(disposition))
}

/// Writes an optional disposition.
fn disposition_to_proto(disposition: Option<Disposition>) -> Option<pb::Disposition> {
    let kind = match disposition? {
        Disposition::Reject => pb::disposition::Kind::Reject(pb::disposition::Reject {}),
        Disposition::Overflow { queue } => pb::disposition::Kind::OverflowQueue(queue.to_string()),
        Disposition::Voicemail => pb::disposition::Kind::Voicemail(pb::disposition::Voicemail {}),
        Disposition::Callback => pb::disposition::Kind::Callback(pb::disposition::Callback {}),
        Disposition::Disconnect { message } => pb::disposition::Kind::DisconnectMessage(message),
    };
    Some(pb::Disposition { kind: Some(kind) })
}

/// Reads an optional field with a default, refusing negative values.
fn optional_non_negative(field: &str, value: Option<i32>, default: u32) -> Result<u32> {
    match value {
        Some(value) => non_negative(field, value),
        None => Ok(default),
    }
}

/// Proto queue → domain queue, with documented defaults for absent fields, validated.
pub fn queue_from_proto(queue: &pb::Queue) -> Result<Queue> {
    let defaults = Queue::new(queue.id.as_str().into());
    let mut steps = Vec::with_capacity(queue.steps.len());
    for (i, step) in queue.steps.iter().enumerate() {
        steps.push(RoutingStep {
            requirements: requirements(&format!("steps[{i}].requirements"), &step.requirements)?,
            match_language: step.match_language,
            duration_secs: step
                .duration_secs
                .map(|secs| non_negative(&format!("steps[{i}].duration_secs"), secs))
                .transpose()?,
        });
    }
    if steps.is_empty() {
        steps = defaults.steps.clone();
    }
    let sl_thresholds = match &queue.sl_thresholds {
        Some(t) => ChannelThresholds {
            voice: non_negative("sl_thresholds.voice", t.voice)?,
            chat: non_negative("sl_thresholds.chat", t.chat)?,
            video: non_negative("sl_thresholds.video", t.video)?,
        },
        None => defaults.sl_thresholds,
    };
    let strategy = match pb::SelectionStrategy::try_from(queue.strategy) {
        Ok(pb::SelectionStrategy::Unspecified | pb::SelectionStrategy::LongestIdle) => {
            SelectionStrategy::LongestIdle
        }
        Ok(pb::SelectionStrategy::MostSkilled) => SelectionStrategy::MostSkilled,
        Ok(pb::SelectionStrategy::RoundRobin) => SelectionStrategy::RoundRobin,
        Ok(pb::SelectionStrategy::LeastOccupied) => SelectionStrategy::LeastOccupied,
        Err(_) => {
            return Err(Error::invalid(
                "strategy",
                format!("unknown strategy {}", queue.strategy),
            ));
        }
    };
    let limits = match &queue.limits {
        Some(limits) => QueueLimits {
            max_waiting: limits
                .max_waiting
                .map(|n| non_negative("limits.max_waiting", n))
                .transpose()?,
            when_full: disposition_from_proto("limits.when_full", &limits.when_full)?,
            max_wait_secs: limits
                .max_wait_secs
                .map(|n| non_negative("limits.max_wait_secs", n))
                .transpose()?,
            when_max_wait: disposition_from_proto("limits.when_max_wait", &limits.when_max_wait)?,
            when_no_agents: disposition_from_proto(
                "limits.when_no_agents",
                &limits.when_no_agents,
            )?,
        },
        None => QueueLimits::default(),
    };
    let domain = Queue {
        id: defaults.id.clone(),
        description: queue.description.clone(),
        steps,
        strategy,
        priority: queue.priority,
        priority_aging_secs: queue
            .priority_aging_secs
            .map(|secs| non_negative("priority_aging_secs", secs))
            .transpose()?,
        sl_thresholds,
        sl_target: queue.sl_target.unwrap_or(defaults.sl_target),
        offer_timeout_secs: optional_non_negative(
            "offer_timeout_secs",
            queue.offer_timeout_secs,
            defaults.offer_timeout_secs,
        )?,
        wrap_up_secs: non_negative("wrap_up_secs", queue.wrap_up_secs)?,
        max_no_answer: optional_non_negative(
            "max_no_answer",
            queue.max_no_answer,
            defaults.max_no_answer,
        )?,
        reoffer_delay_secs: optional_non_negative(
            "reoffer_delay_secs",
            queue.reoffer_delay_secs,
            defaults.reoffer_delay_secs,
        )?,
        limits,
    };
    domain.validate()?;
    Ok(domain)
}

/// Converts a stored count back to a proto `int32`.
fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Domain queue → proto queue.
pub fn queue_to_proto(queue: Queue) -> pb::Queue {
    let mut steps = Vec::with_capacity(queue.steps.len());
    for step in queue.steps {
        steps.push(pb::RoutingStep {
            requirements: requirements_to_proto(step.requirements),
            match_language: step.match_language,
            duration_secs: step.duration_secs.map(to_i32),
        });
    }
    let strategy = match queue.strategy {
        SelectionStrategy::LongestIdle => pb::SelectionStrategy::LongestIdle,
        SelectionStrategy::MostSkilled => pb::SelectionStrategy::MostSkilled,
        SelectionStrategy::RoundRobin => pb::SelectionStrategy::RoundRobin,
        SelectionStrategy::LeastOccupied => pb::SelectionStrategy::LeastOccupied,
    };
    pb::Queue {
        id: queue.id.to_string(),
        description: queue.description,
        steps,
        strategy: strategy as i32,
        priority: queue.priority,
        priority_aging_secs: queue.priority_aging_secs.map(to_i32),
        sl_thresholds: Some(pb::ChannelThresholds {
            voice: to_i32(queue.sl_thresholds.voice),
            chat: to_i32(queue.sl_thresholds.chat),
            video: to_i32(queue.sl_thresholds.video),
        }),
        sl_target: Some(queue.sl_target),
        offer_timeout_secs: Some(to_i32(queue.offer_timeout_secs)),
        wrap_up_secs: to_i32(queue.wrap_up_secs),
        max_no_answer: Some(to_i32(queue.max_no_answer)),
        reoffer_delay_secs: Some(to_i32(queue.reoffer_delay_secs)),
        limits: Some(pb::QueueLimits {
            max_waiting: queue.limits.max_waiting.map(to_i32),
            when_full: disposition_to_proto(queue.limits.when_full),
            max_wait_secs: queue.limits.max_wait_secs.map(to_i32),
            when_max_wait: disposition_to_proto(queue.limits.when_max_wait),
            when_no_agents: disposition_to_proto(queue.limits.when_no_agents),
        }),
    }
}

/// Domain requirements → proto requirements.
pub fn requirements_to_proto(list: Vec<SkillRequirement>) -> Vec<pb::SkillRequirement> {
    let mut out = Vec::with_capacity(list.len());
    for requirement in list {
        out.push(pb::SkillRequirement {
            skill: requirement.skill.to_string(),
            min_level: i32::from(requirement.min_level),
        });
    }
    out
}

/// Proto entry point → domain entry point, validated.
pub fn entry_point_from_proto(entry_point: &pb::EntryPoint) -> Result<EntryPoint> {
    let domain = EntryPoint {
        address: entry_point.address.as_str().into(),
        queue: entry_point.queue.as_str().into(),
        description: entry_point.description.clone(),
    };
    domain.validate()?;
    Ok(domain)
}

/// Domain entry point → proto entry point.
pub fn entry_point_to_proto(entry_point: EntryPoint) -> pb::EntryPoint {
    pb::EntryPoint {
        address: entry_point.address.to_string(),
        queue: entry_point.queue.to_string(),
        description: entry_point.description,
    }
}

/// Proto agent → domain agent, with documented defaults, validated.
pub fn agent_from_proto(agent: &pb::Agent) -> Result<Agent> {
    let mut skills = Vec::with_capacity(agent.skills.len());
    for (i, skill) in agent.skills.iter().enumerate() {
        skills.push((
            skill.skill.as_str().into(),
            level(&format!("skills[{i}].level"), skill.level)?,
        ));
    }
    let capacity = match &agent.capacity {
        Some(c) => ChannelCapacity {
            voice: non_negative("capacity.voice", c.voice)?,
            chat: non_negative("capacity.chat", c.chat)?,
            video: non_negative("capacity.video", c.video)?,
        },
        None => ChannelCapacity::default(),
    };
    let kind = match pb::AgentKind::try_from(agent.kind) {
        Ok(pb::AgentKind::Unspecified | pb::AgentKind::Formal) => AgentKind::Formal,
        Ok(pb::AgentKind::Informal) => AgentKind::Informal,
        Err(_) => {
            return Err(Error::invalid(
                "kind",
                format!("unknown agent kind {}", agent.kind),
            ));
        }
    };
    let mut queues = Vec::with_capacity(agent.queues.len());
    for queue in &agent.queues {
        queues.push(queue.as_str().into());
    }
    let domain = Agent {
        id: agent.id.as_str().into(),
        display_name: agent.display_name.clone(),
        uc_address: agent.uc_address.clone(),
        kind,
        skills,
        capacity,
        chat_during_calls: agent.chat_during_calls,
        queues,
    };
    domain.validate()?;
    Ok(domain)
}

/// Domain agent → proto agent.
pub fn agent_to_proto(agent: Agent) -> pb::Agent {
    let mut skills = Vec::with_capacity(agent.skills.len());
    for (skill, level) in agent.skills {
        skills.push(pb::AgentSkill {
            skill: skill.to_string(),
            level: i32::from(level),
        });
    }
    let kind = match agent.kind {
        AgentKind::Formal => pb::AgentKind::Formal,
        AgentKind::Informal => pb::AgentKind::Informal,
    };
    pb::Agent {
        id: agent.id.to_string(),
        display_name: agent.display_name,
        uc_address: agent.uc_address,
        kind: kind as i32,
        skills,
        capacity: Some(pb::ChannelCapacity {
            voice: to_i32(agent.capacity.voice),
            chat: to_i32(agent.capacity.chat),
            video: to_i32(agent.capacity.video),
        }),
        chat_during_calls: agent.chat_during_calls,
        queues: agent.queues.iter().map(ToString::to_string).collect(),
    }
}

/// A presence from its proto enum value; UNSPECIFIED is refused.
pub fn presence_from_proto(field: &str, value: i32) -> Result<Presence> {
    match pb::Presence::try_from(value) {
        Ok(pb::Presence::Available) => Ok(Presence::Available),
        Ok(pb::Presence::Busy) => Ok(Presence::Busy),
        Ok(pb::Presence::DoNotDisturb) => Ok(Presence::DoNotDisturb),
        Ok(pb::Presence::BeRightBack) => Ok(Presence::BeRightBack),
        Ok(pb::Presence::Away) => Ok(Presence::Away),
        Ok(pb::Presence::OffWork) => Ok(Presence::OffWork),
        Ok(pb::Presence::Offline) => Ok(Presence::Offline),
        Ok(pb::Presence::Unspecified) => Err(Error::invalid(field, "is required")),
        Err(_) => Err(Error::invalid(field, format!("unknown presence {value}"))),
    }
}

/// A presence as its proto enum value.
pub fn presence_to_proto(presence: Presence) -> pb::Presence {
    match presence {
        Presence::Available => pb::Presence::Available,
        Presence::Busy => pb::Presence::Busy,
        Presence::DoNotDisturb => pb::Presence::DoNotDisturb,
        Presence::BeRightBack => pb::Presence::BeRightBack,
        Presence::Away => pb::Presence::Away,
        Presence::OffWork => pb::Presence::OffWork,
        Presence::Offline => pb::Presence::Offline,
    }
}

/// A queue's real-time figures.
pub fn queue_stats_to_proto(stats: &QueueStats) -> pb::QueueStats {
    pb::QueueStats {
        queue: stats.queue.to_string(),
        channel: channel_to_proto(stats.channel).into(),
        waiting: stats.waiting,
        longest_wait: stats.longest_wait.map(duration),
        estimated_wait: stats.estimated_wait.map(duration),
        agents_signed_in: stats.staff.signed_in,
        agents_ready: stats.staff.ready,
        agents_reserved: stats.staff.reserved,
        agents_busy: stats.staff.busy,
        agents_wrap_up: stats.staff.wrap_up,
        agents_not_ready: stats.staff.not_ready.clone().into_iter().collect(),
        offered_today: stats.offered_today,
        answered_today: stats.answered_today,
        abandoned_today: stats.abandoned_today,
        service_level_today: stats.service_level_today,
        service_level_15m: stats.service_level_15m,
    }
}

/// An agent's real-time figures.
pub fn agent_stats_to_proto(stats: &AgentStats) -> pb::AgentStats {
    let (state, reason) = routing_state(&stats.state);
    pb::AgentStats {
        agent_id: stats.agent.to_string(),
        state: state.into(),
        reason,
        since: Some(timestamp(stats.since)),
        presence: presence_to_proto(stats.presence).into(),
        current_work_item_ids: stats.current.iter().map(ToString::to_string).collect(),
        handled_today: stats.handled_today,
        occupancy: stats.occupancy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_without_optional_fields_gets_the_documented_defaults() {
        let queue = queue_from_proto(&pb::Queue {
            id: "sales".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(queue, Queue::new("sales".into()));
    }

    #[test]
    fn a_negative_threshold_names_its_field() {
        let err = queue_from_proto(&pb::Queue {
            id: "sales".into(),
            sl_thresholds: Some(pb::ChannelThresholds {
                voice: -1,
                chat: 60,
                video: 20,
            }),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            err,
            Error::invalid("sl_thresholds.voice", "must not be negative, got -1")
        );
    }

    #[test]
    fn a_queue_round_trips_through_proto() {
        let mut queue = Queue::new("support".into());
        queue.steps = vec![
            RoutingStep {
                requirements: vec![SkillRequirement {
                    skill: "billing".into(),
                    min_level: 4,
                }],
                match_language: true,
                duration_secs: Some(30),
            },
            RoutingStep {
                requirements: Vec::new(),
                match_language: false,
                duration_secs: None,
            },
        ];
        queue.limits.when_max_wait = Some(Disposition::Overflow {
            queue: "overflow".into(),
        });
        queue.limits.max_wait_secs = Some(600);
        assert_eq!(
            queue_from_proto(&queue_to_proto(queue.clone())).unwrap(),
            queue
        );
    }
}
