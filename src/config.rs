//! Options of `switchboard serve`, read by clap from flags or their
//! `SWITCHBOARD_…` environment twins. The README's configuration table lists them.

use std::net::SocketAddr;

/// How the server listens and where it stores its records.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address of the gRPC API.
    #[arg(long, env = "SWITCHBOARD_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// Address of the Prometheus endpoint, served at `/metrics`.
    #[arg(
        long,
        env = "SWITCHBOARD_METRICS_ADDR",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_addr: SocketAddr,

    /// The database: a SQLite file (created if missing) or a postgres:// URL.
    #[arg(
        long,
        env = "SWITCHBOARD_DATABASE_URL",
        default_value = "sqlite://switchboard.db",
        hide_env_values = true
    )]
    pub database_url: String,

    /// An agent session with no message for this many seconds is signed out.
    #[arg(long, env = "SWITCHBOARD_HEARTBEAT_TIMEOUT_SECS", default_value_t = 30)]
    pub heartbeat_timeout_secs: u64,

    /// Supervisors' watch streams get changed statistics at most this often.
    #[arg(long, env = "SWITCHBOARD_STATS_INTERVAL_MS", default_value_t = 500)]
    pub stats_interval_ms: u64,
}

impl ServeConfig {
    /// A configuration for tests and embedding: ephemeral loopback ports and
    /// the given database.
    pub fn ephemeral(database_url: impl Into<String>) -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            heartbeat_timeout_secs: 30,
            stats_interval_ms: 500,
        }
    }

    /// The back-end's name for logs; the URL itself may hold a password and is never logged.
    pub fn backend_name(&self) -> &'static str {
        if self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://")
        {
            "postgres"
        } else {
            "sqlite"
        }
    }
}
