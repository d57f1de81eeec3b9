//! The `nbexec` command: parses arguments, calls the library, turns errors into one
//! line on stderr and the exit codes of the spec.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = cli::main();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
