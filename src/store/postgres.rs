//! The PostgreSQL back-end: for production and for several nodes.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

/// A [`Store`](super::Store) on a PostgreSQL database.
pub struct PgStore {
    /// Connections to the server.
    pool: PgPool,
    /// The batch whose COMMIT went unanswered, until PostgreSQL says how it
    /// ended.
    unanswered: Mutex<Option<UnansweredCommit>>,
}

/// A batch whose COMMIT was sent but never answered, the connection broken:
/// PostgreSQL may have committed it or not.
struct UnansweredCommit {
    /// The transaction's id (an `xid8`), to ask how it ended.
    transaction: String,
    /// The batch, to know the writer's retry of it.
    records: Vec<Record>,
}

impl PgStore {
    /// The current transaction's id, assigned now, for a retry to ask how
    /// it ended; the transaction also holds the schema's batch lock, shared,
    /// until it ends, which a starting server waits out (`settle`).
    const TRANSACTION_ID: &str = "SELECT pg_current_xact_id()::text FROM \
        (SELECT pg_advisory_xact_lock_shared(hashtext(current_schema()))) AS held";

    /// Takes and gives back the schema's batch lock, exclusively: returns
    /// once no batch that began before is still under way.
    const SETTLE: &str = "SELECT pg_advisory_lock(hashtext(current_schema())), \
        pg_advisory_unlock(hashtext(current_schema()))";

    /// How a transaction ended: `committed`, `aborted`, `in progress`, or
    /// NULL when too old to tell.
    const TRANSACTION_STATUS: &str = "SELECT pg_xact_status($1::xid8)";

    /// Commits a batch of records in one transaction
    /// ([`Store::append`](super::Store::append)). When the connection breaks
    /// with the COMMIT under way the batch may be stored, yet the answer is
    /// UNAVAILABLE and the writer retries it: the retry first asks
    /// PostgreSQL how that transaction ended, so that nothing is stored twice.
    async fn append_batch(&self, records: &[Record]) -> crate::error::Result<()> {
        if self.committed_unanswered(records).await? {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin_with(Self::BEGIN_WRITE)
            .await
            .map_err(super::db_error)?;
        let transaction: String = sqlx::query_scalar(Self::TRANSACTION_ID)
            .fetch_one(&mut *tx)
            .await
            .map_err(super::db_error)?;
        Self::write_batch(&mut tx, records).await?;
        let committed = tx.commit().await.map_err(super::db_error);
        if let Err(crate::error::Error::Unavailable(_)) = committed {
            self.remember_unanswered(UnansweredCommit {
                transaction,
                records: records.to_vec(),
            });
        }
        committed
    }

    /// True when `records` are the batch whose COMMIT went unanswered and
    /// PostgreSQL committed it; UNAVAILABLE while that cannot be told yet.
    async fn committed_unanswered(&self, records: &[Record]) -> crate::error::Result<bool> {
        let Some(unanswered) = self.unanswered.lock().expect("not poisoned").take() else {
            return Ok(false);
        };
        if unanswered.records != records {
            // Not the writer's retry: it gave up on that batch (at shutdown).
            return Ok(false);
        }
        let status: Option<String> = match sqlx::query_scalar(Self::TRANSACTION_STATUS)
            .bind(&unanswered.transaction)
            .fetch_one(&self.pool)
            .await
        {
            Ok(status) => status,
            Err(error) => {
                self.remember_unanswered(unanswered);
                return Err(super::db_error(error));
            }
        };
        match status.as_deref() {
            Some("committed") => {
                tracing::info!(
                    records = records.len(),
                    "a commit that went unanswered went through; the batch is not written again"
                );
                Ok(true)
            }
            Some("in progress") => {
                self.remember_unanswered(unanswered);
                Err(crate::error::Error::Unavailable(
                    "an earlier commit is still under way".into(),
                ))
            }
            // Aborted, or too old to tell: written (again).
            _ => Ok(false),
        }
    }

    /// Keeps a batch whose outcome is not known, for its retry.
    fn remember_unanswered(&self, unanswered: UnansweredCommit) {
        *self.unanswered.lock().expect("not poisoned") = Some(unanswered);
    }

    /// Starts a write transaction: read committed is enough: constraints and row locks guard every write.
    const BEGIN_WRITE: &str = "BEGIN";

    /// Inserts the new work items of a batch, from `BatchRows::created`.
    const INSERT_WORK_ITEMS: &str = concat!(
        "INSERT INTO work_items (",
        super::sql::inserted_work_item_columns!(),
        ") SELECT e ->> 0, e ->> 1, (e ->> 2)::bigint, e ->> 3, e ->> 4, e ->> 5, e ->> 6, \
         e ->> 7, e ->> 8, e ->> 9, e ->> 10, (e ->> 11)::bigint, (e ->> 12)::boolean, \
         e ->> 13, e ->> 13, 'waiting', (e ->> 14)::bigint, (e ->> 15)::bigint \
         FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS rows (e, n) ORDER BY n"
    );

    /// Inserts a batch's lifecycle events in order, from `BatchRows::events`.
    const INSERT_EVENTS: &str = "INSERT INTO work_item_events \
        (work_item_id, at, kind, queue_id, agent_id, detail) \
        SELECT e ->> 0, (e ->> 1)::bigint, e ->> 2, e ->> 3, e ->> 4, e ->> 5 \
        FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS rows (e, n) ORDER BY n";

    /// Brings work items' summary columns up to date, from `BatchRows::summaries`.
    const UPDATE_WORK_ITEMS: &str = "UPDATE work_items AS w SET \
        state = COALESCE(u.e ->> 1, w.state), queue_id = u.e ->> 2, agent_id = u.e ->> 3, \
        priority = COALESCE((u.e ->> 4)::bigint, w.priority), \
        answered_at = COALESCE((u.e ->> 5)::bigint, w.answered_at), \
        connected_at = COALESCE((u.e ->> 6)::bigint, w.connected_at), \
        ended_at = COALESCE(w.ended_at, (u.e ->> 7)::bigint), \
        completed_at = COALESCE((u.e ->> 8)::bigint, w.completed_at), \
        outcome = COALESCE(u.e ->> 9, w.outcome), \
        enqueued_at = COALESCE((u.e ->> 10)::bigint, w.enqueued_at) \
        FROM jsonb_array_elements($1::jsonb) AS u (e) WHERE w.id = u.e ->> 0 \
        AND w.id = ANY(ARRAY(SELECT k.e ->> 0 FROM jsonb_array_elements($1::jsonb) AS k (e)))";

    /// Inserts a batch's agent state changes, from `BatchRows::agent_states`.
    const INSERT_AGENT_STATES: &str = "INSERT INTO agent_state_history \
        (agent_id, at, state, reason) \
        SELECT e ->> 0, (e ->> 1)::bigint, e ->> 2, e ->> 3 \
        FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS rows (e, n) ORDER BY n";

    /// The first segments of the interactions in a JSON array of ids.
    const SELECT_WORK_ITEMS_BY_INTERACTIONS: &str = concat!(
        "SELECT ",
        super::sql::work_item_columns!(),
        " FROM work_items WHERE segment = 0 AND interaction_id = \
         ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))"
    );

    /// Hands every open work item to `each` as its row arrives.
    async fn read_open_work_items(
        &self,
        each: &mut (dyn FnMut(StoredWorkItem) + Send),
    ) -> crate::error::Result<()> {
        use tokio_stream::StreamExt;
        let mut rows = sqlx::query(super::sql::SELECT_OPEN_WORK_ITEMS).fetch(&self.pool);
        while let Some(row) = rows.next().await {
            each(Self::work_item_from_row(&row.map_err(super::db_error)?)?);
        }
        Ok(())
    }

    /// Connects to the database a `postgres://` URL names and applies
    /// migrations. The URL never reaches a log: it may hold a password.
    pub async fn connect(url: &str) -> crate::error::Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|_| {
            crate::error::Error::invalid("database_url", "not a valid postgres:// URL")
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(super::db_error)?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|error| {
                tracing::error!(%error, "migrating the PostgreSQL database failed");
                crate::error::Error::Internal
            })?;
        Self::settle(&pool).await?;
        Ok(Self {
            pool,
            unanswered: Mutex::new(None),
        })
    }

    /// Waits until no batch of an earlier server is still committing here.
    /// A server killed with a COMMIT under way leaves PostgreSQL to finish
    /// it; a restart that read its open work items before that would
    /// rebuild routing from a state the database then moves past.
    async fn settle(pool: &PgPool) -> crate::error::Result<()> {
        sqlx::query(Self::SETTLE)
            .execute(pool)
            .await
            .map_err(super::db_error)?;
        Ok(())
    }
}

super::sql::impl_sql_store!(PgStore, sqlx::Postgres);

/// A schema of its own in a PostgreSQL database, for a benchmark or a test
/// that must start empty: the store's URL names it as the search path.
pub struct ScratchSchema {
    /// The database's URL, as given.
    base: String,
    /// The schema's name, `<purpose>_<uuid>`.
    name: String,
}

impl ScratchSchema {
    /// Creates a fresh schema in the database at `base`; `purpose` (e.g.
    /// `bench`) starts its name, so that leftovers say where they came from.
    pub async fn create(base: &str, purpose: &str) -> crate::error::Result<Self> {
        let name = format!("{purpose}_{}", uuid::Uuid::new_v4().simple());
        Self::run(base, &format!("CREATE SCHEMA {name}")).await?;
        Ok(Self {
            base: base.to_string(),
            name,
        })
    }

    /// A URL whose connections work in this schema alone.
    pub fn url(&self) -> String {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.base, self.name
        )
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) -> crate::error::Result<()> {
        Self::run(&self.base, &format!("DROP SCHEMA {} CASCADE", self.name)).await
    }

    /// Runs one statement on its own connection.
    async fn run(base: &str, statement: &str) -> crate::error::Result<()> {
        let options = PgConnectOptions::from_str(base).map_err(|_| {
            crate::error::Error::invalid("database_url", "not a valid postgres:// URL")
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(super::db_error)?;
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&pool)
            .await
            .map_err(super::db_error);
        pool.close().await;
        done.map(|_| ())
    }
}
