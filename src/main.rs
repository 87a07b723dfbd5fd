//! The `gatehouse` binary: parses arguments and configuration, sets up logging, calls the library.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatehouse::cli::{self, CheckArgs, IssueArgs, parse_pair};
use gatehouse::config::Config;
use gatehouse::token::Issuer;

/// mimalloc keeps allocation thread-local and cheap when one thread frees what another allocated,
/// which the request path and the decision log do at every request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for invalid configuration or usage (sysexits' EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Authorization sidecar for Stream-compatible tokens and permissions"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API (gatehouse.v1, health, reflection).
    Serve {
        /// YAML config file; GATEHOUSE_* environment variables override it.
        #[arg(long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Issue or verify tokens locally with the configured API secret.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Ask a running server whether a token may perform an action on a resource.
    /// Exits 0 when allowed, 1 when denied, 2 on error.
    Check {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        addr: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        action: String,
        /// kind:id, e.g. feed:user:tommaso or users:jack.
        #[arg(long)]
        resource: String,
        /// Resource attribute key=value (repeatable), e.g. user_id=jack.
        #[arg(long = "attr", value_parser = parse_pair)]
        attributes: Vec<(String, String)>,
        /// Request context key=value (repeatable), e.g. actor=tommaso.
        #[arg(long, value_parser = parse_pair)]
        context: Vec<(String, String)>,
    },
    /// Load a policy directory and report every error with file:line. Exits 1 on errors.
    Validate { dir: PathBuf },
    /// Run the *_test.yaml suites of a policy directory. Exits 1 on any failure.
    Test { dir: PathBuf },
    /// Decide one request offline against a policy directory, with the full explanation.
    /// Exits 0 when allowed, 1 when denied, 2 on error.
    Eval {
        dir: PathBuf,
        /// A user id, or JSON: '{"id": "jack", "roles": ["admin"]}', '{"anonymous": true}'.
        #[arg(long)]
        principal: String,
        #[arg(long)]
        action: String,
        /// kind:id, e.g. message:m1.
        #[arg(long)]
        resource: String,
        #[arg(long = "attr", value_parser = parse_pair)]
        attributes: Vec<(String, String)>,
        #[arg(long, value_parser = parse_pair)]
        context: Vec<(String, String)>,
    },
    /// The permissions a user or role exercised, from a decision log file (JSON lines): the distinct
    /// action, kind, id (or the deciding rule's id pattern) and decision, with counts and last-seen.
    Exercised {
        #[command(flatten)]
        query: LogQuery,
    },
    /// A least-privilege policy file allowing exactly what a user or role was allowed, from a
    /// decision log file. Prints the policy; it validates and loads as is.
    Suggest {
        #[command(flatten)]
        query: LogQuery,
    },
}

/// Whose decisions, from which decision log file, since when.
#[derive(clap::Args)]
struct LogQuery {
    /// The decision log file (GATEHOUSE_DECISION_LOG_FILE); rotated files are read with --log too.
    #[arg(long = "log", required = true)]
    logs: Vec<PathBuf>,
    /// The policy directory that made the decisions (`suggest` checks its suggestion against it);
    /// the built-in preset when not given.
    #[arg(long, env = "GATEHOUSE_POLICY_DIR")]
    policy_dir: Option<PathBuf>,
    #[arg(
        long = "user",
        conflicts_with = "role",
        required_unless_present = "role"
    )]
    user_id: Option<String>,
    #[arg(long)]
    role: Option<String>,
    /// Only decisions at or after this time: RFC 3339 (2026-11-22T10:00:00Z) or an age (24h, 7d).
    #[arg(long)]
    since: Option<String>,
}

impl LogQuery {
    fn into_cli(self) -> cli::LogQuery {
        cli::LogQuery {
            logs: self.logs,
            policy_dir: self.policy_dir,
            user_id: self.user_id,
            role: self.role,
            since: self.since,
        }
    }
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new token.
    Issue {
        #[arg(long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        /// The user id of a user token.
        #[arg(
            long = "user",
            conflicts_with = "server",
            required_unless_present = "server"
        )]
        user_id: Option<String>,
        /// Issue a server token ({"server": true}) instead.
        #[arg(long)]
        server: bool,
        /// Lifetime such as 1h or 30m; without it the token never expires (Stream's default).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<i64>,
        #[arg(long = "role")]
        roles: Vec<String>,
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Extra claim key=value (repeatable); JSON values keep their type.
        #[arg(long = "claim", value_parser = parse_pair)]
        claims: Vec<(String, String)>,
    },
    /// Verify a token and print its principal.
    Verify {
        #[arg(long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        token: String,
    },
}

fn parse_ttl(text: &str) -> Result<i64, String> {
    let duration = gatehouse::config::parse_duration(text)?;
    i64::try_from(duration.as_secs()).map_err(|_| "lifetime too long".to_owned())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Serve { config } => serve(config),
        Command::Token { command } => token(command),
        Command::Check {
            addr,
            token,
            action,
            resource,
            attributes,
            context,
        } => check(CheckArgs {
            addr,
            token,
            action,
            resource,
            attributes,
            context,
        }),
        Command::Validate { dir } => report(cli::validate(&dir).map(|text| (true, text))),
        Command::Test { dir } => report(cli::test(&dir).map(|o| (o.passed, o.report))),
        Command::Eval {
            dir,
            principal,
            action,
            resource,
            attributes,
            context,
        } => verdict(cli::eval(
            &dir,
            cli::EvalArgs {
                principal,
                action,
                resource,
                attributes,
                context,
            },
        )),
        Command::Exercised { query } => {
            report(cli::exercised(query.into_cli()).map(|text| (true, text)))
        }
        Command::Suggest { query } => {
            report(cli::suggest(query.into_cli()).map(|text| (true, text)))
        }
    }
}

/// Prints a tool's report: exit 0 when it passed, 1 when it did not or failed.
fn report(result: Result<(bool, String), cli::CliError>) -> ExitCode {
    match result {
        Ok((passed, text)) => {
            println!("{text}");
            if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a decision: exit 0 allowed, 1 denied, 2 on error.
fn verdict(result: Result<cli::CheckOutcome, cli::CliError>) -> ExitCode {
    match result {
        Ok(outcome) => {
            println!("{}", outcome.report);
            if outcome.allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            None
        }
    }
}

fn serve(config_path: Option<PathBuf>) -> ExitCode {
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
        match gatehouse::telemetry::init_with_otlp(&config.log, config.otlp.as_ref()) {
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
        match gatehouse::run(config, listener, shutdown_signal()).await {
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

fn token(command: TokenCommand) -> ExitCode {
    let result = match command {
        TokenCommand::Issue {
            config,
            user_id,
            server,
            ttl,
            roles,
            groups,
            claims,
        } => cli::issue_token(
            config.as_deref(),
            IssueArgs {
                user_id,
                server,
                ttl_seconds: ttl.unwrap_or(0),
                roles,
                groups,
                claims,
            },
        ),
        TokenCommand::Verify { config, token } => cli::verify_token(config.as_deref(), &token),
    };
    match result {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(cli::CliError::Config(errors)) => {
            eprint!("gatehouse: {errors}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    verdict(runtime.block_on(cli::check(args)))
}
