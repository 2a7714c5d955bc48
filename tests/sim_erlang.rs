//! The virtual-time simulator against queueing theory. With Poisson
//! arrivals, exponential handling, identical agents and FIFO routing, the
//! engine's measured service level and ASA must match Erlang C, and with
//! exponential patience P(wait) and P(abandon) must match Erlang A.
//!
//! Setup (the issue's): one queue, one skill-less step, T = 20 s, 100 calls
//! per 30 minutes, mean handle 180 s, so A = 10 Erlang. Each case runs
//! independent replications with fixed seeds (so the test is reproducible),
//! each a long run whose first two hours are discarded as warm-up. Near
//! saturation the waits are strongly autocorrelated, so the runs are long:
//! each case also asserts that its 95 % confidence interval is narrower than
//! the tolerance, so passing is statistically meaningful, not luck. The run
//! lengths and seeds are in `CASES_C` and `CASES_A`; the figures measured
//! are printed (`cargo test --test sim_erlang -- --nocapture`).

mod common;

use common::scenarios::Mmn;
use switchboard::sim::report::Row;
use switchboard::sim::scenario::Scenario;
use switchboard::sim::virtual_time;

/// Warm-up discarded at the start of each replication, seconds.
const WARMUP_SECS: u32 = 2 * 3600;

/// One case: agents, hours per replication, replications, first seed.
struct Case {
    agents: u32,
    hours: u32,
    replications: u32,
    seed: u64,
}

/// The scenario for a case, with patience if given.
fn scenario(case: &Case, patience_secs: Option<u32>) -> Scenario {
    Mmn {
        agents: case.agents,
        calls_per_half_hour: 100,
        handle_secs: 180,
        patience_secs,
        duration_secs: case.hours * 3600,
        warmup_secs: WARMUP_SECS,
        replications: case.replications,
        seed: case.seed,
    }
    .scenario()
}

/// Runs a case and returns its one row, with the model it was compared to.
fn simulate(case: &Case, patience_secs: Option<u32>, model: &str) -> Row {
    let report =
        virtual_time::run(&scenario(case, patience_secs), &|_| {}).expect("the scenario runs");
    assert_eq!(report.rows.len(), 1, "one queue and channel");
    let row = report.rows[0].clone();
    assert_eq!(
        row.model,
        Some(model),
        "{} agents: the model applies",
        case.agents
    );
    assert!(row.total.answered > 0);
    row
}

/// Checks one measure: the prediction is the exact value, the measured mean
/// is within `tolerance` of it, and the 95 % interval is narrower than the
/// tolerance.
fn check(row: &Row, agents: u32, measure: &str, exact: f64, tolerance: f64) {
    let estimate = row.measure(measure).expect("the measure is reported");
    let predicted = estimate.predicted.expect("a prediction is given");
    let ci = estimate.ci95.expect("several replications");
    eprintln!(
        "N={agents} {measure}: measured {:.5} ± {ci:.5}, predicted {predicted:.5}, difference {:+.5} (tolerance {tolerance:.5})",
        estimate.mean,
        estimate.mean - predicted,
    );
    assert!(
        (predicted - exact).abs() <= exact * 1e-4,
        "N={agents} {measure}: predicted {predicted}, exact {exact}"
    );
    assert!(
        (estimate.mean - exact).abs() <= tolerance,
        "N={agents} {measure}: measured {} ± {ci}, exact {exact}, tolerance {tolerance}",
        estimate.mean
    );
    assert!(
        ci <= tolerance,
        "N={agents} {measure}: the 95 % interval ±{ci} is wider than the tolerance {tolerance}: run longer"
    );
}

/// Erlang C cases: lengths chosen so each 95 % interval is inside the tolerance.
const CASES_C: [Case; 4] = [
    Case {
        agents: 11,
        hours: 1000,
        replications: 16,
        seed: 1100,
    },
    Case {
        agents: 12,
        hours: 500,
        replications: 16,
        seed: 1200,
    },
    Case {
        agents: 13,
        hours: 250,
        replications: 16,
        seed: 1300,
    },
    Case {
        agents: 14,
        hours: 250,
        replications: 16,
        seed: 1400,
    },
];

/// P(wait), service level and ASA (seconds) from Erlang C for N = 11 to 14.
const ERLANG_C: [(f64, f64, f64); 4] = [
    (0.6821182, 0.3896138, 122.78),
    (0.4493882, 0.640158, 40.445),
    (0.2852705, 0.7955948, 17.116),
    (0.1741319, 0.88835, 7.836),
];

#[test]
fn service_level_and_asa_match_erlang_c() {
    for (case, (p_wait, service_level, asa)) in CASES_C.iter().zip(ERLANG_C) {
        let row = simulate(case, None, "erlang_c");
        check(&row, case.agents, "service_level", service_level, 0.015);
        check(&row, case.agents, "asa", asa, asa * 0.07);
        check(&row, case.agents, "p_wait", p_wait, 0.015);
        assert_eq!(row.total.abandoned, 0, "nobody abandons without patience");
    }
}

/// Erlang A cases, patience 300 s: fewer agents than the load, and one more.
const CASES_A: [Case; 2] = [
    Case {
        agents: 9,
        hours: 200,
        replications: 8,
        seed: 900,
    },
    Case {
        agents: 11,
        hours: 200,
        replications: 8,
        seed: 1110,
    },
];

#[test]
fn abandonment_and_waiting_match_erlang_a() {
    for case in &CASES_A {
        let staffing = switchboard::sim::erlang::Staffing {
            arrival_rate: 100.0 / 1800.0,
            aht: 180.0,
            agents: case.agents,
            threshold: 20.0,
            patience: Some(300.0),
        };
        let exact = staffing.predict().expect("erlang a has an answer");
        let row = simulate(case, Some(300), "erlang_a");
        check(&row, case.agents, "p_abandon", exact.p_abandon, 0.01);
        check(&row, case.agents, "p_wait", exact.p_wait, 0.015);
        check(
            &row,
            case.agents,
            "service_level",
            exact.service_level,
            0.015,
        );
        check(&row, case.agents, "asa", exact.asa, exact.asa * 0.07);
        assert!(row.total.abandoned > 0);
    }
}
