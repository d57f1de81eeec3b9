//! A notebook run as a job: the layer that the `nbexec` command and `nbexec serve`
//! share, so that a run from either is the same run.
//!
//! The engines live in their own crates (`nbexec-format`, `nbexec-params`,
//! `nbexec-kernel`, `nbexec-runner`); this crate ties them together behind the
//! [`Run`] builder, reads parameters from their sources, runs batches, records runs
//! in the job registry, turns signals and `jobs cancel` into cancellation, and
//! detaches runs into the background. It prints nothing on stdout.

use std::path::Path;

pub use nbexec_format::{Cell, Notebook};

mod batch;
mod error;
pub mod jobs;
mod params;
mod prepare;
mod run;
pub mod signals;
mod storage;

pub use batch::{BatchItemResult, BatchSummary, parse_batch_lines};
pub use error::Error;
pub use nbexec_runner::{CancelReason, CellError, CellStatus, Outcome, RunEvent, RunResult};
pub use params::ParamSources;
pub use run::{JobSpec, KernelStart, Output, Prepared, Run, discard_kernel};
pub use storage::{check_report, is_url, local_path, read_bytes, read_text, write_bytes};

/// Reads a notebook file (`-`: standard input); errors name the file. A notebook the
/// nbformat v4 schema rejects is still returned, after a warning on stderr naming its
/// first problem (as papermill's "Notebook JSON is invalid").
pub fn read_notebook(path: &Path) -> Result<Notebook, Error> {
    let nb = read_notebook_unchecked(path)?;
    nbexec_runner::trace("notebook parsed");
    if let Some(warning) = invalid_warning(path, &nb) {
        eprintln!("warning: {warning}");
    }
    nbexec_runner::trace("notebook validated");
    Ok(nb)
}

/// The warning an invalid notebook gets on read, `None` if it is valid.
fn invalid_warning(path: &Path, nb: &Notebook) -> Option<String> {
    let issues = nbexec_format::validate(nb);
    let first = issues.first()?;
    let name = if path.as_os_str() == "-" {
        "standard input".into()
    } else {
        path.display().to_string()
    };
    let mut text = format!("{name}: notebook JSON is invalid: {first}");
    if issues.len() > 1 {
        text.push_str(&format!(
            " (and {} more: `nbexec validate` lists them)",
            issues.len() - 1
        ));
    }
    Some(text)
}

/// [`read_notebook`] without the schema check, for a caller that validates itself.
pub fn read_notebook_unchecked(path: &Path) -> Result<Notebook, Error> {
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
        storage::read_bytes(path)?
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
    /// An nbformat 3 notebook rewritten as 4.5 (only with `upgrade`).
    Upgraded,
}

/// Rewrites a notebook in the canonical form (what Python nbformat writes); with
/// `check`, only says whether it would change. A notebook of an older major version
/// (nbformat 3) is rewritten as 4.5 only with `upgrade`; without it, it is an error.
pub fn format_file(path: &Path, check: bool, upgrade: bool) -> Result<FmtStatus, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let outcome = nbexec_format::read_slice(&bytes).map_err(|source| Error::Format {
        path: path.to_owned(),
        source,
    })?;
    if let Some((major, minor)) = outcome.upgraded_from
        && !upgrade
    {
        return Err(Error::Usage(format!(
            "{}: notebook is nbformat {major}.{minor}; fmt does not change a notebook's major \
             version unless asked (--upgrade rewrites it as 4.5)",
            path.display()
        )));
    }
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
    Ok(if outcome.upgraded_from.is_some() {
        FmtStatus::Upgraded
    } else {
        FmtStatus::Changed
    })
}
