//! Durable storage: one async [`Store`] trait with two back-ends, SQLite (the
//! embedded default) and PostgreSQL, sharing their SQL (see `sql.rs`) and one
//! conformance suite (`tests/store_conformance.rs`).

mod batch;
pub mod lookup;
mod postgres;
pub mod records;
pub mod report;
mod sql;
mod sqlite;
pub mod writer;

pub use postgres::{PgStore, ScratchSchema};
pub use sqlite::SqliteStore;

use crate::domain::{
    Agent, AgentId, EntryPoint, EntryPointAddress, InteractionId, Queue, QueueId, Skill, SkillName,
    Timestamp, WorkItemId,
};
use crate::error::{Error, Result};
use async_trait::async_trait;
use records::{AgentStateRecord, Record, StoredWorkItem, UnsentInstruction, WorkItemEvent};
use report::{IntervalRow, ReportRange};
use std::sync::Arc;

/// Who did something and when, written to the audit log with the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The caller's identity as far as it is known (a header, or the peer address).
    pub name: String,
    /// When the change was made.
    pub at: Timestamp,
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increasing id, assigned by the store.
    pub id: i64,
    /// Who acted.
    pub actor: String,
    /// When.
    pub at: Timestamp,
    /// What was done, e.g. `create_queue` or `force_agent_state`.
    pub action: String,
    /// What it was done to, e.g. the queue id.
    pub target: String,
    /// Further detail as JSON.
    pub detail: String,
}

/// The system of record. Every configuration change is written in one
/// transaction together with its audit-log row, so nothing half-written
/// stays behind.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a skill; `AlreadyExists` if the name is taken.
    async fn create_skill(&self, skill: &Skill, by: &Actor) -> Result<()>;
    /// Reads a skill.
    async fn get_skill(&self, name: &SkillName) -> Result<Skill>;
    /// Lists every skill, by name.
    async fn list_skills(&self) -> Result<Vec<Skill>>;
    /// Replaces a skill's description.
    async fn update_skill(&self, skill: &Skill, by: &Actor) -> Result<()>;
    /// Deletes a skill; `FailedPrecondition` while a routing step or agent uses it.
    async fn delete_skill(&self, name: &SkillName, by: &Actor) -> Result<()>;

    /// Creates a queue with its routing steps.
    async fn create_queue(&self, queue: &Queue, by: &Actor) -> Result<()>;
    /// Reads a queue.
    async fn get_queue(&self, id: &QueueId) -> Result<Queue>;
    /// Lists every queue, by id.
    async fn list_queues(&self) -> Result<Vec<Queue>>;
    /// Replaces a queue's configuration.
    async fn update_queue(&self, queue: &Queue, by: &Actor) -> Result<()>;
    /// Deletes a queue; `FailedPrecondition` while an entry point or overflow rule refers to it.
    async fn delete_queue(&self, id: &QueueId, by: &Actor) -> Result<()>;

    /// Creates an entry point.
    async fn create_entry_point(&self, entry_point: &EntryPoint, by: &Actor) -> Result<()>;
    /// Reads an entry point.
    async fn get_entry_point(&self, address: &EntryPointAddress) -> Result<EntryPoint>;
    /// Lists every entry point, by address.
    async fn list_entry_points(&self) -> Result<Vec<EntryPoint>>;
    /// Replaces an entry point.
    async fn update_entry_point(&self, entry_point: &EntryPoint, by: &Actor) -> Result<()>;
    /// Deletes an entry point.
    async fn delete_entry_point(&self, address: &EntryPointAddress, by: &Actor) -> Result<()>;

    /// Creates an agent with their skills and queues.
    async fn create_agent(&self, agent: &Agent, by: &Actor) -> Result<()>;
    /// Reads an agent.
    async fn get_agent(&self, id: &AgentId) -> Result<Agent>;
    /// Lists every agent, by id.
    async fn list_agents(&self) -> Result<Vec<Agent>>;
    /// Replaces an agent's configuration.
    async fn update_agent(&self, agent: &Agent, by: &Actor) -> Result<()>;
    /// Deletes an agent.
    async fn delete_agent(&self, id: &AgentId, by: &Actor) -> Result<()>;

    /// Appends a supervisor action to the audit log and returns its id.
    async fn record_action(
        &self,
        by: &Actor,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<i64>;
    /// Reads the audit log after `after_id`, oldest first, at most `limit` rows.
    async fn audit_log(&self, after_id: i64, limit: u32) -> Result<Vec<AuditEntry>>;

    /// Commits a batch of records in one transaction: all or nothing.
    async fn append(&self, records: &[Record]) -> Result<()>;
    /// The first segments of those of `interactions` the bridge submitted
    /// before, in no particular order: one query for many submissions.
    async fn find_work_items(&self, interactions: &[InteractionId]) -> Result<Vec<StoredWorkItem>>;
    /// The first segment of an interaction, if the bridge submitted it before.
    async fn find_work_item(&self, interaction: &InteractionId) -> Result<Option<StoredWorkItem>> {
        let found = self
            .find_work_items(std::slice::from_ref(interaction))
            .await?;
        Ok(found.into_iter().next())
    }
    /// Hands the interaction of every work item's first segment to `each`,
    /// a page at a time (not one snapshot: what is submitted meanwhile may
    /// be left out), for the lookups' filter of known interactions.
    async fn each_interaction(&self, each: &mut (dyn FnMut(InteractionId) + Send)) -> Result<()>;
    /// Hands every work item not yet finished to `each`, in enqueue order,
    /// as it is read, for recovery.
    async fn each_open_work_item(
        &self,
        each: &mut (dyn FnMut(StoredWorkItem) + Send),
    ) -> Result<()>;
    /// Every work item not yet finished, in enqueue order.
    async fn open_work_items(&self) -> Result<Vec<StoredWorkItem>> {
        let mut items = Vec::new();
        self.each_open_work_item(&mut |item| items.push(item))
            .await?;
        Ok(items)
    }
    /// A work item's lifecycle, oldest first.
    async fn work_item_events(&self, id: WorkItemId) -> Result<Vec<WorkItemEvent>>;
    /// An agent's routing-state history, oldest first.
    async fn agent_states(&self, agent: &AgentId) -> Result<Vec<AgentStateRecord>>;
    /// The bridge instructions no bridge session has received yet, oldest
    /// first, for recovery.
    async fn unsent_instructions(&self) -> Result<Vec<UnsentInstruction>>;

    /// The interval report of the work items that first arrived in the
    /// range (see [`report`] for how each figure is counted); agents'
    /// current states are counted up to `now`.
    async fn interval_report(
        &self,
        range: &ReportRange,
        now: Timestamp,
    ) -> Result<Vec<IntervalRow>>;

    /// Checks that the database answers: `Unavailable` when it does not.
    async fn ping(&self) -> Result<()>;

    /// Closes the connection pool after in-flight queries finish.
    async fn close(&self);
}

/// Opens the store a database URL names, creating the SQLite file if missing,
/// and applies migrations. `postgres://` and `postgresql://` URLs select
/// PostgreSQL; `sqlite:` URLs or plain paths select SQLite.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::connect(url).await?));
    }
    Ok(Arc::new(SqliteStore::connect(url).await?))
}

/// A fresh SQLite store in `dir`, for unit tests.
#[cfg(test)]
pub(crate) async fn sqlite_in(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    let path = dir.path().join("switchboard.db");
    connect(&path.display().to_string())
        .await
        .expect("the store opens")
}

/// Maps a database error to the domain error. Constraint violations are
/// recognised by their SQLSTATE class through sqlx's error kind, never by
/// message text; details go to the log, not to the caller.
fn db_error(error: sqlx::Error) -> Error {
    match &error {
        sqlx::Error::Database(db) => match db.kind() {
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                Error::FailedPrecondition("the object is still referred to".into())
            }
            _ if cannot_write_now(db.as_ref()) => {
                tracing::warn!(%error, "database unavailable");
                Error::Unavailable("the database is unavailable, retry later".into())
            }
            _ => {
                tracing::error!(%error, "database error");
                Error::Internal
            }
        },
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => {
            tracing::warn!(%error, "database unavailable");
            Error::Unavailable("the database is unavailable, retry later".into())
        }
        _ => {
            tracing::error!(%error, "database error");
            Error::Internal
        }
    }
}

/// True when the database refuses for a reason that passes: PostgreSQL's
/// SQLSTATE classes 08 (connection), 53 (disk full, out of memory, too many
/// connections), 57P01–57P03 (shutting down, starting) and 25006 (a read-only
/// standby); SQLite's busy, locked, read-only, I/O error, full and
/// cannot-open result codes. Records are then held and retried, never dropped.
fn cannot_write_now(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        return code.starts_with("08")
            || code.starts_with("53")
            || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "25006");
    }
    // SQLite reports its extended result code; the primary code is its low byte.
    let primary = code.parse::<i32>().map(|extended| extended & 0xff);
    // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
    matches!(primary, Ok(5 | 6 | 8 | 10 | 13 | 14))
}

/// True when the error is a unique-constraint violation.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}
