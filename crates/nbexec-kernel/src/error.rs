//! The crate's one error type.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong while finding, starting or talking to a kernel.
///
/// `Display` is one line a person can act on: it names the kernel, the command
/// line or the path involved. Longer diagnostics (a kernel's captured output)
/// are in the fields.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// No kernelspec of that name exists in any searched directory.
    #[error(
        "no kernel named '{name}' (available: {}; searched: {})",
        list_or_none(available),
        list_paths(searched)
    )]
    NotFound {
        /// The name asked for.
        name: String,
        /// The names of the kernelspecs that do exist.
        available: Vec<String>,
        /// The directories that were searched, in order.
        searched: Vec<PathBuf>,
    },

    /// A `kernel.json` exists but cannot be used.
    #[error("invalid kernelspec {}: {reason}", path.display())]
    InvalidSpec {
        /// The `kernel.json` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The kernel's command could not be run at all.
    #[error("cannot start kernel '{kernel}': running '{}' failed: {source} (argv: {})",
        argv.first().map(String::as_str).unwrap_or(""), shell_words(argv))]
    Spawn {
        /// The kernelspec name.
        kernel: String,
        /// The command line that was tried.
        argv: Vec<String>,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The kernel process ended before it answered `kernel_info_request`.
    #[error(
        "kernel '{kernel}' exited during start-up ({status}){} (argv: {})",
        last_line_suffix(stderr_tail),
        shell_words(argv)
    )]
    ExitedDuringStart {
        /// The kernelspec name.
        kernel: String,
        /// The command line that was run.
        argv: Vec<String>,
        /// How the process ended.
        status: ExitStatus,
        /// The last bytes the kernel wrote to stdout/stderr.
        stderr_tail: String,
    },

    /// The kernel did not become ready within the start timeout.
    #[error(
        "kernel '{kernel}' did not become ready within {after:?}{} (argv: {})",
        last_line_suffix(stderr_tail),
        shell_words(argv)
    )]
    StartTimeout {
        /// The kernelspec name.
        kernel: String,
        /// The command line that was run.
        argv: Vec<String>,
        /// The timeout that expired.
        after: Duration,
        /// The last bytes the kernel wrote to stdout/stderr.
        stderr_tail: String,
    },

    /// The connection file asks for CURVE encryption, which zmq.rs does not implement.
    #[error(
        "connection file {} requires CurveZMQ encryption, which nbexec does not support; \
         start the kernel without curve keys (or use IPC transport)",
        path.display()
    )]
    CurveRequired {
        /// The connection file.
        path: PathBuf,
    },

    /// A file or directory the crate manages (runtime dir, connection file) failed.
    #[error("{action} {}: {source}", path.display())]
    File {
        /// What was being done, e.g. "cannot write connection file".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Any other I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// The kernel or the connection broke the messaging protocol.
    #[error("kernel protocol error: {0}")]
    Protocol(String),

    /// The kernel is no longer running, so the request cannot be delivered.
    #[error("the kernel is dead")]
    Dead,
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere".to_owned();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `argv` as one line a person could paste into a shell.
pub(crate) fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:{}@%+,".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `: <last non-empty line>` of a kernel's output, so a one-line message still
/// shows the Python traceback's final line, or nothing when there was no output.
fn last_line_suffix(tail: &str) -> String {
    match tail.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => format!(": {line}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_kernel_the_alternatives_and_the_places_searched() {
        let e = KernelError::NotFound {
            name: "julia".into(),
            available: vec!["python3".into(), "ir".into()],
            searched: vec![PathBuf::from("/a/kernels"), PathBuf::from("/b/kernels")],
        };
        assert_eq!(
            e.to_string(),
            "no kernel named 'julia' (available: python3, ir; searched: /a/kernels, /b/kernels)"
        );
    }

    #[test]
    fn start_errors_show_the_last_line_of_output_and_a_pasteable_argv() {
        let e = KernelError::StartTimeout {
            kernel: "k".into(),
            argv: vec![
                "python3".into(),
                "-c".into(),
                "import sys; sys.exit(3)".into(),
            ],
            after: Duration::from_secs(2),
            stderr_tail: "Traceback\n  boom\nValueError: x\n\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "kernel 'k' did not become ready within 2s: ValueError: x \
             (argv: python3 -c 'import sys; sys.exit(3)')"
        );
    }
}
