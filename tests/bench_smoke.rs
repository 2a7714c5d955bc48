//! Smoke run of `switchboard bench`: the real binary, an embedded server and
//! two seconds of load, proving the benchmark works end to end. It asserts
//! what was measured exists and is coherent, never how fast it was: speed
//! goals live in the benchmark's output, not in timed tests.

mod common;

use serde_json::Value;
use std::process::Command;

/// A figure of the report as a number, failing with its name.
fn number(report: &Value, path: &[&str]) -> f64 {
    let mut value = report;
    for name in path {
        value = &value[*name];
    }
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{} is not a number in {report:#}", path.join(".")))
}

/// Runs `switchboard bench --embedded --duration-secs 2 --json` with more
/// arguments and returns its report.
fn bench(more: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["bench", "--embedded", "--duration-secs", "2", "--json"])
        .args(more)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("the output is not JSON ({error}): {stderr}"))
}

#[test]
fn a_short_embedded_run_reports_submissions_offers_and_ordered_latencies() {
    let report = bench(&["--waiting", "300", "--sessions", "40"]);

    let submissions = number(&report, &["submissions"]);
    let offers = number(&report, &["offers"]);
    assert!(submissions > 0.0, "no submissions: {report:#}");
    assert!(offers > 0.0, "no offers: {report:#}");
    assert!(
        offers <= submissions,
        "more offers than submissions: {report:#}"
    );
    assert!(
        number(&report, &["flows"]) > 0.0,
        "no complete flow: {report:#}"
    );

    let p50 = number(&report, &["arrival_to_offer_ms", "p50"]);
    let p99 = number(&report, &["arrival_to_offer_ms", "p99"]);
    let p999 = number(&report, &["arrival_to_offer_ms", "p99_9"]);
    assert!(p50 >= 0.0 && p50 <= p99 && p99 <= p999, "{report:#}");
    assert_eq!(
        number(&report, &["arrival_to_offer_ms", "count"]),
        offers,
        "every offer is timed: {report:#}"
    );

    // The server's own figures and the ceilings are there, and positive.
    let cpu_secs = number(&report, &["server", "cpu_secs"]);
    assert!(cpu_secs > 0.0, "{report:#}");
    // The CPU while submitting is a part of the whole run's, per submission.
    let per_submission = number(&report, &["server", "cpu_us_per_submission"]);
    assert!(per_submission > 0.0, "{report:#}");
    assert!(
        per_submission * submissions / 1e6 <= cpu_secs + 1e-9,
        "{report:#}"
    );
    assert!(
        number(&report, &["server", "cpu_share_while_submitting"]) > 0.0,
        "{report:#}"
    );
    assert!(
        number(&report, &["ceiling", "echo_cpu_us_per_call"]) > 0.0,
        "{report:#}"
    );
    assert!(
        number(&report, &["ceiling", "cpu_per_submission_vs_echo_call"]) > 0.0,
        "{report:#}"
    );
    assert!(
        number(&report, &["server", "peak_rss_bytes"]) > 0.0,
        "{report:#}"
    );
    assert!(number(&report, &["server", "records"]) > 0.0, "{report:#}");
    assert!(
        number(&report, &["ceiling", "echo_calls_per_sec"]) > 0.0,
        "{report:#}"
    );
    assert!(
        number(&report, &["ceiling", "raw_commit_records_per_sec"]) > 0.0,
        "{report:#}"
    );
    assert!(
        number(&report, &["ceiling", "intake_vs_echo"]) > 0.0,
        "{report:#}"
    );
    assert!(
        number(&report, &["ceiling", "records_vs_raw_commit"]) > 0.0,
        "{report:#}"
    );

    // The footprint held what it was asked to hold, and read the memory.
    for (part, count) in [("waiting_items", 300.0), ("agent_sessions", 40.0)] {
        assert_eq!(number(&report, &["footprint", part, "count"]), count);
        assert!(
            number(&report, &["footprint", part, "rss_during_bytes"]) > 0.0,
            "{report:#}"
        );
        number(&report, &["footprint", part, "bytes_each"]);
    }
}

#[tokio::test]
async fn a_short_run_on_postgresql_leaves_no_schema_behind() {
    let Ok(base) = std::env::var(common::POSTGRES_ENV) else {
        common::skipped_outside_ci(
            &format!("{} is not set", common::POSTGRES_ENV),
            "the benchmark is not run on PostgreSQL",
        );
        return;
    };
    let schemas = || async {
        let pool = sqlx::PgPool::connect(&base)
            .await
            .expect("the test PostgreSQL server answers");
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'bench%'",
        )
        .fetch_one(&pool)
        .await
        .expect("schemas can be counted");
        pool.close().await;
        count
    };
    let before = schemas().await;
    let report = tokio::task::spawn_blocking({
        let base = base.clone();
        move || bench(&["--database-url", &base])
    })
    .await
    .expect("the benchmark runs");
    assert!(number(&report, &["submissions"]) > 0.0, "{report:#}");
    assert!(number(&report, &["flows"]) > 0.0, "{report:#}");
    assert!(
        number(&report, &["ceiling", "raw_commit_records_per_sec"]) > 0.0,
        "{report:#}"
    );
    assert_eq!(
        schemas().await,
        before,
        "the benchmark's schemas are dropped"
    );
}

#[test]
fn an_invalid_option_is_refused_by_name() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["bench", "--embedded", "--duration-secs", "0"])
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("duration_secs:"), "{stderr}");
}
