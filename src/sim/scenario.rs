//! A traffic scenario for `switchboard simulate`, in YAML or TOML: the centre
//! (the same shape as a centre file for `apply`), staff groups with their
//! shifts and habits, arrival streams with a rate per interval, handle-time
//! and patience distributions, and how long and how often to run.
//!
//! Every field is checked as it is read, so an invalid scenario is refused
//! with the path of the field and its line; references between sections
//! (an entry point, a queue) are checked once the whole file is read.

use crate::cli::centre::{AgentEntry, CentreFile, FileError};
use crate::domain::{Agent, Channel, Queue};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, Exp, LogNormal};
use serde::Deserialize;
use std::path::Path;

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Skills, queues, entry points and (always-on) agents, as in a centre file.
    pub centre: CentreFile,
    /// Groups of identical agents with shifts and answering habits.
    #[serde(default)]
    pub staff: Vec<StaffGroup>,
    /// Arrival streams, one per entry point and channel.
    pub traffic: Vec<Traffic>,
    /// Run length, warm-up, replications and seed.
    #[serde(default)]
    pub run: RunSpec,
}

/// `count` agents made from one template, ids numbered `id-0001` onwards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffGroup {
    /// The template: skills, queues, capacity; its id and UC address are numbered.
    pub agent: AgentEntry,
    /// How many agents the group has.
    pub count: u32,
    /// When the group works; the whole run when left out.
    pub shift: Option<Shift>,
    /// Chance that an agent declines an offer.
    #[serde(default)]
    pub decline_probability: f64,
    /// Chance that an agent lets an offer ring until it times out.
    #[serde(default)]
    pub no_answer_probability: f64,
    /// Seconds from offer to accept or decline (0: at once, as queueing theory assumes).
    #[serde(default)]
    pub answer_delay_secs: f64,
}

/// When agents are signed in, in seconds from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "ShiftSpec")]
pub struct Shift {
    /// Sign-in time.
    pub start_secs: u32,
    /// Sign-out time; the agent finishes the work in hand.
    pub end_secs: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShiftSpec {
    start_secs: u32,
    end_secs: u32,
}

impl TryFrom<ShiftSpec> for Shift {
    type Error = String;

    fn try_from(spec: ShiftSpec) -> Result<Self, String> {
        if spec.end_secs <= spec.start_secs {
            return Err(format!(
                "end_secs must be after start_secs, got {} and {}",
                spec.start_secs, spec.end_secs
            ));
        }
        Ok(Shift {
            start_secs: spec.start_secs,
            end_secs: spec.end_secs,
        })
    }
}

/// How an agent answers offers (see [`StaffGroup`] for each field).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Habits {
    /// Chance of declining.
    pub decline_probability: f64,
    /// Chance of letting the offer time out.
    pub no_answer_probability: f64,
    /// Seconds from offer to answer.
    pub answer_delay_secs: f64,
}

/// One arrival stream: Poisson with a rate per interval.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// The entry point the consumers dial or click.
    pub entry_point: String,
    /// The medium.
    pub channel: Channel,
    /// The consumers' language, for steps that match it.
    pub language: Option<String>,
    /// Length of one interval of the profile (default 1800 s, half an hour).
    #[serde(default = "half_hour")]
    pub interval_secs: u32,
    /// Expected arrivals in each interval; the last one holds after the profile ends.
    pub calls_per_interval: Vec<f64>,
    /// Talk time (from answer to end).
    pub handle: Dist,
    /// How long consumers wait before hanging up; never when left out.
    pub patience: Option<Dist>,
}

fn half_hour() -> u32 {
    1800
}

/// Run length, warm-up, replications and seed.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Simulated seconds of arrivals; by default the longest profile.
    pub duration_secs: Option<u32>,
    /// Seconds at the start whose arrivals are not counted, so the
    /// statistics are not biased by an empty centre.
    #[serde(default)]
    pub warmup_secs: u32,
    /// Independent runs with different seeds, for confidence intervals.
    #[serde(default = "one")]
    pub replications: u32,
    /// The seed of the first replication; replication i uses seed + i.
    #[serde(default = "one_u64")]
    pub seed: u64,
}

fn one() -> u32 {
    1
}

fn one_u64() -> u64 {
    1
}

impl RunSpec {
    /// The seed of each replication.
    pub fn seeds(&self) -> Vec<u64> {
        (0..self.replications)
            .map(|replication| self.seed.wrapping_add(u64::from(replication)))
            .collect()
    }
}

impl Default for RunSpec {
    fn default() -> Self {
        Self {
            duration_secs: None,
            warmup_secs: 0,
            replications: 1,
            seed: 1,
        }
    }
}

/// A distribution of durations in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "DistSpec")]
pub enum Dist {
    /// Exponential with this mean.
    Exponential {
        /// Mean, seconds.
        mean_secs: f64,
    },
    /// Log-normal with this mean and standard deviation.
    LogNormal {
        /// Mean, seconds.
        mean_secs: f64,
        /// Standard deviation, seconds.
        sd_secs: f64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DistSpec {
    distribution: DistKind,
    mean_secs: f64,
    sd_secs: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DistKind {
    Exponential,
    LogNormal,
}

impl TryFrom<DistSpec> for Dist {
    type Error = String;

    fn try_from(spec: DistSpec) -> Result<Self, String> {
        if !(spec.mean_secs.is_finite() && spec.mean_secs > 0.0) {
            return Err(format!(
                "mean_secs must be positive, got {}",
                spec.mean_secs
            ));
        }
        match (spec.distribution, spec.sd_secs) {
            (DistKind::Exponential, None) => Ok(Dist::Exponential {
                mean_secs: spec.mean_secs,
            }),
            (DistKind::Exponential, Some(_)) => Err(
                "sd_secs: an exponential distribution has no sd_secs (it equals the mean)".into(),
            ),
            (DistKind::LogNormal, Some(sd)) if sd.is_finite() && sd > 0.0 => Ok(Dist::LogNormal {
                mean_secs: spec.mean_secs,
                sd_secs: sd,
            }),
            (DistKind::LogNormal, _) => {
                Err("sd_secs: a log_normal distribution needs a positive sd_secs".into())
            }
        }
    }
}

impl Dist {
    /// The mean, seconds.
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Exponential { mean_secs } | Dist::LogNormal { mean_secs, .. } => mean_secs,
        }
    }

    /// Whether queueing theory's exponential assumption holds.
    pub fn is_exponential(&self) -> bool {
        matches!(self, Dist::Exponential { .. })
    }

    /// A sampler; the parameters were checked on reading.
    pub fn sampler(&self) -> Sampler {
        match *self {
            Dist::Exponential { mean_secs } => match Exp::new(1.0 / mean_secs) {
                Ok(exp) => Sampler::Exponential(exp),
                Err(_) => Sampler::Fixed(mean_secs),
            },
            Dist::LogNormal { mean_secs, sd_secs } => {
                let sigma2 = (1.0 + (sd_secs / mean_secs).powi(2)).ln();
                match LogNormal::new(mean_secs.ln() - sigma2 / 2.0, sigma2.sqrt()) {
                    Ok(log_normal) => Sampler::LogNormal(log_normal),
                    Err(_) => Sampler::Fixed(mean_secs),
                }
            }
        }
    }
}

/// Draws durations from a [`Dist`].
#[derive(Debug, Clone, Copy)]
pub enum Sampler {
    /// Exponential.
    Exponential(Exp<f64>),
    /// Log-normal.
    LogNormal(LogNormal<f64>),
    /// A constant, should the parameters be degenerate.
    Fixed(f64),
}

impl Sampler {
    /// One duration in seconds.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Sampler::Exponential(exp) => exp.sample(rng),
            Sampler::LogNormal(log_normal) => log_normal.sample(rng),
            Sampler::Fixed(value) => *value,
        }
    }
}

/// One simulated agent: configuration, shift and habits.
#[derive(Debug, Clone, PartialEq)]
pub struct SimAgent {
    /// The agent as the engine and server know it.
    pub agent: Agent,
    /// When they work; always when `None`.
    pub shift: Option<Shift>,
    /// How they answer.
    pub habits: Habits,
}

impl Traffic {
    /// Expected arrivals per second at `secs` from the start.
    pub fn rate_at(&self, secs: f64) -> f64 {
        let interval = f64::from(self.interval_secs);
        let index = ((secs / interval).floor().max(0.0) as usize)
            .min(self.calls_per_interval.len().saturating_sub(1));
        self.calls_per_interval.get(index).copied().unwrap_or(0.0) / interval
    }

    /// When the interval holding `secs` ends, seconds from the start.
    pub fn interval_end(&self, secs: f64) -> f64 {
        let interval = f64::from(self.interval_secs);
        ((secs / interval).floor() + 1.0) * interval
    }

    /// The next arrival after `secs`, through each interval's rate
    /// (exponential gaps are memoryless, so a gap that crosses into the next
    /// interval is drawn again from there); `None` at or past `end_secs`.
    pub fn next_arrival<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        mut secs: f64,
        end_secs: f64,
    ) -> Option<f64> {
        while secs < end_secs {
            let rate = self.rate_at(secs);
            let boundary = self.interval_end(secs);
            if rate > 0.0 {
                let gap = -(1.0 - rng.random::<f64>()).ln() / rate;
                if secs + gap < boundary {
                    let at = secs + gap;
                    return (at < end_secs).then_some(at);
                }
            }
            secs = boundary;
        }
        None
    }
}

impl Scenario {
    /// Reads and checks a scenario file, YAML or TOML by its extension.
    pub fn read(path: &Path) -> Result<Self, FileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: shown.clone(),
            source,
        })?;
        let invalid = |message: String| FileError::Invalid {
            path: shown.clone(),
            message,
        };
        match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
            "yaml" | "yml" => Self::from_yaml(&text).map_err(invalid),
            "toml" => Self::from_toml(&text).map_err(invalid),
            _ => Err(FileError::Format { path: shown }),
        }
    }

    /// Parses and checks YAML.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let scenario: Scenario =
            serde_yaml_ng::from_str(text).map_err(|error| error.to_string())?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Parses and checks TOML.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|error| error.to_string())?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Checks what reading alone cannot: references and ranges across sections.
    fn check(&self) -> Result<(), String> {
        if self.traffic.is_empty() {
            return Err("traffic: a scenario needs at least one arrival stream".into());
        }
        for (i, traffic) in self.traffic.iter().enumerate() {
            if self.queue_for(traffic).is_none() {
                return Err(format!(
                    "traffic[{i}].entry_point: {} is not an entry point of the centre, or its queue is not declared",
                    traffic.entry_point
                ));
            }
            if traffic.interval_secs == 0 {
                return Err(format!("traffic[{i}].interval_secs: must be at least 1"));
            }
            if traffic.calls_per_interval.is_empty() {
                return Err(format!(
                    "traffic[{i}].calls_per_interval: needs at least one interval"
                ));
            }
            if let Some(bad) = traffic
                .calls_per_interval
                .iter()
                .find(|calls| !(calls.is_finite() && **calls >= 0.0))
            {
                return Err(format!(
                    "traffic[{i}].calls_per_interval: must be zero or more, got {bad}"
                ));
            }
        }
        for (i, agent) in self.agents().iter().enumerate() {
            for queue in &agent.agent.queues {
                if !self.centre.queues.iter().any(|q| &q.0.id == queue) {
                    return Err(format!(
                        "agent {} (#{i}).queues: queue {queue} is not declared",
                        agent.agent.id
                    ));
                }
            }
        }
        for (i, group) in self.staff.iter().enumerate() {
            let delay = group.answer_delay_secs;
            if !(delay.is_finite() && delay >= 0.0) {
                return Err(format!(
                    "staff[{i}].answer_delay_secs: must be zero or more seconds, got {delay}"
                ));
            }
            for (field, value) in [
                ("decline_probability", group.decline_probability),
                ("no_answer_probability", group.no_answer_probability),
            ] {
                if !(0.0..=1.0).contains(&value) {
                    return Err(format!(
                        "staff[{i}].{field}: must be between 0 and 1, got {value}"
                    ));
                }
            }
            if group.decline_probability + group.no_answer_probability > 1.0 {
                return Err(format!(
                    "staff[{i}]: decline_probability and no_answer_probability add up to more than 1"
                ));
            }
        }
        if self.run.replications == 0 {
            return Err("run.replications: must be at least 1".into());
        }
        if self.run.warmup_secs >= self.duration_secs() {
            return Err(format!(
                "run.warmup_secs: must be shorter than the run ({} s), got {}",
                self.duration_secs(),
                self.run.warmup_secs
            ));
        }
        Ok(())
    }

    /// The queue an arrival stream joins, through its entry point.
    pub fn queue_for(&self, traffic: &Traffic) -> Option<&Queue> {
        let entry = self
            .centre
            .entry_points
            .iter()
            .find(|entry| entry.0.address.as_str() == traffic.entry_point)?;
        self.centre
            .queues
            .iter()
            .map(|queue| &queue.0)
            .find(|queue| queue.id == entry.0.queue)
    }

    /// Simulated seconds of arrivals.
    pub fn duration_secs(&self) -> u32 {
        if let Some(duration) = self.run.duration_secs {
            return duration;
        }
        let mut longest = 0;
        for traffic in &self.traffic {
            let profile = traffic.interval_secs.saturating_mul(
                u32::try_from(traffic.calls_per_interval.len()).unwrap_or(u32::MAX),
            );
            longest = longest.max(profile);
        }
        longest
    }

    /// Every agent: the centre's own, always on, then each group's, numbered.
    pub fn agents(&self) -> Vec<SimAgent> {
        let mut agents = Vec::new();
        for entry in &self.centre.agents {
            agents.push(SimAgent {
                agent: entry.0.clone(),
                shift: None,
                habits: Habits::default(),
            });
        }
        for group in &self.staff {
            let template = &group.agent.0;
            for n in 1..=group.count {
                let mut agent = template.clone();
                let id = format!("{}-{n:04}", template.id);
                agent.uc_address = match template.uc_address.split_once('@') {
                    Some((user, domain)) => format!("{user}-{n:04}@{domain}"),
                    None => format!("{}-{n:04}", template.uc_address),
                };
                agent.id = id.as_str().into();
                agents.push(SimAgent {
                    agent,
                    shift: group.shift,
                    habits: Habits {
                        decline_probability: group.decline_probability,
                        no_answer_probability: group.no_answer_probability,
                        answer_delay_secs: group.answer_delay_secs,
                    },
                });
            }
        }
        agents
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = "\
centre:
  queues:
    - id: support
  entry_points:
    - address: sip:support@contoso.example
      queue: support
staff:
  - agent: { id: agent, uc_address: sip:agent@contoso.example, queues: [support] }
    count: 3
    decline_probability: 0.1
traffic:
  - entry_point: sip:support@contoso.example
    channel: voice
    calls_per_interval: [100, 200]
    handle: { distribution: log_normal, mean_secs: 180, sd_secs: 90 }
    patience: { distribution: exponential, mean_secs: 300 }
run:
  replications: 2
";

    #[test]
    fn a_scenario_reads_with_its_defaults() {
        let scenario = Scenario::from_yaml(SCENARIO).unwrap();
        assert_eq!(scenario.duration_secs(), 3600);
        let agents = scenario.agents();
        assert_eq!(agents.len(), 3);
        assert_eq!(agents[2].agent.id.as_str(), "agent-0003");
        assert_eq!(agents[2].agent.uc_address, "sip:agent-0003@contoso.example");
        assert_eq!(agents[0].habits.decline_probability, 0.1);
        let traffic = &scenario.traffic[0];
        assert_eq!(traffic.rate_at(10.0), 100.0 / 1800.0);
        assert_eq!(
            traffic.rate_at(5000.0),
            200.0 / 1800.0,
            "the last rate holds"
        );
        assert_eq!(traffic.interval_end(10.0), 1800.0);
        assert_eq!(scenario.run.seed, 1);
        assert_eq!(
            scenario.queue_for(traffic).map(|q| q.id.as_str()),
            Some("support")
        );
    }

    #[test]
    fn a_bad_field_is_refused_with_its_place() {
        let text = SCENARIO.replace("sd_secs: 90", "sd_secs: -1");
        let error = Scenario::from_yaml(&text).unwrap_err();
        assert!(
            error.contains("traffic[0]: sd_secs") && error.contains("line 12"),
            "{error}"
        );
        let text = SCENARIO.replace("decline_probability: 0.1", "decline_probability: 2");
        let error = Scenario::from_yaml(&text).unwrap_err();
        assert!(
            error.contains("staff[0].decline_probability")
                && error.contains("between 0 and 1, got 2"),
            "{error}"
        );
        let text = SCENARIO.replace("count: 3", "count: 3\n    answer_delay_secs: -1");
        let error = Scenario::from_yaml(&text).unwrap_err();
        assert!(
            error.starts_with("staff[0].answer_delay_secs: must be zero or more"),
            "{error}"
        );
        let text = SCENARIO.replace("channel: voice", "channel: fax");
        let error = Scenario::from_yaml(&text).unwrap_err();
        assert!(
            error.contains("traffic[0].channel") && error.contains("line 13"),
            "{error}"
        );
    }

    #[test]
    fn references_are_checked() {
        let text = SCENARIO.replace("- entry_point: sip:support@", "- entry_point: sip:sales@");
        let error = Scenario::from_yaml(&text).unwrap_err();
        assert!(
            error.starts_with("traffic[0].entry_point: sip:sales@"),
            "{error}"
        );
        let text = SCENARIO.replace("queues: [support]", "queues: [sales]");
        let error = Scenario::from_yaml(&text).unwrap_err();
        assert!(error.contains("queue sales is not declared"), "{error}");
    }

    #[test]
    fn log_normal_keeps_its_mean() {
        use rand::SeedableRng;
        let sampler = Dist::LogNormal {
            mean_secs: 180.0,
            sd_secs: 90.0,
        }
        .sampler();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let draws = 200_000;
        let mut sum = 0.0;
        for _ in 0..draws {
            sum += sampler.sample(&mut rng);
        }
        let mean = sum / f64::from(draws);
        assert!((mean - 180.0).abs() < 2.0, "{mean}");
    }
}
