//! The `simulate`, `demo` and `erlang` subcommands and what they print.

use super::demo::{self, DemoArgs};
use super::erlang::{ErlangError, Prediction, Staffing};
use super::live::{self, EmbeddedServer, LiveProgress};
use super::report::Report;
use super::scenario::Scenario;
use super::virtual_time::{self, Progress};
use crate::cli::ClientOptions;
use crate::cli::table::Table;
use crate::config::ServeConfig;
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;

/// A simulator subcommand.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Runs a traffic scenario (YAML or TOML) and reports per queue and channel.
    Simulate {
        /// The scenario file.
        #[arg(long)]
        scenario: PathBuf,
        /// Virtual time (the engine alone, as fast as it goes) or live (a server over gRPC).
        #[arg(
            long,
            value_enum,
            default_value = "virtual",
            env = "SWITCHBOARD_SIM_MODE"
        )]
        mode: Mode,
        /// Overrides the scenario's seed of the first replication.
        #[arg(long, env = "SWITCHBOARD_SIM_SEED")]
        seed: Option<u64>,
        /// Overrides the scenario's number of replications.
        #[arg(long)]
        replications: Option<u32>,
        /// Overrides the scenario's run length, simulated seconds.
        #[arg(long)]
        duration_secs: Option<u32>,
        /// Live mode: scenario time runs this many times faster than real time.
        #[arg(long, default_value_t = 1.0, env = "SWITCHBOARD_SIM_SPEED")]
        speed: f64,
        /// Live mode: starts a server in-process (loopback, ephemeral ports,
        /// a temporary SQLite file) instead of driving the one at --server.
        #[arg(long)]
        embedded: bool,
    },
    /// Starts a server with a sample centre, drives a minute of live traffic and reports.
    Demo(DemoArgs),
    /// Staffing calculator: Erlang C, or Erlang A with --patience.
    Erlang(ErlangArgs),
}

/// How a scenario is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Drives the engine in simulated time.
    Virtual,
    /// Drives a server over gRPC as the bridge and the agents.
    Live,
}

/// The calculator's inputs.
#[derive(Debug, Clone, clap::Args)]
pub struct ErlangArgs {
    /// Arrivals per hour.
    #[arg(long)]
    pub arrival_rate: f64,
    /// Mean handle time (talk plus wrap-up), seconds.
    #[arg(long)]
    pub aht: f64,
    /// Agents; with --target-sl alone, the agents needed are used.
    #[arg(long)]
    pub agents: Option<u32>,
    /// Service-level threshold T, seconds.
    #[arg(long, default_value_t = 20.0)]
    pub target: f64,
    /// Mean patience, seconds: switches to Erlang A (callers abandon).
    #[arg(long)]
    pub patience: Option<f64>,
    /// A service-level goal (0.8 for 80 % within T): also prints the agents it needs.
    #[arg(long)]
    pub target_sl: Option<f64>,
}

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum SimCommandError {
    /// The scenario could not be read or run, or the inputs are invalid.
    #[error("{0}")]
    Input(String),
}

impl From<ErlangError> for SimCommandError {
    fn from(error: ErlangError) -> Self {
        SimCommandError::Input(error.to_string())
    }
}

/// Runs a simulator subcommand; live mode drives the server in `options`,
/// and `options.json` prints a document for scripts.
pub async fn run(command: Command, options: &ClientOptions) -> Result<(), SimCommandError> {
    let json = options.json;
    match command {
        Command::Erlang(args) => erlang(&args, json),
        Command::Demo(args) => demo::run(&args, json).await,
        Command::Simulate {
            scenario,
            mode,
            seed,
            replications,
            duration_secs,
            speed,
            embedded,
        } => {
            let mut scenario = Scenario::read(&scenario)
                .map_err(|error| SimCommandError::Input(error.to_string()))?;
            if let Some(seed) = seed {
                scenario.run.seed = seed;
            }
            if let Some(replications) = replications.filter(|r| *r > 0) {
                scenario.run.replications = replications;
            }
            if let Some(duration) = duration_secs {
                if duration <= scenario.run.warmup_secs {
                    return Err(SimCommandError::Input(format!(
                        "duration_secs: must be longer than the warm-up ({} s), got {duration}",
                        scenario.run.warmup_secs
                    )));
                }
                scenario.run.duration_secs = Some(duration);
            }
            let report = match mode {
                Mode::Virtual => {
                    let line = Mutex::new(ProgressLine::new());
                    let report = virtual_time::run(&scenario, &|progress| {
                        if let Ok(mut line) = line.lock() {
                            line.show(&virtual_line(progress));
                        }
                    })
                    .map_err(|error| SimCommandError::Input(error.to_string()))?;
                    if let Ok(mut line) = line.lock() {
                        line.finish();
                    }
                    report
                }
                Mode::Live if embedded => {
                    let database = TempDatabase::new("sim");
                    let server = EmbeddedServer::start(ServeConfig::ephemeral(database.url()))
                        .await
                        .map_err(input)?;
                    let report = live_run(&scenario, &server.url(), speed).await;
                    server.stop().await.map_err(input)?;
                    report?
                }
                Mode::Live => live_run(&scenario, &options.server, speed).await?,
            };
            print_report(&report, json);
            Ok(())
        }
    }
}

/// Any displayable error as the command's.
fn input(error: impl std::fmt::Display) -> SimCommandError {
    SimCommandError::Input(error.to_string())
}

/// A SQLite file in the temporary directory, removed when dropped: the
/// embedded server's database of a live run or a benchmark.
pub struct TempDatabase {
    path: PathBuf,
}

impl TempDatabase {
    /// A fresh file name; `purpose` (e.g. `sim`) keeps two at once apart.
    pub fn new(purpose: &str) -> Self {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let name = format!("switchboard-{purpose}-{}-{stamp}.db", std::process::id());
        Self {
            path: std::env::temp_dir().join(name),
        }
    }

    /// The file as a database URL.
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A live run with its progress line.
pub async fn live_run(
    scenario: &Scenario,
    url: &str,
    speed: f64,
) -> Result<Report, SimCommandError> {
    let line = Mutex::new(ProgressLine::new());
    let report = live::run(scenario, url, speed, &|progress| {
        if let Ok(mut line) = line.lock() {
            line.show(&live_line(progress, speed));
        }
    })
    .await
    .map_err(input);
    if let Ok(mut line) = line.lock() {
        line.finish();
    }
    report
}

/// The progress of a live run, in words.
fn live_line(progress: &LiveProgress, speed: f64) -> String {
    format!(
        "live x{speed}: replication {}/{}: {} of {} simulated, offered {}, answered {}, abandoned {}, waiting {}",
        progress.replication,
        progress.replications,
        clock(progress.simulated_secs),
        clock(progress.duration_secs),
        progress.offered,
        progress.answered,
        progress.abandoned,
        progress.waiting
    )
}

/// Prints a report as tables or JSON.
pub fn print_report(report: &Report, json: bool) {
    if json {
        println!("{:#}", report.to_json());
    } else {
        print!("{}", report.render());
    }
}

/// The progress of a virtual-time run, in words.
fn virtual_line(progress: &Progress) -> String {
    format!(
        "replication {}/{}: {} of {} simulated, {} arrivals, {} open",
        progress.replication,
        progress.replications,
        clock(progress.simulated_secs),
        clock(progress.duration_secs),
        progress.arrivals,
        progress.open
    )
}

/// Seconds as h:mm:ss.
pub fn clock(secs: f64) -> String {
    let secs = secs.max(0.0) as u64;
    format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A line on standard error redrawn in place, when it is a terminal.
pub struct ProgressLine {
    terminal: bool,
    drawn: bool,
}

impl ProgressLine {
    /// A line on standard error.
    pub fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Redraws the line (only on a terminal: logs are not filled with frames).
    pub fn show(&mut self, text: &str) {
        if self.terminal {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r\x1b[2K{text}");
            let _ = err.flush();
            self.drawn = true;
        }
    }

    /// Ends the line so that what follows starts on its own.
    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

impl Default for ProgressLine {
    fn default() -> Self {
        Self::new()
    }
}

/// A figure to 7 significant digits, for the calculator's table.
fn significant(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return value.to_string();
    }
    let digits = 7 - 1 - value.abs().log10().floor() as i32;
    format!("{value:.*}", usize::try_from(digits.max(0)).unwrap_or(0))
}

/// `switchboard erlang`.
fn erlang(args: &ErlangArgs, json: bool) -> Result<(), SimCommandError> {
    let base = Staffing {
        arrival_rate: args.arrival_rate / 3600.0,
        aht: args.aht,
        agents: args.agents.unwrap_or(1),
        threshold: args.target,
        patience: args.patience,
    };
    let needed = match args.target_sl {
        Some(target) => Some(base.agents_for(target)?),
        None => None,
    };
    let agents = match (args.agents, needed) {
        (Some(agents), _) => agents,
        (None, Some(needed)) => needed,
        (None, None) => {
            return Err(SimCommandError::Input(
                "agents: give --agents, or --target-sl to find how many are needed".into(),
            ));
        }
    };
    let prediction = Staffing { agents, ..base }.predict()?;
    let model = if args.patience.is_some() {
        "erlang_a"
    } else {
        "erlang_c"
    };
    if json {
        let document = json!({
            "model": model,
            "arrival_rate_per_hour": args.arrival_rate,
            "aht_secs": args.aht,
            "target_secs": args.target,
            "patience_secs": args.patience,
            "agents": agents,
            "prediction": prediction,
            "target_sl": args.target_sl,
            "agents_needed": needed,
        });
        println!("{document:#}");
        return Ok(());
    }
    print!(
        "{}",
        erlang_table(model, agents, &prediction, needed).render()
    );
    Ok(())
}

/// The calculator's answer for people.
fn erlang_table(model: &str, agents: u32, prediction: &Prediction, needed: Option<u32>) -> Table {
    let mut table = Table::new(&["measure", "value"]);
    let mut row = |name: &str, value: String| table.push(vec![json!(name), json!(value)]);
    row("model", model.to_owned());
    row("load (erlang)", significant(prediction.load));
    row("agents", agents.to_string());
    row("p(wait)", significant(prediction.p_wait));
    row("service level", significant(prediction.service_level));
    row("asa (s)", significant(prediction.asa));
    row("occupancy", significant(prediction.occupancy));
    if model == "erlang_a" {
        row("p(abandon)", significant(prediction.p_abandon));
    }
    if let Some(needed) = needed {
        row("agents needed", needed.to_string());
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_keep_seven_significant_digits() {
        assert_eq!(significant(0.68211820468), "0.6821182");
        assert_eq!(significant(122.781276), "122.7813");
        assert_eq!(significant(7.835937), "7.835937");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
