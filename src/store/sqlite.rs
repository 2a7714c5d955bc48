//! The SQLite back-end: the embedded default, one file, nothing to install.

use sqlx::Connection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

/// A [`Store`](super::Store) on a SQLite database file.
pub struct SqliteStore {
    /// Connections to the file; SQLite allows one writer at a time, readers in parallel (WAL).
    pool: SqlitePool,
}

/// Open work items per statement of the recovery read.
const OPEN_CHUNK: usize = 10_000;

impl SqliteStore {
    /// Hands every open work item to `each`, reading them a chunk at a time
    /// in one read transaction, so they are one snapshot.
    async fn read_open_work_items(
        &self,
        each: &mut (dyn FnMut(StoredWorkItem) + Send),
    ) -> crate::error::Result<()> {
        let mut tx = self.pool.begin().await.map_err(super::db_error)?;
        let mut after = (i64::MIN, String::new());
        loop {
            let chunk: String = sqlx::query_scalar(sql::SELECT_OPEN_WORK_ITEMS_AS_JSON)
                .bind(after.0)
                .bind(&after.1)
                .bind(OPEN_CHUNK as i64)
                .fetch_one(&mut *tx)
                .await
                .map_err(super::db_error)?;
            let columns: Vec<sql::WorkItemColumns> = sql::from_json("work_items", &chunk)?;
            let done = columns.len() < OPEN_CHUNK;
            if let Some(last) = columns.last() {
                after = (last.enqueued_at, last.id.clone());
            }
            for item in columns {
                each(item.into_stored()?);
            }
            if done {
                return tx.commit().await.map_err(super::db_error);
            }
        }
    }

    /// Commits a batch of records in one transaction ([`Store::append`](super::Store::append)).
    async fn append_batch(&self, records: &[Record]) -> crate::error::Result<()> {
        let mut tx = self
            .pool
            .begin_with(Self::BEGIN_WRITE)
            .await
            .map_err(super::db_error)?;
        let mut query = sqlx::query(Self::WRITE_BATCH);
        for kind in super::batch::BatchRows::new(records).in_order() {
            query = query.bind(kind);
        }
        query.execute(&mut *tx).await.map_err(super::db_error)?;
        tx.commit().await.map_err(super::db_error)
    }

    /// Starts a write transaction: takes the write lock at once, so a transaction that reads before it writes never fails to upgrade its lock.
    const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

    /// Writes a batch's rows, from [`BatchRows::in_order`](super::batch::BatchRows::in_order):
    /// one statement per kind of row, sent together so that the batch costs
    /// one round trip to SQLite's worker thread, not six. `$1` new work
    /// items; `$2` lifecycle events, in order; `$3` summaries of work items
    /// created in earlier batches; `$4` agents' state changes; `$5` unsent
    /// instructions to keep; `$6` work items whose unsent instructions are
    /// dropped. A null parameter is an empty set of rows. (In the fifth,
    /// `WHERE true` tells SQLite's parser the upsert clause is not a join's.)
    const WRITE_BATCH: &str = concat!(
        "INSERT INTO work_items (",
        super::sql::inserted_work_item_columns!(),
        ") SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, \
         value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11, \
         value ->> 12, value ->> 13, value ->> 14, value ->> 15, value ->> 16, value ->> 17, \
         value ->> 18, value ->> 19, value ->> 20, value ->> 21, value ->> 22, value ->> 23 \
         FROM jsonb_each($1) ORDER BY key;\n",
        "INSERT INTO work_item_events (work_item_id, at, kind, queue_id, agent_id, detail) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5 \
         FROM jsonb_each($2) ORDER BY key;\n",
        "UPDATE work_items SET \
         state = COALESCE(u.value ->> 1, state), queue_id = u.value ->> 2, \
         agent_id = u.value ->> 3, priority = COALESCE(u.value ->> 4, priority), \
         answered_at = COALESCE(u.value ->> 5, answered_at), \
         connected_at = COALESCE(u.value ->> 6, connected_at), \
         ended_at = COALESCE(ended_at, u.value ->> 7), \
         completed_at = COALESCE(u.value ->> 8, completed_at), \
         outcome = COALESCE(u.value ->> 9, outcome), \
         enqueued_at = COALESCE(u.value ->> 10, enqueued_at) \
         FROM jsonb_each($3) AS u WHERE work_items.id = u.value ->> 0;\n",
        "INSERT INTO agent_state_history (agent_id, at, state, reason) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM jsonb_each($4) ORDER BY key;\n",
        "INSERT INTO unsent_instructions (work_item_id, at, instruction) \
         SELECT value ->> 0, value ->> 1, value ->> 2 FROM jsonb_each($5) WHERE true \
         ON CONFLICT (work_item_id) DO UPDATE SET at = excluded.at, instruction = excluded.instruction;\n",
        "DELETE FROM unsent_instructions WHERE work_item_id IN (SELECT value FROM json_each($6))"
    );

    /// The first segments of the interactions in a JSON array of ids.
    const SELECT_WORK_ITEMS_BY_INTERACTIONS: &str = concat!(
        "SELECT ",
        super::sql::work_item_columns!(),
        " FROM work_items WHERE segment = 0 AND interaction_id IN (SELECT value FROM json_each($1))"
    );

    /// Opens (creating if missing) the database a `sqlite:` URL or a plain
    /// path names, and applies migrations. Commits are fully synchronous:
    /// an acknowledged write survives a crash of the process or the machine.
    pub async fn connect(url: &str) -> crate::error::Result<Self> {
        let options = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).map_err(|error| {
                crate::error::Error::invalid("database_url", format!("not a SQLite URL: {error}"))
            })?
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // On a full disk or an I/O error SQLite may abort a transaction
            // itself; sqlx's ROLLBACK then fails and it goes on counting the
            // connection as inside a transaction, so that every later BEGIN
            // on it fails, for good. Such a connection is closed, not reused:
            // writes resume on a fresh one once the disk takes them again.
            .before_acquire(|connection, _| {
                Box::pin(async move { Ok(!connection.is_in_transaction()) })
            })
            .connect_with(options)
            .await
            .map_err(super::db_error)?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|error| {
                tracing::error!(%error, "migrating the SQLite database failed");
                crate::error::Error::Internal
            })?;
        Ok(Self { pool })
    }
}

super::sql::impl_sql_store!(SqliteStore, sqlx::Sqlite);
