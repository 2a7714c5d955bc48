//! `switchboard demo`: one command for a newcomer. It starts the server with
//! a sample centre (`scenarios/demo.yaml`: voice, chat and video into sales
//! and support, in English and French), drives live traffic over gRPC with a
//! live progress line, prints the report and where to look next, then keeps
//! serving until Ctrl-C (or exits at once with `--exit`).

use super::command::{SimCommandError, live_run, print_report};
use super::live::EmbeddedServer;
use super::scenario::Scenario;
use crate::config::ServeConfig;

/// The sample centre and its traffic.
pub const DEMO_SCENARIO: &str = include_str!("../../scenarios/demo.yaml");

/// Options of `switchboard demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The server's addresses and database, as for `serve`.
    #[command(flatten)]
    pub serve: ServeConfig,
    /// Real seconds of traffic.
    #[arg(long, default_value_t = 60, env = "SWITCHBOARD_DEMO_DURATION_SECS")]
    pub duration_secs: u32,
    /// Scenario time runs this many times faster than real time.
    #[arg(long, default_value_t = 30.0, env = "SWITCHBOARD_DEMO_SPEED")]
    pub speed: f64,
    /// Stops the server after the report instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

/// Runs the demo.
pub async fn run(args: &DemoArgs, json: bool) -> Result<(), SimCommandError> {
    let input = |error: String| SimCommandError::Input(error);
    let mut scenario = Scenario::from_yaml(DEMO_SCENARIO)
        .map_err(|error| input(format!("the demo scenario: {error}")))?;
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(input(format!(
            "speed: must be a positive factor, got {}",
            args.speed
        )));
    }
    let simulated = (f64::from(args.duration_secs.max(1)) * args.speed).round();
    scenario.run.duration_secs = Some(simulated.min(f64::from(u32::MAX)) as u32);
    let server = EmbeddedServer::start(args.serve.clone())
        .await
        .map_err(|error| input(error.to_string()))?;
    eprintln!(
        "switchboard demo: server on {}, metrics on http://{}/metrics; {} s of traffic at x{}",
        server.grpc_addr, server.metrics_addr, args.duration_secs, args.speed
    );
    let report = live_run(&scenario, &server.url(), args.speed).await;
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            let _ = server.stop().await;
            return Err(error);
        }
    };
    print_report(&report, json);
    let url = server.url();
    let next = format!(
        "\nwhere to look next:\n  \
         grpc api:  {grpc} (grpcurl -plaintext {grpc} list)\n  \
         metrics:   http://{metrics}/metrics\n  \
         cli:       switchboard --server {url} stats\n             \
         switchboard --server {url} top\n             \
         switchboard --server {url} report --from {today} --interval 15m\n",
        grpc = server.grpc_addr,
        metrics = server.metrics_addr,
        today = chrono::Utc::now().format("%Y-%m-%d"),
    );
    // With --json, standard output stays one document.
    if json {
        eprint!("{next}");
    } else {
        print!("{next}");
    }
    if !args.exit {
        eprintln!("the server keeps running; press Ctrl-C to stop it");
        let _ = tokio::signal::ctrl_c().await;
    }
    server
        .stop()
        .await
        .map_err(|error| input(error.to_string()))
}
