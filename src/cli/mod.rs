//! The `gatehouse` command line: its arguments, and running a command to an exit code. The binary only
//! parses the arguments and calls [`run`].

mod commands;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use commands::{
    CheckArgs, CheckOutcome, CliError, EvalArgs, IssueArgs, LogQuery, TestOutcome, check, eval,
    exercised, issue_token, parse_pair, principal_json, suggest, test, validate, verify_token,
};

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
    /// Issue or verify tokens locally with the configured API secret.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Ask a running server whether a token may perform an action on a resource.
    /// Exits 0 when allowed, 1 when denied, 2 on error.
    Check(CheckArgs),
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
    /// Print a new token.
    Issue {
        #[arg(long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: IssueArgs,
    },
    /// Verify a token and print its principal.
    Verify {
        #[arg(long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        token: String,
    },
}

/// Runs the command `args` name, printing its output; the exit code says how it went.
pub fn run(args: Args) -> ExitCode {
    match args.command {
        Command::Serve { config } => serve::serve(config),
        Command::Token { command } => token(command),
        Command::Check(args) => check_server(args),
        Command::Validate { dir } => report(validate(&dir).map(|text| (true, text))),
        Command::Test { dir } => report(test(&dir).map(|o| (o.passed, o.report))),
        Command::Eval { dir, args } => verdict(eval(&dir, args)),
        Command::Exercised { query } => report(exercised(query).map(|text| (true, text))),
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

fn token(command: TokenCommand) -> ExitCode {
    let result = match command {
        TokenCommand::Issue { config, args } => issue_token(config.as_deref(), args),
        TokenCommand::Verify { config, token } => verify_token(config.as_deref(), &token),
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

fn check_server(args: CheckArgs) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::from(2);
    };
    verdict(runtime.block_on(check(args)))
}
