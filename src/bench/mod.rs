//! `switchboard bench`: end-to-end intake throughput and arrival-to-offer
//! latency, measured in the same run against this machine's ceiling.
//!
//! - [`load`]: the load generator, as the interop bridge (submitting at a
//!   fixed rate or as fast as the server allows, then reporting connected
//!   and ended) and as many agents (accepting every offer, finishing
//!   wrap-up at once), timing each offer from its submission's answer.
//! - [`ceiling`]: what the machine allows: a trivial tonic unary echo
//!   service loaded the same way, and the store's raw commit rate (batched
//!   inserts of the same records, no routing).
//! - [`probe`]: the server's CPU time, peak memory and committed records,
//!   from its `/metrics` and, when it runs in-process, `/proc/self`.
//!
//! Speed goals live here, in what the benchmark prints, never in tests: the
//! smoke test only proves that a short run works.

pub mod ceiling;
pub mod footprint;
pub mod load;
pub mod probe;

use crate::cli::apply::apply;
use crate::cli::centre::CentreFile;
use crate::cli::table::Table;
use crate::cli::{ClientOptions, Supervisor};
use crate::config::ServeConfig;
use crate::sim::command::TempDatabase;
use crate::sim::live::EmbeddedServer;
use crate::store::ScratchSchema;
use ceiling::EchoCeiling;
use footprint::Growth;
use hdrhistogram::Histogram;
use load::{LoadPlan, LoadResult, Pace};
use probe::{Probe, Sample, between};
use serde_json::{Value, json};
use std::time::Duration;

/// Options of `switchboard bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Starts a server in-process (loopback, ephemeral ports, SQLite in the
    /// temporary directory) instead of loading the one at --server.
    #[arg(long, env = "SWITCHBOARD_BENCH_EMBEDDED")]
    pub embedded: bool,
    /// Submissions per second, paced evenly; without it (or with --max) as
    /// fast as the server answers.
    #[arg(long, env = "SWITCHBOARD_BENCH_RATE", conflicts_with = "max")]
    pub rate: Option<f64>,
    /// Submits as fast as the server answers (the default).
    #[arg(long, env = "SWITCHBOARD_BENCH_MAX")]
    pub max: bool,
    /// Seconds of submissions; each ceiling is measured as long again.
    #[arg(long, default_value_t = 10, env = "SWITCHBOARD_BENCH_DURATION_SECS")]
    pub duration_secs: u64,
    /// Agents signed in and accepting offers.
    #[arg(long, default_value_t = 100, env = "SWITCHBOARD_BENCH_AGENTS")]
    pub agents: u32,
    /// Submissions in flight at once (and echo calls, for the ceiling).
    #[arg(long, default_value_t = 64, env = "SWITCHBOARD_BENCH_CONCURRENCY")]
    pub concurrency: u32,
    /// HTTP/2 connections the submissions are spread over.
    #[arg(long, default_value_t = 4, env = "SWITCHBOARD_BENCH_CONNECTIONS")]
    pub connections: u32,
    /// A running server's Prometheus endpoint (`http://host:port/metrics`),
    /// for its CPU time, memory and committed records; --embedded reads its own.
    #[arg(long, env = "SWITCHBOARD_BENCH_METRICS_URL")]
    pub metrics_url: Option<String>,
    /// Before the load, submits this many interactions while no agent is
    /// ready and reads how much the server's memory grew per waiting item.
    #[arg(long, default_value_t = 0, env = "SWITCHBOARD_BENCH_WAITING")]
    pub waiting: u32,
    /// Before the load, holds this many agent sessions open (signed in, not
    /// ready) and reads how much the server's memory grew per session. After
    /// --waiting on the same server, the sessions may reuse memory the
    /// waiting items freed, which flatters the figure: measure each on a
    /// fresh server.
    #[arg(long, default_value_t = 0, env = "SWITCHBOARD_BENCH_SESSIONS")]
    pub sessions: u32,
    /// Where the embedded server stores and the raw commit rate is measured:
    /// a `postgres://` database (in fresh schemas, dropped afterwards);
    /// without it, temporary SQLite files.
    #[arg(long, env = "SWITCHBOARD_BENCH_DATABASE_URL")]
    pub database_url: Option<String>,
}

/// A database that starts empty and is gone after the run.
enum Scratch {
    /// A temporary SQLite file.
    Sqlite(TempDatabase),
    /// A fresh schema in a PostgreSQL database.
    Postgres(ScratchSchema),
}

impl Scratch {
    /// A fresh database of the kind `base` names (`None`: SQLite).
    async fn new(base: Option<&str>, purpose: &str) -> Result<Self, BenchError> {
        match base {
            Some(base) if base.starts_with("postgres") => ScratchSchema::create(base, purpose)
                .await
                .map(Scratch::Postgres)
                .map_err(|error| BenchError::Failed(format!("the benchmark's database: {error}"))),
            Some(other) => Err(BenchError::Input(format!(
                "database_url: must be a postgres:// URL (SQLite files are made by the benchmark), got {}",
                other.split(':').next().unwrap_or_default()
            ))),
            None => Ok(Scratch::Sqlite(TempDatabase::new(purpose))),
        }
    }

    /// The store's URL.
    fn url(&self) -> String {
        match self {
            Scratch::Sqlite(file) => file.url(),
            Scratch::Postgres(schema) => schema.url(),
        }
    }

    /// Removes the database.
    async fn remove(self) {
        if let Scratch::Postgres(schema) = self
            && let Err(error) = schema.drop_schema().await
        {
            eprintln!("switchboard bench: the benchmark's schema was not dropped: {error}");
        }
    }
}

/// Why a benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An option is out of range; the message names it.
    #[error("{0}")]
    Input(String),
    /// The server, the echo service or the store failed or refused.
    #[error("{0}")]
    Failed(String),
}

impl From<tonic::Status> for BenchError {
    fn from(status: tonic::Status) -> Self {
        BenchError::Failed(format!("{:?}: {}", status.code(), status.message()))
    }
}

/// The centre every run applies: one skill, one queue behind one entry
/// point, and the agents. A long wrap-up makes every agent finish it
/// explicitly, so that a complete flow includes `WrapUpDone`.
fn centre(agents: u32) -> Result<CentreFile, BenchError> {
    let mut yaml = String::from(
        "skills:\n  - name: bench\n\
         queues:\n  - id: bench\n    steps:\n      - requirements: { bench: 1 }\n    wrap_up_secs: 60\n\
         entry_points:\n  - address: sip:bench@bench.example\n    queue: bench\n\
         agents:\n",
    );
    for n in 1..=agents {
        yaml.push_str(&format!(
            "  - id: {}\n    uc_address: sip:{}@bench.example\n    skills: {{ bench: 1 }}\n    queues: [bench]\n",
            load::agent_id(n),
            load::agent_id(n),
        ));
    }
    CentreFile::from_yaml(&yaml)
        .map_err(|error| BenchError::Failed(format!("the benchmark centre: {error}")))
}

impl BenchArgs {
    /// Checks the options and turns them into a load plan for `url`.
    fn plan(&self, url: String) -> Result<LoadPlan, BenchError> {
        let input = |message: String| Err(BenchError::Input(message));
        if self.duration_secs == 0 || self.duration_secs > 3600 {
            return input(format!(
                "duration_secs: must be between 1 and 3600, got {}",
                self.duration_secs
            ));
        }
        if self.agents == 0 || self.agents > 100_000 {
            return input(format!(
                "agents: must be between 1 and 100000, got {}",
                self.agents
            ));
        }
        if self.sessions > 100_000 {
            return input(format!(
                "sessions: must be at most 100000, got {}",
                self.sessions
            ));
        }
        if self.waiting > 10_000_000 {
            return input(format!(
                "waiting: must be at most 10000000, got {}",
                self.waiting
            ));
        }
        if self.concurrency == 0 || self.concurrency > 10_000 {
            return input(format!(
                "concurrency: must be between 1 and 10000, got {}",
                self.concurrency
            ));
        }
        if self.connections == 0 || self.connections > self.concurrency {
            return input(format!(
                "connections: must be between 1 and --concurrency ({}), got {}",
                self.concurrency, self.connections
            ));
        }
        let pace = match self.rate {
            Some(rate) if rate.is_finite() && rate > 0.0 && rate <= 1e7 => Pace::Rate(rate),
            Some(rate) => {
                return input(format!(
                    "rate: must be a positive number of submissions per second up to 10000000, got {rate}"
                ));
            }
            None => Pace::Max,
        };
        Ok(LoadPlan {
            url,
            pace,
            duration: Duration::from_secs(self.duration_secs),
            agents: self.agents,
            concurrency: self.concurrency,
            connections: self.connections,
        })
    }
}

/// What one run measured, ready to print.
struct Outcome {
    mode: &'static str,
    plan: LoadPlan,
    load: LoadResult,
    before: Sample,
    after: Sample,
    peak_rss_bytes: Option<f64>,
    echo: EchoCeiling,
    raw_records_per_sec: f64,
    footprint: Footprint,
}

/// Memory per waiting item and per agent session, where asked for.
#[derive(Default)]
struct Footprint {
    waiting: Option<Growth>,
    sessions: Option<Growth>,
}

/// Runs `switchboard bench` and prints its figures (JSON with `--json`).
pub async fn run(args: &BenchArgs, options: &ClientOptions) -> Result<(), BenchError> {
    let mut plan = args.plan(options.server.clone())?;
    let mut probe = Probe::new(args.metrics_url.as_deref(), false)?;
    let database = Scratch::new(args.database_url.as_deref(), "bench").await?;
    let mut server = None;
    if args.embedded {
        let embedded = EmbeddedServer::start(ServeConfig::ephemeral(database.url()))
            .await
            .map_err(|error| BenchError::Failed(error.to_string()))?;
        plan.url = embedded.url();
        let metrics = format!("http://{}/metrics", embedded.metrics_addr);
        probe = Probe::new(Some(&metrics), true)?;
        server = Some(embedded);
    }
    let measured = measure(&plan, &probe, args).await;
    if let Some(server) = server {
        server
            .stop()
            .await
            .map_err(|error| BenchError::Failed(error.to_string()))?;
    }
    database.remove().await;
    let (load, before, after, peak_rss_bytes, footprint) = measured?;
    if let Some(warning) = fell_behind(plan.pace, load.schedule_slip) {
        eprintln!("switchboard bench: {warning}");
    }
    if load.unended > 0 {
        eprintln!(
            "switchboard bench: {} interactions answered UNAVAILABLE could not be ended; \
             their items may still wait on the server",
            load.unended
        );
    }
    eprintln!("switchboard bench: measuring the echo ceiling");
    let echo = ceiling::echo(&plan).await?;
    eprintln!("switchboard bench: measuring the raw commit rate");
    let raw = Scratch::new(args.database_url.as_deref(), "bench_raw").await?;
    let raw_commit = ceiling::raw_commit(&raw.url(), plan.duration).await;
    raw.remove().await;
    let raw_records_per_sec = raw_commit?;
    let outcome = Outcome {
        mode: if args.embedded { "embedded" } else { "server" },
        plan,
        load,
        before,
        after,
        peak_rss_bytes,
        echo,
        raw_records_per_sec,
        footprint,
    };
    let document = outcome.to_json();
    if options.json {
        println!("{document:#}");
    } else {
        print!("{}", table(&document).render());
    }
    Ok(())
}

/// What [`measure`] measured: the load, the server's figures before and
/// after it, its peak memory and the footprint.
type Measured = (LoadResult, Sample, Sample, Option<f64>, Footprint);

/// Applies the benchmark centre, with `agents` agents, to the server at `url`.
async fn apply_centre(url: &str, agents: u32) -> Result<(), BenchError> {
    let options = ClientOptions {
        server: url.to_owned(),
        json: false,
        actor: Some("bench".into()),
    };
    let mut supervisor = Supervisor::connect(&options)
        .await
        .map_err(|error| BenchError::Failed(error.to_string()))?;
    apply(&mut supervisor, &centre(agents)?, false)
        .await
        .map_err(|error| BenchError::Failed(error.to_string()))?;
    Ok(())
}

/// Applies the centre, measures the footprint if asked, and runs the load,
/// with the server's figures before and after it and its peak memory.
async fn measure(plan: &LoadPlan, probe: &Probe, args: &BenchArgs) -> Result<Measured, BenchError> {
    apply_centre(&plan.url, plan.agents.max(args.sessions)).await?;
    let mut footprint = Footprint::default();
    if args.waiting > 0 {
        eprintln!("switchboard bench: {} waiting items", args.waiting);
        footprint.waiting = Some(footprint::waiting(plan, probe, args.waiting).await?);
    }
    if args.sessions > 0 {
        eprintln!("switchboard bench: {} agent sessions", args.sessions);
        if args.waiting > 0 {
            eprintln!(
                "switchboard bench: the sessions may reuse memory the waiting items freed; \
                 measure them on a fresh server for a figure of their own"
            );
        }
        footprint.sessions = Some(footprint::sessions(plan, probe, args.sessions).await?);
    }
    let before = probe.sample().await?;
    let (stop_sampling, sampling) = tokio::sync::oneshot::channel::<()>();
    let peak = tokio::spawn(probe.clone().peak_rss(sampling));
    eprintln!(
        "switchboard bench: {} s of submissions to {} with {} agents",
        plan.duration.as_secs(),
        plan.url,
        plan.agents
    );
    let load = load::run(plan, probe).await;
    let _ = stop_sampling.send(());
    let peak_rss_bytes = peak
        .await
        .map_err(|error| BenchError::Failed(format!("the memory sampler failed: {error}")))?;
    let after = probe.sample().await?;
    Ok((load?, before, after, peak_rss_bytes, footprint))
}

/// How far behind its slot a paced submission may be sent before the
/// schedule is said to have slipped: well above the timer's millisecond.
const SLIP: Duration = Duration::from_millis(10);

/// A warning when a submission under `--rate` was sent `slip` after its
/// slot: every submitter was waiting for an answer meanwhile, or the load
/// generator was short of CPU, and the latencies count that backlog, which
/// may be the load generator's own limit rather than the server's.
fn fell_behind(pace: Pace, slip: Duration) -> Option<String> {
    let Pace::Rate(rate) = pace else {
        return None;
    };
    (slip > SLIP).then(|| {
        format!(
            "the submissions fell behind --rate {rate} by up to {} ms, and the latencies \
             count that backlog: if every submitter was waiting for an answer and the \
             server is not the limit, raise --concurrency",
            slip.as_millis()
        )
    })
}

/// A histogram of microseconds as milliseconds at the percentiles that matter.
fn percentiles(histogram: &Histogram<u64>) -> Value {
    let ms = |micros: u64| micros as f64 / 1000.0;
    json!({
        "count": histogram.len(),
        "p50": ms(histogram.value_at_quantile(0.50)),
        "p99": ms(histogram.value_at_quantile(0.99)),
        "p99_9": ms(histogram.value_at_quantile(0.999)),
        "max": ms(histogram.max()),
        "mean": histogram.mean() / 1000.0,
    })
}

/// `part / whole`, absent when the whole is zero.
fn ratio(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| part / whole)
}

impl Outcome {
    /// The figures as one JSON document.
    fn to_json(&self) -> Value {
        let load = &self.load;
        let submissions_per_sec = load.submitted as f64 / load.submit_secs.max(1e-9);
        let flows_per_sec = load.flows as f64 / load.flow_secs.max(1e-9);
        let delta =
            |pick: fn(&Sample) -> Option<f64>| between(pick(&self.before), pick(&self.after));
        let cpu_secs = delta(|sample| sample.cpu_secs);
        let records = delta(|sample| sample.records);
        let batches = delta(|sample| sample.batches);
        // Records are written while submissions and flows run, not while
        // the drain waits for flows that never complete.
        let busy_secs = load.submit_secs.max(load.flow_secs).max(1e-9);
        let records_per_sec = records.map(|records| records / busy_secs);
        // CPU while submitting, not while the drain waits: the cost of intake.
        let submitting_share = load
            .submit_cpu_secs
            .map(|cpu| cpu / load.submit_secs.max(1e-9));
        let cpu_us_per_submission = load
            .submit_cpu_secs
            .and_then(|cpu| ratio(cpu * 1e6, load.submitted as f64));
        let echo_cpu_us_per_call = self
            .echo
            .cpu_share_of_one_core
            .and_then(|share| ratio(share * 1e6, self.echo.calls_per_sec));
        // Comparable only in process, where both figures include the load
        // generator; a running server's CPU time leaves it out.
        let cpu_vs_echo = match (self.mode, cpu_us_per_submission, echo_cpu_us_per_call) {
            ("embedded", Some(submission), Some(call)) => ratio(submission, call),
            _ => None,
        };
        let pace = match self.plan.pace {
            Pace::Max => json!("max"),
            Pace::Rate(rate) => json!({
                "rate": rate,
                "schedule_slip_ms": load.schedule_slip.as_secs_f64() * 1e3,
            }),
        };
        json!({
            "mode": self.mode,
            "pace": pace,
            "duration_secs": self.plan.duration.as_secs(),
            "agents": self.plan.agents,
            "concurrency": self.plan.concurrency,
            "connections": self.plan.connections,
            "submissions": load.submitted,
            "rejected": load.rejected,
            "submissions_per_sec": submissions_per_sec,
            "offers": load.offers,
            "reoffers": load.reoffers,
            "offers_before_ack": load.offers_before_ack,
            "unoffered": load.unoffered,
            "arrival_to_offer_ms": percentiles(&load.arrival_to_offer),
            "submit_latency_ms": percentiles(&load.submit_latency),
            "flows": load.flows,
            "flows_per_sec": flows_per_sec,
            "server": {
                "cpu_secs": cpu_secs,
                // Over the submissions and the drain after them.
                "cpu_share_of_one_core": cpu_secs.map(|cpu| cpu / load.total_secs.max(1e-9)),
                "cpu_share_while_submitting": submitting_share,
                "cpu_us_per_submission": cpu_us_per_submission,
                "peak_rss_bytes": self.peak_rss_bytes,
                "records": records,
                "records_per_sec": records_per_sec,
                "records_per_batch": match (records, batches) {
                    (Some(records), Some(batches)) => ratio(records, batches),
                    _ => None,
                },
            },
            "ceiling": {
                "echo_calls_per_sec": self.echo.calls_per_sec,
                "echo_cpu_share_of_one_core": self.echo.cpu_share_of_one_core,
                "echo_cpu_us_per_call": echo_cpu_us_per_call,
                "intake_vs_echo": ratio(submissions_per_sec, self.echo.calls_per_sec),
                "cpu_per_submission_vs_echo_call": cpu_vs_echo,
                "raw_commit_records_per_sec": self.raw_records_per_sec,
                "records_vs_raw_commit": records_per_sec
                    .and_then(|records| ratio(records, self.raw_records_per_sec)),
            },
            "footprint": {
                "waiting_items": self.footprint.waiting.map(Growth::to_json),
                "agent_sessions": self.footprint.sessions.map(Growth::to_json),
            },
        })
    }
}

/// The document as a two-column table for people; nested objects flatten to
/// dotted names.
fn table(document: &Value) -> Table {
    let mut table = Table::new(&["measure", "value"]);
    let mut rows = Vec::new();
    flatten("", document, &mut rows);
    for (name, value) in rows {
        table.push(vec![json!(name), value]);
    }
    table
}

/// Collects the leaves of a JSON document with their dotted paths.
fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, Value)>) {
    let Value::Object(fields) = value else {
        let shown = match value {
            Value::Number(number) => match number.as_f64() {
                Some(float) if number.is_f64() => json!(format!("{float:.3}")),
                _ => value.clone(),
            },
            Value::Null => json!("-"),
            _ => value.clone(),
        };
        rows.push((prefix.to_owned(), shown));
        return;
    };
    for (name, field) in fields {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        flatten(&path, field, rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_in_milliseconds_and_ordered() {
        let mut histogram =
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("the bounds are valid");
        for micros in 1..=10_000u64 {
            histogram.record(micros).expect("within the bounds");
        }
        let figures = percentiles(&histogram);
        let p50 = figures["p50"].as_f64().expect("p50 is a number");
        let p99 = figures["p99"].as_f64().expect("p99 is a number");
        let p999 = figures["p99_9"].as_f64().expect("p99.9 is a number");
        assert!((4.9..=5.1).contains(&p50), "p50 {p50}");
        assert!(p50 <= p99 && p99 <= p999, "{p50} {p99} {p999}");
        assert_eq!(figures["count"], 10_000);
    }

    #[test]
    fn options_out_of_range_are_refused_by_name() {
        let args = BenchArgs {
            embedded: true,
            rate: Some(-1.0),
            max: false,
            duration_secs: 1,
            agents: 1,
            concurrency: 1,
            connections: 1,
            metrics_url: None,
            waiting: 0,
            sessions: 0,
            database_url: None,
        };
        let error = args.plan("http://127.0.0.1:1".into()).err();
        assert!(
            matches!(&error, Some(BenchError::Input(message)) if message.starts_with("rate:")),
            "{error:?}"
        );
        let zero = BenchArgs {
            rate: None,
            agents: 0,
            ..args
        };
        let error = zero.plan("http://127.0.0.1:1".into()).err();
        assert!(
            matches!(&error, Some(BenchError::Input(message)) if message.starts_with("agents:")),
            "{error:?}"
        );
    }

    #[test]
    fn paced_submissions_sent_late_are_said_to_have_fallen_behind() {
        let late = Duration::from_millis(412);
        let warning = fell_behind(Pace::Rate(2950.0), late).expect("a warning");
        assert!(
            warning.contains("--rate 2950") && warning.contains("412 ms"),
            "{warning}"
        );
        assert_eq!(
            fell_behind(Pace::Rate(2950.0), Duration::from_millis(2)),
            None
        );
        assert_eq!(fell_behind(Pace::Max, late), None);
    }

    #[test]
    fn the_table_flattens_nested_figures() {
        let rows = table(&json!({ "a": 1, "b": { "c": 0.5, "d": null } })).to_json();
        let text = rows.to_string();
        assert!(text.contains("b.c") && text.contains("0.500") && text.contains("b.d"));
    }
}
