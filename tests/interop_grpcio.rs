//! Interop with an independent gRPC implementation: the Python scripts in
//! `tests/interop/` drive the real `switchboard` binary with grpcio, on every
//! back-end. `scripts/test` installs grpcio into a virtual environment and
//! names its interpreter in `SWITCHBOARD_TEST_PYTHON`.

mod common;

use std::process::Command;

/// The interpreter with grpcio installed, or `None` (a failure in CI).
fn python() -> Option<String> {
    match std::env::var("SWITCHBOARD_TEST_PYTHON") {
        Ok(python) => Some(python),
        Err(_) => {
            common::skipped_outside_ci(
                "SWITCHBOARD_TEST_PYTHON is not set",
                "run scripts/test for the grpcio interop tests",
            );
            None
        }
    }
}

/// Runs one interop script against every back-end and fails with its output.
async fn run_script(script: &str) {
    let Some(python) = python() else { return };
    for backend in common::backends().await {
        let output = Command::new(&python)
            .arg(format!(
                "{}/tests/interop/{script}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .arg(env!("CARGO_BIN_EXE_switchboard"))
            .arg(&backend.url)
            .output()
            .expect("the Python interpreter runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{script} failed on {}:\n{stdout}\n{stderr}",
            backend.name
        );
        eprintln!("{script} on {}:\n{stdout}", backend.name);
    }
}

#[tokio::test]
async fn python_grpcio_configures_the_centre_across_a_restart() {
    run_script("test_supervisor.py").await;
}

#[tokio::test]
async fn python_grpcio_drives_a_call_as_bridge_and_agent() {
    run_script("test_call_flow.py").await;
}
