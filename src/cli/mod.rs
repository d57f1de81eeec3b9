//! Argument parsing and dispatch. Each subcommand is a screen of argument mapping,
//! then one library call.

mod fmt;
mod inspect;
mod jobs;
mod kernels;
mod progress;
mod run;
mod validate;

use clap::{Parser, Subcommand};

/// Exit codes (spec §3.2).
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

#[derive(Parser)]
#[command(
    name = "nbexec",
    version,
    about = "Run Jupyter notebooks headlessly on a real kernel, with parameters",
    long_about = "Run Jupyter notebooks headlessly on a real kernel, with parameters injected, \
                  and write back the executed notebook. A drop-in for `papermill`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Execute a notebook (papermill's command line)
    Run(Box<run::RunArgs>),
    /// Show the parameters a notebook takes (papermill --help-notebook)
    Inspect(inspect::InspectArgs),
    /// Rewrite notebooks in the canonical form Python nbformat writes
    Fmt(fmt::FmtArgs),
    /// Check notebooks against the nbformat v4 schema
    Validate(validate::ValidateArgs),
    /// List the kernels nbexec can find, and where
    Kernels(kernels::KernelsArgs),
    /// List, show, cancel, wait for and prune jobs (the ArcGIS jobs resource)
    Jobs(jobs::JobsArgs),
}

/// Prints `error: …` (one line) to stderr.
pub fn error_line(message: impl std::fmt::Display) {
    let text = message.to_string();
    let first = text.lines().next().unwrap_or("");
    eprintln!("error: {first}");
    let rest: Vec<&str> = text.lines().skip(1).collect();
    if !rest.is_empty() {
        eprintln!("{}", rest.join("\n"));
    }
}

pub fn warning_line(message: impl std::fmt::Display) {
    eprintln!("warning: {message}");
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Run(args) => run::main(*args),
        Command::Inspect(args) => inspect::main(args),
        Command::Fmt(args) => fmt::main(args),
        Command::Validate(args) => validate::main(args),
        Command::Kernels(args) => kernels::main(args),
        Command::Jobs(args) => jobs::main(args),
    }
}
