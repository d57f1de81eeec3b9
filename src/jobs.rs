//! Recording runs as jobs (the ArcGIS jobs resource, locally).

use std::path::{Path, PathBuf};
use std::time::Duration;

use nbexec_runner::jobs::{JobStatus, JobStore, inputs_json};
use nbexec_runner::{CancelReason, Outcome, OutputTarget, RunOptions, RunResult};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Error;
use crate::run::JobSpec;

pub use nbexec_runner::jobs::{Job, default_state_dir, new_job_id};

fn open(dir: &Path) -> Result<JobStore, Error> {
    JobStore::open(dir).map_err(|e| Error::Jobs(e.to_string()))
}

/// The ArcGIS `inputs` of this run.
pub fn inputs_for(input: &Path, parameters: Value, options: &RunOptions) -> Value {
    let update_item = matches!(&options.output, OutputTarget::File(p) if nbexec_runner::save::same_file(p, input));
    let minutes = options.exec.total_timeout.map(|t| t.as_secs().div_ceil(60));
    inputs_json(
        &input.to_string_lossy(),
        update_item,
        !options.strip_injected_on_save && update_item,
        minutes,
        parameters,
    )
}

/// Creates the job (or takes over one a detached parent created) and marks it
/// EXECUTING.
pub fn start(
    job: &JobSpec,
    input: &Path,
    parameters: Value,
    options: &RunOptions,
) -> Result<JobStore, Error> {
    let store = open(&job.state_dir)?;
    // Automatic pruning: finished jobs are kept for the retention period (ArcGIS
    // keeps them 6 hours), configurable with NBEXEC_JOB_RETENTION (e.g. 1d, 30m).
    let _ = store.prune(retention());
    if job.exists {
        store
            .set_owner(&job.id, std::process::id())
            .and_then(|()| store.set_inputs(&job.id, &inputs_for(input, parameters, options)))
            .map_err(|e| Error::Jobs(e.to_string()))?;
    } else {
        store
            .create(&job.id, &inputs_for(input, parameters, options))
            .map_err(|e| Error::Jobs(e.to_string()))?;
    }
    store
        .set_executing(&job.id)
        .map_err(|e| Error::Jobs(e.to_string()))?;
    Ok(store)
}

/// How long finished jobs are kept: `NBEXEC_JOB_RETENTION`, else 6 hours.
pub fn retention() -> Duration {
    std::env::var("NBEXEC_JOB_RETENTION")
        .ok()
        .and_then(|s| parse_age(&s))
        .unwrap_or(Duration::from_secs(6 * 3600))
}

/// `6h`, `30m`, `2d`, `90s`, or plain seconds.
pub fn parse_age(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = num.trim().parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Polls the registry for a cancel request (the fallback to SIGUSR1, which may not
/// reach us across users or pid namespaces).
pub fn watch_cancel(
    db_path: PathBuf,
    id: String,
    tx: watch::Sender<Option<CancelReason>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Some(dir) = db_path.parent().map(Path::to_owned) else {
            return;
        };
        let Ok(store) = JobStore::open(&dir) else {
            return;
        };
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if store.cancel_requested(&id).unwrap_or(false) {
                tx.send_if_modified(|c| {
                    if c.is_none() {
                        *c = Some(CancelReason::Cancel);
                        true
                    } else {
                        false
                    }
                });
                return;
            }
        }
    })
}

fn status_of(outcome: &Outcome) -> JobStatus {
    match outcome {
        Outcome::Completed | Outcome::Exited { .. } => JobStatus::Completed,
        Outcome::Cancelled { .. } => JobStatus::Cancelled,
        _ => JobStatus::Failed,
    }
}

/// Records how the run ended.
pub fn finish(store: &JobStore, id: &str, result: &Result<RunResult, nbexec_runner::RunError>) {
    let (status, messages, results, code) = match result {
        Ok(done) => {
            let mut results = json!({
                "outputNotebook": done.saved_to.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()).to_string_lossy().into_owned()),
                "kernel": done.kernel,
                "exitCode": done.outcome.exit_code(),
            });
            if let Outcome::CellFailed(e) = &done.outcome {
                results["failedCell"] = json!({
                    "cellIndex": e.cell_index,
                    "outputCellIndex": e.output_index,
                    "executionCount": e.execution_count,
                    "ename": e.ename,
                    "evalue": e.evalue,
                });
            }
            (
                status_of(&done.outcome),
                vec![done.outcome.summary()],
                results,
                done.outcome.exit_code(),
            )
        }
        Err(e) => (
            JobStatus::Failed,
            vec![e.to_string()],
            json!({"exitCode": e.exit_code()}),
            e.exit_code(),
        ),
    };
    let _ = store.finish(id, status, &messages, &results, code);
}

/// A run that failed before it could start (bad notebook, bad parameter) still ends
/// its job, so nothing stays SUBMITTED.
pub fn record_early_failure(job: &JobSpec, input: &Path, e: &Error) {
    let Ok(store) = open(&job.state_dir) else {
        return;
    };
    if !job.exists {
        let inputs = inputs_json(&input.to_string_lossy(), false, false, None, Value::Null);
        let _ = store.create(&job.id, &inputs);
    }
    let _ = store.finish(
        &job.id,
        JobStatus::Failed,
        &[e.to_string()],
        &json!({"exitCode": e.exit_code()}),
        e.exit_code(),
    );
}

/// Opens the registry in `dir` (for `nbexec jobs`).
pub fn registry(dir: &Path) -> Result<JobStore, Error> {
    open(dir)
}

/// Re-runs the current command line in the background as job `j…` (without
/// `--detach`, with `--job-id`), detached from the terminal, its console output kept
/// in `<state dir>/logs/<job>.log`. Returns the executeNotebook response.
pub fn spawn_detached(
    state_dir: &Path,
    input: &Path,
    output: Option<&str>,
) -> Result<Value, Error> {
    use std::os::unix::process::CommandExt;

    let store = open(state_dir)?;
    let id = new_job_id();
    let inputs = inputs_json(
        &input.to_string_lossy(),
        output.is_none(),
        false,
        None,
        Value::Null,
    );
    store
        .create(&id, &inputs)
        .map_err(|e| Error::Jobs(e.to_string()))?;
    let (log_path, log) =
        nbexec_runner::jobs::create_log_file(state_dir, &id).map_err(|source| Error::Write {
            path: nbexec_runner::jobs::log_path(state_dir, &id),
            source,
        })?;
    let log2 = log.try_clone().map_err(|source| Error::Write {
        path: log_path.clone(),
        source,
    })?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Usage(format!("cannot find the nbexec executable: {e}")))?;
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--detach")
        .collect();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(args)
        .arg("--job-id")
        .arg(&id)
        .arg("--no-progress-bar");
    cmd.stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is async-signal-safe; the child leaves our session so a Ctrl-C
    // in this terminal does not reach the detached run.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::Usage(format!("cannot start the detached run: {e}")))?;
    store
        .set_owner(&id, child.id())
        .map_err(|e| Error::Jobs(e.to_string()))?;
    let url = match output {
        Some("-") | None => nbexec_runner::jobs::file_url(&log_path),
        Some(out) => nbexec_runner::jobs::file_url(Path::new(out)),
    };
    Ok(json!({"jobId": id, "jobUrl": url, "status": "success"}))
}
