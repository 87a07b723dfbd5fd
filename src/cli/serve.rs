//! `gatehouse serve`: the process around the server: configuration, logging and OpenTelemetry, the
//! runtime, the development banner, and the signals that stop it.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{EXIT_CONFIG, started};
use crate::config::Config;
use crate::token::{Issuer, Keyring};

pub(super) fn serve(config_path: Option<PathBuf>) -> ExitCode {
    let config = match Config::load(config_path.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("gatehouse: {errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let workers = config.worker_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let Some(runtime) = server_runtime(workers) else {
        return ExitCode::FAILURE;
    };
    // The OTLP/gRPC exporters need the runtime to exist when they are built.
    let telemetry = {
        let _runtime = runtime.enter();
        match crate::telemetry::init_with_otlp(&config.log, config.otlp.as_ref()) {
            Ok(telemetry) => telemetry,
            Err(e) => {
                eprintln!("gatehouse: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    };
    tracing::info!(worker_threads = workers, "runtime started");
    let code = runtime.block_on(async move {
        let shutdown = match shutdown_signal() {
            Ok(shutdown) => shutdown,
            Err(e) => {
                eprintln!("gatehouse: cannot listen for SIGTERM and SIGINT: {e}");
                return ExitCode::FAILURE;
            }
        };
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("gatehouse: cannot listen on {}: {e}", config.listen);
                return ExitCode::FAILURE;
            }
        };
        if config.development {
            print_development_banner(&config, &listener);
        }
        match crate::server::run(config, listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gatehouse: {e}");
                ExitCode::FAILURE
            }
        }
    });
    // Flush spans and metrics still buffered; the runtime is still there for the exporters.
    let _runtime = runtime.enter();
    telemetry.shutdown();
    code
}

/// The server's runtime with `workers` threads: by default one per CPU the process may use, which
/// the standard library reads from the cgroup's CPU quota (`cpu.max`, or v1's `cfs_quota_us`)
/// before the machine's count, so a sidecar limited to one CPU does not run a thread per host core.
/// Blocking work (reloads, file writes) gets a few threads of its own, not tokio's 512.
fn server_runtime(workers: usize) -> Option<tokio::runtime::Runtime> {
    started(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .max_blocking_threads(MAX_BLOCKING_THREADS)
            .thread_name("gatehouse")
            .enable_all(),
    )
}

/// Threads for blocking work: policy, secret and certificate reloads, and decision log writes.
const MAX_BLOCKING_THREADS: usize = 8;

/// Development mode prints, once, a server token for its random secret and commands to try.
fn print_development_banner(config: &Config, listener: &tokio::net::TcpListener) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| config.listen.to_string());
    let Ok(server_token) =
        Issuer::with_keyring(Keyring::new(config.secrets.clone())).server_token()
    else {
        return;
    };
    // The Feeds preset's own example, or a placeholder for the kinds of the configured directory.
    let (resource, context) = match config.policy_dir {
        None => ("feed:user:tommaso", " --context actor=tommaso"),
        Some(_) => ("KIND:ID", ""),
    };
    println!(
        "gatehouse is running in development mode on {addr}: loopback only, with a random API secret.\n\
         Set GATEHOUSE_API_SECRET (or GATEHOUSE_API_SECRET_FILE) to use your app's secret.\n\n\
         Server token for this process:\n  {server_token}\n\n\
         Try it:\n  \
         grpcurl -plaintext -H 'authorization: Bearer {server_token}' -d '{{\"user_id\": \"tommaso\"}}' {addr} gatehouse.v1.Gatehouse/IssueToken\n  \
         GATEHOUSE_SERVER_TOKEN=<server token> gatehouse token issue --addr http://{addr} --user tommaso\n  \
         gatehouse check --addr http://{addr} --token <token from IssueToken> --action write --resource {resource}{context}\n"
    );
}

/// Listens for SIGTERM and SIGINT from now on, and completes on the first of them. The handlers are
/// installed before the listener is bound, not when the server first polls the future: until then a
/// SIGTERM would take its default action and kill the process instead of draining it.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
