//! Argument parsing and dispatch. Each subcommand is a screen of argument mapping,
//! then one library call.

mod fmt;
mod inspect;
mod items;
mod jobs;
mod kernels;
mod progress;
mod render;
mod run;
mod serve;
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
    propagate_version = true,
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
    /// Render an executed notebook as one self-contained HTML page
    Render(render::RenderArgs),
    /// Serve executeNotebook and the jobs resource over HTTP (ArcGIS Notebook Server's REST API)
    Serve(Box<serve::ServeArgs>),
    /// Add, list and remove the notebooks `nbexec serve` runs (the item store)
    Items(items::ItemsArgs),
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
        Err(mut e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            if e.kind() == clap::error::ErrorKind::InvalidSubcommand {
                suggest_run(&mut e, std::env::args_os().skip(1));
            }
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
        Command::Render(args) => render::main(args),
        Command::Serve(args) => serve::main(*args),
        Command::Items(args) => items::main(args),
    }
}

/// `nbexec in.ipynb out.ipynb` is papermill's spelling: there is no implicit
/// subcommand, but the error shows the command that runs it.
fn suggest_run(error: &mut clap::Error, args: impl Iterator<Item = std::ffi::OsString>) {
    let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    let Some(first) = args.first() else {
        return;
    };
    let looks_like_notebook =
        first == "-" || first.ends_with(".ipynb") || std::path::Path::new(first).is_file();
    if !looks_like_notebook {
        return;
    }
    let command: Vec<String> = std::iter::once("nbexec run".to_owned())
        .chain(args.iter().map(|a| shell_word(a)))
        .collect();
    error.insert(
        clap::error::ContextKind::Suggested,
        clap::error::ContextValue::StyledStrs(vec![
            format!("to run a notebook, use '{}'", command.join(" ")).into(),
        ]),
    );
}

/// `word` as a shell would need it typed.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./=:,+@%{}".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!(
            "\"{}\"",
            word.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('$', "\\$")
                .replace('`', "\\`")
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `--help` lists every option each subcommand accepts, each with a description,
    /// and so does every positional argument (`jobs`' own are described there).
    #[test]
    fn every_accepted_argument_is_listed_and_described() {
        let mut cli = super::Cli::command();
        cli.build();
        for sub in cli.get_subcommands() {
            let help = sub.clone().render_long_help().to_string();
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(!arg.is_hide_set(), "{} {id} is hidden", sub.get_name());
                if let Some(long) = arg.get_long() {
                    assert!(
                        help.contains(&format!("--{long}")),
                        "{} --{long} not in --help",
                        sub.get_name()
                    );
                }
                if sub.get_name() != "jobs" {
                    assert!(
                        arg.get_help().is_some(),
                        "{} {id} has no description",
                        sub.get_name()
                    );
                }
            }
        }
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(super::shell_word("in.ipynb"), "in.ipynb");
        assert_eq!(super::shell_word("out/{name}.ipynb"), "out/{name}.ipynb");
        assert_eq!(super::shell_word("a b"), "\"a b\"");
        assert_eq!(super::shell_word("$x\"`"), "\"\\$x\\\"\\`\"");
        assert_eq!(super::shell_word(""), "\"\"");
    }
}
