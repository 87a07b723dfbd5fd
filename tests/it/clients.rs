//! The Python and Node clients' own suites, run against the binary built with these tests. Each suite
//! starts real servers from `GATEHOUSE_BIN` and exercises every call, the deadlines, the failure modes
//! and the framework examples (FastAPI and Django; Express and GraphQL). Their runtimes and pinned
//! dependencies are installed by the clients' scripts; if they cannot be, the tests fail rather
//! than skip.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `script` (the client's set-up), then `suite` with `GATEHOUSE_BIN` set, from the repository
/// root; fails with both outputs when either fails.
fn run_suite(script: &str, suite: &mut Command) {
    let setup = Command::new("bash")
        .arg(script)
        .current_dir(ROOT)
        .output()
        .unwrap_or_else(|e| panic!("could not run bash {script}: {e}"));
    assert!(
        setup.status.success(),
        "{script} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        setup.status,
        String::from_utf8_lossy(&setup.stdout),
        String::from_utf8_lossy(&setup.stderr)
    );
    let suite = crate::common::without_gatehouse_env(suite);
    let output = suite
        .current_dir(ROOT)
        .env("GATEHOUSE_BIN", env!("CARGO_BIN_EXE_gatehouse"))
        .output()
        .unwrap_or_else(|e| panic!("could not run {suite:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{suite:?} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    println!("{stdout}");
}

#[test]
fn python_client_suite_passes_against_a_real_server() {
    let python = Path::new(ROOT).join("target/client-python-env/venv/bin/python");
    run_suite(
        "scripts/client-python-env.sh",
        Command::new(python).args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "clients/python/tests",
        ]),
    );
}

#[test]
fn node_client_suite_passes_against_a_real_server() {
    run_suite(
        "scripts/client-node-env.sh",
        Command::new("node").args(["--test", "clients/node/test/"]),
    );
}
