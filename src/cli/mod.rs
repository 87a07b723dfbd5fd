//! The `gatehouse` command line: its arguments, and running a command to an exit code. The binary only
//! parses the arguments and calls [`run`].

mod commands;
mod print;
mod remote;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

pub use commands::{
    CheckOutcome, CliError, EvalArgs, ExercisedView, IssueArgs, LogQuery, TestOutcome, eval,
    exercised, issue_token, parse_pair, principal_json, suggest, test, validate, verify_token,
};
pub use remote::{AdminArgs, CheckArgs, DEFAULT_ADDR, ServerAuth, check, server_token};

/// Exit code for invalid configuration or usage (sysexits' EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Authorization sidecar for Stream-compatible tokens and permissions"
)]
pub struct Args {
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
    /// Issue or verify tokens: locally with the configured API secret, or with --addr by a server.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Ask a running server whether a caller (a token, --anonymous, or a --principal described with
    /// a server token) may perform an action on a resource.
    /// Exits 0 when allowed, 1 when denied, 2 on error.
    Check(CheckArgs),
    /// A running server's policy set and reload history (PolicyStatus; needs a server token).
    Status(AdminArgs),
    /// Make a running server reload its policy directory now (ReloadPolicies; needs a server token).
    /// Exits 1 when the directory does not load and the previous set keeps serving.
    Reload(AdminArgs),
    /// Load a policy directory and report every error with file:line. Exits 1 on errors.
    Validate { dir: PathBuf },
    /// Run the *_test.yaml suites of a policy directory. Exits 1 on any failure.
    Test { dir: PathBuf },
    /// Decide one request offline against a policy directory, with the full explanation.
    /// Exits 0 when allowed, 1 when denied, 2 on error.
    Eval {
        dir: PathBuf,
        #[command(flatten)]
        args: EvalArgs,
    },
    /// The permissions a user or role exercised, from a decision log file (JSON lines): the distinct
    /// action, kind, id (or the deciding rule's id pattern) and decision, with counts and last-seen.
    Exercised {
        #[command(flatten)]
        query: LogQuery,
        #[command(flatten)]
        view: ExercisedView,
    },
    /// A least-privilege policy file allowing exactly what a user or role was allowed, from a
    /// decision log file. Prints the policy; it validates and loads as is.
    Suggest {
        #[command(flatten)]
        query: LogQuery,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new token: signed locally, or with --addr minted by the server (IssueToken).
    Issue {
        #[arg(long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        /// Mint through the server at this address, with its secret, instead of signing locally.
        #[arg(long)]
        addr: Option<String>,
        /// With --addr: the server token to call with; without the flag, GATEHOUSE_SERVER_TOKEN. The
        /// flag is refused without --addr; the variable is then unused.
        #[arg(long, env = "GATEHOUSE_SERVER_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// With --addr: mint the server token to call with from the configured API secret.
        #[arg(long, requires = "addr")]
        secret_from_config: bool,
        /// Print the token and its expiry as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        args: IssueArgs,
    },
    /// Verify a token and print its principal: locally, or with --addr by the server (Verify).
    Verify {
        #[arg(long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        addr: Option<String>,
        /// Print the principal as JSON.
        #[arg(long)]
        json: bool,
        token: String,
    },
}

/// Parses the process's arguments, refusing (exit 2, as clap refuses any bad usage) a flag that the
/// command would ignore.
pub fn parse() -> Args {
    let mut command = Args::command();
    let matches = command.get_matches_mut();
    if let Some(message) = ignored_flag(&matches) {
        command.error(ErrorKind::ArgumentConflict, message).exit();
    }
    Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// A flag written on the command line that its command would not use. These flags also read
/// `GATEHOUSE_SERVER_TOKEN`, so clap's `requires` cannot express them: it would refuse the variable
/// alone, which is meant to be harmless where it is not used. The value's source tells them apart.
/// The message never carries the flag's value: it is a credential.
fn ignored_flag(matches: &ArgMatches) -> Option<&'static str> {
    let written = |m: &ArgMatches, id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    let absent = |m: &ArgMatches, id: &str| m.value_source(id).is_none();
    match matches.subcommand()? {
        ("token", token) => match token.subcommand()? {
            ("issue", issue) if written(issue, "token") && absent(issue, "addr") => Some(
                "--token is the server token to mint through a server with, and is used only with --addr; without --addr the token is signed locally with the configured secret",
            ),
            _ => None,
        },
        ("check", check) if written(check, "server_token") && absent(check, "principal") => Some(
            "--server-token is used only with --principal (a caller this service describes); with --token or --anonymous the server judges the caller itself",
        ),
        _ => None,
    }
}

/// Runs the command `args` name, printing its output; the exit code says how it went.
pub fn run(args: Args) -> ExitCode {
    match args.command {
        Command::Serve { config } => serve::serve(config),
        Command::Token { command } => token(command),
        Command::Check(args) => check_server(args),
        Command::Status(args) => match runtime() {
            Some(runtime) => report(runtime.block_on(remote::status(args)).map(|t| (true, t))),
            None => ExitCode::FAILURE,
        },
        Command::Reload(args) => match runtime() {
            Some(runtime) => report(runtime.block_on(remote::reload(args))),
            None => ExitCode::FAILURE,
        },
        Command::Validate { dir } => report(validate(&dir).map(|text| (true, text))),
        Command::Test { dir } => report(test(&dir).map(|o| (o.passed, o.report))),
        Command::Eval { dir, args } => verdict(eval(&dir, args)),
        Command::Exercised { query, view } => {
            report(exercised(query, view).map(|text| (true, text)))
        }
        Command::Suggest { query } => report(suggest(query).map(|text| (true, text))),
    }
}

/// Prints a tool's report: exit 0 when it passed, 1 when it did not or failed.
fn report(result: Result<(bool, String), CliError>) -> ExitCode {
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
fn verdict(result: Result<CheckOutcome, CliError>) -> ExitCode {
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
    started(tokio::runtime::Builder::new_multi_thread().enable_all())
}

/// The runtime `builder` describes, or `None` after saying why it cannot start.
fn started(builder: &mut tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    match builder.build() {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            None
        }
    }
}

fn token(command: TokenCommand) -> ExitCode {
    let result = match command {
        TokenCommand::Issue {
            config,
            addr,
            token,
            secret_from_config,
            json,
            args,
        } => {
            let auth = ServerAuth {
                token,
                secret_from_config,
                config,
            };
            issue(addr, auth, args)
                .map(|(token, expires_at)| remote::issued_report(token, expires_at, json))
        }
        TokenCommand::Verify {
            config,
            addr,
            json,
            token,
        } => verify(config.as_deref(), addr.as_deref(), &token).map(|principal| {
            if json {
                print::json(&principal)
            } else {
                print::principal_text(&principal)
            }
        }),
    };
    match result {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(CliError::Config(errors)) => {
            eprint!("gatehouse: {errors}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Signs locally, or mints through the server at `addr` with the server token `auth` names.
fn issue(
    addr: Option<String>,
    auth: ServerAuth,
    args: IssueArgs,
) -> Result<(String, Option<i64>), CliError> {
    let Some(addr) = addr else {
        return issue_token(auth.config.as_deref(), args);
    };
    if args.server {
        return Err(CliError::Usage(
            "IssueToken mints user tokens only; sign a server token locally (without --addr)"
                .to_owned(),
        ));
    }
    let user_id = args
        .user_id
        .ok_or_else(|| CliError::Usage("--user is required".to_owned()))?;
    let runtime = runtime().ok_or_else(|| CliError::Usage("no async runtime".to_owned()))?;
    runtime.block_on(remote::issue(remote::RemoteIssue {
        addr,
        auth,
        user_id,
        ttl_seconds: args.ttl_seconds.unwrap_or(0),
        roles: args.roles,
        groups: args.groups,
        claims: args.claims,
    }))
}

/// Verifies locally, or with the server at `addr`.
fn verify(
    config: Option<&std::path::Path>,
    addr: Option<&str>,
    token: &str,
) -> Result<serde_json::Value, CliError> {
    let Some(addr) = addr else {
        return verify_token(config, token);
    };
    let runtime = runtime().ok_or_else(|| CliError::Usage("no async runtime".to_owned()))?;
    runtime.block_on(remote::verify(addr, token))
}

fn check_server(args: CheckArgs) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    verdict(runtime.block_on(check(args)))
}
