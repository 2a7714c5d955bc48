//! The supervisors' command line: subcommands of the `switchboard` binary
//! that are gRPC clients of a running server. They manage the centre's
//! configuration (one kind at a time, or all of it from a file with
//! `apply`), read statistics, act on agents and work items, show a live
//! wallboard (`top`) and print interval reports. Every command prints a
//! readable table, or JSON with `--json`.

pub mod apply;
pub mod centre;
mod commands;
pub mod table;
pub mod top;

pub use commands::{Command, run};

use crate::proto::v1::supervisor_service_client::SupervisorServiceClient;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// How the command line reaches the server and prints.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientOptions {
    /// The server's gRPC address, for supervisor commands.
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,

    /// Prints JSON for scripts instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    /// Who is acting, for the audit log (else the server records the peer address).
    #[arg(long, global = true, env = "SWITCHBOARD_ACTOR")]
    pub actor: Option<String>,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server could not be reached.
    #[error("cannot reach the server at {server}: {reason}")]
    Connect {
        /// Where it was looked for.
        server: String,
        /// Why not.
        reason: String,
    },
    /// The server refused a call; its status says why.
    #[error("{0}")]
    Status(String),
    /// The input was refused before anything was sent.
    #[error("{0}")]
    Input(String),
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError::Status(format!("{:?}: {}", status.code(), status.message()))
    }
}

impl From<centre::FileError> for CliError {
    fn from(error: centre::FileError) -> Self {
        CliError::Input(error.to_string())
    }
}

/// A supervisor client that names its actor on every call.
#[derive(Clone)]
pub struct Supervisor {
    /// The generated client.
    pub client: SupervisorServiceClient<Channel>,
    actor: Option<String>,
}

impl Supervisor {
    /// Connects to the server named in `options`.
    pub async fn connect(options: &ClientOptions) -> Result<Self, CliError> {
        let failed = |reason: String| CliError::Connect {
            server: options.server.clone(),
            reason,
        };
        let endpoint = Endpoint::from_shared(options.server.clone())
            .map_err(|error| failed(error.to_string()))?
            .connect_timeout(Duration::from_secs(5));
        let channel = endpoint
            .connect()
            .await
            .map_err(|error| failed(error.to_string()))?;
        Ok(Self {
            client: SupervisorServiceClient::new(channel),
            actor: options.actor.clone(),
        })
    }

    /// A request carrying the actor header.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(actor) = &self.actor
            && let Ok(value) = actor.parse()
        {
            request
                .metadata_mut()
                .insert(crate::grpc::supervisor::ACTOR_HEADER, value);
        }
        request
    }
}
