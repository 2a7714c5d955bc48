//! Routing metrics: a view of the engine's effects, fed by the router.
//!
//! Counters are raw so that every service-level definition can be computed
//! in PromQL. An overflowed item is counted as an arrival in the queue it
//! first joined, as overflowed out of each queue it leaves, and as answered
//! or abandoned in the queue where it ends, with its wait measured from its
//! first arrival. Labels are bounded: queue, channel, and small enums.

use super::wait::{Outcome, WaitHistogram};
use crate::domain::{Channel, Queue, QueueId, RoutingState, SHORT_ABANDON};
use crate::engine::{AgentView, Engine};
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use std::time::Duration;

/// Wait-time buckets, in seconds; configured thresholds are added as they
/// are set.
const WAIT_BUCKETS: [u32; 17] = [
    1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600,
];

/// Handle and wrap-up buckets, in seconds.
const HANDLE_BUCKETS: [f64; 14] = [
    5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 240.0, 300.0, 420.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0,
];

/// Every routing state, for the agents-by-state gauge.
const STATES: [&str; 7] = [
    "logged_out",
    "not_ready",
    "ready",
    "reserved",
    "busy",
    "wrap_up",
    "not_responding",
];

/// The routing metrics, owned by the router task.
pub struct RoutingMetrics {
    arrivals: IntCounterVec,
    answered: IntCounterVec,
    answered_within: IntCounterVec,
    abandoned: IntCounterVec,
    abandoned_within: IntCounterVec,
    abandoned_short: IntCounterVec,
    overflowed: IntCounterVec,
    rejected: IntCounterVec,
    disposed: IntCounterVec,
    offers: IntCounterVec,
    wait: WaitHistogram,
    handle: HistogramVec,
    wrap_up: HistogramVec,
    waiting: IntGaugeVec,
    oldest_wait: GaugeVec,
    estimated_wait: GaugeVec,
    agents_signed_in: IntGaugeVec,
    threshold: GaugeVec,
    target: GaugeVec,
    agents: IntGaugeVec,
    capacity_in_use: IntGaugeVec,
    decision: Histogram,
    queue_depth: IntGauge,
}

/// Labels of a queue and channel.
fn qc(queue: &QueueId, channel: Channel) -> [&str; 2] {
    [queue.as_str(), channel.as_str()]
}

impl RoutingMetrics {
    /// Creates the metrics and registers them in `registry`, with the
    /// thresholds and targets of `queues`.
    pub fn register(registry: &Registry, queues: &[Queue]) -> prometheus::Result<Self> {
        let qc_labels = ["queue", "channel"];
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
                let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(counter.clone()))?;
                Ok(counter)
            };
        let gauge = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<GaugeVec> {
            let gauge = GaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let histogram = |name: &str,
                         help: &str,
                         labels: &[&str],
                         buckets: Vec<f64>|
         -> prometheus::Result<HistogramVec> {
            let histogram =
                HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)?;
            registry.register(Box::new(histogram.clone()))?;
            Ok(histogram)
        };
        let wait = WaitHistogram::new(
            "switchboard_wait_seconds",
            "Wait from first arrival, by outcome.",
            WAIT_BUCKETS,
        )?;
        registry.register(Box::new(wait.clone()))?;
        let waiting = IntGaugeVec::new(
            Opts::new("switchboard_waiting", "Work items waiting now."),
            &qc_labels,
        )?;
        registry.register(Box::new(waiting.clone()))?;
        let agents_signed_in = IntGaugeVec::new(
            Opts::new(
                "switchboard_agents_signed_in",
                "Members of the queue signed in with capacity on the channel who meet some routing step.",
            ),
            &qc_labels,
        )?;
        registry.register(Box::new(agents_signed_in.clone()))?;
        let agents = IntGaugeVec::new(
            Opts::new("switchboard_agents", "Agents by routing state."),
            &["state"],
        )?;
        registry.register(Box::new(agents.clone()))?;
        let capacity_in_use = IntGaugeVec::new(
            Opts::new(
                "switchboard_capacity_in_use",
                "Agent capacity held by offers, work and wrap-up.",
            ),
            &["channel"],
        )?;
        registry.register(Box::new(capacity_in_use.clone()))?;
        let decision = Histogram::with_opts(
            HistogramOpts::new(
                "switchboard_routing_decision_seconds",
                "Time the engine takes to apply one command.",
            )
            .buckets(prometheus::exponential_buckets(0.000_001, 2.0, 20)?),
        )?;
        registry.register(Box::new(decision.clone()))?;
        let queue_depth = IntGauge::new(
            "switchboard_command_queue_depth",
            "Operations waiting for the router task.",
        )?;
        registry.register(Box::new(queue_depth.clone()))?;
        let mut metrics = Self {
            arrivals: counter(
                "switchboard_arrivals_total",
                "Work items that arrived, by the queue they first joined.",
                &qc_labels,
            )?,
            answered: counter(
                "switchboard_answered_total",
                "Work items answered (accepted by an agent).",
                &qc_labels,
            )?,
            answered_within: counter(
                "switchboard_answered_within_threshold_total",
                "Work items answered within the queue's service-level threshold.",
                &qc_labels,
            )?,
            abandoned: counter(
                "switchboard_abandoned_total",
                "Work items abandoned before being answered.",
                &qc_labels,
            )?,
            abandoned_within: counter(
                "switchboard_abandoned_within_threshold_total",
                "Work items abandoned within the queue's service-level threshold.",
                &qc_labels,
            )?,
            abandoned_short: counter(
                "switchboard_abandoned_short_total",
                "Work items abandoned within the short-abandon threshold (5 s).",
                &qc_labels,
            )?,
            overflowed: counter(
                "switchboard_overflowed_total",
                "Work items that overflowed out of a queue.",
                &["queue", "channel", "reason"],
            )?,
            rejected: counter(
                "switchboard_rejected_total",
                "Work items refused on arrival.",
                &["queue", "channel", "reason"],
            )?,
            disposed: counter(
                "switchboard_disposed_total",
                "Work items sent to voicemail, callback or a disconnect message.",
                &["queue", "channel", "reason"],
            )?,
            offers: counter(
                "switchboard_offers_total",
                "Offers by result.",
                &["queue", "channel", "result"],
            )?,
            wait,
            handle: histogram(
                "switchboard_handle_seconds",
                "Talk time, from answer to end.",
                &qc_labels,
                HANDLE_BUCKETS.to_vec(),
            )?,
            wrap_up: histogram(
                "switchboard_wrap_up_seconds",
                "Wrap-up time after each item.",
                &qc_labels,
                HANDLE_BUCKETS.to_vec(),
            )?,
            waiting,
            oldest_wait: gauge(
                "switchboard_oldest_wait_seconds",
                "The longest current wait.",
                &qc_labels,
            )?,
            estimated_wait: gauge(
                "switchboard_estimated_wait_seconds",
                "Estimated wait for a new arrival.",
                &qc_labels,
            )?,
            agents_signed_in,
            threshold: gauge(
                "switchboard_service_level_threshold_seconds",
                "The queue's service-level threshold.",
                &qc_labels,
            )?,
            target: gauge(
                "switchboard_service_level_target",
                "The queue's service-level target, a fraction.",
                &["queue"],
            )?,
            agents,
            capacity_in_use,
            decision,
            queue_depth,
        };
        for queue in queues {
            metrics.set_queue(queue);
        }
        Ok(metrics)
    }

    /// Takes a queue's thresholds and target into account (each threshold
    /// becomes a wait-time bucket, exact from start), and starts its
    /// outcome counters at zero: a service level whose numerator series did
    /// not exist yet (nothing answered within T) would be missing from PromQL
    /// rather than 0, and its alert would stay silent.
    pub fn set_queue(&mut self, queue: &Queue) {
        for channel in Channel::ALL {
            let labels = qc(&queue.id, channel);
            let threshold = queue.sl_thresholds.get(channel);
            self.threshold
                .with_label_values(&labels)
                .set(f64::from(threshold));
            self.wait.add_bound(threshold);
            for counter in [
                &self.arrivals,
                &self.answered,
                &self.answered_within,
                &self.abandoned,
                &self.abandoned_within,
                &self.abandoned_short,
            ] {
                counter.with_label_values(&labels);
            }
        }
        self.target
            .with_label_values(&[queue.id.as_str()])
            .set(queue.sl_target);
    }

    /// Forgets a removed queue's series.
    pub fn remove_queue(&mut self, queue: &QueueId) {
        for channel in Channel::ALL {
            let labels = qc(queue, channel);
            let _ = self.threshold.remove_label_values(&labels);
            let _ = self.waiting.remove_label_values(&labels);
            let _ = self.oldest_wait.remove_label_values(&labels);
            let _ = self.estimated_wait.remove_label_values(&labels);
            let _ = self.agents_signed_in.remove_label_values(&labels);
        }
        let _ = self.target.remove_label_values(&[queue.as_str()]);
    }

    /// A new work item arrived.
    pub fn arrival(&self, queue: &QueueId, channel: Channel) {
        self.arrivals.with_label_values(&qc(queue, channel)).inc();
    }

    /// An item was answered after `waited` from its first arrival, `within`
    /// the queue's threshold or not.
    pub fn answered(&self, queue: &QueueId, channel: Channel, waited: Duration, within: bool) {
        let labels = qc(queue, channel);
        self.answered.with_label_values(&labels).inc();
        if within {
            self.answered_within.with_label_values(&labels).inc();
        }
        self.offers
            .with_label_values(&[queue.as_str(), channel.as_str(), "accepted"])
            .inc();
        self.wait.observe(queue, channel, Outcome::Answered, waited);
    }

    /// An item was abandoned after `waited` from its first arrival, `within`
    /// the queue's threshold or not.
    pub fn abandoned(&self, queue: &QueueId, channel: Channel, waited: Duration, within: bool) {
        let labels = qc(queue, channel);
        self.abandoned.with_label_values(&labels).inc();
        if within {
            self.abandoned_within.with_label_values(&labels).inc();
        }
        if waited < SHORT_ABANDON {
            self.abandoned_short.with_label_values(&labels).inc();
        }
        self.wait
            .observe(queue, channel, Outcome::Abandoned, waited);
    }

    /// An item left `queue` for another.
    pub fn overflowed(&self, queue: &QueueId, channel: Channel, reason: &str) {
        self.overflowed
            .with_label_values(&[queue.as_str(), channel.as_str(), reason])
            .inc();
    }

    /// An arrival was refused.
    pub fn rejected(&self, queue: &QueueId, channel: Channel, reason: &str) {
        self.rejected
            .with_label_values(&[queue.as_str(), channel.as_str(), reason])
            .inc();
    }

    /// An item was sent to voicemail, a callback or a disconnect message.
    pub fn disposed(&self, queue: &QueueId, channel: Channel, reason: &str, waited: Duration) {
        self.disposed
            .with_label_values(&[queue.as_str(), channel.as_str(), reason])
            .inc();
        self.wait.observe(queue, channel, Outcome::Disposed, waited);
    }

    /// An offer ended without an accept: `declined`, `timeout` or `rescinded`.
    pub fn offer_ended(&self, queue: &QueueId, channel: Channel, result: &str) {
        self.offers
            .with_label_values(&[queue.as_str(), channel.as_str(), result])
            .inc();
    }

    /// A conversation ended after `talk`.
    pub fn handled(&self, queue: &QueueId, channel: Channel, talk: Duration) {
        self.handle
            .with_label_values(&qc(queue, channel))
            .observe(talk.as_secs_f64());
    }

    /// A wrap-up ended after `spent`.
    pub fn wrapped_up(&self, queue: &QueueId, channel: Channel, spent: Duration) {
        self.wrap_up
            .with_label_values(&qc(queue, channel))
            .observe(spent.as_secs_f64());
    }

    /// The engine applied one command in `elapsed`.
    pub fn decision(&self, elapsed: Duration) {
        self.decision.observe(elapsed.as_secs_f64());
    }

    /// Operations waiting for the router.
    pub fn queue_depth(&self, depth: usize) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Refreshes the gauges of `queues` and of the agents from the engine's
    /// current state.
    pub fn refresh<'a>(
        &self,
        engine: &Engine,
        queues: impl Iterator<Item = &'a QueueId>,
        now: crate::domain::Timestamp,
    ) {
        for queue in queues {
            for channel in Channel::ALL {
                let Ok(snapshot) = engine.queue_snapshot(queue, channel, now) else {
                    continue;
                };
                let labels = qc(queue, channel);
                self.waiting
                    .with_label_values(&labels)
                    .set(i64::from(snapshot.waiting));
                let oldest = snapshot.oldest_wait.unwrap_or_default().as_secs_f64();
                self.oldest_wait.with_label_values(&labels).set(oldest);
                let estimate = snapshot.estimated_wait.unwrap_or_default().as_secs_f64();
                self.estimated_wait.with_label_values(&labels).set(estimate);
                self.agents_signed_in
                    .with_label_values(&labels)
                    .set(i64::from(snapshot.agents_signed_in));
            }
        }
        let mut states = [0_i64; STATES.len()];
        let mut load = [0_i64; 3];
        for agent in engine.agents() {
            let AgentView {
                state, load: held, ..
            } = agent;
            if let Some(index) = STATES
                .iter()
                .position(|name| *name == RoutingState::as_str(&state))
            {
                states[index] += 1;
            }
            for channel in Channel::ALL {
                load[channel.index()] += i64::from(held[channel.index()]);
            }
        }
        for (name, count) in STATES.iter().zip(states) {
            self.agents.with_label_values(&[name]).set(count);
        }
        for channel in Channel::ALL {
            self.capacity_in_use
                .with_label_values(&[channel.as_str()])
                .set(load[channel.index()]);
        }
    }
}
