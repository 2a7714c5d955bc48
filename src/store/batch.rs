//! A group commit as a handful of statements, whatever its size: the
//! batch's records become one JSON array per statement (new work items,
//! lifecycle events, the work items' summary columns after those events,
//! agents' state changes, unsent bridge instructions kept and dropped), and
//! each back-end expands an array into rows in SQL
//! (`jsonb_each` in SQLite, `jsonb_array_elements` in PostgreSQL, parsing each
//! array once).
//!
//! One statement per record was the store's ceiling: every statement is a
//! round trip to the database (to sqlx-sqlite's worker thread, or over the
//! socket to PostgreSQL), so a batch of a few thousand records spent its
//! time in round trips, not in the database.

use super::records::{EventKind, Record, UnsentInstruction, WorkItemRecord};
use super::sql::is_final;
use crate::domain::WorkItemId;
use serde::Serialize;
use std::collections::HashMap;

/// A batch of records as the JSON parameters of the back-ends' bulk
/// statements. `None` means no rows of that kind: PostgreSQL skips the
/// statement, SQLite binds a null, which `json_each` reads as no rows.
#[derive(Debug, Default)]
pub(super) struct BatchRows {
    /// New work items, as they stand after their events in the batch:
    /// `[id, interaction_id, segment, channel, from_address, to_address,
    /// display_name, entry_point, language, attributes, required_skills,
    /// priority, is_transfer, first_queue, queue, state, agent, arrived_at,
    /// enqueued_at, answered_at, connected_at, ended_at, completed_at,
    /// outcome]` each. An item is written once: created with its summary,
    /// not created and then updated.
    created: Option<String>,
    /// Lifecycle events in the batch's order: `[work_item_id, at, kind,
    /// queue, agent, detail]` each.
    events: Option<String>,
    /// Each touched work item created in an earlier batch: its summary
    /// columns after all of its events in the batch: `[id, state, queue,
    /// agent, priority, answered_at, connected_at, ended_at, completed_at,
    /// outcome, enqueued_at]`, where a null keeps what is stored (and `ended_at` never replaces a stored
    /// one). An item joins its new queue's line when it overflows or is
    /// moved, so those events set `enqueued_at`, which orders the line.
    summaries: Option<String>,
    /// Agents' routing-state changes: `[agent, at, state, reason]` each.
    agent_states: Option<String>,
    /// Unsent bridge instructions to keep, one per work item (its last in
    /// the batch): `[work_item_id, at, instruction]` each.
    unsent: Option<String>,
    /// Work items whose unsent instructions are dropped: their ids.
    sent: Option<String>,
}

/// A new work item's row, its summary columns folded in.
#[derive(Debug, Serialize)]
struct CreatedRow<'a>(
    String,
    &'a str,
    u32,
    &'static str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    String,
    String,
    i32,
    bool,
    &'a str,
    &'a str,
    &'static str,
    Option<&'a str>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<&'static str>,
);

impl<'a> CreatedRow<'a> {
    /// The row of `item` as created, after its events' `summary`, if any.
    fn new(item: &'a WorkItemRecord, summary: Option<&Summary<'a>>) -> Self {
        Self(
            item.id.to_string(),
            item.interaction_id.as_str(),
            item.segment,
            item.channel.as_str(),
            &item.from_address,
            &item.to_address,
            &item.display_name,
            item.entry_point.as_ref().map(|address| address.as_str()),
            item.language.as_deref(),
            json_text(&item.attributes),
            json_text(&item.required_skills),
            summary
                .and_then(|summary| summary.4)
                .unwrap_or(item.priority),
            item.is_transfer,
            item.queue.as_str(),
            summary.map_or(item.queue.as_str(), |summary| summary.2),
            summary.and_then(|summary| summary.1).unwrap_or("waiting"),
            summary.and_then(|summary| summary.3),
            item.arrived_at.millis(),
            summary
                .and_then(|summary| summary.10)
                .unwrap_or(item.enqueued_at.millis()),
            summary.and_then(|summary| summary.5),
            summary.and_then(|summary| summary.6),
            summary.and_then(|summary| summary.7),
            summary.and_then(|summary| summary.8),
            summary.and_then(|summary| summary.9),
        )
    }
}

/// A work item's summary columns after some of its events, folded in order.
#[derive(Debug, Serialize)]
struct Summary<'a>(
    String,
    Option<&'static str>,
    &'a str,
    Option<&'a str>,
    Option<i32>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<&'static str>,
    Option<i64>,
);

impl BatchRows {
    /// Lays out `records` for the bulk statements.
    pub(super) fn new(records: &[Record]) -> Self {
        let mut created = Vec::new();
        let mut events = Vec::new();
        let mut agent_states = Vec::new();
        let mut summaries: Vec<Summary<'_>> = Vec::new();
        let mut summary_of: HashMap<WorkItemId, usize> = HashMap::new();
        // Each work item's last word on its unsent instructions: the
        // instruction to keep, or `None` to drop what is kept.
        let mut instructions: Vec<(WorkItemId, Option<&UnsentInstruction>)> = Vec::new();
        let mut instruction_of: HashMap<WorkItemId, usize> = HashMap::new();
        for record in records {
            match record {
                Record::Created(item) => created.push(item),
                Record::Event(event) => {
                    let agent = event.agent.as_ref().map(|agent| agent.as_str());
                    events.push((
                        event.work_item.to_string(),
                        event.at.millis(),
                        event.kind.as_str(),
                        event.queue.as_str(),
                        agent,
                        event.detail.as_str(),
                    ));
                    let slot = *summary_of.entry(event.work_item).or_insert_with(|| {
                        summaries.push(Summary(
                            event.work_item.to_string(),
                            None,
                            "",
                            None,
                            None,
                            None,
                            None,
                            None,
                            None,
                            None,
                            None,
                        ));
                        summaries.len() - 1
                    });
                    let summary = &mut summaries[slot];
                    let state = event.kind.state_after();
                    let at = event.at.millis();
                    // The same rules as a single event's update, applied in turn.
                    summary.1 = state.or(summary.1);
                    summary.2 = event.queue.as_str();
                    summary.3 = if state == Some("waiting") {
                        None
                    } else {
                        agent
                    };
                    summary.4 = event.priority.or(summary.4);
                    if event.kind == EventKind::Answered {
                        summary.5 = Some(at);
                    }
                    if event.kind == EventKind::Connected {
                        summary.6 = Some(at);
                    }
                    let is_final = is_final(event.kind);
                    if (is_final || event.kind == EventKind::Ended) && summary.7.is_none() {
                        summary.7 = Some(at);
                    }
                    if is_final {
                        summary.8 = Some(at);
                        summary.9 = Some(event.kind.as_str());
                    }
                    if matches!(event.kind, EventKind::Overflowed | EventKind::Moved) {
                        summary.10 = Some(at);
                    }
                }
                Record::AgentState(change) => agent_states.push((
                    change.agent.as_str(),
                    change.at.millis(),
                    change.state.as_str(),
                    change.reason.as_deref(),
                )),
                Record::Unsent(unsent) => {
                    last_word(
                        &mut instructions,
                        &mut instruction_of,
                        unsent.work_item,
                        Some(unsent),
                    );
                }
                Record::Sent(item) => {
                    last_word(&mut instructions, &mut instruction_of, *item, None);
                }
            }
        }
        let mut unsent = Vec::new();
        let mut sent = Vec::new();
        for (item, instruction) in instructions {
            match instruction {
                Some(kept) => unsent.push((
                    item.to_string(),
                    kept.at.millis(),
                    kept.instruction.as_str(),
                )),
                None => sent.push(item.to_string()),
            }
        }
        // A new item's summary goes into its row instead of an update.
        let mut folded = vec![false; summaries.len()];
        let created: Vec<CreatedRow<'_>> = created
            .into_iter()
            .map(|item| {
                let slot = summary_of.get(&item.id).copied();
                if let Some(slot) = slot {
                    folded[slot] = true;
                }
                CreatedRow::new(item, slot.map(|slot| &summaries[slot]))
            })
            .collect();
        let summaries: Vec<&Summary<'_>> = summaries
            .iter()
            .zip(folded)
            .filter_map(|(summary, folded)| (!folded).then_some(summary))
            .collect();
        Self {
            created: non_empty(&created),
            events: non_empty(&events),
            summaries: non_empty(&summaries),
            agent_states: non_empty(&agent_states),
            unsent: non_empty(&unsent),
            sent: non_empty(&sent),
        }
    }

    /// The six kinds of rows in the order the back-ends write them, which
    /// is also SQLite's parameter order: new work items, events, summaries,
    /// agent states, unsent instructions kept, unsent instructions dropped.
    pub(super) fn in_order(self) -> [Option<String>; 6] {
        [
            self.created,
            self.events,
            self.summaries,
            self.agent_states,
            self.unsent,
            self.sent,
        ]
    }
}

/// Sets a work item's last word on its unsent instructions, replacing an
/// earlier one in the batch: a later record supersedes it.
fn last_word<'a>(
    words: &mut Vec<(WorkItemId, Option<&'a UnsentInstruction>)>,
    index: &mut HashMap<WorkItemId, usize>,
    item: WorkItemId,
    word: Option<&'a UnsentInstruction>,
) {
    match index.get(&item) {
        Some(&slot) => words[slot].1 = word,
        None => {
            index.insert(item, words.len());
            words.push((item, word));
        }
    }
}

/// A JSON column's text.
fn json_text(value: &impl Serialize) -> String {
    // Maps with string keys, strings and numbers always serialise.
    serde_json::to_string(value).unwrap_or_default()
}

/// The rows as one JSON array, or `None` when there are none.
fn non_empty<T: Serialize>(rows: &[T]) -> Option<String> {
    if rows.is_empty() {
        None
    } else {
        Some(json_text(&rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;
    use crate::store::records::WorkItemEvent;

    fn event(item: WorkItemId, at: i64, kind: EventKind, agent: Option<&str>) -> Record {
        Record::Event(WorkItemEvent {
            work_item: item,
            at: Timestamp::from_millis(at),
            kind,
            queue: "sales".into(),
            agent: agent.map(Into::into),
            priority: (kind == EventKind::Queued).then_some(3),
            detail: "{}".into(),
        })
    }

    #[test]
    fn an_items_events_fold_into_one_summary_as_single_updates_would_leave_it() {
        let item = WorkItemId::new();
        let records = [
            event(item, 1, EventKind::Queued, None),
            event(item, 2, EventKind::Offered, Some("alice")),
            event(item, 3, EventKind::OfferDeclined, Some("alice")),
            event(item, 4, EventKind::Offered, Some("bob")),
            event(item, 5, EventKind::Answered, Some("bob")),
            event(item, 6, EventKind::Ended, Some("bob")),
            event(item, 7, EventKind::Completed, Some("bob")),
        ];
        let rows = BatchRows::new(&records);
        assert!(rows.created.is_none() && rows.agent_states.is_none());
        let events: serde_json::Value = serde_json::from_str(&rows.events.unwrap()).unwrap();
        assert_eq!(events.as_array().unwrap().len(), 7, "every event is kept");
        assert_eq!(events[2][2], "offer_declined", "in the batch's order");
        let summaries: serde_json::Value = serde_json::from_str(&rows.summaries.unwrap()).unwrap();
        assert_eq!(
            summaries,
            serde_json::json!([[
                item.to_string(),
                "completed",
                "sales",
                "bob",
                3,
                5,
                null,
                6,
                7,
                "completed",
                null
            ]])
        );
    }

    #[test]
    fn a_new_item_is_written_once_with_its_events_summary() {
        let older = WorkItemId::new();
        let item = crate::bench::ceiling::submission(1, "sales", Timestamp::from_millis(1));
        let [Record::Created(created), queued] = item else {
            unreachable!("a submission is created, then queued")
        };
        let new = created.id;
        let records = [
            Record::Created(created),
            queued,
            event(new, 2, EventKind::Offered, Some("alice")),
            event(older, 2, EventKind::Answered, Some("bob")),
        ];
        let rows = BatchRows::new(&records);
        let created: serde_json::Value = serde_json::from_str(&rows.created.unwrap()).unwrap();
        let row = &created[0];
        assert_eq!(
            (&row[14], &row[15], &row[16], &row[19]),
            (
                &serde_json::json!("sales"),
                &serde_json::json!("offered"),
                &serde_json::json!("alice"),
                &serde_json::Value::Null
            ),
            "queue, state, agent, answered_at: {row}"
        );
        let summaries: serde_json::Value = serde_json::from_str(&rows.summaries.unwrap()).unwrap();
        assert_eq!(summaries.as_array().unwrap().len(), 1, "{summaries}");
        assert_eq!(
            summaries[0][0],
            older.to_string(),
            "only the older item is updated"
        );
    }

    #[test]
    fn an_items_last_word_on_its_unsent_instructions_is_the_one_written() {
        let (kept, dropped, replaced) = (WorkItemId::new(), WorkItemId::new(), WorkItemId::new());
        let unsent = |item, at, instruction: &str| {
            Record::Unsent(UnsentInstruction {
                work_item: item,
                at: Timestamp::from_millis(at),
                instruction: instruction.into(),
            })
        };
        let records = [
            unsent(kept, 1, "overflow"),
            unsent(dropped, 2, "overflow"),
            Record::Sent(kept),
            unsent(replaced, 3, "overflow"),
            Record::Sent(dropped),
            unsent(kept, 4, "disconnect"),
            unsent(replaced, 5, "disconnect"),
        ];
        let rows = BatchRows::new(&records);
        let kept_rows: serde_json::Value = serde_json::from_str(&rows.unsent.unwrap()).unwrap();
        assert_eq!(
            kept_rows,
            serde_json::json!([
                [kept.to_string(), 4, "disconnect"],
                [replaced.to_string(), 5, "disconnect"]
            ])
        );
        let sent: serde_json::Value = serde_json::from_str(&rows.sent.unwrap()).unwrap();
        assert_eq!(sent, serde_json::json!([dropped.to_string()]));
    }

    #[test]
    fn an_item_back_in_line_has_no_agent_and_a_reprioritisation_keeps_the_state() {
        let item = WorkItemId::new();
        let records = [
            event(item, 1, EventKind::Offered, Some("alice")),
            event(item, 2, EventKind::OfferTimedOut, Some("alice")),
            event(item, 3, EventKind::Reprioritised, None),
        ];
        let summaries: serde_json::Value =
            serde_json::from_str(&BatchRows::new(&records).summaries.unwrap()).unwrap();
        assert_eq!(summaries[0][1], "waiting");
        assert_eq!(summaries[0][3], serde_json::Value::Null);
        assert_eq!(summaries[0][7], serde_json::Value::Null, "not ended");
    }
}
