//! Test support shared by the integration tests: a fresh database per test on
//! every back-end, and the real server started in-process on 127.0.0.1:0.
#![allow(dead_code)]

use std::net::SocketAddr;
use switchboard::config::ServeConfig;
use switchboard::proto::v1::supervisor_service_client::SupervisorServiceClient;
use switchboard::server::{self, Listeners};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The environment variable naming a PostgreSQL server for the tests.
pub const POSTGRES_ENV: &str = "SWITCHBOARD_TEST_POSTGRES_URL";

/// A fresh, empty database on one back-end.
pub struct Backend {
    /// "sqlite" or "postgres", for assertion messages.
    pub name: &'static str,
    /// The URL the store connects to.
    pub url: String,
    /// Keeps the SQLite file's directory alive for the test's duration.
    _dir: Option<TempDir>,
}

/// A fresh SQLite file in its own temporary directory.
pub fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("a temporary directory can be made");
    let url = format!("sqlite://{}", dir.path().join("switchboard.db").display());
    Backend {
        name: "sqlite",
        url,
        _dir: Some(dir),
    }
}

/// A fresh schema in the PostgreSQL database named by
/// `SWITCHBOARD_TEST_POSTGRES_URL`, or `None` when it is not set. In CI
/// (`CI` set) a missing variable is a failure, never a silent skip.
pub async fn postgres() -> Option<Backend> {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{POSTGRES_ENV} must be set in CI: PostgreSQL tests are never skipped there"
        );
        eprintln!("note: {POSTGRES_ENV} is not set; PostgreSQL is not tested in this run");
        return None;
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&base)
        .await
        .expect("the test PostgreSQL server answers");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .expect("a test schema can be created");
    pool.close().await;
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    Some(Backend {
        name: "postgres",
        url,
        _dir: None,
    })
}

/// Every back-end available to this run: SQLite always, PostgreSQL when configured.
pub async fn backends() -> Vec<Backend> {
    // Server logs go to the test's captured output; a second init is harmless.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    let mut backends = vec![sqlite()];
    if let Some(postgres) = postgres().await {
        backends.push(postgres);
    }
    backends
}

/// The real server, running in-process on ephemeral loopback ports.
pub struct TestServer {
    /// Where the gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<switchboard::error::Result<()>>,
}

impl TestServer {
    /// Starts a server on `url`'s database; it is ready when this returns
    /// because the listeners are bound before serving starts.
    pub async fn start(url: &str) -> Self {
        let config = ServeConfig::ephemeral(url);
        let listeners = Listeners::bind(&config)
            .await
            .expect("loopback ports can be bound");
        let grpc_addr = listeners
            .grpc
            .local_addr()
            .expect("a bound listener has an address");
        let metrics_addr = listeners
            .metrics
            .local_addr()
            .expect("a bound listener has an address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(config, listeners, async move {
            let _ = stopped.await;
        }));
        Self {
            grpc_addr,
            metrics_addr,
            stop,
            task,
        }
    }

    /// Stops the server and waits until it has drained and closed its store.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("the server task does not panic")
            .expect("the server stops cleanly");
    }

    /// A gRPC channel to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc_addr))
            .expect("a loopback URI is valid")
            .connect()
            .await
            .expect("the server accepts connections")
    }

    /// A supervisor client connected to the server.
    pub async fn supervisor(&self) -> SupervisorServiceClient<Channel> {
        SupervisorServiceClient::new(self.channel().await)
    }
}
