//! The PostgreSQL back-end: for production and for several nodes.

use sqlx::pool::PoolConnection;
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

/// Longest a batch may take once it has a connection, from BEGIN to the
/// COMMIT's answer. Past it the database is taken for silent (a network path
/// that drops packets without closing anything): the batch is left to the
/// writer's retry, which asks how it ended, instead of waiting for ever.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest PostgreSQL keeps a session idle inside a transaction before
/// ending it: a batch abandoned in a silent connection then lets go of the
/// schema's batch lock and its rows even if no retry ends it first.
const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest a starting server waits for a batch of an earlier server to end
/// (`settle`); past it the start fails rather than hang.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A batch whose COMMIT was sent but never answered (the connection broken
/// or silent): PostgreSQL may have committed it or not.
struct UnansweredCommit {
    /// The transaction's id (an `xid8`), to ask how it ended.
    transaction: String,
    /// The process id of the server backend that ran it, to end the
    /// transaction if it is still under way, orphaned in a silent connection.
    backend: i32,
    /// The batch, to know the writer's retry of it.
    records: Vec<Record>,
}

impl PgStore {
    /// The current transaction's id, assigned now, and the backend's process
    /// id, for a retry to ask how it ended and to end it if still under way;
    /// the transaction also holds the schema's batch lock, shared, until it
    /// ends, which a starting server waits out (`settle`).
    const TRANSACTION_ID: &str = "SELECT pg_current_xact_id()::text, pg_backend_pid() FROM \
        (SELECT pg_advisory_xact_lock_shared(hashtext(current_schema()))) AS held";

    /// Bounds how long the settling transaction waits for the batch lock.
    const SETTLE_LOCK_TIMEOUT: &str = "SELECT set_config('lock_timeout', $1, true)";

    /// Takes the schema's batch lock, exclusively, until the transaction
    /// ends: granted once no batch that began before is still under way.
    const SETTLE: &str = "SELECT pg_advisory_xact_lock(hashtext(current_schema()))";

    /// SQLSTATE `lock_not_available`: the lock timeout ran out.
    const LOCK_NOT_AVAILABLE: &str = "55P03";

    /// How a transaction ended: `committed`, `aborted`, `in progress`, or
    /// NULL when too old to tell.
    const TRANSACTION_STATUS: &str = "SELECT pg_xact_status($1::xid8)";

    /// Ends the backend `$1` if it still runs the transaction `$2` (an
    /// `xid8`, compared as the backend's 32-bit xid), so that a reused
    /// process id is never ended.
    const END_ORPHAN: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
        WHERE pid = $1 AND backend_xid = xid($2::xid8)";

    /// Commits a batch of records in one transaction
    /// ([`Store::append`](super::Store::append)). When the connection breaks
    /// or goes silent (no answer within [`COMMIT_TIMEOUT`]) with the
    /// transaction begun, the batch may be stored, yet the answer is
    /// UNAVAILABLE and the writer retries it: the retry first asks
    /// PostgreSQL how that transaction ended, so that nothing is stored twice.
    async fn append_batch(&self, records: &[Record]) -> crate::error::Result<()> {
        if self.committed_unanswered(records).await? {
            return Ok(());
        }
        let mut connection = self.pool.acquire().await.map_err(super::db_error)?;
        let mut begun = None;
        let answered = tokio::time::timeout(
            COMMIT_TIMEOUT,
            Self::commit_batch(&mut connection, records, &mut begun),
        )
        .await;
        let committed = match answered {
            Ok(committed) => committed,
            Err(_silent) => Err(super::sql::overran(Some(connection), "a commit")),
        };
        if let (Err(crate::error::Error::Unavailable(_)), Some((transaction, backend))) =
            (&committed, begun)
        {
            self.remember_unanswered(UnansweredCommit {
                transaction,
                backend,
                records: records.to_vec(),
            });
        }
        committed
    }

    /// Writes and commits a batch on `connection`; `begun` receives the
    /// transaction's id and backend as soon as they are known, so that they
    /// outlive this future when it is given up half-way.
    async fn commit_batch(
        connection: &mut PoolConnection<sqlx::Postgres>,
        records: &[Record],
        begun: &mut Option<(String, i32)>,
    ) -> crate::error::Result<()> {
        use sqlx::Connection;
        let mut tx = connection
            .begin_with(Self::BEGIN_WRITE)
            .await
            .map_err(super::db_error)?;
        let ids: (String, i32) = sqlx::query_as(Self::TRANSACTION_ID)
            .fetch_one(&mut *tx)
            .await
            .map_err(super::db_error)?;
        *begun = Some(ids);
        Self::write_batch(&mut tx, records).await?;
        tx.commit().await.map_err(super::db_error)
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
        let mut taken = None;
        let answered = tokio::time::timeout(COMMIT_TIMEOUT, async {
            let connection = taken.insert(self.pool.acquire().await.map_err(super::db_error)?);
            Self::end_if_under_way(connection, &unanswered).await
        })
        .await;
        let checked = match answered {
            Ok(checked) => checked,
            Err(_silent) => Err(super::sql::overran(taken, "asking how a commit ended")),
        };
        let status = match checked {
            Ok(status) => status,
            Err(error) => {
                self.remember_unanswered(unanswered);
                return Err(error);
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

    /// How the unanswered transaction ended. One still in progress is most
    /// likely orphaned in a connection that went silent, idle with its
    /// locks held: its backend is ended, so that the next retry finds it
    /// aborted (and writes the batch) or, had its COMMIT arrived first,
    /// committed (and skips it).
    async fn end_if_under_way(
        connection: &mut PoolConnection<sqlx::Postgres>,
        unanswered: &UnansweredCommit,
    ) -> crate::error::Result<Option<String>> {
        let status: Option<String> = sqlx::query_scalar(Self::TRANSACTION_STATUS)
            .bind(&unanswered.transaction)
            .fetch_one(&mut **connection)
            .await
            .map_err(super::db_error)?;
        if status.as_deref() != Some("in progress") {
            return Ok(status);
        }
        let ended = sqlx::query(Self::END_ORPHAN)
            .bind(unanswered.backend)
            .bind(&unanswered.transaction)
            .execute(&mut **connection)
            .await;
        match ended {
            Ok(_) => tracing::warn!(
                backend = unanswered.backend,
                "an unanswered commit is still under way; its backend is ended"
            ),
            // The idle-in-transaction timeout ends it in the end.
            Err(error) => tracing::warn!(%error, "ending an unanswered commit's backend failed"),
        }
        Ok(status)
    }

    /// Keeps a batch whose outcome is not known, for its retry.
    fn remember_unanswered(&self, unanswered: UnansweredCommit) {
        *self.unanswered.lock().expect("not poisoned") = Some(unanswered);
    }

    /// Writes a batch's rows inside the caller's transaction, a statement
    /// per kind of row, in [`BatchRows::in_order`](super::batch::BatchRows::in_order)'s order.
    async fn write_batch(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        records: &[Record],
    ) -> crate::error::Result<()> {
        let statements = [
            Self::INSERT_WORK_ITEMS,
            Self::INSERT_EVENTS,
            Self::UPDATE_WORK_ITEMS,
            Self::INSERT_AGENT_STATES,
            Self::UPSERT_UNSENT,
            Self::DELETE_SENT,
        ];
        let kinds = super::batch::BatchRows::new(records).in_order();
        for (statement, kind) in statements.into_iter().zip(kinds) {
            let Some(json) = kind else { continue };
            sqlx::query(statement)
                .bind(json)
                .execute(&mut **tx)
                .await
                .map_err(super::db_error)?;
        }
        Ok(())
    }

    /// Starts a write transaction: read committed is enough: constraints and row locks guard every write.
    const BEGIN_WRITE: &str = "BEGIN";

    /// Inserts the new work items of a batch, from `BatchRows::created`.
    const INSERT_WORK_ITEMS: &str = concat!(
        "INSERT INTO work_items (",
        super::sql::inserted_work_item_columns!(),
        ") SELECT e ->> 0, e ->> 1, (e ->> 2)::bigint, e ->> 3, e ->> 4, e ->> 5, e ->> 6, \
         e ->> 7, e ->> 8, e ->> 9, e ->> 10, (e ->> 11)::bigint, (e ->> 12)::boolean, \
         e ->> 13, e ->> 14, e ->> 15, e ->> 16, (e ->> 17)::bigint, (e ->> 18)::bigint, \
         (e ->> 19)::bigint, (e ->> 20)::bigint, (e ->> 21)::bigint, (e ->> 22)::bigint, e ->> 23 \
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

    /// Keeps a batch's unsent bridge instructions, from `BatchRows::unsent`.
    const UPSERT_UNSENT: &str = "INSERT INTO unsent_instructions (work_item_id, at, instruction) \
        SELECT e ->> 0, (e ->> 1)::bigint, e ->> 2 FROM jsonb_array_elements($1::jsonb) AS rows (e) \
        ON CONFLICT (work_item_id) DO UPDATE SET at = EXCLUDED.at, instruction = EXCLUDED.instruction";

    /// Drops the unsent instructions of the work items in `BatchRows::sent`.
    const DELETE_SENT: &str = "DELETE FROM unsent_instructions WHERE work_item_id = \
        ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))";

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
        let idle_limit = IDLE_IN_TRANSACTION_TIMEOUT.as_millis().to_string();
        // Added to any `options` of the URL (such as a search path).
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| {
                crate::error::Error::invalid("database_url", "not a valid postgres:// URL")
            })?
            .options([("idle_in_transaction_session_timeout", idle_limit.as_str())]);
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

    /// Waits until no batch of an earlier server is still committing here,
    /// for at most [`SETTLE_TIMEOUT`]: UNAVAILABLE past it. A server killed
    /// with a COMMIT under way leaves PostgreSQL to finish it; a restart
    /// that read its open work items before that would rebuild routing from
    /// a state the database then moves past. The lock timeout is the
    /// transaction's own, so it never stays on a pooled connection.
    async fn settle(pool: &PgPool) -> crate::error::Result<()> {
        let mut tx = pool.begin().await.map_err(super::db_error)?;
        let limit = format!("{}ms", SETTLE_TIMEOUT.as_millis());
        sqlx::query(Self::SETTLE_LOCK_TIMEOUT)
            .bind(limit)
            .execute(&mut *tx)
            .await
            .map_err(super::db_error)?;
        let settled = sqlx::query(Self::SETTLE).execute(&mut *tx).await;
        if let Err(sqlx::Error::Database(error)) = &settled
            && error.code().as_deref() == Some(Self::LOCK_NOT_AVAILABLE)
        {
            tracing::error!(
                waited = ?SETTLE_TIMEOUT,
                "a batch of an earlier server is still under way; not starting"
            );
            return Err(crate::error::Error::Unavailable(
                "a batch of an earlier server is still under way in the database".into(),
            ));
        }
        settled.map_err(super::db_error)?;
        tx.commit().await.map_err(super::db_error)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;
    use crate::error::Error;
    use crate::store::Store;
    use crate::store::records::AgentStateRecord;
    use sqlx::Connection;

    /// A batch's transaction left open and idle in a connection gone
    /// silent, as a black-holed network leaves it, is ended by the writer's
    /// retry (by process id and transaction id), which then writes the batch
    /// once. Runs where `SWITCHBOARD_TEST_POSTGRES_URL` names a server.
    #[tokio::test]
    async fn an_unanswered_commit_still_under_way_is_ended_and_written_once() {
        let Ok(base) = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL") else {
            eprintln!("warning: SWITCHBOARD_TEST_POSTGRES_URL is not set; skipped");
            return;
        };
        let schema = ScratchSchema::create(&base, "t")
            .await
            .expect("a test schema can be created");
        let store = PgStore::connect(&schema.url())
            .await
            .expect("the store opens");
        let records = vec![Record::AgentState(AgentStateRecord {
            agent: "alice".into(),
            at: Timestamp::from_millis(1),
            state: "ready".into(),
            reason: None,
        })];
        // The orphan: the batch written, its COMMIT never sent.
        let mut orphan = sqlx::PgConnection::connect(&schema.url())
            .await
            .expect("a second connection opens");
        let mut tx = orphan.begin().await.expect("a transaction begins");
        let (transaction, backend): (String, i32) = sqlx::query_as(PgStore::TRANSACTION_ID)
            .fetch_one(&mut *tx)
            .await
            .expect("the transaction has an id");
        PgStore::write_batch(&mut tx, &records)
            .await
            .expect("the batch is written");
        store.remember_unanswered(UnansweredCommit {
            transaction,
            backend,
            records: records.clone(),
        });

        let first = store.append(&records).await;
        assert!(
            matches!(first, Err(Error::Unavailable(_))),
            "the first retry finds the orphan under way: {first:?}"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match store.append(&records).await {
                Ok(()) => break,
                Err(Error::Unavailable(reason)) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the orphan is never ended: {reason}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("the retry fails: {error}"),
            }
        }
        assert!(
            sqlx::query("SELECT 1").execute(&mut *tx).await.is_err(),
            "the orphan's backend is ended"
        );
        let stored = store
            .agent_states(&"alice".into())
            .await
            .expect("agent states can be read");
        assert_eq!(stored.len(), 1, "the batch is stored once: {stored:?}");
        store.close().await;
        schema
            .drop_schema()
            .await
            .expect("the test schema can be dropped");
    }
}
