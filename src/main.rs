//! The `nbexec` command: parses arguments, calls the library, turns errors into one
//! line on stderr and the exit codes of the spec.

mod cli;

use std::process::ExitCode;

/// Runs before `main` (and before the standard library's start-up), as soon as the
/// dynamic loader is done: from then on a SIGINT, SIGTERM or SIGUSR1 (a job cancel)
/// in the first milliseconds cancels the run instead of killing the process by
/// default action and leaving a kernel or files behind.
extern "C" fn catch_signals_first() {
    nbexec::signals::install_early();
}

#[used]
#[unsafe(link_section = ".init_array")]
static CATCH_SIGNALS_FIRST: extern "C" fn() = catch_signals_first;

fn main() -> ExitCode {
    // Again, in case the platform skipped `.init_array` (harmless if not).
    nbexec::signals::install_early();
    if std::env::args_os()
        .nth(1)
        .is_none_or(|c| c != "run" && c != "serve")
    {
        // Only `run` cancels cleanly (and `serve` drains); the other commands keep
        // the default actions.
        nbexec::signals::restore_defaults();
    }
    let code = cli::main();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
