//! The PostgreSQL back-end: for production and for several nodes.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// A [`Store`](super::Store) on a PostgreSQL database.
pub struct PgStore {
    /// Connections to the server.
    pool: PgPool,
}

impl PgStore {
    /// Starts a write transaction: read committed is enough: constraints and row locks guard every write.
    const BEGIN_WRITE: &str = "BEGIN";

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
        Ok(Self { pool })
    }
}

super::sql::impl_sql_store!(PgStore, sqlx::Postgres);
