//! The simulator's live mode and `switchboard demo`, against real servers
//! over gRPC on loopback: a short M/M/N scenario sped up 60 times, checked
//! with coarse tolerances against Erlang C, and the demo binary in a
//! shortened form, which must exit 0 with calls answered.

mod common;

use common::scenarios::Mmn;
use common::{TestServer, sqlite};
use serde_json::Value;
use std::time::Duration;
use switchboard::sim::command::live_run;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_run_matches_erlang_c_coarsely() {
    let backend = sqlite();
    let server = TestServer::start(&backend.url).await;
    // 8 agents, 600 calls an hour of 30 s each (A = 5 Erlang), 15 minutes,
    // twice: replications run one after another, for a confidence interval.
    let scenario = Mmn {
        agents: 8,
        calls_per_half_hour: 300,
        handle_secs: 30,
        patience_secs: None,
        duration_secs: 900,
        warmup_secs: 0,
        replications: 2,
        seed: 42,
    }
    .scenario();
    let url = format!("http://{}", server.grpc_addr);
    let report = tokio::time::timeout(Duration::from_secs(150), live_run(&scenario, &url, 60.0))
        .await
        .expect("the live run ends")
        .expect("the live run succeeds");
    server.stop().await;
    assert_eq!(report.mode, "live");
    assert_eq!(report.seeds, [42, 43]);
    let row = &report.rows[0];
    assert_eq!(row.model, Some("erlang_c"), "{row:?}");
    let offered = row.total.offered;
    // About 300 arrivals are expected; 220 is more than four deviations below.
    assert!(offered >= 220, "offered {offered}");
    assert!(
        row.total.answered * 100 >= offered * 95,
        "answered {} of {offered}",
        row.total.answered
    );
    let measure = |name: &str| {
        let estimate = row.measure(name).expect("measured");
        (estimate.mean, estimate.predicted.expect("predicted"))
    };
    for name in ["service_level", "asa", "aht", "occupancy"] {
        let ci95 = row.measure(name).and_then(|estimate| estimate.ci95);
        assert!(
            ci95.is_some_and(|half| half.is_finite() && half >= 0.0),
            "{name} has a confidence interval from the two replications: {row:?}"
        );
    }
    let (aht, predicted_aht) = measure("aht");
    assert!(
        (aht - predicted_aht).abs() <= 0.25 * predicted_aht,
        "aht {aht}"
    );
    let (service_level, predicted_sl) = measure("service_level");
    assert!(
        service_level >= predicted_sl - 0.15,
        "service level {service_level} vs {predicted_sl}"
    );
    let (occupancy, predicted_occupancy) = measure("occupancy");
    assert!(
        (occupancy - predicted_occupancy).abs() <= 0.2,
        "occupancy {occupancy} vs {predicted_occupancy}"
    );
}

#[tokio::test]
async fn the_demo_answers_calls_and_exits() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = format!("sqlite://{}", dir.path().join("demo.db").display());
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "--json",
            "demo",
            "--duration-secs",
            "10",
            "--exit",
            "--grpc-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--database-url",
            &database,
        ])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the demo ends")
        .expect("the demo starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the demo failed: {stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("the report is JSON");
    let rows = report["rows"].as_array().expect("rows");
    let answered: u64 = rows.iter().filter_map(|row| row["answered"].as_u64()).sum();
    assert!(answered > 0, "no call answered: {report:#}");
    let queues: Vec<&str> = rows
        .iter()
        .filter_map(|row| row["queue"].as_str())
        .collect();
    assert!(
        queues.contains(&"sales") && queues.contains(&"support"),
        "{queues:?}"
    );
    assert!(stderr.contains("/metrics"), "where to look next: {stderr}");
}

#[tokio::test]
async fn the_calculator_prints_erlang_c_and_the_staff_needed() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "--json",
            "erlang",
            "--arrival-rate",
            "200",
            "--aht",
            "180",
            "--agents",
            "12",
            "--target",
            "20",
            "--target-sl",
            "0.8",
        ])
        .output()
        .await
        .expect("the calculator runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer["agents_needed"], 14, "{answer:#}");
    let p_wait = answer["prediction"]["p_wait"].as_f64().expect("p_wait");
    assert!((p_wait - 0.4493882).abs() < 5e-7, "{answer:#}");
    let service_level = answer["prediction"]["service_level"].as_f64().expect("sl");
    assert!((service_level - 0.640158).abs() < 5e-7, "{answer:#}");
}
