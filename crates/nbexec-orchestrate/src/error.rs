use std::path::PathBuf;

/// Everything that can go wrong before, around or after a run. `Display` is one line
/// a person can act on; [`Error::exit_code`] is the spec's exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Format {
        path: PathBuf,
        source: nbexec_format::FormatError,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Run(#[from] nbexec_runner::RunError),
    #[error("{0}")]
    Params(String),
    #[error("{0}")]
    Jobs(String),
    /// A URL that cannot be read or written (missing, denied, unsupported).
    #[error(transparent)]
    Storage(#[from] nbexec_storage::Error),
}

impl Error {
    /// The exit code of the spec (§3.2).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Run(e) => e.exit_code(),
            Error::Write { .. } => 1,
            _ => 2,
        }
    }
}
