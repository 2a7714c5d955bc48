//! The wait-time histogram, whose buckets follow the configured thresholds.
//!
//! A fixed-bucket histogram cannot take a threshold set while the server
//! runs: its new bucket would have no count for the waits before it. Here
//! waits are kept per whole second, the unit of thresholds, so a bucket at
//! any whole-second bound is computed exactly at scrape time from every wait
//! observed since start. A threshold configured at any time is a bucket from
//! then on, and stays one (a bucket that vanished would break `rate()` over
//! a window that spans the change).

use crate::domain::{Channel, MAX_SL_THRESHOLD_SECS, QueueId};
use prometheus::core::{Collector, Desc};
use prometheus::proto;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    Abandoned,
    Disposed,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Outcome::Answered, Outcome::Abandoned, Outcome::Disposed];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Abandoned => "abandoned",
            Outcome::Disposed => "disposed",
        }
    }
}

/// The waits of one queue, channel and outcome.
#[derive(Debug, Default, Clone)]
struct Series {
    /// `per_second[s]`: waits longer than `s - 1` seconds and at most `s`
    /// (`per_second[0]`: waits of exactly zero), up to the longest
    /// threshold allowed; longer waits count only in `count`.
    per_second: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Series {
    fn observe(&mut self, waited: Duration) {
        let ceiling = waited.as_secs() + u64::from(waited.subsec_nanos() > 0);
        if let Ok(second) = usize::try_from(ceiling)
            && ceiling <= u64::from(MAX_SL_THRESHOLD_SECS)
        {
            if self.per_second.len() <= second {
                self.per_second.resize(second + 1, 0);
            }
            self.per_second[second] += 1;
        }
        self.count += 1;
        self.sum += waited.as_secs_f64();
    }

    /// The cumulative count at each of `bounds`, ascending.
    fn buckets(&self, bounds: &BTreeSet<u32>) -> Vec<proto::Bucket> {
        let mut buckets = Vec::with_capacity(bounds.len());
        let mut cumulative = 0;
        let mut next = 0;
        for &bound in bounds {
            let end = self.per_second.len().min(bound as usize + 1);
            if next < end {
                cumulative += self.per_second[next..end].iter().sum::<u64>();
                next = end;
            }
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(f64::from(bound));
            bucket.set_cumulative_count(cumulative);
            buckets.push(bucket);
        }
        buckets
    }
}

/// Every series of a queue: by channel, then by outcome.
type QueueSeries = [[Series; 3]; 3];

#[derive(Debug)]
struct Inner {
    bounds: BTreeSet<u32>,
    queues: HashMap<QueueId, QueueSeries>,
}

/// `switchboard_wait_seconds`, labelled by queue, channel and outcome.
#[derive(Debug, Clone)]
pub struct WaitHistogram {
    desc: Desc,
    inner: Arc<Mutex<Inner>>,
}

impl WaitHistogram {
    /// A histogram with buckets at `bounds` (whole seconds), to which
    /// thresholds are added as they are configured.
    pub fn new(
        name: &str,
        help: &str,
        bounds: impl IntoIterator<Item = u32>,
    ) -> prometheus::Result<Self> {
        let labels = ["queue", "channel", "outcome"].map(String::from).to_vec();
        Ok(Self {
            desc: Desc::new(name.into(), help.into(), labels, HashMap::new())?,
            inner: Arc::new(Mutex::new(Inner {
                bounds: bounds.into_iter().collect(),
                queues: HashMap::new(),
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counts that are still counts.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `bound` a bucket, with the count of every wait so far.
    pub fn add_bound(&self, bound: u32) {
        self.lock().bounds.insert(bound);
    }

    /// Records a wait.
    pub fn observe(&self, queue: &QueueId, channel: Channel, outcome: Outcome, waited: Duration) {
        let mut inner = self.lock();
        let series = match inner.queues.get_mut(queue) {
            Some(series) => series,
            None => inner.queues.entry(queue.clone()).or_default(),
        };
        series[channel.index()][outcome as usize].observe(waited);
    }
}

/// A label pair.
fn label(name: &str, value: &str) -> proto::LabelPair {
    let mut pair = proto::LabelPair::default();
    pair.set_name(name.into());
    pair.set_value(value.into());
    pair
}

impl Collector for WaitHistogram {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let inner = self.lock();
        let mut metrics = Vec::new();
        for (queue, channels) in &inner.queues {
            for channel in Channel::ALL {
                for outcome in Outcome::ALL {
                    let series = &channels[channel.index()][outcome as usize];
                    if series.count == 0 {
                        continue;
                    }
                    let mut histogram = proto::Histogram::default();
                    histogram.set_sample_count(series.count);
                    histogram.set_sample_sum(series.sum);
                    histogram.set_bucket(series.buckets(&inner.bounds));
                    // Labels in name order, as the crate's own metrics have them.
                    let mut metric = proto::Metric::from_label(vec![
                        label("channel", channel.as_str()),
                        label("outcome", outcome.as_str()),
                        label("queue", queue.as_str()),
                    ]);
                    metric.set_histogram(histogram);
                    metrics.push(metric);
                }
            }
        }
        let mut family = proto::MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(proto::MetricType::HISTOGRAM);
        family.set_metric(metrics);
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, Registry, TextEncoder};

    /// The scrape of a registry holding `histogram`.
    fn scrape(histogram: &WaitHistogram) -> String {
        let registry = Registry::new();
        registry
            .register(Box::new(histogram.clone()))
            .expect("registers");
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .expect("encodes");
        String::from_utf8(text).expect("text")
    }

    fn bucket(text: &str, le: &str) -> u64 {
        let series = format!(
            r#"wait_bucket{{channel="voice",outcome="answered",queue="support",le="{le}"}} "#
        );
        let line = text
            .lines()
            .find(|line| line.starts_with(&series))
            .unwrap_or_else(|| panic!("no bucket {le} in\n{text}"));
        line[series.len()..].parse().expect("a count")
    }

    #[test]
    fn a_bound_added_later_counts_every_wait_before_it_exactly() {
        let histogram = WaitHistogram::new("wait", "Waits.", [1, 20]).expect("valid");
        let queue = QueueId::from("support");
        for secs in [0.0, 0.5, 1.0, 1.2, 20.0, 24.5, 25.0, 25.5, 200_000.0] {
            histogram.observe(
                &queue,
                Channel::Voice,
                Outcome::Answered,
                Duration::from_secs_f64(secs),
            );
        }
        histogram.add_bound(25);
        let text = scrape(&histogram);
        assert_eq!(bucket(&text, "1"), 3, "0, 0.5 and 1.0 are within 1 s");
        assert_eq!(bucket(&text, "20"), 5);
        assert_eq!(bucket(&text, "25"), 7, "24.5 and 25.0 are within 25 s");
        assert_eq!(bucket(&text, "+Inf"), 9, "a wait beyond a day still counts");
        assert!(
            text.contains(r#"wait_count{channel="voice",outcome="answered",queue="support"} 9"#)
        );
        assert!(
            !text.contains(r#"outcome="abandoned""#),
            "no series for outcomes never seen"
        );
    }

    #[test]
    fn bounds_beyond_the_longest_wait_hold_every_wait() {
        let histogram = WaitHistogram::new("wait", "Waits.", [3600]).expect("valid");
        let queue = QueueId::from("support");
        histogram.observe(
            &queue,
            Channel::Voice,
            Outcome::Answered,
            Duration::from_millis(1500),
        );
        histogram.add_bound(0);
        let text = scrape(&histogram);
        assert_eq!(bucket(&text, "0"), 0);
        assert_eq!(bucket(&text, "3600"), 1);
    }
}
