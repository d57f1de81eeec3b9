//! Jobs: the queue, the worker pool, the warm kernels, live events, restart and
//! drain.
//!
//! A job is a registry record (kind `server`, SUBMITTED while it waits) plus a
//! directory `<state>/serve/<jobId>/` holding the request (`request.json`), the
//! item's notebook as it was when the job was accepted (`input.ipynb`) and the
//! executed notebook (`output.ipynb`, injected cell kept: it is the record). The
//! queue itself is in memory; the registry makes it survive a dead server: the next
//! server re-queues what never started.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nbexec_orchestrate::{JobSpec, KernelStart, Output, ParamSources, Run, RunEvent};
use nbexec_runner::jobs::{JobStatus, JobStore};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, broadcast, watch};

use crate::api::ApiError;
use crate::items::ItemError;
use crate::{AppState, Config};

/// What executeNotebook asked for, kept with the job (re-queued jobs read it back).
#[derive(Debug, Clone)]
pub(crate) struct JobRequest {
    pub item_id: String,
    /// The `notebookParameters` object.
    pub parameters: Map<String, Value>,
    pub update_item: bool,
    pub save_injected: bool,
    pub timeout_minutes: Option<f64>,
    pub kernel: Option<String>,
    pub username: String,
    /// The item's revision when the job was accepted.
    pub base_revision: i64,
    /// The scheduled task and run this job is for (`""` when none).
    pub task_id: String,
    pub run_id: String,
    /// Where the final job JSON is POSTed (`notifyUrl`, or the task's).
    pub notify_url: Option<String>,
}

impl JobRequest {
    fn to_json(&self) -> Value {
        json!({
            "itemId": self.item_id,
            "notebookParameters": self.parameters,
            "updatePortalItem": self.update_item,
            "saveInjectedParameters": self.save_injected,
            "executionTimeoutInMinutes": self.timeout_minutes,
            "kernelName": self.kernel,
            "username": self.username,
            "baseRevision": self.base_revision,
            "taskId": self.task_id,
            "runId": self.run_id,
            "notifyUrl": self.notify_url,
        })
    }

    pub(crate) fn from_json(v: &Value) -> Option<JobRequest> {
        Some(JobRequest {
            item_id: v.get("itemId")?.as_str()?.to_owned(),
            parameters: v.get("notebookParameters")?.as_object()?.clone(),
            update_item: v.get("updatePortalItem")?.as_bool()?,
            save_injected: v.get("saveInjectedParameters")?.as_bool()?,
            timeout_minutes: v.get("executionTimeoutInMinutes").and_then(Value::as_f64),
            kernel: v
                .get("kernelName")
                .and_then(Value::as_str)
                .map(str::to_owned),
            username: v
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            base_revision: v.get("baseRevision").and_then(Value::as_i64).unwrap_or(0),
            task_id: v
                .get("taskId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            run_id: v
                .get("runId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            notify_url: v
                .get("notifyUrl")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// The ArcGIS `inputs` recorded for the job (the parameters are recorded by
    /// the run as it typed them).
    fn inputs_overlay(&self) -> Value {
        json!({
            "itemId": self.item_id,
            "updatePortalItem": self.update_item,
            "saveInjectedParameters": self.save_injected,
            "executionTimeoutInMinutes": self.timeout_minutes,
            "kernelName": self.kernel,
            "runId": self.run_id,
            "taskId": self.task_id,
        })
    }

    fn inputs(&self) -> Value {
        let mut v = self.inputs_overlay();
        v["notebookParameters"] = Value::Object(self.parameters.clone());
        v
    }
}

/// One event of a job, as sent on its SSE stream.
#[derive(Debug, Clone)]
pub(crate) struct LiveEvent {
    pub name: &'static str,
    pub data: Value,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<String>,
    running: Vec<String>,
    accepting: bool,
}

/// The server's jobs in flight.
pub(crate) struct Queue {
    state: Mutex<State>,
    wake: Notify,
    live: Mutex<HashMap<String, broadcast::Sender<LiveEvent>>>,
    warm: Mutex<HashMap<String, KernelStart>>,
    /// Serialises replacements of items' notebooks.
    item_write: tokio::sync::Mutex<()>,
    /// Becomes true when the server shuts down.
    pub shutdown: watch::Sender<bool>,
    config: Config,
    /// Jobs run to their end so far.
    finished: std::sync::atomic::AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Is process `pid` running (not gone, not a zombie)?
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// The directory of job `id`.
pub(crate) fn job_dir(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("serve").join(id)
}

/// The executed notebook of job `id`.
pub(crate) fn output_path(state_dir: &Path, id: &str) -> PathBuf {
    job_dir(state_dir, id).join("output.ipynb")
}

fn registry(dir: &Path) -> Result<JobStore, ApiError> {
    JobStore::open(dir).map_err(ApiError::internal)
}

/// The run of a job.
fn build_run(config: &Config, id: &str, req: &JobRequest) -> Run {
    let dir = job_dir(&config.state_dir, id);
    let sources = ParamSources {
        json: vec![Value::Object(req.parameters.clone()).to_string()],
        ..ParamSources::default()
    };
    Run::new(dir.join("input.ipynb"))
        .output(Output::File(dir.join("output.ipynb")))
        .parameters(sources)
        .kernel(req.kernel.clone())
        .total_timeout(
            req.timeout_minutes
                .filter(|m| *m > 0.0 && m.is_finite())
                .map(|m| Duration::from_secs_f64((m * 60.0).min(1e9))),
        )
        .gateway(config.gateway.clone())
        .job(Some(JobSpec {
            state_dir: config.state_dir.clone(),
            id: id.to_owned(),
            exists: true,
        }))
        .job_inputs(Some(req.inputs_overlay()))
        .defer_job_finish(true)
        .shutdown_kernel_in_background(true)
}

/// 503 in the error shape.
fn unavailable(detail: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        503,
        "Unable to complete operation.",
        vec![detail.to_owned()],
    )
}

impl Queue {
    pub(crate) fn new(config: Config) -> Queue {
        Queue {
            state: Mutex::new(State {
                accepting: true,
                ..State::default()
            }),
            wake: Notify::new(),
            live: Mutex::new(HashMap::new()),
            warm: Mutex::new(HashMap::new()),
            item_write: tokio::sync::Mutex::new(()),
            shutdown: watch::channel(false).0,
            config,
            finished: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn sender(&self, id: &str) -> broadcast::Sender<LiveEvent> {
        lock(&self.live)
            .entry(id.to_owned())
            .or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    }

    /// The live events of job `id` from now on, if it is in flight here.
    pub(crate) fn subscribe(&self, id: &str) -> Option<broadcast::Receiver<LiveEvent>> {
        lock(&self.live).get(id).map(|tx| tx.subscribe())
    }

    /// The channel of job `id`'s events, if anybody follows them now.
    fn followed(&self, id: &str) -> Option<broadcast::Sender<LiveEvent>> {
        lock(&self.live)
            .get(id)
            .filter(|tx| tx.receiver_count() > 0)
            .cloned()
    }

    fn publish(&self, id: &str, name: &'static str, data: Value) {
        if let Some(tx) = lock(&self.live).get(id) {
            let _ = tx.send(LiveEvent { name, data });
        }
    }

    fn status(&self, id: &str, status: JobStatus) {
        self.publish(
            id,
            "status",
            json!({"jobId": id, "status": status.as_str()}),
        );
    }

    /// Checks the request (the notebook reads, the parameters type, the kernel is
    /// known), records the job SUBMITTED and queues it. Nothing is recorded when
    /// it is refused.
    pub(crate) fn submit(&self, req: JobRequest) -> Result<String, ApiError> {
        let config = &self.config;
        if !lock(&self.state).accepting {
            return Err(unavailable("the server is shutting down"));
        }
        let items = crate::ItemStore::open(&config.items_dir).map_err(ApiError::internal)?;
        let nb_path = items.notebook_path(&req.item_id).map_err(item_error)?;
        let bytes = std::fs::read(&nb_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => item_error(ItemError::NotFound(req.item_id.clone())),
            _ => ApiError::internal(e),
        })?;
        let id = nbexec_runner::jobs::new_job_id();
        let dir = job_dir(&config.state_dir, &id);
        nbexec_runner::jobs::create_private_dir(&config.state_dir.join("serve"))
            .map_err(ApiError::internal)?;
        let cleanup = |e: ApiError| {
            let _ = std::fs::remove_dir_all(&dir);
            e
        };
        nbexec_runner::jobs::create_private_dir(&dir).map_err(ApiError::internal)?;
        std::fs::write(dir.join("input.ipynb"), &bytes)
            .and_then(|()| {
                std::fs::write(
                    dir.join("request.json"),
                    req.to_json().to_string().as_bytes(),
                )
            })
            .map_err(|e| cleanup(ApiError::internal(e)))?;
        let run = build_run(config, &id, &req);
        if let Err(e) = run.check() {
            return Err(cleanup(run_error(&e)));
        }
        let store = registry(&config.state_dir).map_err(&cleanup)?;
        let mut st = lock(&self.state);
        if !st.accepting {
            return Err(cleanup(unavailable("the server is shutting down")));
        }
        // Idle workers take a job at once; beyond them, `max_queue` may wait.
        let idle = config.workers.max(1).saturating_sub(st.running.len());
        if st.waiting.len() >= config.max_queue + idle {
            return Err(cleanup(unavailable(&format!(
                "the queue is full ({} jobs waiting); try again later",
                st.waiting.len()
            ))));
        }
        store
            .create_server_job(&id, &req.inputs(), &req.username)
            .map_err(|e| cleanup(ApiError::internal(e)))?;
        self.sender(&id);
        st.waiting.push_back(id.clone());
        drop(st);
        self.wake.notify_one();
        Ok(id)
    }

    /// Cancels job `id` if it waits here: CANCELLED, it never runs. Returns
    /// whether it did.
    pub(crate) fn cancel_waiting(&self, id: &str) -> bool {
        let mut st = lock(&self.state);
        let Some(pos) = st.waiting.iter().position(|w| w == id) else {
            return false;
        };
        st.waiting.remove(pos);
        drop(st);
        if let Ok(store) = JobStore::open(&self.config.state_dir) {
            let _ = store.finish_unstarted(id, JobStatus::Cancelled, "cancelled before it started");
        }
        self.status(id, JobStatus::Cancelled);
        lock(&self.live).remove(id);
        // A job that never ran is notified (and its task run settled) too.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (config, ended) = (self.config.clone(), id.to_owned());
            rt.spawn(async move { crate::tasks::job_ended(&config, &ended).await });
        }
        true
    }

    /// Jobs cancelled from elsewhere (`nbexec jobs cancel`) while they wait.
    pub(crate) fn scan_cancels(&self) {
        let Ok(store) = JobStore::open(&self.config.state_dir) else {
            return;
        };
        let waiting: Vec<String> = lock(&self.state).waiting.iter().cloned().collect();
        for id in waiting {
            if store.cancel_requested(&id).unwrap_or(false) {
                self.cancel_waiting(&id);
            }
        }
    }

    /// The next job to run, waiting for one; `None` once the server shuts down.
    async fn next(&self) -> Option<String> {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            let notified = self.wake.notified();
            {
                let mut st = lock(&self.state);
                if !st.accepting {
                    return None;
                }
                if let Some(id) = st.waiting.pop_front() {
                    st.running.push(id.clone());
                    return Some(id);
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// A kernel of `spec` started ahead of need (or now), with the next one for
    /// that kernelspec started at once.
    fn take_kernel(
        &self,
        spec: nbexec_kernel::KernelSpec,
        launch: nbexec_kernel::LaunchOptions,
    ) -> KernelStart {
        let start = |spec: nbexec_kernel::KernelSpec, launch: nbexec_kernel::LaunchOptions| {
            tokio::spawn(async move { nbexec_kernel::KernelClient::start(&spec, &launch).await })
        };
        let mut warm = lock(&self.warm);
        let current = match warm.remove(&spec.name) {
            // Started a while ago: use it only if it is still alive (an idle kernel
            // may have been killed meanwhile).
            Some(handle) if handle.is_finished() => {
                use futures_util::FutureExt;
                match handle.now_or_never() {
                    Some(Ok(Ok(client))) if client.pid().is_some_and(process_alive) => {
                        tokio::spawn(async move { Ok(client) })
                    }
                    Some(Ok(Ok(client))) => {
                        tokio::spawn(async move {
                            let _ = client.shutdown(Duration::from_millis(100)).await;
                        });
                        start(spec.clone(), launch.clone())
                    }
                    _ => start(spec.clone(), launch.clone()),
                }
            }
            Some(handle) => handle,
            None => start(spec.clone(), launch.clone()),
        };
        if !*self.shutdown.borrow() {
            warm.insert(spec.name.clone(), start(spec, launch));
        }
        current
    }

    /// Shuts the warm kernels down and waits for them.
    async fn drain_warm(&self) {
        let handles: Vec<KernelStart> = lock(&self.warm).drain().map(|(_, h)| h).collect();
        for handle in handles {
            if let Ok(Ok(Ok(client))) = tokio::time::timeout(Duration::from_secs(60), handle).await
            {
                let _ = client.shutdown(Duration::from_millis(500)).await;
            }
        }
    }

    /// Runs job `id` to its end.
    async fn run_job(self: &Arc<Self>, id: &str) {
        let config = &self.config;
        let Ok(store) = JobStore::open(&config.state_dir) else {
            return;
        };
        let dir = job_dir(&config.state_dir, id);
        let req = std::fs::read(dir.join("request.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| JobRequest::from_json(&v));
        let Some(req) = req else {
            let _ = store.finish(
                id,
                JobStatus::Failed,
                &["the job's request is gone from the state directory".into()],
                &json!({"exitCode": 2}),
                2,
            );
            self.status(id, JobStatus::Failed);
            return;
        };
        if store.cancel_requested(id).unwrap_or(false) {
            let _ = store.finish_unstarted(id, JobStatus::Cancelled, "cancelled before it started");
            self.status(id, JobStatus::Cancelled);
            return;
        }
        let run = build_run(config, id, &req);
        let warm = if config.gateway.is_none() {
            run.kernel_launch()
                .ok()
                .map(|(spec, launch)| (spec.name.clone(), self.take_kernel(spec, launch)))
        } else {
            None
        };
        self.status(id, JobStatus::Executing);
        let log = nbexec_runner::jobs::create_log_file(&config.state_dir, id)
            .ok()
            .map(|(_, f)| f);
        let mut log = log.map(std::io::BufWriter::new);
        let me = Arc::clone(self);
        let job_id = id.to_owned();
        let mut events = move |ev: &RunEvent| {
            use std::io::Write;
            // An event's JSON (an output's whole value, images and all) is built only
            // while somebody follows the job's events.
            let followed = me.followed(&job_id);
            let listening = followed.is_some();
            let (name, data, line) = match ev {
                RunEvent::KernelReady { kernel, cells } => (
                    "kernel",
                    listening.then(|| json!({"kernel": kernel, "cells": cells})),
                    Some(format!(
                        "[nbexec] kernel {kernel} ready, {cells} code cells\n"
                    )),
                ),
                RunEvent::CellStarted {
                    index,
                    number,
                    total,
                } => (
                    "cell",
                    listening.then(|| {
                        json!({"index": index, "number": number, "total": total, "status": "running"})
                    }),
                    Some(format!(
                        "[nbexec] cell {index} started ({number}/{total})\n"
                    )),
                ),
                RunEvent::Stream { index, name, text } => (
                    "output",
                    listening.then(|| json!({"index": index, "name": name, "text": text})),
                    Some((*text).to_owned()),
                ),
                RunEvent::Output { index, output } => (
                    "output",
                    listening.then(|| json!({"index": index, "output": output})),
                    None,
                ),
                RunEvent::CellFinished { index, status } => (
                    "cell",
                    listening.then(|| json!({"index": index, "status": status.as_str()})),
                    Some(format!("[nbexec] cell {index} {}\n", status.as_str())),
                ),
                RunEvent::Saved { .. } => ("saved", listening.then(|| json!({})), None),
                _ => return,
            };
            if let (Some(log), Some(line)) = (log.as_mut(), line) {
                let _ = log.write_all(line.as_bytes()).and_then(|()| log.flush());
            }
            if let (Some(tx), Some(data)) = (followed, data) {
                let _ = tx.send(LiveEvent { name, data });
            }
        };
        let warnings = Mutex::new(Vec::<String>::new());
        let result = run
            .run_with_warm(warm, &mut events, |w| lock(&warnings).push(w.to_owned()))
            .await;
        // What was said of the job before it ran (re-queued, say) stays.
        let mut notes = store
            .get(id)
            .ok()
            .flatten()
            .map(|j| j.messages)
            .unwrap_or_default();
        notes.extend(lock(&warnings).iter().cloned());
        if *self.shutdown.borrow()
            && let Ok(done) = &result
            && matches!(done.outcome, nbexec_runner::Outcome::Cancelled { .. })
        {
            notes.push("cancelled: the server shut down and its --shutdown-grace ran out".into());
        }
        let result = match result {
            Ok(done) => {
                if req.update_item {
                    notes.extend(self.update_item(id, &req, &done).await);
                }
                Ok(done)
            }
            Err(nbexec_orchestrate::Error::Run(e)) => Err(e),
            Err(other) => {
                // Failed before it started: the run recorded it already.
                let _ = other;
                self.finish_live(id, &store);
                return;
            }
        };
        nbexec_orchestrate::jobs::finish_with_notes(&store, id, &result, &[], &notes);
        self.finish_live(id, &store);
    }

    fn finish_live(&self, id: &str, store: &JobStore) {
        let status = store
            .get(id)
            .ok()
            .flatten()
            .map_or(JobStatus::Failed, |j| j.status);
        self.status(id, status);
        lock(&self.live).remove(id);
    }

    /// Writes the executed notebook back to the item (updatePortalItem); returns
    /// the job messages saying what happened.
    async fn update_item(
        &self,
        id: &str,
        req: &JobRequest,
        done: &nbexec_runner::RunResult,
    ) -> Vec<String> {
        use nbexec_runner::Outcome;
        if !matches!(done.outcome, Outcome::Completed | Outcome::CellFailed(_)) {
            return vec![format!(
                "item {} not updated: the run did not finish ({})",
                req.item_id,
                done.outcome.status_word()
            )];
        }
        let bytes = nbexec_runner::notebook_bytes(&done.notebook, !req.save_injected, None);
        let _guard = self.item_write.lock().await;
        let items = match crate::ItemStore::open(&self.config.items_dir) {
            Ok(s) => s,
            Err(e) => return vec![format!("item {} not updated: {e}", req.item_id)],
        };
        match items.replace_notebook(&req.item_id, &bytes) {
            Ok((before, after)) => {
                let mut notes = Vec::new();
                if before.revision != req.base_revision {
                    notes.push(format!(
                        "item {} had changed since this job started (revision {} replaced, this job ran revision {}); the later finisher wins",
                        req.item_id, before.revision, req.base_revision
                    ));
                }
                notes.push(format!(
                    "item {} updated to revision {} by job {id}",
                    req.item_id, after.revision
                ));
                notes
            }
            Err(e) => vec![format!("item {} not updated: {e}", req.item_id)],
        }
    }

    /// Settles what a dead server left: its running jobs FAILED (the registry
    /// does that when read), its queued ones taken over and queued again.
    pub(crate) fn recover(&self) -> Result<usize, crate::Error> {
        let store = JobStore::open(&self.config.state_dir)
            .map_err(|e| crate::Error::Jobs(e.to_string()))?;
        store
            .settle_orphans()
            .map_err(|e| crate::Error::Jobs(e.to_string()))?;
        let orphans = store
            .orphaned_server_queue()
            .map_err(|e| crate::Error::Jobs(e.to_string()))?;
        let mut st = lock(&self.state);
        for job in &orphans {
            let _ = store.set_owner(&job.id, std::process::id());
            let _ = store.add_message(
                &job.id,
                "re-queued: the server that accepted this job stopped before it ran",
            );
            self.sender(&job.id);
            st.waiting.push_back(job.id.clone());
        }
        Ok(orphans.len())
    }

    /// Removes the directories (and logs) of server jobs the registry no longer
    /// has (pruned after the retention period, or deleted), except jobs in flight.
    pub(crate) fn sweep(&self) {
        let Ok(store) = JobStore::open(&self.config.state_dir) else {
            return;
        };
        let dir = self.config.state_dir.join("serve");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let in_flight: Vec<String> = {
            let st = lock(&self.state);
            st.waiting
                .iter()
                .chain(st.running.iter())
                .cloned()
                .collect()
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if !id.starts_with('j') || in_flight.contains(&id) {
                continue;
            }
            // A submission writes its directory before its record: leave young ones.
            let young = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age < Duration::from_secs(600));
            if young {
                continue;
            }
            if matches!(store.get(&id), Ok(None)) {
                let _ = std::fs::remove_dir_all(entry.path());
                let _ = std::fs::remove_file(nbexec_runner::jobs::log_path(
                    &self.config.state_dir,
                    &id,
                ));
            }
        }
    }

    /// Stops taking jobs; queued ones stay queued in the registry for the next
    /// server.
    fn stop_accepting(&self) -> Vec<String> {
        let mut st = lock(&self.state);
        st.accepting = false;
        let left: Vec<String> = st.waiting.drain(..).collect();
        drop(st);
        self.shutdown.send_replace(true);
        self.wake.notify_waiters();
        left
    }

    /// The running jobs.
    fn running(&self) -> Vec<String> {
        lock(&self.state).running.clone()
    }

    fn done(&self, id: &str) {
        lock(&self.state).running.retain(|r| r != id);
    }
}

/// The item `id` if `who` may run it; otherwise the same 404 as an unknown item, so
/// an item of somebody else's is not revealed.
pub(crate) fn runnable_item(
    st: &AppState,
    who: &crate::auth::Principal,
    id: &str,
) -> Result<crate::Item, ApiError> {
    match st.items.get(id) {
        Ok(item) if who.may_run(&item) => Ok(item),
        Ok(_) => Err(item_error(ItemError::NotFound(id.to_owned()))),
        Err(e) => Err(item_error(e)),
    }
}

pub(crate) fn item_error(e: ItemError) -> ApiError {
    match e {
        ItemError::NotFound(_) => ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            404,
            "Item does not exist or is inaccessible.",
            Vec::new(),
        ),
        other => ApiError::internal(other),
    }
}

/// A run the checks refused: a 400 naming the problem.
fn run_error(e: &nbexec_orchestrate::Error) -> ApiError {
    let detail = e.to_string();
    let detail = match e {
        nbexec_orchestrate::Error::Params(_) => format!("notebookParameters: {detail}"),
        _ => detail,
    };
    ApiError::bad_request(vec![detail])
}

/// Starts the workers.
pub(crate) fn start_workers(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    (0..state.config.workers.max(1))
        .map(|_| {
            let q = Arc::clone(&state.queue);
            tokio::spawn(async move {
                while let Some(id) = q.next().await {
                    let job = Arc::clone(&q);
                    let id2 = id.clone();
                    // A panic in one run must not take the worker (or the queue's
                    // bookkeeping) with it.
                    let outcome = tokio::spawn(async move { job.run_job(&id2).await }).await;
                    if outcome.is_err()
                        && let Ok(store) = JobStore::open(&q.config.state_dir)
                    {
                        let _ = store.finish(
                            &id,
                            JobStatus::Failed,
                            &["internal error: the run stopped unexpectedly".into()],
                            &json!({"exitCode": 1}),
                            1,
                        );
                    }
                    // Once the job is recorded final: its notification (retried, so
                    // slow) and its task run, off the worker: the queue moves on.
                    let (config, ended) = (q.config.clone(), id.clone());
                    tokio::spawn(async move { crate::tasks::job_ended(&config, &ended).await });
                    q.done(&id);
                    // Now and then, the files of jobs the registry pruned go too.
                    if q.finished
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        % 50
                        == 49
                    {
                        let q = Arc::clone(&q);
                        let _ = tokio::task::spawn_blocking(move || q.sweep()).await;
                    }
                }
            })
        })
        .collect()
}

/// Graceful shutdown: stop taking jobs, let the running ones finish within the
/// grace period, cancel the rest (each saves its notebook), wait for the workers,
/// shut the warm kernels down.
pub(crate) async fn drain(state: &AppState, workers: Vec<tokio::task::JoinHandle<()>>) {
    let q = &state.queue;
    let left = q.stop_accepting();
    if let Ok(store) = JobStore::open(&q.config.state_dir) {
        for id in &left {
            let _ = store.add_message(
                id,
                "the server stopped before this job ran; the next nbexec serve on this state directory runs it",
            );
        }
    }
    let deadline = tokio::time::Instant::now() + q.config.shutdown_grace;
    while !q.running().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let running = q.running();
    if !running.is_empty()
        && let Ok(store) = JobStore::open(&q.config.state_dir)
    {
        for id in &running {
            let _ = store.request_cancel(id);
        }
    }
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(120), w).await;
    }
    q.drain_warm().await;
}
