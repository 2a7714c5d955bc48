//! The SQL both back-ends share. SQLite and PostgreSQL accept the same
//! statements here (`$n` parameters, `BIGINT` millisecond times, text ids),
//! so [`impl_sql_store!`] writes the [`Store`](super::Store) implementation
//! once and instantiates it for each pool type; each back-end adds only its
//! connection set-up and migrations.

use super::records::{EventKind, StoredWorkItem, WorkItemRecord};
use crate::domain::{
    Agent, AgentKind, Channel, ChannelCapacity, ChannelThresholds, Disposition, QueueLimits,
    RoutingStep, SelectionStrategy, SkillRequirement, Timestamp, WorkItemId,
};
use crate::error::{Error, Result};

/// The columns of one disposition: kind, overflow queue, message.
pub(super) type DispositionColumns = (Option<&'static str>, Option<String>, Option<String>);

/// Splits a disposition into its three columns.
pub(super) fn disposition_columns(disposition: &Option<Disposition>) -> DispositionColumns {
    match disposition {
        None => (None, None, None),
        Some(Disposition::Reject) => (Some("reject"), None, None),
        Some(Disposition::Overflow { queue }) => (Some("overflow"), Some(queue.to_string()), None),
        Some(Disposition::Voicemail) => (Some("voicemail"), None, None),
        Some(Disposition::Callback) => (Some("callback"), None, None),
        Some(Disposition::Disconnect { message }) => {
            (Some("disconnect"), None, Some(message.clone()))
        }
    }
}

/// Rebuilds a disposition from its three columns.
pub(super) fn disposition_from_columns(
    kind: Option<String>,
    queue: Option<String>,
    message: Option<String>,
) -> Result<Option<Disposition>> {
    let Some(kind) = kind else {
        return Ok(None);
    };
    let disposition = match kind.as_str() {
        "reject" => Disposition::Reject,
        "overflow" => Disposition::Overflow {
            queue: queue.unwrap_or_default().into(),
        },
        "voicemail" => Disposition::Voicemail,
        "callback" => Disposition::Callback,
        "disconnect" => Disposition::Disconnect {
            message: message.unwrap_or_default(),
        },
        other => {
            tracing::error!(kind = other, "unknown disposition kind in database");
            return Err(Error::Internal);
        }
    };
    Ok(Some(disposition))
}

/// Reads a strategy column.
pub(super) fn strategy_from_column(name: &str) -> Result<SelectionStrategy> {
    SelectionStrategy::parse(name).ok_or_else(|| {
        tracing::error!(strategy = name, "unknown strategy in database");
        Error::Internal
    })
}

/// Reads an agent-kind column.
pub(super) fn agent_kind_from_column(name: &str) -> AgentKind {
    match name {
        "informal" => AgentKind::Informal,
        _ => AgentKind::Formal,
    }
}

/// Converts a stored count or duration back to `u32`.
pub(super) fn to_u32(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// The queue columns that are not its routing steps, as read from a row.
pub(super) struct QueueColumns {
    pub limits: QueueLimits,
    pub thresholds: ChannelThresholds,
}

/// Every field an agent row holds, before skills and queues are attached.
pub(super) fn agent_from_columns(
    id: String,
    display_name: String,
    uc_address: String,
    kind: &str,
    capacity: [i64; 3],
    chat_during_calls: bool,
) -> Agent {
    Agent {
        id: id.into(),
        display_name,
        uc_address,
        kind: agent_kind_from_column(kind),
        skills: Vec::new(),
        capacity: ChannelCapacity {
            voice: to_u32(capacity[0]),
            chat: to_u32(capacity[1]),
            video: to_u32(capacity[2]),
        },
        chat_during_calls,
        queues: Vec::new(),
    }
}

/// A step as read from `queue_steps`, before its requirements are attached.
pub(super) fn step_from_columns(match_language: bool, duration_secs: Option<i64>) -> RoutingStep {
    RoutingStep {
        requirements: Vec::new(),
        match_language,
        duration_secs: duration_secs.map(to_u32),
    }
}

/// A requirement as read from `queue_step_requirements`.
pub(super) fn requirement_from_columns(skill: String, min_level: i64) -> SkillRequirement {
    SkillRequirement {
        skill: skill.into(),
        min_level: u8::try_from(min_level).unwrap_or(0),
    }
}

pub(super) const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5) RETURNING id";

pub(super) const SELECT_QUEUES: &str = "SELECT id, description, strategy, priority, priority_aging_secs, \
    sl_voice_secs, sl_chat_secs, sl_video_secs, sl_target, offer_timeout_secs, wrap_up_secs, \
    max_no_answer, reoffer_delay_secs, max_waiting, max_wait_secs, \
    when_full_kind, when_full_queue, when_full_message, \
    when_max_wait_kind, when_max_wait_queue, when_max_wait_message, \
    when_no_agents_kind, when_no_agents_queue, when_no_agents_message \
    FROM queues WHERE ($1 IS NULL OR id = $1) ORDER BY id";

pub(super) const INSERT_QUEUE: &str = "INSERT INTO queues (id, description, strategy, priority, \
    priority_aging_secs, sl_voice_secs, sl_chat_secs, sl_video_secs, sl_target, offer_timeout_secs, \
    wrap_up_secs, max_no_answer, reoffer_delay_secs, max_waiting, max_wait_secs, \
    when_full_kind, when_full_queue, when_full_message, \
    when_max_wait_kind, when_max_wait_queue, when_max_wait_message, \
    when_no_agents_kind, when_no_agents_queue, when_no_agents_message, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
    $20, $21, $22, $23, $24, $25, $25)";

pub(super) const UPDATE_QUEUE: &str = "UPDATE queues SET description = $2, strategy = $3, \
    priority = $4, priority_aging_secs = $5, sl_voice_secs = $6, sl_chat_secs = $7, \
    sl_video_secs = $8, sl_target = $9, offer_timeout_secs = $10, wrap_up_secs = $11, \
    max_no_answer = $12, reoffer_delay_secs = $13, max_waiting = $14, max_wait_secs = $15, \
    when_full_kind = $16, when_full_queue = $17, when_full_message = $18, \
    when_max_wait_kind = $19, when_max_wait_queue = $20, when_max_wait_message = $21, \
    when_no_agents_kind = $22, when_no_agents_queue = $23, when_no_agents_message = $24, \
    updated_at = $25 WHERE id = $1";

pub(super) const SELECT_STEPS: &str = "SELECT queue_id, position, match_language, duration_secs \
    FROM queue_steps WHERE ($1 IS NULL OR queue_id = $1) ORDER BY queue_id, position";

pub(super) const SELECT_REQUIREMENTS: &str = "SELECT queue_id, position, skill, min_level \
    FROM queue_step_requirements WHERE ($1 IS NULL OR queue_id = $1) \
    ORDER BY queue_id, position, ordinal";

pub(super) const SELECT_AGENTS: &str = "SELECT id, display_name, uc_address, kind, capacity_voice, \
    capacity_chat, capacity_video, chat_during_calls FROM agents WHERE ($1 IS NULL OR id = $1) ORDER BY id";

pub(super) const SELECT_AGENT_SKILLS: &str = "SELECT agent_id, skill, level FROM agent_skills \
    WHERE ($1 IS NULL OR agent_id = $1) ORDER BY agent_id, ordinal";

pub(super) const SELECT_AGENT_QUEUES: &str = "SELECT agent_id, queue_id FROM agent_queues \
    WHERE ($1 IS NULL OR agent_id = $1) ORDER BY agent_id, ordinal";

/// The columns of `work_items` a new work item fills, in the order of
/// [`BatchRows::created`](super::batch::BatchRows)'s rows: what it was
/// created with, then its summary after its events in the batch.
macro_rules! inserted_work_item_columns {
    () => {
        "id, interaction_id, segment, channel, from_address, to_address, display_name, \
    entry_point, language, attributes, required_skills, priority, is_transfer, first_queue, \
    queue_id, state, agent_id, arrived_at, enqueued_at, answered_at, connected_at, ended_at, \
    completed_at, outcome"
    };
}
pub(super) use inserted_work_item_columns;

/// The columns of `work_items` that [`StoredWorkItem`](super::StoredWorkItem)
/// reads, in the order of [`WorkItemColumns`].
macro_rules! work_item_columns {
    () => {
        "id, interaction_id, segment, channel, \
    from_address, to_address, display_name, entry_point, language, attributes, required_skills, \
    priority, is_transfer, queue_id, state, agent_id, arrived_at, enqueued_at, answered_at, ended_at"
    };
}
pub(super) use work_item_columns;

/// The condition of a work item still in routing (the partial index's too):
/// every final event, and only a final one, sets `completed_at`.
macro_rules! is_open {
    () => {
        "completed_at IS NULL"
    };
}

/// A page of the interactions submitted so far, in id order after `$1`, at
/// most `$2` (the unique index on interaction and segment answers it).
pub(super) const SELECT_INTERACTIONS_PAGE: &str = "SELECT interaction_id FROM work_items \
     WHERE segment = 0 AND interaction_id > $1 ORDER BY interaction_id LIMIT $2";

/// Interactions per page of [`SELECT_INTERACTIONS_PAGE`].
pub(super) const INTERACTIONS_PAGE: usize = 10_000;

pub(super) const SELECT_OPEN_WORK_ITEMS: &str = concat!(
    "SELECT ",
    work_item_columns!(),
    " FROM work_items WHERE ",
    is_open!(),
    " ORDER BY enqueued_at, id"
);

/// Open work items after an (enqueued_at, id) key, in enqueue order, at
/// most $3 of them, as one JSON array of column arrays (SQLite): one row
/// per chunk rather than one per item, since sqlx-sqlite hands rows over
/// from its worker thread one at a time, copying every column.
pub(super) const SELECT_OPEN_WORK_ITEMS_AS_JSON: &str = concat!(
    "SELECT json_group_array(json_array(",
    work_item_columns!(),
    ") ORDER BY enqueued_at, id) FROM (SELECT * FROM work_items WHERE ",
    is_open!(),
    " AND (enqueued_at, id) > ($1, $2) ORDER BY enqueued_at, id LIMIT $3)"
);

/// True for events after which the item has left routing for good.
pub(super) fn is_final(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Abandoned
            | EventKind::Rejected
            | EventKind::Disposed
            | EventKind::Cancelled
            | EventKind::Completed
    )
}

/// Reads a JSON column written by the store.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|error| {
        tracing::error!(column, %error, "malformed JSON in database");
        Error::Internal
    })
}

/// Reads a channel column.
pub(super) fn channel_from_column(name: &str) -> Result<Channel> {
    Channel::parse(name).ok_or_else(|| {
        tracing::error!(channel = name, "unknown channel in database");
        Error::Internal
    })
}

/// A work item's columns in the order `work_item_columns!` lists them, as
/// a row gives them or as a JSON array of them does.
#[derive(Debug, serde::Deserialize)]
pub(super) struct WorkItemColumns {
    pub id: String,
    pub interaction_id: String,
    pub segment: i64,
    pub channel: String,
    pub from_address: String,
    pub to_address: String,
    pub display_name: String,
    pub entry_point: Option<String>,
    pub language: Option<String>,
    pub attributes: String,
    pub required_skills: String,
    pub priority: i64,
    #[serde(deserialize_with = "bool_or_integer")]
    pub is_transfer: bool,
    pub queue_id: String,
    pub state: String,
    pub agent_id: Option<String>,
    pub arrived_at: i64,
    pub enqueued_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
}

/// A boolean as JSON gives it: `true` / `false`, or SQLite's 1 / 0.
fn bool_or_integer<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<bool, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Integer(i64),
    }
    Ok(match serde::Deserialize::deserialize(deserializer)? {
        Flag::Bool(flag) => flag,
        Flag::Integer(value) => value != 0,
    })
}

impl WorkItemColumns {
    /// The work item and its state.
    pub(super) fn into_stored(self) -> Result<StoredWorkItem> {
        Ok(StoredWorkItem {
            item: WorkItemRecord {
                id: work_item_id_from_column(&self.id)?,
                interaction_id: self.interaction_id.into(),
                segment: to_u32(self.segment),
                channel: channel_from_column(&self.channel)?,
                from_address: self.from_address,
                to_address: self.to_address,
                display_name: self.display_name,
                entry_point: self.entry_point.map(Into::into),
                language: self.language,
                attributes: from_json("attributes", &self.attributes)?,
                required_skills: from_json("required_skills", &self.required_skills)?,
                priority: i32::try_from(self.priority).unwrap_or_default(),
                is_transfer: self.is_transfer,
                queue: self.queue_id.into(),
                arrived_at: Timestamp::from_millis(self.arrived_at),
                enqueued_at: Timestamp::from_millis(self.enqueued_at),
            },
            state: self.state,
            agent: self.agent_id.map(Into::into),
            answered_at: self.answered_at.map(Timestamp::from_millis),
            ended_at: self.ended_at.map(Timestamp::from_millis),
        })
    }
}

/// Reads a work-item id column.
pub(super) fn work_item_id_from_column(text: &str) -> Result<WorkItemId> {
    uuid::Uuid::parse_str(text)
        .map(WorkItemId)
        .map_err(|error| {
            tracing::error!(%error, "malformed work item id in database");
            Error::Internal
        })
}

/// Longest a ping may wait for a connection and its answer: a database that
/// has gone silent (a black-holed network path) is then reported
/// unavailable instead of holding the writer's idle probe.
pub(super) const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a lookup of earlier submissions by interaction id may take,
/// connection included; as long as a commit's hold.
pub(super) const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The error for work on a connection that overran its time limit
/// (`what`, e.g. "a commit"). The connection, which may be left half-way
/// through a query, is closed rather than given back to the pool: returning
/// it would test it with a ping that waits on the same silence, and a later
/// user would read the late answers.
pub(super) fn overran<DB: sqlx::Database>(
    connection: Option<sqlx::pool::PoolConnection<DB>>,
    what: &str,
) -> Error {
    if let Some(taken) = connection {
        drop(taken.detach());
    }
    tracing::warn!(what, "the database did not answer in time");
    Error::Unavailable("the database did not answer in time, retry later".into())
}

/// Writes the [`Store`](super::Store) implementation for a store type whose
/// `pool` field is a `sqlx::Pool<$db>`.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        use $crate::domain::{
            Agent, AgentId, EntryPoint, EntryPointAddress, InteractionId, Queue, QueueId, Skill,
            SkillName, Timestamp, WorkItemId,
        };
        use $crate::error::{Error, Result};
        use $crate::store::sql::{self, QueueColumns};
        use $crate::store::records::{
            AgentStateRecord, EventKind, Record, StoredWorkItem, UnsentInstruction, WorkItemEvent,
        };
        use $crate::store::report::{self, IntervalRow, ReportRange, RowKey};
        use $crate::store::{Actor, AuditEntry, Store, db_error, is_unique_violation};
        use sqlx::Row;
        use std::collections::HashMap;

        type Tx<'a> = sqlx::Transaction<'a, $db>;

        impl $store {
            /// Appends an audit row inside the caller's transaction.
            async fn audit(
                tx: &mut Tx<'_>,
                by: &Actor,
                action: &str,
                target: &str,
                detail: String,
            ) -> Result<i64> {
                sqlx::query_scalar(sql::INSERT_AUDIT)
                    .bind(by.at.millis())
                    .bind(&by.name)
                    .bind(action)
                    .bind(target)
                    .bind(detail)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(db_error)
            }

            /// Fails with `InvalidArgument` on `field` unless the skill or queue `value` exists.
            async fn require(
                tx: &mut Tx<'_>,
                what: &'static str,
                value: &str,
                field: &str,
            ) -> Result<()> {
                let query = match what {
                    "skill" => "SELECT 1 FROM skills WHERE name = $1",
                    _ => "SELECT 1 FROM queues WHERE id = $1",
                };
                let found: Option<i32> = sqlx::query_scalar(query)
                    .bind(value)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(db_error)?;
                if found.is_none() {
                    return Err(Error::invalid(field, format!("unknown {what} {value}")));
                }
                Ok(())
            }

            /// Returns the first value of `column` in rows where `key` equals `value`.
            async fn first_user(
                tx: &mut Tx<'_>,
                query: &'static str,
                value: &str,
            ) -> Result<Option<String>> {
                sqlx::query_scalar(query)
                    .bind(value)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(db_error)
            }

            /// Checks that every skill and overflow queue a queue names exists.
            async fn check_queue_references(tx: &mut Tx<'_>, queue: &Queue) -> Result<()> {
                for (i, step) in queue.steps.iter().enumerate() {
                    for (j, requirement) in step.requirements.iter().enumerate() {
                        let field = format!("steps[{i}].requirements[{j}].skill");
                        Self::require(tx, "skill", requirement.skill.as_str(), &field)
                            .await?;
                    }
                }
                let dispositions = [
                    ("limits.when_full.queue", &queue.limits.when_full),
                    ("limits.when_max_wait.queue", &queue.limits.when_max_wait),
                    ("limits.when_no_agents.queue", &queue.limits.when_no_agents),
                ];
                for (field, disposition) in dispositions {
                    if let Some($crate::domain::Disposition::Overflow { queue: target }) = disposition {
                        Self::require(tx, "queue", target.as_str(), field).await?;
                    }
                }
                Ok(())
            }

            /// Writes a queue's own row (insert or update) with the same binds.
            async fn write_queue_row(
                tx: &mut Tx<'_>,
                statement: &'static str,
                queue: &Queue,
                at: Timestamp,
            ) -> Result<u64> {
                let full = sql::disposition_columns(&queue.limits.when_full);
                let max_wait = sql::disposition_columns(&queue.limits.when_max_wait);
                let no_agents = sql::disposition_columns(&queue.limits.when_no_agents);
                let result = sqlx::query(statement)
                    .bind(queue.id.as_str())
                    .bind(&queue.description)
                    .bind(queue.strategy.as_str())
                    .bind(i64::from(queue.priority))
                    .bind(queue.priority_aging_secs.map(i64::from))
                    .bind(i64::from(queue.sl_thresholds.voice))
                    .bind(i64::from(queue.sl_thresholds.chat))
                    .bind(i64::from(queue.sl_thresholds.video))
                    .bind(queue.sl_target)
                    .bind(i64::from(queue.offer_timeout_secs))
                    .bind(i64::from(queue.wrap_up_secs))
                    .bind(i64::from(queue.max_no_answer))
                    .bind(i64::from(queue.reoffer_delay_secs))
                    .bind(queue.limits.max_waiting.map(i64::from))
                    .bind(queue.limits.max_wait_secs.map(i64::from))
                    .bind(full.0)
                    .bind(full.1)
                    .bind(full.2)
                    .bind(max_wait.0)
                    .bind(max_wait.1)
                    .bind(max_wait.2)
                    .bind(no_agents.0)
                    .bind(no_agents.1)
                    .bind(no_agents.2)
                    .bind(at.millis())
                    .execute(&mut **tx)
                    .await
                    .map_err(db_error)?;
                Ok(result.rows_affected())
            }

            /// Inserts a queue's routing steps and their requirements.
            async fn write_steps(tx: &mut Tx<'_>, queue: &Queue) -> Result<()> {
                for (position, step) in queue.steps.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO queue_steps (queue_id, position, match_language, duration_secs) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(queue.id.as_str())
                    .bind(position as i64)
                    .bind(step.match_language)
                    .bind(step.duration_secs.map(i64::from))
                    .execute(&mut **tx)
                    .await
                    .map_err(db_error)?;
                    for (ordinal, requirement) in step.requirements.iter().enumerate() {
                        sqlx::query(
                            "INSERT INTO queue_step_requirements \
                             (queue_id, position, ordinal, skill, min_level) VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(queue.id.as_str())
                        .bind(position as i64)
                        .bind(ordinal as i64)
                        .bind(requirement.skill.as_str())
                        .bind(i64::from(requirement.min_level))
                        .execute(&mut **tx)
                        .await
                        .map_err(db_error)?;
                    }
                }
                Ok(())
            }

            /// Reads queues with their steps: all of them, or the one named.
            async fn load_queues(&self, id: Option<&str>) -> Result<Vec<Queue>> {
                let rows = sqlx::query(sql::SELECT_QUEUES)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                let mut queues = Vec::with_capacity(rows.len());
                let mut index = HashMap::new();
                for row in rows {
                    let columns = QueueColumns {
                        thresholds: $crate::domain::ChannelThresholds {
                            voice: sql::to_u32(row.try_get("sl_voice_secs").map_err(db_error)?),
                            chat: sql::to_u32(row.try_get("sl_chat_secs").map_err(db_error)?),
                            video: sql::to_u32(row.try_get("sl_video_secs").map_err(db_error)?),
                        },
                        limits: $crate::domain::QueueLimits {
                            max_waiting: row
                                .try_get::<Option<i64>, _>("max_waiting")
                                .map_err(db_error)?
                                .map(sql::to_u32),
                            when_full: sql::disposition_from_columns(
                                row.try_get("when_full_kind").map_err(db_error)?,
                                row.try_get("when_full_queue").map_err(db_error)?,
                                row.try_get("when_full_message").map_err(db_error)?,
                            )?,
                            max_wait_secs: row
                                .try_get::<Option<i64>, _>("max_wait_secs")
                                .map_err(db_error)?
                                .map(sql::to_u32),
                            when_max_wait: sql::disposition_from_columns(
                                row.try_get("when_max_wait_kind").map_err(db_error)?,
                                row.try_get("when_max_wait_queue").map_err(db_error)?,
                                row.try_get("when_max_wait_message").map_err(db_error)?,
                            )?,
                            when_no_agents: sql::disposition_from_columns(
                                row.try_get("when_no_agents_kind").map_err(db_error)?,
                                row.try_get("when_no_agents_queue").map_err(db_error)?,
                                row.try_get("when_no_agents_message").map_err(db_error)?,
                            )?,
                        },
                    };
                    let queue_id: String = row.try_get("id").map_err(db_error)?;
                    let strategy: String = row.try_get("strategy").map_err(db_error)?;
                    let priority: i64 = row.try_get("priority").map_err(db_error)?;
                    index.insert(queue_id.clone(), queues.len());
                    queues.push(Queue {
                        id: queue_id.into(),
                        description: row.try_get("description").map_err(db_error)?,
                        steps: Vec::new(),
                        strategy: sql::strategy_from_column(&strategy)?,
                        priority: i32::try_from(priority).unwrap_or_default(),
                        priority_aging_secs: row
                            .try_get::<Option<i64>, _>("priority_aging_secs")
                            .map_err(db_error)?
                            .map(sql::to_u32),
                        sl_thresholds: columns.thresholds,
                        sl_target: row.try_get("sl_target").map_err(db_error)?,
                        offer_timeout_secs: sql::to_u32(row.try_get("offer_timeout_secs").map_err(db_error)?),
                        wrap_up_secs: sql::to_u32(row.try_get("wrap_up_secs").map_err(db_error)?),
                        max_no_answer: sql::to_u32(row.try_get("max_no_answer").map_err(db_error)?),
                        reoffer_delay_secs: sql::to_u32(row.try_get("reoffer_delay_secs").map_err(db_error)?),
                        limits: columns.limits,
                    });
                }
                let steps = sqlx::query(sql::SELECT_STEPS)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                for row in steps {
                    let queue_id: String = row.try_get("queue_id").map_err(db_error)?;
                    let Some(&i) = index.get(&queue_id) else { continue };
                    queues[i].steps.push(sql::step_from_columns(
                        row.try_get("match_language").map_err(db_error)?,
                        row.try_get("duration_secs").map_err(db_error)?,
                    ));
                }
                let requirements = sqlx::query(sql::SELECT_REQUIREMENTS)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                for row in requirements {
                    let queue_id: String = row.try_get("queue_id").map_err(db_error)?;
                    let position: i64 = row.try_get("position").map_err(db_error)?;
                    let Some(&i) = index.get(&queue_id) else { continue };
                    let Some(step) = usize::try_from(position).ok().and_then(|p| queues[i].steps.get_mut(p)) else {
                        continue;
                    };
                    step.requirements.push(sql::requirement_from_columns(
                        row.try_get("skill").map_err(db_error)?,
                        row.try_get("min_level").map_err(db_error)?,
                    ));
                }
                Ok(queues)
            }

            /// Checks that every skill and queue an agent names exists.
            async fn check_agent_references(tx: &mut Tx<'_>, agent: &Agent) -> Result<()> {
                for (i, (skill, _)) in agent.skills.iter().enumerate() {
                    let field = format!("skills[{i}].skill");
                    Self::require(tx, "skill", skill.as_str(), &field).await?;
                }
                for (i, queue) in agent.queues.iter().enumerate() {
                    let field = format!("queues[{i}]");
                    Self::require(tx, "queue", queue.as_str(), &field).await?;
                }
                Ok(())
            }

            /// Inserts an agent's skills and queue memberships.
            async fn write_agent_links(tx: &mut Tx<'_>, agent: &Agent) -> Result<()> {
                for (ordinal, (skill, level)) in agent.skills.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO agent_skills (agent_id, ordinal, skill, level) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(agent.id.as_str())
                    .bind(ordinal as i64)
                    .bind(skill.as_str())
                    .bind(i64::from(*level))
                    .execute(&mut **tx)
                    .await
                    .map_err(db_error)?;
                }
                for (ordinal, queue) in agent.queues.iter().enumerate() {
                    sqlx::query("INSERT INTO agent_queues (agent_id, ordinal, queue_id) VALUES ($1, $2, $3)")
                        .bind(agent.id.as_str())
                        .bind(ordinal as i64)
                        .bind(queue.as_str())
                        .execute(&mut **tx)
                        .await
                        .map_err(db_error)?;
                }
                Ok(())
            }

            /// Writes an agent's own row (insert or update) with the same binds.
            async fn write_agent_row(
                tx: &mut Tx<'_>,
                statement: &'static str,
                agent: &Agent,
                at: Timestamp,
            ) -> Result<u64> {
                let result = sqlx::query(statement)
                    .bind(agent.id.as_str())
                    .bind(&agent.display_name)
                    .bind(&agent.uc_address)
                    .bind(agent.kind.as_str())
                    .bind(i64::from(agent.capacity.voice))
                    .bind(i64::from(agent.capacity.chat))
                    .bind(i64::from(agent.capacity.video))
                    .bind(agent.chat_during_calls)
                    .bind(at.millis())
                    .execute(&mut **tx)
                    .await
                    .map_err(db_error)?;
                Ok(result.rows_affected())
            }

            /// Reads agents with their skills and queues: all of them, or the one named.
            async fn load_agents(&self, id: Option<&str>) -> Result<Vec<Agent>> {
                let rows = sqlx::query(sql::SELECT_AGENTS)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                let mut agents = Vec::with_capacity(rows.len());
                let mut index = HashMap::new();
                for row in rows {
                    let agent_id: String = row.try_get("id").map_err(db_error)?;
                    let kind: String = row.try_get("kind").map_err(db_error)?;
                    index.insert(agent_id.clone(), agents.len());
                    agents.push(sql::agent_from_columns(
                        agent_id,
                        row.try_get("display_name").map_err(db_error)?,
                        row.try_get("uc_address").map_err(db_error)?,
                        &kind,
                        [
                            row.try_get("capacity_voice").map_err(db_error)?,
                            row.try_get("capacity_chat").map_err(db_error)?,
                            row.try_get("capacity_video").map_err(db_error)?,
                        ],
                        row.try_get("chat_during_calls").map_err(db_error)?,
                    ));
                }
                let skills = sqlx::query(sql::SELECT_AGENT_SKILLS)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                for row in skills {
                    let agent_id: String = row.try_get("agent_id").map_err(db_error)?;
                    let Some(&i) = index.get(&agent_id) else { continue };
                    let skill: String = row.try_get("skill").map_err(db_error)?;
                    let level: i64 = row.try_get("level").map_err(db_error)?;
                    agents[i].skills.push((skill.into(), u8::try_from(level).unwrap_or(0)));
                }
                let queues = sqlx::query(sql::SELECT_AGENT_QUEUES)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                for row in queues {
                    let agent_id: String = row.try_get("agent_id").map_err(db_error)?;
                    let Some(&i) = index.get(&agent_id) else { continue };
                    let queue: String = row.try_get("queue_id").map_err(db_error)?;
                    agents[i].queues.push(queue.into());
                }
                Ok(agents)
            }

            /// Reads the work items a query selects, binding `key` as `$1` when given.
            /// A work item and its state from a row of `work_item_columns!`.
            fn work_item_from_row(row: &<$db as sqlx::Database>::Row) -> Result<StoredWorkItem> {
                sql::WorkItemColumns {
                    id: row.try_get("id").map_err(db_error)?,
                    interaction_id: row.try_get("interaction_id").map_err(db_error)?,
                    segment: row.try_get("segment").map_err(db_error)?,
                    channel: row.try_get("channel").map_err(db_error)?,
                    from_address: row.try_get("from_address").map_err(db_error)?,
                    to_address: row.try_get("to_address").map_err(db_error)?,
                    display_name: row.try_get("display_name").map_err(db_error)?,
                    entry_point: row.try_get("entry_point").map_err(db_error)?,
                    language: row.try_get("language").map_err(db_error)?,
                    attributes: row.try_get("attributes").map_err(db_error)?,
                    required_skills: row.try_get("required_skills").map_err(db_error)?,
                    priority: row.try_get("priority").map_err(db_error)?,
                    is_transfer: row.try_get("is_transfer").map_err(db_error)?,
                    queue_id: row.try_get("queue_id").map_err(db_error)?,
                    state: row.try_get("state").map_err(db_error)?,
                    agent_id: row.try_get("agent_id").map_err(db_error)?,
                    arrived_at: row.try_get("arrived_at").map_err(db_error)?,
                    enqueued_at: row.try_get("enqueued_at").map_err(db_error)?,
                    answered_at: row.try_get("answered_at").map_err(db_error)?,
                    ended_at: row.try_get("ended_at").map_err(db_error)?,
                }
                .into_stored()
            }

            /// Serialises a configuration object for the audit log's detail column.
            fn detail(value: &impl serde::Serialize) -> String {
                serde_json::to_string(value).unwrap_or_default()
            }
        }

        #[async_trait::async_trait]
        impl Store for $store {
            async fn create_skill(&self, skill: &Skill, by: &Actor) -> Result<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                let inserted = sqlx::query(
                    "INSERT INTO skills (name, description, created_at, updated_at) VALUES ($1, $2, $3, $3)",
                )
                .bind(skill.name.as_str())
                .bind(&skill.description)
                .bind(by.at.millis())
                .execute(&mut *tx)
                .await;
                if let Err(error) = inserted {
                    if is_unique_violation(&error) {
                        return Err(Error::AlreadyExists { what: "skill", id: skill.name.to_string() });
                    }
                    return Err(db_error(error));
                }
                Self::audit(&mut tx, by, "create_skill", skill.name.as_str(), Self::detail(skill)).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn get_skill(&self, name: &SkillName) -> Result<Skill> {
                let row = sqlx::query("SELECT name, description FROM skills WHERE name = $1")
                    .bind(name.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_error)?
                    .ok_or_else(|| Error::not_found("skill", name))?;
                let found: String = row.try_get("name").map_err(db_error)?;
                Ok(Skill { name: found.into(), description: row.try_get("description").map_err(db_error)? })
            }

            async fn list_skills(&self) -> Result<Vec<Skill>> {
                let rows = sqlx::query("SELECT name, description FROM skills ORDER BY name")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                let mut skills = Vec::with_capacity(rows.len());
                for row in rows {
                    let name: String = row.try_get("name").map_err(db_error)?;
                    skills.push(Skill { name: name.into(), description: row.try_get("description").map_err(db_error)? });
                }
                Ok(skills)
            }

            async fn update_skill(&self, skill: &Skill, by: &Actor) -> Result<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                let updated = sqlx::query("UPDATE skills SET description = $2, updated_at = $3 WHERE name = $1")
                    .bind(skill.name.as_str())
                    .bind(&skill.description)
                    .bind(by.at.millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                if updated.rows_affected() == 0 {
                    return Err(Error::not_found("skill", &skill.name));
                }
                Self::audit(&mut tx, by, "update_skill", skill.name.as_str(), Self::detail(skill)).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn delete_skill(&self, name: &SkillName, by: &Actor) -> Result<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                let step_user = Self::first_user(
                    &mut tx,
                    "SELECT queue_id FROM queue_step_requirements WHERE skill = $1 ORDER BY queue_id LIMIT 1",
                    name.as_str(),
                )
                .await?;
                if let Some(queue) = step_user {
                    return Err(Error::FailedPrecondition(format!(
                        "skill {name} is still required by a routing step of queue {queue}"
                    )));
                }
                let agent_user = Self::first_user(
                    &mut tx,
                    "SELECT agent_id FROM agent_skills WHERE skill = $1 ORDER BY agent_id LIMIT 1",
                    name.as_str(),
                )
                .await?;
                if let Some(agent) = agent_user {
                    return Err(Error::FailedPrecondition(format!(
                        "skill {name} is still held by agent {agent}"
                    )));
                }
                let deleted = sqlx::query("DELETE FROM skills WHERE name = $1")
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                if deleted.rows_affected() == 0 {
                    return Err(Error::not_found("skill", name));
                }
                Self::audit(&mut tx, by, "delete_skill", name.as_str(), String::from("{}")).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn create_queue(&self, queue: &Queue, by: &Actor) -> Result<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM queues WHERE id = $1")
                    .bind(queue.id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                if exists.is_some() {
                    return Err(Error::AlreadyExists { what: "queue", id: queue.id.to_string() });
                }
                Self::check_queue_references(&mut tx, queue).await?;
                Self::write_queue_row(&mut tx, sql::INSERT_QUEUE, queue, by.at).await?;
                Self::write_steps(&mut tx, queue).await?;
                Self::audit(&mut tx, by, "create_queue", queue.id.as_str(), Self::detail(queue)).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn get_queue(&self, id: &QueueId) -> Result<Queue> {
                let mut queues = self.load_queues(Some(id.as_str())).await?;
                queues.pop().ok_or_else(|| Error::not_found("queue", id))
            }

            async fn list_queues(&self) -> Result<Vec<Queue>> {
                self.load_queues(None).await
            }

            async fn update_queue(&self, queue: &Queue, by: &Actor) -> Result<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                Self::check_queue_references(&mut tx, queue).await?;
                let updated = Self::write_queue_row(&mut tx, sql::UPDATE_QUEUE, queue, by.at).await?;
                if updated == 0 {
                    return Err(Error::not_found("queue", &queue.id));
                }
                sqlx::query("DELETE FROM queue_steps WHERE queue_id = $1")
                    .bind(queue.id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                Self::write_steps(&mut tx, queue).await?;
                Self::audit(&mut tx, by, "update_queue", queue.id.as_str(), Self::detail(queue)).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn delete_queue(&self, id: &QueueId, by: &Actor) -> Result<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                let entry_point = Self::first_user(
                    &mut tx,
                    "SELECT address FROM entry_points WHERE queue_id = $1 ORDER BY address LIMIT 1",
                    id.as_str(),
                )
                .await?;
                if let Some(address) = entry_point {
                    return Err(Error::FailedPrecondition(format!(
                        "queue {id} still serves entry point {address}"
                    )));
                }
                let overflow_from = Self::first_user(
                    &mut tx,
                    "SELECT id FROM queues WHERE when_full_queue = $1 OR when_max_wait_queue = $1 \
                     OR when_no_agents_queue = $1 ORDER BY id LIMIT 1",
                    id.as_str(),
                )
                .await?;
                if let Some(other) = overflow_from {
                    return Err(Error::FailedPrecondition(format!(
                        "queue {id} is still the overflow target of queue {other}"
                    )));
                }
                let deleted = sqlx::query("DELETE FROM queues WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                if deleted.rows_affected() == 0 {
                    return Err(Error::not_found("queue", id));
                }
                Self::audit(&mut tx, by, "delete_queue", id.as_str(), String::from("{}")).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn create_entry_point(&self, entry_point: &EntryPoint, by: &Actor) -> Result<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                Self::require(&mut tx, "queue", entry_point.queue.as_str(), "queue").await?;
                let inserted = sqlx::query(
                    "INSERT INTO entry_points (address, queue_id, description, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4)",
                )
                .bind(entry_point.address.as_str())
                .bind(entry_point.queue.as_str())
                .bind(&entry_point.description)
                .bind(by.at.millis())
                .execute(&mut *tx)
                .await;
                if let Err(error) = inserted {
                    if is_unique_violation(&error) {
                        return Err(Error::AlreadyExists {
                            what: "entry point",
                            id: entry_point.address.to_string(),
                        });
                    }
                    return Err(db_error(error));
                }
                let target = entry_point.address.as_str();
                Self::audit(&mut tx, by, "create_entry_point", target, Self::detail(entry_point)).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn get_entry_point(&self, address: &EntryPointAddress) -> Result<EntryPoint> {
                let row = sqlx::query("SELECT address, queue_id, description FROM entry_points WHERE address = $1")
                    .bind(address.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_error)?
                    .ok_or_else(|| Error::not_found("entry point", address))?;
                let found: String = row.try_get("address").map_err(db_error)?;
                let queue: String = row.try_get("queue_id").map_err(db_error)?;
                Ok(EntryPoint {
                    address: found.into(),
                    queue: queue.into(),
                    description: row.try_get("description").map_err(db_error)?,
                })
            }

            async fn list_entry_points(&self) -> Result<Vec<EntryPoint>> {
                let rows = sqlx::query("SELECT address, queue_id, description FROM entry_points ORDER BY address")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                let mut entry_points = Vec::with_capacity(rows.len());
                for row in rows {
                    let address: String = row.try_get("address").map_err(db_error)?;
                    let queue: String = row.try_get("queue_id").map_err(db_error)?;
                    entry_points.push(EntryPoint {
                        address: address.into(),
                        queue: queue.into(),
                        description: row.try_get("description").map_err(db_error)?,
                    });
                }
                Ok(entry_points)
            }

            async fn update_entry_point(&self, entry_point: &EntryPoint, by: &Actor) -> Result<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                Self::require(&mut tx, "queue", entry_point.queue.as_str(), "queue").await?;
                let updated = sqlx::query(
                    "UPDATE entry_points SET queue_id = $2, description = $3, updated_at = $4 WHERE address = $1",
                )
                .bind(entry_point.address.as_str())
                .bind(entry_point.queue.as_str())
                .bind(&entry_point.description)
                .bind(by.at.millis())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if updated.rows_affected() == 0 {
                    return Err(Error::not_found("entry point", &entry_point.address));
                }
                let target = entry_point.address.as_str();
                Self::audit(&mut tx, by, "update_entry_point", target, Self::detail(entry_point)).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn delete_entry_point(&self, address: &EntryPointAddress, by: &Actor) -> Result<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                let deleted = sqlx::query("DELETE FROM entry_points WHERE address = $1")
                    .bind(address.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                if deleted.rows_affected() == 0 {
                    return Err(Error::not_found("entry point", address));
                }
                Self::audit(&mut tx, by, "delete_entry_point", address.as_str(), String::from("{}")).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn create_agent(&self, agent: &Agent, by: &Actor) -> Result<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM agents WHERE id = $1")
                    .bind(agent.id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                if exists.is_some() {
                    return Err(Error::AlreadyExists { what: "agent", id: agent.id.to_string() });
                }
                Self::check_agent_references(&mut tx, agent).await?;
                Self::write_agent_row(
                    &mut tx,
                    "INSERT INTO agents (id, display_name, uc_address, kind, capacity_voice, capacity_chat, \
                     capacity_video, chat_during_calls, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                    agent,
                    by.at,
                )
                .await?;
                Self::write_agent_links(&mut tx, agent).await?;
                Self::audit(&mut tx, by, "create_agent", agent.id.as_str(), Self::detail(agent)).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn get_agent(&self, id: &AgentId) -> Result<Agent> {
                let mut agents = self.load_agents(Some(id.as_str())).await?;
                agents.pop().ok_or_else(|| Error::not_found("agent", id))
            }

            async fn list_agents(&self) -> Result<Vec<Agent>> {
                self.load_agents(None).await
            }

            async fn update_agent(&self, agent: &Agent, by: &Actor) -> Result<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                Self::check_agent_references(&mut tx, agent).await?;
                let updated = Self::write_agent_row(
                    &mut tx,
                    "UPDATE agents SET display_name = $2, uc_address = $3, kind = $4, capacity_voice = $5, \
                     capacity_chat = $6, capacity_video = $7, chat_during_calls = $8, updated_at = $9 \
                     WHERE id = $1",
                    agent,
                    by.at,
                )
                .await?;
                if updated == 0 {
                    return Err(Error::not_found("agent", &agent.id));
                }
                for table in ["DELETE FROM agent_skills WHERE agent_id = $1", "DELETE FROM agent_queues WHERE agent_id = $1"] {
                    sqlx::query(table).bind(agent.id.as_str()).execute(&mut *tx).await.map_err(db_error)?;
                }
                Self::write_agent_links(&mut tx, agent).await?;
                Self::audit(&mut tx, by, "update_agent", agent.id.as_str(), Self::detail(agent)).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn delete_agent(&self, id: &AgentId, by: &Actor) -> Result<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                let deleted = sqlx::query("DELETE FROM agents WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                if deleted.rows_affected() == 0 {
                    return Err(Error::not_found("agent", id));
                }
                Self::audit(&mut tx, by, "delete_agent", id.as_str(), String::from("{}")).await?;
                tx.commit().await.map_err(db_error)
            }

            async fn record_action(&self, by: &Actor, action: &str, target: &str, detail: &str) -> Result<i64> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await.map_err(db_error)?;
                let id = Self::audit(&mut tx, by, action, target, detail.to_string()).await?;
                tx.commit().await.map_err(db_error)?;
                Ok(id)
            }

            async fn audit_log(&self, after_id: i64, limit: u32) -> Result<Vec<AuditEntry>> {
                let rows = sqlx::query(
                    "SELECT id, at, actor, action, target, detail FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
                let mut entries = Vec::with_capacity(rows.len());
                for row in rows {
                    entries.push(AuditEntry {
                        id: row.try_get("id").map_err(db_error)?,
                        at: Timestamp::from_millis(row.try_get("at").map_err(db_error)?),
                        actor: row.try_get("actor").map_err(db_error)?,
                        action: row.try_get("action").map_err(db_error)?,
                        target: row.try_get("target").map_err(db_error)?,
                        detail: row.try_get("detail").map_err(db_error)?,
                    });
                }
                Ok(entries)
            }

            async fn append(&self, records: &[Record]) -> Result<()> {
                self.append_batch(records).await
            }

            async fn find_work_items(&self, interactions: &[InteractionId]) -> Result<Vec<StoredWorkItem>> {
                if interactions.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<&str> = interactions.iter().map(InteractionId::as_str).collect();
                // A list of strings always serialises.
                let ids = serde_json::to_string(&ids).unwrap_or_default();
                // Every submission waits on this lookup: a silent database
                // must not hold them past the commit's own limit.
                let mut taken = None;
                let answered = tokio::time::timeout(sql::LOOKUP_TIMEOUT, async {
                    let connection = taken.insert(self.pool.acquire().await.map_err(db_error)?);
                    sqlx::query(Self::SELECT_WORK_ITEMS_BY_INTERACTIONS)
                        .bind(ids)
                        .fetch_all(&mut **connection)
                        .await
                        .map_err(db_error)
                })
                .await;
                let rows = match answered {
                    Ok(answered) => answered?,
                    Err(_silent) => return Err(sql::overran(taken, "a lookup of earlier submissions")),
                };
                rows.iter().map(Self::work_item_from_row).collect()
            }

            async fn each_open_work_item(
                &self,
                each: &mut (dyn FnMut(StoredWorkItem) + Send),
            ) -> Result<()> {
                self.read_open_work_items(each).await
            }

            async fn each_interaction(
                &self,
                each: &mut (dyn FnMut(InteractionId) + Send),
            ) -> Result<()> {
                let mut after = String::new();
                loop {
                    // A silent database must not hold a connection, and so
                    // the pool's closing at shutdown, for as long as TCP waits.
                    let mut taken = None;
                    let answered = tokio::time::timeout(sql::LOOKUP_TIMEOUT, async {
                        let connection = taken.insert(self.pool.acquire().await.map_err(db_error)?);
                        sqlx::query_scalar(sql::SELECT_INTERACTIONS_PAGE)
                            .bind(&after)
                            .bind(sql::INTERACTIONS_PAGE as i64)
                            .fetch_all(&mut **connection)
                            .await
                            .map_err(db_error)
                    })
                    .await;
                    let page: Vec<String> = match answered {
                        Ok(answered) => answered?,
                        Err(_silent) => return Err(sql::overran(taken, "a read of the stored interactions")),
                    };
                    let done = page.len() < sql::INTERACTIONS_PAGE;
                    for interaction in page {
                        each(InteractionId::from(interaction.as_str()));
                        after = interaction;
                    }
                    if done {
                        return Ok(());
                    }
                }
            }

            async fn work_item_events(&self, id: WorkItemId) -> Result<Vec<WorkItemEvent>> {
                let rows = sqlx::query(
                    "SELECT at, kind, queue_id, agent_id, detail FROM work_item_events WHERE work_item_id = $1 ORDER BY id",
                )
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
                let mut events = Vec::with_capacity(rows.len());
                for row in rows {
                    let kind: String = row.try_get("kind").map_err(db_error)?;
                    let queue: String = row.try_get("queue_id").map_err(db_error)?;
                    let agent: Option<String> = row.try_get("agent_id").map_err(db_error)?;
                    events.push(WorkItemEvent {
                        work_item: id,
                        at: Timestamp::from_millis(row.try_get("at").map_err(db_error)?),
                        kind: EventKind::parse(&kind).ok_or(Error::Internal)?,
                        queue: queue.into(),
                        agent: agent.map(Into::into),
                        priority: None,
                        detail: row.try_get("detail").map_err(db_error)?,
                    });
                }
                Ok(events)
            }

            async fn agent_states(&self, agent: &AgentId) -> Result<Vec<AgentStateRecord>> {
                let rows = sqlx::query(
                    "SELECT at, state, reason FROM agent_state_history WHERE agent_id = $1 ORDER BY id",
                )
                .bind(agent.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
                let mut states = Vec::with_capacity(rows.len());
                for row in rows {
                    states.push(AgentStateRecord {
                        agent: agent.clone(),
                        at: Timestamp::from_millis(row.try_get("at").map_err(db_error)?),
                        state: row.try_get("state").map_err(db_error)?,
                        reason: row.try_get("reason").map_err(db_error)?,
                    });
                }
                Ok(states)
            }

            async fn unsent_instructions(&self) -> Result<Vec<UnsentInstruction>> {
                let rows = sqlx::query(
                    "SELECT work_item_id, at, instruction FROM unsent_instructions ORDER BY at, work_item_id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
                let mut unsent = Vec::with_capacity(rows.len());
                for row in rows {
                    let id: String = row.try_get("work_item_id").map_err(db_error)?;
                    unsent.push(UnsentInstruction {
                        work_item: sql::work_item_id_from_column(&id)?,
                        at: Timestamp::from_millis(row.try_get("at").map_err(db_error)?),
                        instruction: row.try_get("instruction").map_err(db_error)?,
                    });
                }
                Ok(unsent)
            }

            async fn interval_report(&self, range: &ReportRange, now: Timestamp) -> Result<Vec<IntervalRow>> {
                let interval = range.interval.millis();
                let short = i64::try_from($crate::domain::SHORT_ABANDON.as_millis()).unwrap_or(i64::MAX);
                let rows = sqlx::query(report::ITEM_COUNTS)
                    .bind(range.from.millis())
                    .bind(range.to.millis())
                    .bind(interval)
                    .bind(short)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                let mut items = Vec::with_capacity(rows.len());
                for row in rows {
                    let mut item = IntervalRow::new(Self::report_key(&row)?);
                    item.offered = Self::count(&row, "offered")?;
                    item.answered = Self::count(&row, "answered")?;
                    item.answered_within = Self::count(&row, "answered_within")?;
                    item.abandoned = Self::count(&row, "abandoned")?;
                    item.abandoned_within = Self::count(&row, "abandoned_within")?;
                    item.short_abandons = Self::count(&row, "short_abandons")?;
                    item.removed_within = Self::count(&row, "removed_within")?;
                    item.transfers = Self::count(&row, "transfers")?;
                    item.answer_wait = Self::span(&row, "answer_wait")?;
                    item.max_wait = Self::span(&row, "max_wait")?;
                    item.handled = Self::count(&row, "handled")?;
                    item.handle_time = Self::span(&row, "handle_time")?;
                    items.push(item);
                }

                let rows = sqlx::query(report::OVERFLOW_COUNTS)
                    .bind(range.from.millis())
                    .bind(range.to.millis())
                    .bind(interval)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                let mut overflows = Vec::with_capacity(rows.len());
                for row in rows {
                    overflows.push((Self::report_key(&row)?, Self::count(&row, "overflowed_out")?));
                }

                let until = range.to.min(now);
                let rows = sqlx::query(report::AGENT_TIME)
                    .bind(range.from.millis())
                    .bind(until.millis())
                    .bind(interval)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?;
                let mut agent_time = std::collections::BTreeMap::new();
                for row in rows {
                    let queue: String = row.try_get("queue_id").map_err(db_error)?;
                    let bucket: i64 = row.try_get("bucket").map_err(db_error)?;
                    let busy = Self::span(&row, "busy")?;
                    let open = Self::span(&row, "open_time")?;
                    agent_time.insert((Timestamp::from_millis(bucket), QueueId::from(queue)), (busy, open));
                }
                Ok(report::assemble(range, items, overflows, agent_time))
            }

            async fn ping(&self) -> Result<()> {
                let mut taken = None;
                let answered = tokio::time::timeout(sql::PING_TIMEOUT, async {
                    let connection = taken.insert(self.pool.acquire().await.map_err(db_error)?);
                    sqlx::query("SELECT 1").execute(&mut **connection).await.map_err(db_error)
                })
                .await;
                match answered {
                    Ok(answered) => answered.map(|_| ()),
                    Err(_silent) => Err(sql::overran(taken, "a ping")),
                }
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }

        impl $store {
            /// The interval, queue and channel a report query's row is about.
            fn report_key(row: &<$db as sqlx::Database>::Row) -> Result<RowKey> {
                let bucket: i64 = row.try_get("bucket").map_err(db_error)?;
                let queue: String = row.try_get("queue_id").map_err(db_error)?;
                let channel: String = row.try_get("channel").map_err(db_error)?;
                Ok((Timestamp::from_millis(bucket), QueueId::from(queue), sql::channel_from_column(&channel)?))
            }

            /// A report query's count column.
            fn count(row: &<$db as sqlx::Database>::Row, column: &str) -> Result<u64> {
                let value: i64 = row.try_get(column).map_err(db_error)?;
                Ok(u64::try_from(value).unwrap_or(0))
            }

            /// A report query's milliseconds column.
            fn span(row: &<$db as sqlx::Database>::Row, column: &str) -> Result<std::time::Duration> {
                let value: i64 = row.try_get(column).map_err(db_error)?;
                Ok(report::millis(value))
            }
        }
    };
}

pub(super) use impl_sql_store;
