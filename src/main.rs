//! The `switchboard` binary: parses the command line, sets up logging and
//! calls the library.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use switchboard::cli::{self, ClientOptions};
use switchboard::config::ServeConfig;
use switchboard::server::{self, Listeners};
use tracing_subscriber::EnvFilter;

/// jemalloc instead of glibc's allocator: every gRPC message allocates and
/// frees small buffers, across threads, and under `switchboard bench` glibc's
/// malloc and free took about a tenth of the CPU (README, Performance).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Switchboard, an automatic call distributor for contact centres.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
    /// How supervisor commands reach the server and print.
    #[command(flatten)]
    client: ClientOptions,
}

/// The subcommands.
#[derive(Subcommand)]
enum Command {
    /// Runs the server: gRPC API, metrics endpoint and routing.
    Serve(ServeConfig),
    /// Supervisor commands: clients of a running server.
    #[command(flatten)]
    Supervise(cli::Command),
    /// The simulator, the demo and the staffing calculator.
    #[command(flatten)]
    Simulate(switchboard::sim::Command),
    /// Measures intake throughput and arrival-to-offer latency against this
    /// machine's ceiling (an echo service, the store's raw commit rate).
    Bench(switchboard::bench::BenchArgs),
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown requested");
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(config) => match Listeners::bind(&config).await {
            Ok(listeners) => server::run(config, listeners, shutdown_signal()).await,
            Err(error) => Err(error),
        },
        Command::Simulate(command) => {
            return match switchboard::sim::run(command, &cli.client).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("switchboard: {error}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        Command::Bench(args) => {
            return match switchboard::bench::run(&args, &cli.client).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("switchboard: {error}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        Command::Supervise(command) => {
            return match cli::run(&cli.client, command).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("switchboard: {error}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "switchboard stopped");
            eprintln!("switchboard: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
