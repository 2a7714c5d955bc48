//! Interval reports, computed in SQL from the stored work items and agent
//! state history, the same SQL on SQLite and PostgreSQL.
//!
//! How items are counted, per queue, channel and interval:
//!
//! - An item is counted once, in the queue where it ended (answered,
//!   abandoned or still there), in the interval of its **first arrival**; its
//!   wait runs from that arrival. An item that overflowed from A to B counts
//!   in B, and in A's `overflowed_out` (also by its first arrival).
//! - A transfer is a new segment: it arrives when the transfer is asked for,
//!   counts in its target queue with its own wait, and is counted in
//!   `transfers` as well, so a report can take it out.
//! - Within the threshold means a wait of at most the queue's threshold T
//!   for the channel (as configured when the report runs; items of a queue
//!   deleted since count as never within); a short abandon waited less than
//!   [`SHORT_ABANDON`](crate::domain::SHORT_ABANDON).
//! - Occupancy is, over the interval, the time the queue's agents spent busy
//!   or in wrap-up over the time they were ready, reserved, busy or in
//!   wrap-up. Agent states are not per channel, so every channel of a queue
//!   shows the same figure.

use crate::domain::{Channel, QueueId, Timestamp};
use std::collections::BTreeMap;
use std::time::Duration;

/// The length of one report row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportInterval {
    /// 15 minutes.
    Minutes15,
    /// 30 minutes.
    Minutes30,
    /// 60 minutes.
    Minutes60,
    /// One UTC day.
    Day,
}

impl ReportInterval {
    /// The interval's length in milliseconds; intervals start at multiples of it
    /// since the Unix epoch, so a day starts at midnight UTC.
    pub fn millis(self) -> i64 {
        const MINUTE: i64 = 60_000;
        match self {
            ReportInterval::Minutes15 => 15 * MINUTE,
            ReportInterval::Minutes30 => 30 * MINUTE,
            ReportInterval::Minutes60 => 60 * MINUTE,
            ReportInterval::Day => 24 * 60 * MINUTE,
        }
    }
}

/// What a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRange {
    /// Start, inclusive: items that first arrived at or after it.
    pub from: Timestamp,
    /// End, exclusive.
    pub to: Timestamp,
    /// The row length.
    pub interval: ReportInterval,
    /// Only these queues; empty for all.
    pub queues: Vec<QueueId>,
}

/// One queue, channel and interval of a report: counts and sums from SQL,
/// with the ratios derived from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalRow {
    /// Start of the interval.
    pub start: Timestamp,
    /// The queue the items ended in.
    pub queue: QueueId,
    /// The channel.
    pub channel: Channel,
    /// Items that first arrived in the interval and ended in this queue.
    pub offered: u64,
    /// Of those, answered by an agent.
    pub answered: u64,
    /// Answered with a wait of at most T.
    pub answered_within: u64,
    /// The consumer left before being answered.
    pub abandoned: u64,
    /// Abandoned with a wait of at most T.
    pub abandoned_within: u64,
    /// Abandoned with a wait under [`SHORT_ABANDON`](crate::domain::SHORT_ABANDON).
    pub short_abandons: u64,
    /// Left the queue (answered, abandoned, rejected, disposed or cancelled)
    /// with a wait of at most T; Amazon Connect's numerator.
    pub removed_within: u64,
    /// Items that overflowed out of this queue to another.
    pub overflowed_out: u64,
    /// Transfer segments among `offered`.
    pub transfers: u64,
    /// Sum of the answered items' waits, for the ASA.
    pub answer_wait: Duration,
    /// The longest wait of an item that left the queue.
    pub max_wait: Duration,
    /// Answered items whose wrap-up is finished, for the AHT.
    pub handled: u64,
    /// Sum of their talk plus wrap-up.
    pub handle_time: Duration,
    /// The queue's agents' busy and wrap-up time in the interval.
    pub agents_busy: Duration,
    /// The queue's agents' ready, reserved, busy and wrap-up time in the interval.
    pub agents_open: Duration,
}

/// `part / whole`, absent when `whole` is zero.
fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl IntervalRow {
    /// The default service level: answered within T over answered plus
    /// abandoned after T (short abandons are within T, so left out).
    pub fn service_level(&self) -> Option<f64> {
        let counted = self.answered + self.abandoned - self.abandoned_within;
        ratio(self.answered_within, counted)
    }

    /// Answered within T over answered (Asterisk "SL").
    pub fn service_level_answered(&self) -> Option<f64> {
        ratio(self.answered_within, self.answered)
    }

    /// Answered or abandoned within T over answered plus abandoned (Asterisk "SL2").
    pub fn service_level_sl2(&self) -> Option<f64> {
        ratio(
            self.answered_within + self.abandoned_within,
            self.answered + self.abandoned,
        )
    }

    /// Removed from the queue within T over queued (Amazon Connect).
    pub fn service_level_removed(&self) -> Option<f64> {
        ratio(self.removed_within, self.offered)
    }

    /// Average speed of answer: the mean wait of answered items.
    pub fn asa(&self) -> Duration {
        mean(self.answer_wait, self.answered)
    }

    /// Average handle time: the mean of talk plus wrap-up.
    pub fn aht(&self) -> Duration {
        mean(self.handle_time, self.handled)
    }

    /// Busy and wrap-up time over open time of the queue's agents.
    pub fn occupancy(&self) -> Option<f64> {
        let open = self.agents_open.as_millis();
        (open > 0).then(|| self.agents_busy.as_millis() as f64 / open as f64)
    }
}

/// `total / count`, zero when `count` is zero.
fn mean(total: Duration, count: u64) -> Duration {
    match u32::try_from(count) {
        Ok(0) => Duration::ZERO,
        Ok(count) => total / count,
        Err(_) => Duration::from_millis(total.as_millis() as u64 / count),
    }
}

/// Counts and sums per queue, channel and interval, over work items that
/// first arrived in `[$1, $2)`, bucketed by `$3` milliseconds. `$4` is the
/// short-abandon threshold in milliseconds. Every aggregate is cast to
/// BIGINT so both back-ends return the same type.
pub(super) const ITEM_COUNTS: &str = "\
WITH items AS (
    SELECT w.queue_id AS queue_id, w.channel AS channel, (w.arrived_at / $3) * $3 AS bucket,
        w.is_transfer AS is_transfer, w.outcome AS outcome,
        w.answered_at - w.arrived_at AS answer_wait,
        CASE WHEN w.answered_at IS NULL AND w.ended_at IS NOT NULL
            THEN w.ended_at - w.arrived_at END AS left_wait,
        CASE WHEN w.answered_at IS NOT NULL AND w.completed_at IS NOT NULL
            THEN w.completed_at - w.answered_at END AS handle_time,
        1000 * CASE w.channel WHEN 'voice' THEN q.sl_voice_secs WHEN 'chat' THEN q.sl_chat_secs
            ELSE q.sl_video_secs END AS threshold
    FROM work_items w LEFT JOIN queues q ON q.id = w.queue_id
    WHERE w.arrived_at >= $1 AND w.arrived_at < $2
)
SELECT queue_id, channel, bucket,
    CAST(COUNT(*) AS BIGINT) AS offered,
    CAST(SUM(CASE WHEN answer_wait IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS answered,
    CAST(SUM(CASE WHEN answer_wait <= threshold THEN 1 ELSE 0 END) AS BIGINT) AS answered_within,
    CAST(SUM(CASE WHEN outcome = 'abandoned' THEN 1 ELSE 0 END) AS BIGINT) AS abandoned,
    CAST(SUM(CASE WHEN outcome = 'abandoned' AND left_wait <= threshold THEN 1 ELSE 0 END) AS BIGINT)
        AS abandoned_within,
    CAST(SUM(CASE WHEN outcome = 'abandoned' AND left_wait < $4 THEN 1 ELSE 0 END) AS BIGINT)
        AS short_abandons,
    CAST(SUM(CASE WHEN answer_wait <= threshold OR left_wait <= threshold THEN 1 ELSE 0 END) AS BIGINT)
        AS removed_within,
    CAST(SUM(CASE WHEN is_transfer THEN 1 ELSE 0 END) AS BIGINT) AS transfers,
    CAST(COALESCE(SUM(answer_wait), 0) AS BIGINT) AS answer_wait,
    CAST(COALESCE(MAX(CASE WHEN answer_wait IS NOT NULL THEN answer_wait ELSE left_wait END), 0) AS BIGINT)
        AS max_wait,
    CAST(SUM(CASE WHEN handle_time IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS handled,
    CAST(COALESCE(SUM(handle_time), 0) AS BIGINT) AS handle_time
FROM items
GROUP BY queue_id, channel, bucket";

/// Overflows out of each queue, per channel and interval of the item's first
/// arrival (same parameters as [`ITEM_COUNTS`]). The queue an overflow left
/// is the queue of the item's previous event, or its first queue.
pub(super) const OVERFLOW_COUNTS: &str = "\
WITH moves AS (
    SELECT e.work_item_id AS work_item_id, e.kind AS kind,
        LAG(e.queue_id) OVER (PARTITION BY e.work_item_id ORDER BY e.id) AS from_queue
    FROM work_item_events e
    WHERE e.work_item_id IN (SELECT id FROM work_items WHERE arrived_at >= $1 AND arrived_at < $2)
)
SELECT COALESCE(m.from_queue, w.first_queue) AS queue_id, w.channel AS channel,
    (w.arrived_at / $3) * $3 AS bucket, CAST(COUNT(*) AS BIGINT) AS overflowed_out
FROM moves m JOIN work_items w ON w.id = m.work_item_id
WHERE m.kind = 'overflowed'
GROUP BY COALESCE(m.from_queue, w.first_queue), w.channel, (w.arrived_at / $3) * $3";

/// Busy and open time of each queue's agents per interval. `$1` and `$2`
/// bound the range, `$3` is the interval; the state in force at `$1` counts
/// from `$1`, and the last state runs until `$2` (the caller passes the
/// earlier of the range's end and now).
pub(super) const AGENT_TIME: &str = "\
WITH RECURSIVE buckets (start_at) AS (
    SELECT ($1 / $3) * $3
    UNION ALL
    SELECT start_at + $3 FROM buckets WHERE start_at + $3 < $2
),
history AS (
    SELECT agent_id, state, at AS start_at,
        COALESCE(LEAD(at) OVER (PARTITION BY agent_id ORDER BY at, id), $2) AS end_at
    FROM agent_state_history
    WHERE at < $2
),
spans AS (
    SELECT agent_id, state, CASE WHEN start_at < $1 THEN $1 ELSE start_at END AS start_at,
        CASE WHEN end_at > $2 THEN $2 ELSE end_at END AS end_at
    FROM history
    WHERE end_at > $1 AND state IN ('ready', 'reserved', 'busy', 'wrap_up')
),
pieces AS (
    SELECT s.agent_id AS agent_id, s.state AS state, b.start_at AS bucket,
        (CASE WHEN s.end_at < b.start_at + $3 THEN s.end_at ELSE b.start_at + $3 END)
        - (CASE WHEN s.start_at > b.start_at THEN s.start_at ELSE b.start_at END) AS span
    FROM spans s JOIN buckets b ON s.start_at < b.start_at + $3 AND s.end_at > b.start_at
)
SELECT aq.queue_id AS queue_id, p.bucket AS bucket,
    CAST(SUM(CASE WHEN p.state IN ('busy', 'wrap_up') THEN p.span ELSE 0 END) AS BIGINT) AS busy,
    CAST(SUM(p.span) AS BIGINT) AS open_time
FROM pieces p JOIN agent_queues aq ON aq.agent_id = p.agent_id
GROUP BY aq.queue_id, p.bucket";

/// Where a row belongs: interval start, queue and channel.
pub(super) type RowKey = (Timestamp, QueueId, Channel);

impl IntervalRow {
    /// An empty row for one queue, channel and interval.
    pub(super) fn new((start, queue, channel): RowKey) -> Self {
        Self {
            start,
            queue,
            channel,
            offered: 0,
            answered: 0,
            answered_within: 0,
            abandoned: 0,
            abandoned_within: 0,
            short_abandons: 0,
            removed_within: 0,
            overflowed_out: 0,
            transfers: 0,
            answer_wait: Duration::ZERO,
            max_wait: Duration::ZERO,
            handled: 0,
            handle_time: Duration::ZERO,
            agents_busy: Duration::ZERO,
            agents_open: Duration::ZERO,
        }
    }
}

/// Puts the three queries' results together into report rows ordered by
/// interval, queue and channel, keeping only the queues asked for. A row
/// exists where an item arrived or overflowed out; agent time is keyed by
/// interval start and queue.
pub(super) fn assemble(
    range: &ReportRange,
    items: Vec<IntervalRow>,
    overflows: Vec<(RowKey, u64)>,
    agent_time: BTreeMap<(Timestamp, QueueId), (Duration, Duration)>,
) -> Vec<IntervalRow> {
    let mut rows: BTreeMap<RowKey, IntervalRow> = BTreeMap::new();
    for row in items {
        rows.insert((row.start, row.queue.clone(), row.channel), row);
    }
    for (key, count) in overflows {
        rows.entry(key.clone())
            .or_insert_with(|| IntervalRow::new(key))
            .overflowed_out = count;
    }
    let mut report = Vec::with_capacity(rows.len());
    for ((start, queue, _), mut row) in rows {
        if !range.queues.is_empty() && !range.queues.contains(&queue) {
            continue;
        }
        if let Some((busy, open)) = agent_time.get(&(start, queue)) {
            row.agents_busy = *busy;
            row.agents_open = *open;
        }
        report.push(row);
    }
    report
}

/// A non-negative millisecond count as a duration.
pub(super) fn millis(value: i64) -> Duration {
    Duration::from_millis(u64::try_from(value).unwrap_or(0))
}
