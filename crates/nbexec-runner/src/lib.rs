//! Runs a notebook through a kernel: resets it, executes its cells in order, records
//! outputs and papermill-compatible metadata, marks failures, and saves the result
//! atomically (at the end, on every failure path, and on a timer during long runs).
//!
//! This is the only crate that knows both notebooks and kernels. It knows nothing
//! about the terminal: progress and logs are [`RunEvent`]s that callers consume.

mod events;
mod execute;
pub mod jobs;
pub mod metadata;
mod outputs;
pub mod save;
mod session;
mod zmq;

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use nbexec_format::Notebook;
use nbexec_kernel::{KernelSpec, LaunchOptions, Transport};
use serde_json::{Map, Value};
use tokio::sync::watch;

pub use events::RunEvent;
pub use execute::{ExecConfig, RAISES_TAG, SKIP_TAG, execute_cells, is_executable};
pub use metadata::CellStatus;
pub use session::{KernelSession, SessionEvent};
pub use zmq::ZmqSession;

/// The tag papermill (and nbexec) put on the injected parameters cell.
pub const INJECTED_TAG: &str = "injected-parameters";

/// Why a run is being stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// `nbexec jobs cancel`, or an embedder's request.
    Cancel,
}

impl CancelReason {
    pub fn describe(self) -> &'static str {
        match self {
            CancelReason::Interrupt => "SIGINT",
            CancelReason::Terminate => "SIGTERM",
            CancelReason::Cancel => "cancel requested",
        }
    }
}

/// A cell's error, for people and programs.
#[derive(Debug, Clone, PartialEq)]
pub struct CellError {
    /// Index of the failing cell in the notebook as it was run (the input with
    /// its injected cell): the numbering every message uses.
    pub cell_index: usize,
    /// Index of the failing cell in the notebook as written, where two error
    /// banners come before it.
    pub output_index: usize,
    pub execution_count: Option<u64>,
    pub ename: String,
    pub evalue: String,
    pub traceback: Vec<String>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// Every cell ran.
    Completed,
    /// A cell called `sys.exit()` / `sys.exit(0)`: the run ends there, successfully.
    Exited { cell: usize },
    /// A cell raised and errors were not allowed.
    CellFailed(CellError),
    /// A cell, or the whole run, took too long.
    Timeout { cell: Option<usize>, detail: String },
    /// The kernel died (crash, OOM, `os._exit`).
    KernelDied { cell: Option<usize>, detail: String },
    /// Stopped from outside.
    Cancelled {
        cell: Option<usize>,
        reason: CancelReason,
    },
    /// The kernel could not be started at all (its program is missing, it refused
    /// the connection, …): an environment problem, like an unknown kernel.
    KernelUnavailable { detail: String },
}

impl Outcome {
    /// The exit code of the spec (§3.2).
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Completed | Outcome::Exited { .. } => 0,
            Outcome::CellFailed(_) => 1,
            Outcome::Timeout { .. } => 124,
            Outcome::KernelDied { .. } => 138,
            Outcome::Cancelled {
                reason: CancelReason::Terminate,
                ..
            } => 143,
            Outcome::Cancelled { .. } => 130,
            Outcome::KernelUnavailable { .. } => 2,
        }
    }

    pub fn is_success(&self) -> bool {
        self.exit_code() == 0
    }

    /// A short word for metadata and job records.
    pub fn status_word(&self) -> &'static str {
        match self {
            Outcome::Completed | Outcome::Exited { .. } => "completed",
            Outcome::CellFailed(_) => "failed",
            Outcome::Timeout { .. } => "timeout",
            Outcome::KernelDied { .. } => "kernel_died",
            Outcome::Cancelled { .. } => "cancelled",
            Outcome::KernelUnavailable { .. } => "kernel_unavailable",
        }
    }

    /// One line saying what happened, for stderr.
    pub fn summary(&self) -> String {
        match self {
            Outcome::Completed => "notebook completed".into(),
            Outcome::Exited { cell } => format!("notebook exited with sys.exit(0) at cell {cell}"),
            Outcome::CellFailed(e) => {
                let count = e
                    .execution_count
                    .map_or_else(|| "?".to_owned(), |c| c.to_string());
                format!(
                    "cell {} (In [{count}]) raised {}: {}",
                    e.cell_index,
                    e.ename,
                    first_line(&e.evalue)
                )
            }
            Outcome::Timeout { cell, detail } => format!("{}{}", at_cell(*cell), detail),
            Outcome::KernelDied { cell, detail } => {
                format!("{}kernel died: {detail}", at_cell(*cell))
            }
            Outcome::Cancelled { cell, reason } => {
                format!("{}run cancelled ({})", at_cell(*cell), reason.describe())
            }
            Outcome::KernelUnavailable { detail } => detail.clone(),
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn at_cell(cell: Option<usize>) -> String {
    cell.map_or_else(String::new, |c| format!("cell {c}: "))
}

/// Where the executed notebook goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    File(PathBuf),
    /// Written to standard output at the end.
    Stdout,
    /// Not written (an embedder that wants only the result).
    Discard,
}

/// Everything about a run except the notebook and its parameters.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Recorded as `metadata.papermill.input_path`.
    pub input_path: Option<String>,
    pub output: OutputTarget,
    /// `-k`: else the notebook's kernelspec, else its language's default.
    pub kernel_name: Option<String>,
    /// A kernelspec to use as is (overrides `kernel_name`).
    pub kernel_spec: Option<KernelSpec>,
    pub cwd: Option<PathBuf>,
    pub start_timeout: Duration,
    pub transport: Transport,
    pub exec: ExecConfig,
    /// Hide code inputs in the output (papermill `--report-mode`).
    pub report_mode: bool,
    /// Remove the injected parameters cell from what is saved (`--in-place` without
    /// `--save-injected-parameters`).
    pub strip_injected_on_save: bool,
    /// The source written into the injected cell when saving, in place of the one
    /// that ran (secret parameters redacted). `None`: save what ran.
    pub saved_injected_source: Option<String>,
    /// Extra facts to record under `metadata.nbexec` (the job id, say).
    pub extra_metadata: Map<String, Value>,
    /// How long the kernel gets to shut down gracefully before it is killed.
    pub shutdown_grace: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            input_path: None,
            output: OutputTarget::Discard,
            kernel_name: None,
            kernel_spec: None,
            cwd: None,
            start_timeout: Duration::from_secs(60),
            transport: Transport::Ipc,
            exec: ExecConfig::default(),
            report_mode: false,
            strip_injected_on_save: false,
            saved_injected_source: None,
            extra_metadata: Map::new(),
            shutdown_grace: Duration::from_millis(500),
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    pub notebook: Notebook,
    pub outcome: Outcome,
    /// The kernelspec name that ran it.
    pub kernel: String,
    /// Where the notebook was saved, if it was.
    pub saved_to: Option<PathBuf>,
}

/// Why a run could not even start, or its result could not be saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error(transparent)]
    Kernel(#[from] nbexec_kernel::KernelError),
    #[error("cannot write the output notebook {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot save the executed notebook to {path}: {source}; it was written to {fallback} instead"
    )]
    SavedToFallback {
        path: PathBuf,
        source: std::io::Error,
        fallback: PathBuf,
        outcome: Box<Outcome>,
    },
    #[error("cannot save the executed notebook to {path}: {source}")]
    Save {
        path: PathBuf,
        source: std::io::Error,
        outcome: Box<Outcome>,
    },
}

impl RunError {
    /// The exit code of the spec (§3.2).
    pub fn exit_code(&self) -> i32 {
        match self {
            // An unusable kernelspec is bad input, like a missing one.
            RunError::Kernel(
                nbexec_kernel::KernelError::NotFound { .. }
                | nbexec_kernel::KernelError::InvalidSpec { .. },
            ) => 2,
            RunError::Kernel(nbexec_kernel::KernelError::StartTimeout { .. }) => 124,
            RunError::Kernel(_) => 1,
            RunError::Output { .. } => 2,
            RunError::SavedToFallback { outcome, .. } | RunError::Save { outcome, .. } => {
                match outcome.exit_code() {
                    0 => 1,
                    code => code,
                }
            }
        }
    }
}

/// The kernelspec a notebook runs on: `-k`, else its metadata, else its language's
/// default (`python3` for Python and for notebooks that say nothing).
pub fn choose_kernel_name(nb: &Notebook, explicit: Option<&str>) -> String {
    if let Some(name) = explicit {
        return name.to_owned();
    }
    if let Some(name) = nb.kernelspec_name() {
        return name.to_owned();
    }
    match nb.language() {
        Some("R") | Some("r") => "ir".into(),
        Some(l) if l.eq_ignore_ascii_case("julia") => "julia".into(),
        _ => "python3".into(),
    }
}

/// Hides code inputs (papermill's report mode).
fn apply_report_mode(nb: &mut Notebook) {
    for cell in nb.cells_mut() {
        if cell.is_code() {
            let md = cell.metadata_mut();
            let jupyter = md
                .entry("jupyter")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(j) = jupyter {
                j.insert("source_hidden".into(), Value::Bool(true));
            }
        }
    }
}

/// The bytes to save: the notebook, less the injected cell and the recorded
/// parameter values when `strip_injected` (so secrets passed as parameters are not
/// persisted), or with the injected cell's source replaced by `injected_source`.
pub fn notebook_bytes(
    nb: &Notebook,
    strip_injected: bool,
    injected_source: Option<&str>,
) -> Vec<u8> {
    if strip_injected {
        let mut copy = nb.clone();
        copy.cells_mut().retain(|c| !c.has_tag(INJECTED_TAG));
        if let Some(Value::Object(pm)) = copy.metadata_mut().get_mut("papermill")
            && pm.contains_key("parameters")
        {
            pm.insert("parameters".into(), Value::Object(Map::new()));
        }
        return nbexec_format::write_to_vec(&copy);
    }
    if let Some(source) = injected_source {
        let mut copy = nb.clone();
        if let Some(cell) = copy
            .cells_mut()
            .iter_mut()
            .find(|c| c.has_tag(INJECTED_TAG))
        {
            cell.set_source(source);
        }
        return nbexec_format::write_to_vec(&copy);
    }
    nbexec_format::write_to_vec(nb)
}

/// Prepares a notebook for a run: banners of an earlier run removed, cells reset,
/// papermill metadata started. Used by `run` and by `--prepare-only`.
pub fn prepare(nb: &mut Notebook, opts: &RunOptions) {
    metadata::remove_error_markers(nb);
    metadata::reset_cells(nb);
    if opts.report_mode {
        apply_report_mode(nb);
    }
    let output = match &opts.output {
        OutputTarget::File(p) => Some(p.to_string_lossy().into_owned()),
        OutputTarget::Stdout => Some("-".to_owned()),
        OutputTarget::Discard => None,
    };
    metadata::notebook_started(
        nb,
        opts.input_path.as_deref(),
        output.as_deref(),
        Utc::now(),
    );
}

fn record_nbexec(
    nb: &mut Notebook,
    kernel: &str,
    pid: Option<u32>,
    outcome: &Outcome,
    extra: &Map<String, Value>,
) {
    let md = nb.metadata_mut();
    let mut ours = Map::new();
    ours.insert("version".into(), Value::from(env!("CARGO_PKG_VERSION")));
    ours.insert("kernel".into(), Value::from(kernel));
    if let Some(pid) = pid {
        ours.insert("kernel_pid".into(), Value::from(pid));
    }
    ours.insert("status".into(), Value::from(outcome.status_word()));
    ours.insert("exit_code".into(), Value::from(outcome.exit_code()));
    for (k, v) in extra {
        ours.insert(k.clone(), v.clone());
    }
    md.insert("nbexec".into(), Value::Object(ours));
}

/// Runs a prepared notebook (parameters already injected) on a kernel and saves it.
///
/// The notebook is written before the kernel is shut down, so a slow shutdown never
/// delays the result; the kernel is gone when this returns, whatever happened.
pub async fn run(
    nb: Notebook,
    opts: &RunOptions,
    events: &mut (dyn FnMut(&RunEvent) + Send),
    cancel: watch::Receiver<Option<CancelReason>>,
) -> Result<RunResult, RunError> {
    if let OutputTarget::File(path) = &opts.output {
        save::check_writable(path).map_err(|source| RunError::Output {
            path: path.clone(),
            source,
        })?;
    }
    let spec = resolve_spec(&nb, opts)?;
    let launch = launch_options(opts);
    let start = nbexec_kernel::KernelClient::start(&spec, &launch);
    run_with_kernel(nb, opts, &spec.name, start, events, cancel).await
}

/// The kernelspec a run uses: the given one, else found by name (see
/// [`choose_kernel_name`]).
pub fn resolve_spec(nb: &Notebook, opts: &RunOptions) -> Result<KernelSpec, RunError> {
    Ok(match &opts.kernel_spec {
        Some(spec) => spec.clone(),
        None => {
            nbexec_kernel::find_kernelspec(&choose_kernel_name(nb, opts.kernel_name.as_deref()))?
        }
    })
}

/// How the kernel of a run is launched.
pub fn launch_options(opts: &RunOptions) -> LaunchOptions {
    LaunchOptions {
        transport: opts.transport,
        cwd: opts.cwd.clone(),
        start_timeout: opts.start_timeout,
        ..LaunchOptions::default()
    }
}

/// Runs a prepared notebook on a kernel that `kernel` starts (or has started ahead
/// of need: batch runs keep the next kernel warming while the current one works).
pub async fn run_with_kernel(
    mut nb: Notebook,
    opts: &RunOptions,
    kernel_name: &str,
    kernel: impl std::future::Future<
        Output = Result<nbexec_kernel::KernelClient, nbexec_kernel::KernelError>,
    >,
    events: &mut (dyn FnMut(&RunEvent) + Send),
    mut cancel: watch::Receiver<Option<CancelReason>>,
) -> Result<RunResult, RunError> {
    prepare(&mut nb, opts);
    let run_started = Utc::now();
    let client = tokio::select! {
        started = kernel => match started {
            Ok(client) => client,
            Err(error) => {
                // The output notebook is written whatever happened, as papermill
                // writes it before the kernel starts.
                let detail = error.to_string();
                let outcome = match error {
                    nbexec_kernel::KernelError::StartTimeout { .. } => Outcome::Timeout { cell: None, detail },
                    nbexec_kernel::KernelError::ExitedDuringStart { .. } => Outcome::KernelDied { cell: None, detail },
                    _ => Outcome::KernelUnavailable { detail },
                };
                return finish(nb, opts, kernel_name, outcome, run_started, None).await;
            }
        },
        reason = wait_cancel(&mut cancel) => {
            let outcome = Outcome::Cancelled { cell: None, reason };
            return finish(nb, opts, kernel_name, outcome, run_started, None).await;
        }
    };
    trace("kernel ready");
    let mut session = ZmqSession::new(client);
    let total = nb.cells().iter().filter(|c| is_executable(c)).count();
    events(&RunEvent::KernelReady {
        kernel: kernel_name,
        cells: total,
    });

    let strip = opts.strip_injected_on_save;
    let injected_source = opts.saved_injected_source.clone();
    let output = opts.output.clone();
    let mut autosave = |nb: &Notebook| {
        if let OutputTarget::File(path) = &output {
            // A failed checkpoint is not fatal: the final save reports errors.
            let _ =
                save::write_atomic(path, &notebook_bytes(nb, strip, injected_source.as_deref()));
        }
    };
    let outcome = execute_cells(
        &mut nb,
        &mut session,
        &opts.exec,
        &mut cancel,
        events,
        &mut autosave,
    )
    .await;
    trace("cells done");
    finish(nb, opts, kernel_name, outcome, run_started, Some(session)).await
}

/// With `NBEXEC_TIMING` set, prints how far into the process each phase of a run
/// ends, to stderr: a tool for finding where time goes, not a log.
pub fn trace(phase: &str) {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ENABLED.get_or_init(|| std::env::var_os("NBEXEC_TIMING").is_some()) {
        let since = process_age();
        eprintln!(
            "[nbexec timing] {:>8.1} ms  {phase}",
            since.as_secs_f64() * 1e3
        );
    }
}

/// Time since this process started: its age when first asked (from /proc, to the
/// kernel's clock tick), plus the time since.
fn process_age() -> Duration {
    static BASE: std::sync::OnceLock<(std::time::Instant, f64)> = std::sync::OnceLock::new();
    let (first, age) =
        BASE.get_or_init(|| (std::time::Instant::now(), age_from_proc().unwrap_or(0.0)));
    Duration::from_secs_f64(age.max(0.0)) + first.elapsed()
}

fn age_from_proc() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks: f64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(uptime - ticks / hz)
}

async fn wait_cancel(cancel: &mut watch::Receiver<Option<CancelReason>>) -> CancelReason {
    loop {
        if let Some(reason) = *cancel.borrow_and_update() {
            return reason;
        }
        if cancel.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Marks the end of the run in the notebook, saves it, then stops the kernel.
async fn finish(
    mut nb: Notebook,
    opts: &RunOptions,
    kernel: &str,
    mut outcome: Outcome,
    started: chrono::DateTime<Utc>,
    session: Option<ZmqSession>,
) -> Result<RunResult, RunError> {
    let failed = !outcome.is_success();
    let failing_cell = match &outcome {
        Outcome::CellFailed(e) => Some((e.cell_index, e.execution_count)),
        Outcome::Timeout { cell: Some(c), .. }
        | Outcome::KernelDied { cell: Some(c), .. }
        | Outcome::Cancelled { cell: Some(c), .. } => Some((*c, nb.cells()[*c].execution_count())),
        _ => None,
    };
    if let Some((cell, count)) = failing_cell {
        let new_index = metadata::insert_error_banners(&mut nb, cell, count);
        if let Outcome::CellFailed(e) = &mut outcome {
            e.output_index = new_index;
        }
    }
    metadata::notebook_finished(&mut nb, started, Utc::now(), failed);
    let pid = session.as_ref().and_then(|s| s.client.pid());
    record_nbexec(&mut nb, kernel, pid, &outcome, &opts.extra_metadata);

    // Let the kernel begin its graceful exit while the notebook is written.
    let mut session = session;
    if let Some(session) = session.as_mut() {
        session.client.request_shutdown().await;
    }
    let bytes = notebook_bytes(
        &nb,
        opts.strip_injected_on_save,
        opts.saved_injected_source.as_deref(),
    );
    let saved = match &opts.output {
        OutputTarget::File(path) => match save::write_atomic(path, &bytes) {
            Ok(()) => Ok(Some(path.clone())),
            Err(source) => Err((path.clone(), source)),
        },
        OutputTarget::Stdout => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes).and_then(|()| out.flush());
            Ok(None)
        }
        OutputTarget::Discard => Ok(None),
    };
    trace("notebook saved");
    if let Some(session) = session {
        let _ = session.into_client().shutdown(opts.shutdown_grace).await;
        trace("kernel shut down");
    }
    match saved {
        Ok(saved_to) => Ok(RunResult {
            notebook: nb,
            outcome,
            kernel: kernel.to_owned(),
            saved_to,
        }),
        Err((path, source)) => {
            // Keep the work: write it where it can be written, and say where.
            let fallback = std::env::temp_dir().join(format!(
                "nbexec-{}-{}",
                std::process::id(),
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "output.ipynb".into())
            ));
            match save::write_atomic(&fallback, &bytes) {
                Ok(()) => Err(RunError::SavedToFallback {
                    path,
                    source,
                    fallback,
                    outcome: Box::new(outcome),
                }),
                Err(_) => Err(RunError::Save {
                    path,
                    source,
                    outcome: Box::new(outcome),
                }),
            }
        }
    }
}
