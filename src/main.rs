//! The `gatehouse` binary: parses its arguments and runs the command they name.

#![forbid(unsafe_code)]

use std::process::ExitCode;

/// mimalloc keeps allocation thread-local and cheap when one thread frees what another allocated,
/// which the request path and the decision log do at every request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    gatehouse::cli::run(gatehouse::cli::parse())
}
