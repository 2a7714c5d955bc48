//! A whole contact centre declared in one YAML or TOML file, for
//! `switchboard apply -f centre.yaml`: skills, queues, entry points and
//! agents, with the defaults of the API for every field left out.
//!
//! Each entry is checked as it is read, with the same rules as the API, so
//! an invalid file is refused with the path of the field at fault and its
//! line, before anything is sent to the server.

use crate::domain::{
    Agent, AgentKind, ChannelCapacity, ChannelThresholds, Disposition, EntryPoint, Queue,
    QueueLimits, RoutingStep, SelectionStrategy, Skill, SkillLevel, SkillName, SkillRequirement,
    Validate,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The centre as declared.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreFile {
    /// Skills agents hold and steps ask for.
    #[serde(default)]
    pub skills: Vec<SkillEntry>,
    /// Queues and their routing.
    #[serde(default)]
    pub queues: Vec<QueueEntry>,
    /// Service addresses and the queue behind each.
    #[serde(default)]
    pub entry_points: Vec<EntryPointEntry>,
    /// Agents, their skills and queues.
    #[serde(default)]
    pub agents: Vec<AgentEntry>,
}

/// Why a centre file was refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file's name says neither YAML nor TOML.
    #[error("{path}: the file name must end in .yaml, .yml or .toml")]
    Format {
        /// The file.
        path: String,
    },
    /// A field is missing, unknown or invalid; the message names the field
    /// and the line.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, where.
        message: String,
    },
}

impl CentreFile {
    /// Reads and checks a centre file, YAML or TOML by its extension.
    pub fn read(path: &Path) -> Result<Self, FileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: shown.clone(),
            source,
        })?;
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let invalid = |message: String| FileError::Invalid {
            path: shown.clone(),
            message,
        };
        match extension {
            "yaml" | "yml" => Self::from_yaml(&text).map_err(invalid),
            "toml" => Self::from_toml(&text).map_err(invalid),
            _ => Err(FileError::Format { path: shown }),
        }
    }

    /// Parses YAML; errors read `queues[1].steps[0].requirements: … at line 9 column 11`.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        serde_yaml_ng::from_str(text).map_err(|error| error.to_string())
    }

    /// Parses TOML; errors give the line and column with the line's text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|error| error.to_string())
    }
}

/// Turns a domain check's error into the message serde reports with its place.
fn checked<T: Validate>(kind: &str, id: &str, value: T) -> Result<T, String> {
    match value.validate() {
        Ok(()) => Ok(value),
        Err(error) => Err(format!("{kind} {id}: {error}")),
    }
}

/// A skill.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "SkillSpec")]
pub struct SkillEntry(pub Skill);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkillSpec {
    name: String,
    #[serde(default)]
    description: String,
}

impl TryFrom<SkillSpec> for SkillEntry {
    type Error = String;

    fn try_from(spec: SkillSpec) -> Result<Self, String> {
        let skill = Skill {
            name: SkillName::new(&spec.name),
            description: spec.description,
        };
        checked("skill", &spec.name, skill).map(SkillEntry)
    }
}

/// A proficiency of 1 to 5, checked where it is written.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "i64")]
struct Level(SkillLevel);

impl TryFrom<i64> for Level {
    type Error = String;

    fn try_from(value: i64) -> Result<Self, String> {
        match u8::try_from(value) {
            Ok(level @ 1..=5) => Ok(Level(level)),
            _ => Err(format!("proficiency must be between 1 and 5, got {value}")),
        }
    }
}

/// A routing step: `requirements` maps each skill to its least proficiency.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    #[serde(default)]
    requirements: BTreeMap<String, Level>,
    #[serde(default)]
    match_language: bool,
    duration_secs: Option<u32>,
}

/// Thresholds per channel; a channel left out keeps its default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdsSpec {
    voice: Option<u32>,
    chat: Option<u32>,
    video: Option<u32>,
}

/// A queue.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "QueueSpec")]
pub struct QueueEntry(pub Queue);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSpec {
    id: String,
    #[serde(default)]
    description: String,
    steps: Option<Vec<StepSpec>>,
    strategy: Option<SelectionStrategy>,
    priority: Option<i32>,
    priority_aging_secs: Option<u32>,
    sl_thresholds: Option<ThresholdsSpec>,
    sl_target: Option<f64>,
    offer_timeout_secs: Option<u32>,
    wrap_up_secs: Option<u32>,
    max_no_answer: Option<u32>,
    reoffer_delay_secs: Option<u32>,
    limits: Option<LimitsSpec>,
}

/// Limits; a disposition is `reject`, `voicemail`, `callback`,
/// `{ overflow: QUEUE }` or `{ disconnect: MESSAGE }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSpec {
    max_waiting: Option<u32>,
    when_full: Option<DispositionSpec>,
    max_wait_secs: Option<u32>,
    when_max_wait: Option<DispositionSpec>,
    when_no_agents: Option<DispositionSpec>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DispositionSpec {
    Word(DispositionWord),
    Overflow { overflow: String },
    Disconnect { disconnect: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DispositionWord {
    Reject,
    Voicemail,
    Callback,
}

impl From<DispositionSpec> for Disposition {
    fn from(spec: DispositionSpec) -> Self {
        match spec {
            DispositionSpec::Word(DispositionWord::Reject) => Disposition::Reject,
            DispositionSpec::Word(DispositionWord::Voicemail) => Disposition::Voicemail,
            DispositionSpec::Word(DispositionWord::Callback) => Disposition::Callback,
            DispositionSpec::Overflow { overflow } => Disposition::Overflow {
                queue: overflow.into(),
            },
            DispositionSpec::Disconnect { disconnect } => Disposition::Disconnect {
                message: disconnect,
            },
        }
    }
}

impl TryFrom<QueueSpec> for QueueEntry {
    type Error = String;

    fn try_from(spec: QueueSpec) -> Result<Self, String> {
        let mut queue = Queue::new(spec.id.as_str().into());
        queue.description = spec.description;
        if let Some(steps) = spec.steps {
            queue.steps = steps
                .into_iter()
                .map(|step| RoutingStep {
                    requirements: step
                        .requirements
                        .into_iter()
                        .map(|(skill, Level(min_level))| SkillRequirement {
                            skill: skill.into(),
                            min_level,
                        })
                        .collect(),
                    match_language: step.match_language,
                    duration_secs: step.duration_secs,
                })
                .collect();
        }
        queue.strategy = spec.strategy.unwrap_or(queue.strategy);
        queue.priority = spec.priority.unwrap_or(queue.priority);
        queue.priority_aging_secs = spec.priority_aging_secs;
        if let Some(thresholds) = spec.sl_thresholds {
            let defaults = ChannelThresholds::default();
            queue.sl_thresholds = ChannelThresholds {
                voice: thresholds.voice.unwrap_or(defaults.voice),
                chat: thresholds.chat.unwrap_or(defaults.chat),
                video: thresholds.video.unwrap_or(defaults.video),
            };
        }
        queue.sl_target = spec.sl_target.unwrap_or(queue.sl_target);
        queue.offer_timeout_secs = spec.offer_timeout_secs.unwrap_or(queue.offer_timeout_secs);
        queue.wrap_up_secs = spec.wrap_up_secs.unwrap_or(queue.wrap_up_secs);
        queue.max_no_answer = spec.max_no_answer.unwrap_or(queue.max_no_answer);
        queue.reoffer_delay_secs = spec.reoffer_delay_secs.unwrap_or(queue.reoffer_delay_secs);
        if let Some(limits) = spec.limits {
            queue.limits = QueueLimits {
                max_waiting: limits.max_waiting,
                when_full: limits.when_full.map(Into::into),
                max_wait_secs: limits.max_wait_secs,
                when_max_wait: limits.when_max_wait.map(Into::into),
                when_no_agents: limits.when_no_agents.map(Into::into),
            };
        }
        checked("queue", &spec.id, queue).map(QueueEntry)
    }
}

/// An entry point.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "EntryPointSpec")]
pub struct EntryPointEntry(pub EntryPoint);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryPointSpec {
    address: String,
    queue: String,
    #[serde(default)]
    description: String,
}

impl TryFrom<EntryPointSpec> for EntryPointEntry {
    type Error = String;

    fn try_from(spec: EntryPointSpec) -> Result<Self, String> {
        let entry = EntryPoint {
            address: spec.address.as_str().into(),
            queue: spec.queue.into(),
            description: spec.description,
        };
        checked("entry point", &spec.address, entry).map(EntryPointEntry)
    }
}

/// Capacity per channel; a channel left out keeps its default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CapacitySpec {
    voice: Option<u32>,
    chat: Option<u32>,
    video: Option<u32>,
}

/// An agent: `skills` maps each skill to the agent's proficiency.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "AgentSpec")]
pub struct AgentEntry(pub Agent);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSpec {
    id: String,
    #[serde(default)]
    display_name: String,
    uc_address: String,
    kind: Option<AgentKind>,
    #[serde(default)]
    skills: BTreeMap<String, Level>,
    capacity: Option<CapacitySpec>,
    #[serde(default)]
    chat_during_calls: bool,
    #[serde(default)]
    queues: Vec<String>,
}

impl TryFrom<AgentSpec> for AgentEntry {
    type Error = String;

    fn try_from(spec: AgentSpec) -> Result<Self, String> {
        let defaults = ChannelCapacity::default();
        let capacity = match spec.capacity {
            None => defaults,
            Some(capacity) => ChannelCapacity {
                voice: capacity.voice.unwrap_or(defaults.voice),
                chat: capacity.chat.unwrap_or(defaults.chat),
                video: capacity.video.unwrap_or(defaults.video),
            },
        };
        let agent = Agent {
            id: spec.id.as_str().into(),
            display_name: spec.display_name,
            uc_address: spec.uc_address,
            kind: spec.kind.unwrap_or_default(),
            skills: spec
                .skills
                .into_iter()
                .map(|(skill, Level(level))| (skill.into(), level))
                .collect(),
            capacity,
            chat_during_calls: spec.chat_during_calls,
            queues: spec.queues.into_iter().map(Into::into).collect(),
        };
        checked("agent", &spec.id, agent).map(AgentEntry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CENTRE: &str = "\
skills:
  - name: billing
  - name: lang:fr
    description: French
queues:
  - id: support
    steps:
      - requirements: { billing: 4 }
        duration_secs: 30
      - requirements: { billing: 2 }
    sl_thresholds: { chat: 90 }
    wrap_up_secs: 10
    limits:
      max_waiting: 50
      when_full: { overflow: sales }
  - id: sales
entry_points:
  - address: sip:support@contoso.example
    queue: support
agents:
  - id: alice
    uc_address: sip:alice@contoso.example
    skills: { billing: 5, lang:fr: 3 }
    capacity: { chat: 3 }
    queues: [support, sales]
";

    #[test]
    fn a_centre_reads_with_the_api_defaults() {
        let centre = CentreFile::from_yaml(CENTRE).unwrap();
        assert_eq!(centre.skills.len(), 2);
        let support = &centre.queues[0].0;
        assert_eq!(support.steps.len(), 2);
        assert_eq!(support.steps[0].requirements[0].min_level, 4);
        assert_eq!(support.sl_thresholds.chat, 90);
        assert_eq!(support.sl_thresholds.voice, 20, "a default kept");
        assert_eq!(
            support.limits.when_full,
            Some(Disposition::Overflow {
                queue: "sales".into()
            })
        );
        assert_eq!(centre.queues[1].0, Queue::new("sales".into()));
        let alice = &centre.agents[0].0;
        assert_eq!(alice.capacity.chat, 3);
        assert_eq!(alice.capacity.voice, 1);
        assert_eq!(alice.kind, AgentKind::Formal);
    }

    #[test]
    fn a_bad_proficiency_is_refused_with_its_field_and_line() {
        let text = CENTRE.replace("billing: 2", "billing: 7");
        let error = CentreFile::from_yaml(&text).unwrap_err();
        assert!(
            error.contains("queues[0].steps[1].requirements")
                && error.contains("between 1 and 5, got 7")
                && error.contains("line 10 "),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_line() {
        let text = CENTRE.replace("wrap_up_secs: 10", "wrapup_secs: 10");
        let error = CentreFile::from_yaml(&text).unwrap_err();
        assert!(
            error.contains("unknown field `wrapup_secs`") && error.contains("line 12 "),
            "{error}"
        );
    }

    #[test]
    fn a_rule_of_the_api_is_checked_on_reading() {
        let text = CENTRE.replace("sl_thresholds: { chat: 90 }", "sl_target: 1.5");
        let error = CentreFile::from_yaml(&text).unwrap_err();
        assert!(
            error.contains("queue support: sl_target") && error.contains("line 6"),
            "{error}"
        );
    }

    #[test]
    fn toml_reads_the_same_centre() {
        let text = r#"
[[skills]]
name = "billing"

[[queues]]
id = "support"
steps = [{ requirements = { billing = 4 } }]

[[agents]]
id = "alice"
uc_address = "sip:alice@contoso.example"
skills = { billing = 9 }
"#;
        let error = CentreFile::from_toml(text).unwrap_err();
        assert!(
            error.contains("line 12") && error.contains("between 1 and 5, got 9"),
            "{error}"
        );
        let fixed = CentreFile::from_toml(&text.replace("9 }", "3 }")).unwrap();
        assert_eq!(fixed.queues[0].0.steps[0].requirements.len(), 1);
        assert_eq!(fixed.agents[0].0.skills.len(), 1);
    }
}
