//! Metrics of the store's group-commit writer and of its lookups.

use crate::store::writer::CommitObserver;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::time::Duration;

/// How the writer is doing: batch sizes, commit latency, availability.
pub struct StoreMetrics {
    /// Records per committed batch.
    batch_records: Histogram,
    /// Time to commit one batch.
    commit_seconds: Histogram,
    /// 1 while the database accepts writes, 0 while it is unavailable.
    available: IntGauge,
}

impl StoreMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let batch_records = Histogram::with_opts(
            HistogramOpts::new(
                "switchboard_store_batch_records",
                "Records committed per store transaction.",
            )
            .buckets(vec![
                1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
            ]),
        )?;
        let commit_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "switchboard_store_commit_seconds",
                "Time to commit one batch of records.",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 16)?),
        )?;
        let available = IntGauge::new(
            "switchboard_store_available",
            "1 while the database accepts writes, 0 while it is unavailable.",
        )?;
        available.set(1);
        registry.register(Box::new(batch_records.clone()))?;
        registry.register(Box::new(commit_seconds.clone()))?;
        registry.register(Box::new(available.clone()))?;
        Ok(Self {
            batch_records,
            commit_seconds,
            available,
        })
    }
}

impl CommitObserver for StoreMetrics {
    fn committed(&self, records: usize, elapsed: Duration) {
        self.batch_records.observe(records as f64);
        self.commit_seconds.observe(elapsed.as_secs_f64());
    }

    fn availability(&self, available: bool) {
        self.available.set(i64::from(available));
    }
}

/// How submissions learn whether their interaction came before: from the
/// lookups' filter of known interactions, or from the store.
#[derive(Clone)]
pub struct LookupMetrics {
    /// Answered "never submitted" by the filter, with no query.
    pub by_filter: IntCounter,
    /// Asked of the store.
    pub by_store: IntCounter,
}

impl LookupMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let lookups = IntCounterVec::new(
            Opts::new(
                "switchboard_store_lookups_total",
                "Submissions checked for an earlier one of the same interaction, \
                 by what answered: the filter of known interactions or the store.",
            ),
            &["answered_by"],
        )?;
        registry.register(Box::new(lookups.clone()))?;
        Ok(Self {
            by_filter: lookups.with_label_values(&["filter"]),
            by_store: lookups.with_label_values(&["store"]),
        })
    }
}
