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
    start_with(job, input, parameters, options, None)
}

/// [`start`], with `overlay`'s fields replacing those of the recorded `inputs` (a
/// server's job names its item by id, not by the path of its copy).
pub fn start_with(
    job: &JobSpec,
    input: &Path,
    parameters: Value,
    options: &RunOptions,
    overlay: Option<&Value>,
) -> Result<JobStore, Error> {
    let mut inputs = inputs_for(input, parameters, options);
    if let (Some(Value::Object(extra)), Value::Object(base)) = (overlay, &mut inputs) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    let store = open(&job.state_dir)?;
    // Automatic pruning: finished jobs are kept for the retention period (ArcGIS
    // keeps them 6 hours), configurable with NBEXEC_JOB_RETENTION (e.g. 1d, 30m).
    let _ = store.prune(retention());
    if job.exists {
        store
            .set_owner(&job.id, std::process::id())
            .and_then(|()| store.set_inputs(&job.id, &inputs))
            .map_err(|e| Error::Jobs(e.to_string()))?;
    } else {
        store
            .create(&job.id, &inputs)
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
        // Look at once (a cancel may have come while the job was SUBMITTED), then
        // every half second.
        let mut first = true;
        loop {
            if !first {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            first = false;
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

/// Replaces each secret in every string of `v` by `[REDACTED]`.
fn redact_json(v: &mut Value, secrets: &[String]) {
    match v {
        Value::String(s) => {
            for secret in secrets.iter().filter(|x| !x.is_empty()) {
                if s.contains(secret.as_str()) {
                    *s = s.replace(secret.as_str(), crate::params::REDACTED);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact_json(i, secrets)),
        Value::Object(map) => map.values_mut().for_each(|i| redact_json(i, secrets)),
        _ => {}
    }
}

/// Records how the run ended; `redact` are secret values that must not be recorded
/// (a cell that failed with a secret in its message, say).
pub fn finish(
    store: &JobStore,
    id: &str,
    result: &Result<RunResult, nbexec_runner::RunError>,
    redact: &[String],
) {
    finish_with_notes(store, id, result, redact, &[]);
}

/// [`finish`], with `notes` (what happened on the way: waits for a gateway's free
/// kernel slot, say) recorded before the outcome. A remote run's results name the
/// gateway and the kernel id on it.
pub fn finish_with_notes(
    store: &JobStore,
    id: &str,
    result: &Result<RunResult, nbexec_runner::RunError>,
    redact: &[String],
    notes: &[String],
) {
    let (status, mut messages, results, code) = match result {
        Ok(done) => {
            let mut results = json!({
                "outputNotebook": done.saved_to.as_ref().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()).to_string_lossy().into_owned()),
                "kernel": done.kernel,
                "exitCode": done.outcome.exit_code(),
            });
            if let Some(remote) = &done.remote {
                results["gateway"] = json!(remote.gateway);
                results["remoteKernelId"] = json!(remote.kernel_id);
            }
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
    messages.splice(0..0, notes.iter().cloned());
    let mut messages = Value::from(messages);
    let mut results = results;
    redact_json(&mut messages, redact);
    redact_json(&mut results, redact);
    let messages: Vec<String> = messages
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let _ = store.finish(id, status, &messages, &results, code);
}

/// Takes over the job of a detached batch and marks it EXECUTING.
pub fn start_parent(job: &JobSpec) -> Result<JobStore, Error> {
    let store = open(&job.state_dir)?;
    store
        .set_owner(&job.id, std::process::id())
        .and_then(|()| store.set_executing(&job.id))
        .map_err(|e| Error::Jobs(e.to_string()))?;
    Ok(store)
}

/// Ends the job of a detached batch: COMPLETED when every run succeeded, CANCELLED
/// when it was cancelled, else FAILED; its results list the runs' jobs.
pub fn finish_parent(
    store: &JobStore,
    id: &str,
    summary: &crate::BatchSummary,
    total: usize,
    cancelled: bool,
) {
    let ok = summary.results.iter().filter(|r| r.exit_code == 0).count();
    let code = summary.exit_code();
    let status = if code == 0 {
        JobStatus::Completed
    } else if cancelled {
        JobStatus::Cancelled
    } else {
        JobStatus::Failed
    };
    let runs: Vec<Value> = summary
        .results
        .iter()
        .map(|r| {
            json!({
                "line": r.line,
                "jobId": r.job_id,
                "exitCode": r.exit_code,
                "outputNotebook": r.output.as_ref().map(|p| p.to_string_lossy().into_owned()),
            })
        })
        .collect();
    let results = json!({"exitCode": code, "runs": runs});
    let message = format!("{ok} of {total} runs succeeded");
    let _ = store.finish(id, status, &[message], &results, code);
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

/// A run about to detach, checked in the foreground first.
#[derive(Debug, Clone)]
pub struct DetachPlan {
    /// The job's ArcGIS `inputs`: the item, the parameters (secrets redacted), the
    /// timeout.
    pub inputs: Value,
    /// Where the executed notebook will be written, the path template filled.
    pub output: Option<PathBuf>,
    /// Warnings of the preparation (unknown parameters, say).
    pub warnings: Vec<String>,
}

impl crate::Run {
    /// Everything that can reject a run without running it: the notebook reads,
    /// the parameters merge and convert (`--strict` too), the output path fills and
    /// its directory is writable, the kernel is known. `--detach` calls this before
    /// it detaches, so a run that can never start fails in the foreground.
    pub fn check(&self) -> Result<DetachPlan, Error> {
        let nb = crate::read_notebook(&self.input)?;
        let (nb, output_path, warnings, recorded) = self.prepare_from(nb, &self.params)?;
        if let Some(path) = &output_path {
            crate::storage::check_output(path, self.no_overwrite)?;
        }
        let options = self.run_options(output_path.clone(), &recorded);
        // A gateway's kernels are its own business: only local ones are looked up.
        if options.gateway.is_none() {
            nbexec_runner::resolve_spec(&nb, &options)?;
        }
        Ok(DetachPlan {
            inputs: inputs_for(&self.input, recorded.parameters, &options),
            output: output_path,
            warnings,
        })
    }
}

/// How to start a detached run.
#[derive(Debug)]
pub struct Detach<'a> {
    pub state_dir: &'a Path,
    /// The notebook (shown in the child's command line, for `ps`).
    pub input: &'a Path,
    /// The job's `inputs`.
    pub inputs: Value,
    /// What `jobUrl` points to: the output notebook, else the run's log.
    pub output: Option<PathBuf>,
    /// The run itself, handed to the child on its standard input (never in its
    /// command line or environment, which other users can read).
    pub spec: Vec<u8>,
    /// Environment variables the child must not inherit (secrets read from them).
    pub env_remove: Vec<String>,
}

/// Starts `nbexec run INPUT --job-id ID --detached-child` in its own session, its
/// console output kept in `<state dir>/logs/<job>.log`, records the job (owned by
/// the child from the start) and writes the run spec into the child's standard
/// input. Returns the executeNotebook response.
pub fn spawn_detached(detach: Detach<'_>) -> Result<Value, Error> {
    use std::io::Write;
    use std::os::unix::process::CommandExt;

    let store = open(detach.state_dir)?;
    let id = new_job_id();
    let (log_path, log) =
        nbexec_runner::jobs::create_log_file(detach.state_dir, &id).map_err(|source| {
            Error::Write {
                path: nbexec_runner::jobs::log_path(detach.state_dir, &id),
                source,
            }
        })?;
    let log2 = log.try_clone().map_err(|source| Error::Write {
        path: log_path.clone(),
        source,
    })?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Usage(format!("cannot find the nbexec executable: {e}")))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run")
        .arg(detach.input)
        .arg("--job-id")
        .arg(&id)
        .arg("--detached-child");
    for var in &detach.env_remove {
        cmd.env_remove(var);
    }
    cmd.stdin(std::process::Stdio::piped())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is async-signal-safe; the child leaves our session so a Ctrl-C
    // in this terminal does not reach the detached run.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            // A cancel sent before the child's handlers exist waits for them.
            crate::signals::block_for_exec();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Usage(format!("cannot start the detached run: {e}")))?;
    // The child waits for its spec; if anything below fails, it reads nothing and
    // ends without a trace.
    let mut stdin = child.stdin.take();
    store
        .create(&id, &detach.inputs)
        .and_then(|()| store.set_owner(&id, child.id()))
        .map_err(|e| Error::Jobs(e.to_string()))?;
    if let Some(mut pipe) = stdin.take() {
        pipe.write_all(&detach.spec)
            .map_err(|e| Error::Usage(format!("cannot hand the run to its process: {e}")))?;
    }
    let url = match detach.output {
        // A remote output is its own URL.
        Some(out) if crate::storage::is_url(&out) => out.to_string_lossy().into_owned(),
        Some(out) => nbexec_runner::jobs::file_url(&crate::storage::local_path(&out)),
        None => nbexec_runner::jobs::file_url(&log_path),
    };
    Ok(json!({"jobId": id, "jobUrl": url, "status": "success"}))
}

/// POSTs the final JSON of job `id` to `target` (see `nbexec_schedule::notify`) and
/// adds the outcome to the job's messages. A job not found (pruned, or never
/// recorded) is not notified.
pub async fn notify(state_dir: &Path, id: &str, target: &nbexec_schedule::notify::Target) {
    let body = match JobStore::open(state_dir).and_then(|s| s.get(id)) {
        Ok(Some(job)) => job.public_json().to_string(),
        _ => return,
    };
    let outcome = nbexec_schedule::notify::deliver(
        target,
        body.as_bytes(),
        nbexec_schedule::notify::Policy::default(),
    )
    .await;
    if let Ok(store) = JobStore::open(state_dir) {
        let _ = store.add_message(id, &outcome.message());
    }
}
