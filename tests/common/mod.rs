//! Test support shared by the integration tests: a fresh database per test on
//! every back-end, and the real server started in-process on 127.0.0.1:0.
#![allow(dead_code)]

pub mod centre;
pub mod scenarios;
pub mod sessions;

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

/// A SQLite file in `dir`, which the caller keeps alive (a mounted file
/// system, for instance).
pub fn sqlite_in(dir: &std::path::Path) -> Backend {
    let url = format!("sqlite://{}", dir.join("switchboard.db").display());
    Backend {
        name: "sqlite",
        url,
        _dir: None,
    }
}

/// Notes that a test is skipped because `missing`; in CI (`CI` set), where
/// nothing is ever skipped, fails instead.
pub fn skipped_outside_ci(missing: &str, consequence: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing} in CI, where no test is skipped: run scripts/test"
    );
    eprintln!("warning: {missing}; {consequence}");
}

/// A fresh schema in the PostgreSQL database named by
/// `SWITCHBOARD_TEST_POSTGRES_URL`, or `None` when it is not set. In CI
/// (`CI` set) a missing variable is a failure, never a silent skip.
pub async fn postgres() -> Option<Backend> {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        skipped_outside_ci(
            &format!("{POSTGRES_ENV} is not set"),
            "PostgreSQL is not tested in this run",
        );
        return None;
    };
    let schema = switchboard::store::ScratchSchema::create(&base, "t")
        .await
        .expect("the test PostgreSQL server answers and a test schema can be created");
    let url = schema.url();
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
        Self::start_with(ServeConfig::ephemeral(url)).await
    }

    /// Starts a server with the given configuration (its addresses should be port 0).
    pub async fn start_with(config: ServeConfig) -> Self {
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
        connect(self.grpc_addr).await
    }

    /// A supervisor client connected to the server.
    pub async fn supervisor(&self) -> SupervisorServiceClient<Channel> {
        SupervisorServiceClient::new(self.channel().await)
    }
}

/// Reads every work item's id with a pool of the given type.
macro_rules! ids_in {
    ($pool:ty, $url:expr) => {{
        let pool = <$pool>::connect($url).await.expect("the database opens");
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM work_items ORDER BY arrived_at, id")
                .fetch_all(&pool)
                .await
                .expect("work items can be read");
        pool.close().await;
        ids
    }};
}

/// Every work item's id in the database, for whole-database checks.
pub async fn work_item_ids(backend: &Backend) -> Vec<switchboard::domain::WorkItemId> {
    let ids = if backend.name == "postgres" {
        ids_in!(sqlx::PgPool, &backend.url)
    } else {
        ids_in!(sqlx::SqlitePool, &backend.url)
    };
    ids.iter()
        .map(|id| switchboard::domain::WorkItemId(id.parse().expect("ids are UUIDs")))
        .collect()
}

/// Checks that the database holds a consistent lifecycle for every work
/// item: it starts queued (or rejected), every transition follows a state
/// that allows it, timestamps never go back, and the item's stored state is
/// the one its last event leads to. The database must be at rest: the
/// checks read it in several statements. Returns each item's event kinds.
pub async fn check_lifecycles(
    backend: &Backend,
) -> Vec<Vec<switchboard::store::records::EventKind>> {
    let mut all = Vec::new();
    for (_, kinds) in check_lifecycles_by_item(backend).await {
        all.push(kinds);
    }
    all
}

/// The checks of [`check_lifecycles`]; returns each item's id with its
/// event kinds, for tests that look up the items they know.
pub async fn check_lifecycles_by_item(
    backend: &Backend,
) -> Vec<(
    switchboard::domain::WorkItemId,
    Vec<switchboard::store::records::EventKind>,
)> {
    use switchboard::store::records::EventKind as K;
    let store = switchboard::store::connect(&backend.url)
        .await
        .expect("the store opens");
    let open = store
        .open_work_items()
        .await
        .expect("open items can be read");
    let mut all = Vec::new();
    for id in work_item_ids(backend).await {
        let events = store
            .work_item_events(id)
            .await
            .expect("events can be read");
        let kinds: Vec<K> = events.iter().map(|event| event.kind).collect();
        assert!(
            matches!(kinds.first(), Some(K::Queued | K::Rejected)),
            "{id} starts with {kinds:?}"
        );
        let mut state = "new";
        let mut last_at = events[0].at;
        for event in &events {
            assert!(event.at >= last_at, "{id}: time goes back in {kinds:?}");
            last_at = event.at;
            let allowed = match event.kind {
                K::Queued | K::Rejected => matches!(state, "new" | "waiting"),
                K::Offered => state == "waiting",
                K::OfferDeclined | K::OfferTimedOut | K::OfferRescinded => state == "offered",
                K::Answered => state == "offered",
                K::Connected => state == "answered",
                K::Ended => matches!(state, "answered" | "connected"),
                K::Completed => state == "wrap_up",
                K::Abandoned | K::Cancelled => matches!(state, "waiting" | "offered"),
                K::Overflowed | K::Disposed | K::Moved | K::Reprioritised => {
                    matches!(state, "waiting" | "offered")
                }
            };
            assert!(
                allowed,
                "{id}: {:?} after state {state} in {kinds:?}",
                event.kind
            );
            if let Some(next) = event.kind.state_after() {
                state = next;
            }
        }
        let stored = open.iter().find(|item| item.item.id == id);
        match stored {
            Some(item) => assert_eq!(
                item.state, state,
                "{id}: stored state differs from its events {kinds:?}"
            ),
            None => assert!(
                matches!(
                    state,
                    "completed" | "abandoned" | "rejected" | "disposed" | "cancelled"
                ),
                "{id}: not open, yet its events {kinds:?} leave it {state}"
            ),
        }
        all.push((id, kinds));
    }
    store.close().await;
    all
}

/// `switchboard serve` as a child process, for tests that kill it.
pub struct ChildServer {
    /// Where the gRPC API listens.
    pub grpc_addr: SocketAddr,
    child: tokio::process::Child,
}

impl ChildServer {
    /// Starts the binary on ephemeral ports and waits for its "serving" log line.
    pub async fn start(url: &str) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args([
                "serve",
                "--grpc-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
                "--database-url",
                url,
            ])
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the server binary starts");
        let mut lines =
            tokio::io::BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
        let grpc_addr = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("the log can be read") {
                if let Some(rest) = line.split("grpc_addr=").nth(1) {
                    let addr = rest.split_whitespace().next().expect("an address follows");
                    return addr.parse::<SocketAddr>().expect("a socket address");
                }
            }
            panic!("the server exited before serving");
        })
        .await
        .expect("the server starts serving in time");
        // Keep draining the log so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { grpc_addr, child }
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("the server can be killed");
    }

    /// Asks the process to stop with SIGTERM, as a service manager would.
    pub async fn terminate(&self) {
        let pid = self.child.id().expect("the server has not been reaped");
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM was delivered");
    }

    /// Waits for the process to exit (a hang guard of 60 s) and returns its
    /// exit status.
    pub async fn exited(mut self) -> std::process::ExitStatus {
        tokio::time::timeout(std::time::Duration::from_secs(60), self.child.wait())
            .await
            .expect("the server exits in time")
            .expect("the server can be waited for")
    }

    /// A gRPC channel to the server.
    pub async fn channel(&self) -> Channel {
        connect(self.grpc_addr).await
    }
}

/// Sends `GET path` over HTTP/1.0 to `addr` and returns the status code and
/// the body; an error when the connection is refused or breaks.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("a response without a blank line after its head"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("a response without a status code"))?;
    Ok((status, body.to_string()))
}

/// A gRPC channel to a server listening on `addr`.
pub async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("a loopback URI is valid")
        .connect()
        .await
        .expect("the server accepts connections")
}
