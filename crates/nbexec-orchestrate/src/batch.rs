//! Batch runs: one notebook over many parameter sets in one invocation, several at
//! once, with the next kernel warming while the current notebook runs, so kernel
//! start-up leaves the critical path.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nbexec_kernel::{KernelClient, KernelError, KernelSpec, LaunchOptions};
use nbexec_runner::{CancelReason, Outcome, OutputTarget, RunOptions};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::Error;
use crate::run::{JobSpec, Run};

/// One finished run of a batch.
#[derive(Debug, Clone)]
pub struct BatchItemResult {
    /// 1-based line of the parameters file.
    pub line: usize,
    pub output: Option<PathBuf>,
    pub job_id: Option<String>,
    /// Exit code of this run (spec §3.2).
    pub exit_code: i32,
    /// One line: what happened.
    pub summary: String,
    pub duration: Duration,
}

/// How a batch ended.
#[derive(Debug, Clone)]
pub struct BatchSummary {
    pub results: Vec<BatchItemResult>,
}

impl BatchSummary {
    /// 0 when every run succeeded; else the exit code of the first run (in line
    /// order) that did not.
    pub fn exit_code(&self) -> i32 {
        let mut sorted: Vec<&BatchItemResult> = self.results.iter().collect();
        sorted.sort_by_key(|r| r.line);
        sorted
            .iter()
            .map(|r| r.exit_code)
            .find(|c| *c != 0)
            .unwrap_or(0)
    }
}

struct Item {
    line: usize,
    notebook: nbexec_format::Notebook,
    options: RunOptions,
    parameters: Value,
}

struct Shared {
    queue: Mutex<VecDeque<Item>>,
    spec: KernelSpec,
    launch: LaunchOptions,
    input: PathBuf,
    job_dir: Option<PathBuf>,
    no_overwrite: bool,
}

/// Parses a JSON Lines parameters file: one JSON object per non-blank line.
pub fn parse_batch_lines(text: &str) -> Result<Vec<(usize, String)>, Error> {
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Object(_)) => lines.push((i + 1, trimmed.to_owned())),
            Ok(_) => {
                return Err(Error::Usage(format!(
                    "batch line {}: expected a JSON object of parameters",
                    i + 1
                )));
            }
            Err(e) => return Err(Error::Usage(format!("batch line {}: not JSON: {e}", i + 1))),
        }
    }
    if lines.is_empty() {
        return Err(Error::Usage("the batch file has no parameter sets".into()));
    }
    Ok(lines)
}

fn spawn_start(shared: &Shared) -> JoinHandle<Result<KernelClient, KernelError>> {
    let spec = shared.spec.clone();
    let launch = shared.launch.clone();
    tokio::spawn(async move { KernelClient::start(&spec, &launch).await })
}

impl Run {
    /// Runs the notebook once per parameter set (`lines`: line number and JSON
    /// object), `jobs` at a time. Each set merges as a `-j` source after this run's
    /// own `-b`/`-f`/`-y`/`-j` (so `-p`/`-r` given for the whole batch still win);
    /// the output path is a template filled from each set, `{_index}` being the
    /// line number. Every run is a job. `done` hears of each run as it finishes.
    pub async fn run_batch(
        &self,
        lines: Vec<(usize, String)>,
        jobs: usize,
        mut done: impl FnMut(&BatchItemResult),
        warn: impl Fn(&str),
    ) -> Result<BatchSummary, Error> {
        // A detached batch is one job (created by the detaching process) whose
        // results name the jobs of its runs.
        let parent = self.job.as_ref().filter(|j| j.exists);
        let prepared = self.prepare_batch(&lines, &warn);
        let (items, spec, launch) = match prepared {
            Ok(p) => p,
            Err(e) => {
                if let Some(job) = parent {
                    crate::jobs::record_early_failure(job, &self.input, &e);
                }
                return Err(e);
            }
        };
        let total = items.len();
        let parent_store = match parent {
            Some(job) => Some(crate::jobs::start_parent(job)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(items),
            spec,
            launch,
            input: self.input.clone(),
            job_dir: self.job.as_ref().map(|j| j.state_dir.clone()),
            no_overwrite: self.no_overwrite,
        });

        let (cancel_tx, cancel_rx) = watch::channel(None::<CancelReason>);
        let mut signal_tasks = if self.cancel_on_signals {
            crate::signals::forward_signals(cancel_tx.clone())
        } else {
            Vec::new()
        };
        if let (Some(store), Some(job)) = (&parent_store, parent) {
            // `nbexec jobs cancel PARENT` cancels the whole batch.
            signal_tasks.push(crate::jobs::watch_cancel(
                store.path().to_owned(),
                job.id.clone(),
                cancel_tx.clone(),
            ));
        }
        let (result_tx, mut result_rx) = mpsc::unbounded_channel();
        let mut workers = Vec::new();
        for _ in 0..jobs.max(1) {
            let shared = Arc::clone(&shared);
            let cancel = cancel_rx.clone();
            let results = result_tx.clone();
            workers.push(tokio::spawn(worker(shared, cancel, results)));
        }
        drop(result_tx);
        let mut results = Vec::new();
        while let Some(result) = result_rx.recv().await {
            done(&result);
            results.push(result);
        }
        for w in workers {
            let _ = w.await;
        }
        for t in signal_tasks {
            t.abort();
        }
        results.sort_by_key(|r| r.line);
        let summary = BatchSummary { results };
        if let (Some(store), Some(job)) = (&parent_store, parent) {
            let cancelled = cancel_rx.borrow().is_some();
            crate::jobs::finish_parent(store, &job.id, &summary, total, cancelled);
        }
        Ok(summary)
    }

    /// Prepares every line (a bad line fails the batch before any kernel starts)
    /// and resolves the kernel.
    fn prepare_batch(
        &self,
        lines: &[(usize, String)],
        warn: &impl Fn(&str),
    ) -> Result<(VecDeque<Item>, KernelSpec, LaunchOptions), Error> {
        let base = crate::read_notebook(&self.input)?;
        let mut items = VecDeque::new();
        let mut outputs: Vec<(PathBuf, usize)> = Vec::new();
        for (line, json) in lines {
            let mut sources = self.params.clone();
            sources.json.push(json.clone());
            sources.path_vars.push(("_index".into(), line.to_string()));
            let (nb, output_path, warnings, recorded) =
                self.prepare_from(base.clone(), &sources)
                    .map_err(|e| Error::Usage(format!("batch line {line}: {e}")))?;
            for w in &warnings {
                warn(&format!("batch line {line}: {w}"));
            }
            if let Some(path) = &output_path {
                if let Some((_, other)) = outputs.iter().find(|(p, _)| p == path) {
                    return Err(Error::Usage(format!(
                        "batch lines {other} and {line} both write {}: put {{name}} parameters or {{_index}} in the output path",
                        path.display()
                    )));
                }
                outputs.push((path.clone(), *line));
            }
            let options = self.run_options(output_path, &recorded);
            if let OutputTarget::File(path) = &options.output {
                crate::storage::check_output(path, self.no_overwrite)?;
            }
            items.push_back(Item {
                line: *line,
                notebook: nb,
                options,
                parameters: recorded.parameters,
            });
        }
        let first = items
            .front()
            .ok_or_else(|| Error::Usage("the batch file has no parameter sets".into()))?;
        let spec = if first.options.gateway.is_some() {
            // The gateway knows its kernels; nothing is looked up or launched here.
            KernelSpec {
                name: nbexec_runner::choose_kernel_name(
                    &first.notebook,
                    first.options.kernel_name.as_deref(),
                ),
                display_name: String::new(),
                language: String::new(),
                argv: Vec::new(),
                env: Default::default(),
                interrupt_mode: Default::default(),
                resource_dir: PathBuf::new(),
                metadata: Value::Null,
            }
        } else {
            nbexec_runner::resolve_spec(&first.notebook, &first.options)?
        };
        let launch = nbexec_runner::launch_options(&first.options);
        Ok((items, spec, launch))
    }

    /// What [`Run::check`] is for a single run, for a batch: every line prepared,
    /// every output path checked, the kernel known. The plan's `inputs` name the
    /// batch; its runs record their own parameters.
    pub fn check_batch(
        &self,
        lines: &[(usize, String)],
        batch_file: &std::path::Path,
    ) -> Result<crate::jobs::DetachPlan, Error> {
        let warnings = std::cell::RefCell::new(Vec::new());
        let (items, _, _) =
            self.prepare_batch(lines, &|w: &str| warnings.borrow_mut().push(w.to_owned()))?;
        let first = items
            .front()
            .ok_or_else(|| Error::Usage("the batch file has no parameter sets".into()))?;
        let mut inputs = crate::jobs::inputs_for(&self.input, Value::Null, &first.options);
        inputs["batchFile"] = Value::from(batch_file.to_string_lossy().into_owned());
        inputs["batchRuns"] = Value::from(items.len());
        Ok(crate::jobs::DetachPlan {
            inputs,
            output: None,
            warnings: warnings.into_inner(),
        })
    }
}

async fn worker(
    shared: Arc<Shared>,
    cancel: watch::Receiver<Option<CancelReason>>,
    results: mpsc::UnboundedSender<BatchItemResult>,
) {
    let mut warming: Option<JoinHandle<Result<KernelClient, KernelError>>> = None;
    loop {
        let item = shared.queue.lock().ok().and_then(|mut q| q.pop_front());
        let Some(mut item) = item else { break };
        if cancel.borrow().is_some() {
            let reason = cancel.borrow().unwrap_or(CancelReason::Cancel);
            let outcome = Outcome::Cancelled { cell: None, reason };
            let _ = results.send(BatchItemResult {
                line: item.line,
                output: None,
                job_id: None,
                exit_code: outcome.exit_code(),
                summary: "not started: the batch was cancelled".into(),
                duration: Duration::ZERO,
            });
            continue;
        }
        let remote = item.options.gateway.is_some();
        let current = if remote {
            None
        } else {
            let current = warming.take().unwrap_or_else(|| spawn_start(&shared));
            // Warm the next kernel now, while this notebook runs.
            let more = shared.queue.lock().map(|q| !q.is_empty()).unwrap_or(false);
            if more {
                warming = Some(spawn_start(&shared));
            }
            Some(current)
        };
        let started = Instant::now();
        let job = shared.job_dir.as_ref().map(|dir| JobSpec {
            state_dir: dir.clone(),
            id: crate::jobs::new_job_id(),
            exists: false,
        });
        let store = match &job {
            Some(job) => {
                crate::jobs::start(job, &shared.input, item.parameters.clone(), &item.options).ok()
            }
            None => None,
        };
        if let Some(job) = &job {
            item.options
                .extra_metadata
                .insert("job_id".into(), Value::from(job.id.clone()));
        }
        let output = match &item.options.output {
            OutputTarget::File(p) => Some(p.clone()),
            _ => None,
        };
        let upload = crate::storage::stage(&mut item.options, shared.no_overwrite);
        let result = match (&upload, item.options.gateway.clone()) {
            (Err(_), _) => Err(nbexec_runner::RunError::Output {
                path: output.clone().unwrap_or_default(),
                source: std::io::Error::other("cannot stage the output locally"),
            }),
            (Ok(_), None) => {
                let current = current.unwrap_or_else(|| spawn_start(&shared));
                let kernel = async move {
                    match current.await {
                        Ok(result) => result,
                        Err(e) => Err(KernelError::Protocol(format!(
                            "kernel start task failed: {e}"
                        ))),
                    }
                };
                nbexec_runner::run_with_kernel(
                    item.notebook,
                    &item.options,
                    &shared.spec.name,
                    kernel,
                    &mut |_| {},
                    cancel.clone(),
                )
                .await
            }
            (Ok(_), Some(cfg)) => {
                // Through a gateway: one remote kernel per run, started when its
                // turn comes (a kernel slot is not held while another run works).
                let start = nbexec_runner::start_remote(
                    cfg,
                    shared.spec.name.clone(),
                    &item.options,
                    |note| eprintln!("warning: {note}"),
                );
                nbexec_runner::run_with_gateway(
                    item.notebook,
                    &item.options,
                    &shared.spec.name,
                    start,
                    &mut |_| {},
                    cancel.clone(),
                )
                .await
            }
        };
        let result = match upload {
            Ok(upload) => crate::storage::finish(upload, result).await,
            Err(e) => Err(e),
        };
        if let (Some(store), Some(job)) = (&store, &job) {
            crate::jobs::finish(store, &job.id, &result, &item.options.redact);
        }
        let (exit_code, summary) = match &result {
            Ok(done) => (done.outcome.exit_code(), done.outcome.summary()),
            Err(e) => (e.exit_code(), e.to_string()),
        };
        let _ = results.send(BatchItemResult {
            line: item.line,
            output,
            job_id: job.map(|j| j.id),
            exit_code,
            summary,
            duration: started.elapsed(),
        });
    }
    if let Some(handle) = warming {
        // A kernel warmed for nothing: dropping the client shuts it down.
        handle.abort();
        if let Ok(Ok(client)) = handle.await {
            let _ = client.shutdown(Duration::from_millis(200)).await;
        }
    }
}
