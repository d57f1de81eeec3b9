//! nbexec as a library: run Jupyter notebooks headlessly on a real kernel, with
//! parameters injected, from a Rust program.
//!
//! The engines live in their own crates (`nbexec-format`, `nbexec-params`,
//! `nbexec-kernel`, `nbexec-runner`); this facade ties them together behind a
//! builder, and is what the `nbexec` command itself is built on.

use std::path::Path;

pub use nbexec_format::{Cell, Notebook};

mod batch;
mod error;
pub mod jobs;
mod params;
mod run;
pub mod signals;

pub use batch::{BatchItemResult, BatchSummary, parse_batch_lines};
pub use error::Error;
pub use nbexec_runner::{CancelReason, CellError, CellStatus, Outcome, RunEvent, RunResult};
pub use params::ParamSources;
pub use run::{JobSpec, Output, Prepared, Run};

/// Reads a notebook file (`-`: standard input); errors name the file.
pub fn read_notebook(path: &Path) -> Result<Notebook, Error> {
    let bytes = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf).map_err(|source| {
            Error::Read {
                path: path.to_owned(),
                source,
            }
        })?;
        buf
    } else {
        std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?
    };
    let outcome = nbexec_format::read_slice(&bytes).map_err(|source| Error::Format {
        path: path.to_owned(),
        source,
    })?;
    for w in &outcome.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    Ok(outcome.notebook)
}

/// What `nbexec fmt` did to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FmtStatus {
    Unchanged,
    Changed,
}

/// Rewrites a notebook in the canonical form (what Python nbformat writes); with
/// `check`, only says whether it would change.
pub fn format_file(path: &Path, check: bool) -> Result<FmtStatus, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let outcome = nbexec_format::read_slice(&bytes).map_err(|source| Error::Format {
        path: path.to_owned(),
        source,
    })?;
    let written = nbexec_format::write_to_vec(&outcome.notebook);
    if written == bytes {
        return Ok(FmtStatus::Unchanged);
    }
    if !check {
        nbexec_runner::save::write_atomic(path, &written).map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(FmtStatus::Changed)
}
