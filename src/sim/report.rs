//! What a simulation measured, per queue and channel, over independent
//! replications: the tallies both drivers keep, the report's figures with a
//! 95 % confidence interval, and — where the scenario is M/M/N or M/M/N+M —
//! the Erlang C or Erlang A prediction beside each figure.

use super::erlang::{Prediction, Staffing};
use super::scenario::{Scenario, SimAgent};
use crate::cli::table::Table;
use crate::domain::{Channel, QueueId};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Counts for one queue and channel in one replication, of the items that
/// arrived after the warm-up.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// Arrivals.
    pub offered: u64,
    /// Answered by an agent.
    pub answered: u64,
    /// Answered within the threshold T.
    pub answered_within: u64,
    /// Abandoned by the consumer.
    pub abandoned: u64,
    /// Abandoned within T (short abandons included).
    pub abandoned_within: u64,
    /// Answered or abandoned after waiting at all.
    pub waited: u64,
    /// Left otherwise: refused, overflowed to voicemail, disconnected.
    pub other: u64,
    /// Total wait of answered items, seconds.
    pub answered_wait_secs: f64,
    /// Items whose handling ended.
    pub handled: u64,
    /// Total talk plus wrap-up of those, seconds.
    pub handle_secs: f64,
    /// Busy and wrap-up time of the queue's agents in the measured window, seconds.
    pub busy_secs: f64,
    /// Ready, reserved, busy and wrap-up time of the queue's agents, seconds.
    pub staffed_secs: f64,
}

impl Tally {
    /// Counts the outcome of one answered or abandoned item.
    pub fn resolve(&mut self, answered: bool, waited_secs: f64, threshold_secs: f64) {
        let within = waited_secs <= threshold_secs;
        if waited_secs > 0.0 {
            self.waited += 1;
        }
        if answered {
            self.answered += 1;
            self.answered_wait_secs += waited_secs;
            self.answered_within += u64::from(within);
        } else {
            self.abandoned += 1;
            self.abandoned_within += u64::from(within);
        }
    }

    /// The figures of this replication, each `None` when nothing was counted.
    fn figures(&self) -> [Option<f64>; MEASURES.len()] {
        let ratio = |num: f64, den: f64| (den > 0.0).then(|| num / den);
        let resolved = (self.answered + self.abandoned) as f64;
        [
            ratio(
                self.answered_within as f64,
                (self.answered + self.abandoned - self.abandoned_within) as f64,
            ),
            ratio(self.answered_wait_secs, self.answered as f64),
            ratio(self.handle_secs, self.handled as f64),
            ratio(self.busy_secs, self.staffed_secs),
            ratio(self.waited as f64, resolved),
            ratio(self.abandoned as f64, resolved),
        ]
    }
}

/// The measures a report gives, in the order of [`Tally::figures`].
const MEASURES: [&str; 6] = [
    "service_level",
    "asa",
    "aht",
    "occupancy",
    "p_wait",
    "p_abandon",
];

/// A measure's value over the replications.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The mean over replications.
    pub mean: f64,
    /// Half-width of the 95 % confidence interval (Student's t); `None` with one replication.
    pub ci95: Option<f64>,
    /// Queueing theory's value, where it applies.
    pub predicted: Option<f64>,
}

/// One queue and channel of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The queue.
    pub queue: QueueId,
    /// The channel.
    pub channel: Channel,
    /// Sums over replications.
    pub total: Tally,
    /// Each measure by name, in report order.
    pub measures: Vec<(&'static str, Estimate)>,
    /// "erlang_c" or "erlang_a" when a prediction is given.
    pub model: Option<&'static str>,
}

impl Row {
    /// A measure by name.
    pub fn measure(&self, name: &str) -> Option<&Estimate> {
        self.measures
            .iter()
            .find(|(measure, _)| *measure == name)
            .map(|(_, estimate)| estimate)
    }
}

/// A finished simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// "virtual" or "live".
    pub mode: &'static str,
    /// The seeds used, one per replication.
    pub seeds: Vec<u64>,
    /// Simulated seconds of arrivals per replication.
    pub duration_secs: u32,
    /// Seconds at the start left uncounted.
    pub warmup_secs: u32,
    /// Per queue and channel.
    pub rows: Vec<Row>,
}

/// Student's t quantile for a two-sided 95 % interval with `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    TABLE.get(df.wrapping_sub(1)).copied().unwrap_or(1.96)
}

/// Mean and 95 % half-width of some values.
fn estimate(values: &[f64]) -> Option<(f64, Option<f64>)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return Some((mean, None));
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((mean, Some(t95(values.len() - 1) * (variance / n).sqrt())))
}

/// The Erlang model of a queue and channel, when the scenario is M/M/N or
/// M/M/N+M there: one stationary Poisson stream, exponential handling, no
/// wrap-up, limits or language, and agents who serve only this queue, all
/// day, one item at a time, answering every offer at once and meeting every
/// routing step.
pub fn theory(scenario: &Scenario, queue: &QueueId, channel: Channel) -> Option<Staffing> {
    let mut streams = scenario
        .traffic
        .iter()
        .filter(|traffic| scenario.queue_for(traffic).is_some_and(|q| &q.id == queue));
    let traffic = streams.next()?;
    if streams.next().is_some() || traffic.channel != channel || traffic.language.is_some() {
        return None;
    }
    let rate = traffic.calls_per_interval[0];
    if traffic
        .calls_per_interval
        .iter()
        .any(|calls| *calls != rate)
        || !traffic.handle.is_exponential()
        || traffic
            .patience
            .is_some_and(|patience| !patience.is_exponential())
    {
        return None;
    }
    let config = scenario.queue_for(traffic)?;
    let plain_limits = config.limits == Default::default();
    if config.wrap_up_secs != 0 || !plain_limits {
        return None;
    }
    let agents = scenario.agents();
    let mut members: Vec<&SimAgent> = Vec::new();
    for agent in &agents {
        if agent.agent.queues.contains(queue) {
            members.push(agent);
        }
    }
    for member in &members {
        let exclusive = member.agent.queues.len() == 1;
        let plain = member.shift.is_none() && member.habits == Default::default();
        let meets_steps = config.steps.iter().all(|step| {
            !step.match_language
                && step.requirements.iter().all(|requirement| {
                    member.agent.skills.iter().any(|(skill, level)| {
                        skill == &requirement.skill && *level >= requirement.min_level
                    })
                })
        });
        if !(exclusive && plain && meets_steps && member.agent.capacity.get(channel) == 1) {
            return None;
        }
    }
    Some(Staffing {
        arrival_rate: rate / f64::from(traffic.interval_secs),
        aht: traffic.handle.mean(),
        agents: u32::try_from(members.len()).ok()?,
        threshold: f64::from(config.sl_thresholds.get(channel)),
        patience: traffic.patience.map(|patience| patience.mean()),
    })
}

/// The predicted value of each measure, in report order.
fn predicted(prediction: &Prediction, staffing: &Staffing) -> [Option<f64>; MEASURES.len()] {
    [
        Some(prediction.service_level),
        Some(prediction.asa),
        Some(staffing.aht),
        Some(prediction.occupancy),
        Some(prediction.p_wait),
        Some(prediction.p_abandon),
    ]
}

impl Report {
    /// Builds the report from each replication's tallies.
    pub fn new(
        mode: &'static str,
        scenario: &Scenario,
        seeds: Vec<u64>,
        replications: &[BTreeMap<(QueueId, Channel), Tally>],
    ) -> Self {
        let mut keys: Vec<(QueueId, Channel)> = Vec::new();
        for tallies in replications {
            for key in tallies.keys() {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
        keys.sort();
        let mut rows = Vec::new();
        for (queue, channel) in keys {
            let mut total = Tally::default();
            let mut per_measure: Vec<Vec<f64>> = vec![Vec::new(); MEASURES.len()];
            for tallies in replications {
                let Some(tally) = tallies.get(&(queue.clone(), channel)) else {
                    continue;
                };
                add(&mut total, tally);
                for (values, figure) in per_measure.iter_mut().zip(tally.figures()) {
                    values.extend(figure);
                }
            }
            let staffing = theory(scenario, &queue, channel);
            let prediction = staffing.and_then(|staffing| staffing.predict().ok());
            let model = match (&prediction, staffing.and_then(|s| s.patience)) {
                (None, _) => None,
                (Some(_), None) => Some("erlang_c"),
                (Some(_), Some(_)) => Some("erlang_a"),
            };
            let predictions = match (&prediction, &staffing) {
                (Some(prediction), Some(staffing)) => predicted(prediction, staffing),
                _ => [None; MEASURES.len()],
            };
            let mut measures = Vec::new();
            for ((name, values), predicted) in MEASURES.iter().zip(&per_measure).zip(predictions) {
                if let Some((mean, ci95)) = estimate(values) {
                    measures.push((
                        *name,
                        Estimate {
                            mean,
                            ci95,
                            predicted,
                        },
                    ));
                }
            }
            rows.push(Row {
                queue,
                channel,
                total,
                measures,
                model,
            });
        }
        Report {
            mode,
            seeds,
            duration_secs: scenario.duration_secs(),
            warmup_secs: scenario.run.warmup_secs,
            rows,
        }
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> Value {
        let mut rows = Vec::new();
        for row in &self.rows {
            let mut measures = serde_json::Map::new();
            for (name, estimate) in &row.measures {
                measures.insert(
                    (*name).to_owned(),
                    json!({
                        "measured": estimate.mean,
                        "ci95": estimate.ci95,
                        "predicted": estimate.predicted,
                        "difference": estimate.predicted.map(|p| estimate.mean - p),
                    }),
                );
            }
            rows.push(json!({
                "queue": row.queue.as_str(),
                "channel": row.channel.as_str(),
                "offered": row.total.offered,
                "answered": row.total.answered,
                "abandoned": row.total.abandoned,
                "other": row.total.other,
                "model": row.model,
                "measures": measures,
            }));
        }
        json!({
            "mode": self.mode,
            "replications": self.seeds.len(),
            "seeds": self.seeds,
            "duration_secs": self.duration_secs,
            "warmup_secs": self.warmup_secs,
            "rows": rows,
        })
    }

    /// The report as tables for people: the figures per queue and channel,
    /// then each prediction beside its measure.
    pub fn render(&self) -> String {
        let mut figures = Table::new(&[
            "queue",
            "channel",
            "offered",
            "answered",
            "abandoned",
            "service_level",
            "asa",
            "aht",
            "occupancy",
        ]);
        let mut theory = Table::new(&[
            "queue",
            "channel",
            "model",
            "measure",
            "measured",
            "ci95",
            "predicted",
            "difference",
        ]);
        for row in &self.rows {
            let shown = |name: &str| match row.measure(name) {
                Some(estimate) => json!(format_measure(name, estimate.mean)),
                None => Value::Null,
            };
            figures.push(vec![
                json!(row.queue.as_str()),
                json!(row.channel.as_str()),
                json!(row.total.offered),
                json!(row.total.answered),
                json!(row.total.abandoned),
                shown("service_level"),
                shown("asa"),
                shown("aht"),
                shown("occupancy"),
            ]);
            let Some(model) = row.model else { continue };
            for (name, estimate) in &row.measures {
                let Some(predicted) = estimate.predicted else {
                    continue;
                };
                if *name == "p_abandon" && model == "erlang_c" {
                    continue;
                }
                theory.push(vec![
                    json!(row.queue.as_str()),
                    json!(row.channel.as_str()),
                    json!(model),
                    json!(name),
                    json!(format_measure(name, estimate.mean)),
                    match estimate.ci95 {
                        Some(ci) => json!(format!("±{}", format_measure(name, ci))),
                        None => Value::Null,
                    },
                    json!(format_measure(name, predicted)),
                    json!(format_difference(name, estimate.mean, predicted)),
                ]);
            }
        }
        let mut out = format!(
            "{} mode, {} replication(s) of {} s (warm-up {} s), seeds {:?}\n\n",
            self.mode,
            self.seeds.len(),
            self.duration_secs,
            self.warmup_secs,
            self.seeds
        );
        out.push_str(&figures.render());
        if !theory.rows.is_empty() {
            out.push('\n');
            out.push_str(&theory.render());
        }
        out
    }
}

/// Adds one tally into another.
fn add(total: &mut Tally, tally: &Tally) {
    total.offered += tally.offered;
    total.answered += tally.answered;
    total.answered_within += tally.answered_within;
    total.abandoned += tally.abandoned;
    total.abandoned_within += tally.abandoned_within;
    total.waited += tally.waited;
    total.other += tally.other;
    total.answered_wait_secs += tally.answered_wait_secs;
    total.handled += tally.handled;
    total.handle_secs += tally.handle_secs;
    total.busy_secs += tally.busy_secs;
    total.staffed_secs += tally.staffed_secs;
}

/// A measure for people: seconds for times, percentages for shares.
fn format_measure(name: &str, value: f64) -> String {
    match name {
        "asa" | "aht" => format!("{value:.2} s"),
        _ => format!("{:.2}%", value * 100.0),
    }
}

/// A difference for people: relative for times, percentage points for shares.
fn format_difference(name: &str, measured: f64, predicted: f64) -> String {
    match name {
        "asa" | "aht" if predicted > 0.0 => {
            format!("{:+.2}%", (measured - predicted) / predicted * 100.0)
        }
        "asa" | "aht" => format!("{:+.2} s", measured - predicted),
        _ => format!("{:+.2} pp", (measured - predicted) * 100.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_widens_with_spread() {
        assert_eq!(estimate(&[]), None);
        assert_eq!(estimate(&[2.0]), Some((2.0, None)));
        let (mean, ci) = estimate(&[1.0, 3.0]).unwrap();
        assert_eq!(mean, 2.0);
        // sd = √2, n = 2: 12.706 · √2 / √2.
        assert!((ci.unwrap() - 12.706).abs() < 1e-9);
        assert_eq!(t95(100), 1.96);
    }

    #[test]
    fn a_tally_counts_the_default_service_level() {
        let mut tally = Tally::default();
        tally.resolve(true, 0.0, 20.0);
        tally.resolve(true, 30.0, 20.0);
        tally.resolve(false, 3.0, 20.0);
        tally.resolve(false, 40.0, 20.0);
        let [sl, asa, _, _, p_wait, p_abandon] = tally.figures();
        // 1 answered within T over 2 answered + 1 abandoned after T.
        assert_eq!(sl, Some(1.0 / 3.0));
        assert_eq!(asa, Some(15.0));
        assert_eq!(p_wait, Some(0.75));
        assert_eq!(p_abandon, Some(0.5));
    }
}
