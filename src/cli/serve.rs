//! `gatehouse serve`: the process around the server: configuration, logging and OpenTelemetry, the
//! runtime, the development banner, and the signals that stop it.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{EXIT_CONFIG, runtime};
use crate::config::Config;
use crate::token::Issuer;

pub(super) fn serve(config_path: Option<PathBuf>) -> ExitCode {
    let config = match Config::load(config_path.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("gatehouse: {errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(runtime) = runtime() else {
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
    let code = runtime.block_on(async move {
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
        match crate::server::run(config, listener, shutdown_signal()).await {
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

/// Development mode prints, once, a server token for its random secret and commands to try.
fn print_development_banner(config: &Config, listener: &tokio::net::TcpListener) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| config.listen.to_string());
    let Ok(server_token) = Issuer::new(&config.secret).server_token() else {
        return;
    };
    println!(
        "gatehouse is running in development mode on {addr}: loopback only, with a random API secret.\n\
         Set GATEHOUSE_API_SECRET (or GATEHOUSE_API_SECRET_FILE) to use your app's secret.\n\n\
         Server token for this process:\n  {server_token}\n\n\
         Try it:\n  \
         grpcurl -plaintext -H 'authorization: Bearer {server_token}' -d '{{\"user_id\": \"tommaso\"}}' {addr} gatehouse.v1.Gatehouse/IssueToken\n  \
         gatehouse check --addr http://{addr} --token <token from IssueToken> --action write --resource feed:user:tommaso --context actor=tommaso\n"
    );
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
