//! The Python and Node clients' own suites, run against the binary built with these tests. Each suite
//! starts real servers from `GATEHOUSE_BIN` and exercises every call, the deadlines, the failure modes
//! and the framework examples (FastAPI and Django; Express and GraphQL). Their runtimes and pinned
//! dependencies are installed by the clients' scripts; if they cannot be, the tests fail rather
//! than skip.

use std::path::Path;
use std::process::Command;

use crate::common::{succeed, without_gatehouse_env};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `script` (the client's set-up), then `suite` with `GATEHOUSE_BIN` set, from the repository
/// root; fails with both outputs when either fails.
fn run_suite(script: &str, suite: &mut Command) {
    succeed(Command::new("bash").arg(script).current_dir(ROOT));
    let output = succeed(
        without_gatehouse_env(suite)
            .current_dir(ROOT)
            .env("GATEHOUSE_BIN", env!("CARGO_BIN_EXE_gatehouse")),
    );
    println!("{output}");
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
