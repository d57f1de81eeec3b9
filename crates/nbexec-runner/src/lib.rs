//! Runs a notebook through a kernel: resets it, executes its cells in order, records
//! outputs and papermill-compatible metadata, marks failures, and saves the result
//! atomically (at the end, on every failure path, and on a timer during long runs).
//!
//! This is the only crate that knows both notebooks and kernels. It knows nothing
//! about the terminal: progress and logs are [`RunEvent`]s that callers consume.

mod events;
mod execute;
mod gateway;
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
pub use gateway::GatewaySession;
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
    /// A [`Preflight`] check failed on the kernel before any cell ran: the kernel
    /// lacks what the run needs (a package, say).
    PreflightFailed { detail: String },
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
            Outcome::KernelUnavailable { .. } | Outcome::PreflightFailed { .. } => 2,
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
            Outcome::PreflightFailed { .. } => "preflight_failed",
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
            Outcome::KernelUnavailable { detail } | Outcome::PreflightFailed { detail } => {
                detail.clone()
            }
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
    /// Recorded as `metadata.papermill.output_path` in place of `output`'s path,
    /// when the file written is a local stage of somewhere else (a URL it is
    /// uploaded to).
    pub output_path: Option<String>,
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
    /// Shut the kernel down in a task of its own once the notebook is saved, and
    /// return the result without waiting for it (a server, whose runtime outlives the
    /// run, answers sooner; the CLI waits, so no kernel outlives the process).
    pub shutdown_in_background: bool,
    /// Secret values: replaced by `[REDACTED]` wherever they land in the saved
    /// outputs (printed, displayed, in an error or its traceback).
    pub redact: Vec<String>,
    /// Checks run silently on the kernel, in order, before the first cell.
    pub preflight: Vec<Preflight>,
    /// Run the kernel behind this Jupyter gateway instead of locally.
    pub gateway: Option<nbexec_gateway::GatewayConfig>,
    /// Told after each checkpoint written to the output file (a remote output is
    /// uploaded then, never per cell).
    pub checkpoint_saved: Option<std::sync::Arc<tokio::sync::Notify>>,
}

/// Code run silently on the kernel before the notebook's cells (no execution count,
/// no history, no output recorded). If it raises, no cell runs and the run ends with
/// [`Outcome::PreflightFailed`] carrying `failure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    pub code: String,
    /// The one-line message when the code raises.
    pub failure: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            input_path: None,
            output: OutputTarget::Discard,
            output_path: None,
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
            shutdown_in_background: false,
            redact: Vec::new(),
            preflight: Vec::new(),
            gateway: None,
            checkpoint_saved: None,
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
    /// The gateway and the kernel's id on it, for a remote run.
    pub remote: Option<RemoteKernelInfo>,
}

/// Which remote kernel ran a notebook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteKernelInfo {
    pub gateway: String,
    pub kernel_id: String,
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

/// Replaces every occurrence of each secret in the cells' outputs (stream text,
/// rich data, error values and tracebacks) by `[REDACTED]`. Keys, output types and
/// stream names are left alone, so the notebook stays valid whatever the secret;
/// strings are whole here (not yet split into lines), so a secret spanning lines is
/// found too. Empty secrets are ignored.
pub fn redact_outputs(nb: &mut Notebook, secrets: &[String]) {
    fn redact(v: &mut Value, secrets: &[&str]) {
        match v {
            Value::String(s) => {
                for secret in secrets {
                    if s.contains(secret) {
                        *s = s.replace(secret, "[REDACTED]");
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| redact(i, secrets)),
            Value::Object(map) => map.values_mut().for_each(|i| redact(i, secrets)),
            _ => {}
        }
    }
    let secrets: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if secrets.is_empty() {
        return;
    }
    for cell in nb.cells_mut() {
        if cell.outputs().is_empty() {
            continue;
        }
        for output in cell.outputs_mut() {
            if let Value::Object(map) = output {
                for (key, value) in map.iter_mut() {
                    if !matches!(key.as_str(), "output_type" | "name" | "execution_count") {
                        redact(value, &secrets);
                    }
                }
            }
        }
    }
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
        _ if opts.output_path.is_some() => opts.output_path.clone(),
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
    if let Some(cfg) = &opts.gateway {
        let name = choose_kernel_name(&nb, opts.kernel_name.as_deref());
        let start = start_remote(cfg.clone(), name.clone(), opts, |_| {});
        return run_with_gateway(nb, opts, &name, start, events, cancel).await;
    }
    let spec = resolve_spec(&nb, opts)?;
    let launch = launch_options(opts);
    let start = nbexec_kernel::KernelClient::start(&spec, &launch);
    run_with_kernel(nb, opts, &spec.name, start, events, cancel).await
}

/// Starts `kernel_name` behind the gateway `cfg`, with the environment a Jupyter
/// `GatewayClient` sends (`KERNEL_*` variables, `KERNEL_WORKING_DIR` from `cwd`,
/// `KERNEL_LAUNCH_TIMEOUT` from the start timeout). `note` hears about waits for a
/// free kernel slot.
pub fn start_remote(
    cfg: nbexec_gateway::GatewayConfig,
    kernel_name: String,
    opts: &RunOptions,
    mut note: impl FnMut(&str) + Send + 'static,
) -> impl std::future::Future<
    Output = Result<nbexec_gateway::RemoteKernel, nbexec_gateway::GatewayError>,
> + Send
+ 'static {
    // A gateway may answer POST /api/kernels only once the kernel is launched
    // (Enterprise Gateway on a cluster): as Jupyter's GatewayClient does, requests may
    // take the launch timeout plus 2 s.
    let mut cfg = cfg;
    cfg.request_timeout = cfg
        .request_timeout
        .max(opts.start_timeout + Duration::from_secs(2));
    let mut env = cfg.kernel_env(std::env::vars());
    if let Some(cwd) = &opts.cwd {
        let dir = std::path::absolute(cwd).unwrap_or_else(|_| cwd.clone());
        env.insert(
            "KERNEL_WORKING_DIR".into(),
            Value::from(dir.to_string_lossy().into_owned()),
        );
    }
    let start = nbexec_gateway::StartOptions {
        kernel_name,
        env,
        start_timeout: opts.start_timeout,
    };
    async move {
        let gateway = nbexec_gateway::Gateway::new(cfg)?;
        nbexec_gateway::RemoteKernel::start(&gateway, &start, &mut note).await
    }
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
    nb: Notebook,
    opts: &RunOptions,
    kernel_name: &str,
    kernel: impl std::future::Future<
        Output = Result<nbexec_kernel::KernelClient, nbexec_kernel::KernelError>,
    >,
    events: &mut (dyn FnMut(&RunEvent) + Send),
    cancel: watch::Receiver<Option<CancelReason>>,
) -> Result<RunResult, RunError> {
    let kernel = async move {
        match kernel.await {
            Ok(client) => Ok(AnySession::Zmq(ZmqSession::new(client))),
            Err(error) => {
                let detail = error.to_string();
                Err(match error {
                    nbexec_kernel::KernelError::StartTimeout { .. } => {
                        Outcome::Timeout { cell: None, detail }
                    }
                    nbexec_kernel::KernelError::ExitedDuringStart { .. } => {
                        Outcome::KernelDied { cell: None, detail }
                    }
                    _ => Outcome::KernelUnavailable { detail },
                })
            }
        }
    };
    run_session(nb, opts, kernel_name, kernel, events, cancel).await
}

/// Runs a prepared notebook on a kernel behind a gateway that `kernel` starts (see
/// [`start_remote`]). Semantics are those of [`run_with_kernel`].
pub async fn run_with_gateway(
    nb: Notebook,
    opts: &RunOptions,
    kernel_name: &str,
    kernel: impl std::future::Future<
        Output = Result<nbexec_gateway::RemoteKernel, nbexec_gateway::GatewayError>,
    >,
    events: &mut (dyn FnMut(&RunEvent) + Send),
    cancel: watch::Receiver<Option<CancelReason>>,
) -> Result<RunResult, RunError> {
    let kernel = async move {
        match kernel.await {
            Ok(remote) => Ok(AnySession::Gateway(GatewaySession::new(remote))),
            Err(error) => {
                let detail = error.to_string();
                Err(match error {
                    nbexec_gateway::GatewayError::StartTimeout { .. } => {
                        Outcome::Timeout { cell: None, detail }
                    }
                    nbexec_gateway::GatewayError::Protocol { .. } => {
                        Outcome::KernelDied { cell: None, detail }
                    }
                    _ => Outcome::KernelUnavailable { detail },
                })
            }
        }
    };
    run_session(nb, opts, kernel_name, kernel, events, cancel).await
}

/// The kernel of a run, over whichever transport. (One per run, held in place:
/// the size difference of its variants costs nothing.)
#[allow(clippy::large_enum_variant)]
enum AnySession {
    Zmq(ZmqSession),
    Gateway(GatewaySession),
}

impl KernelSession for AnySession {
    async fn execute(&mut self, code: &str, stop_on_error: bool) -> Result<String, String> {
        match self {
            AnySession::Zmq(s) => s.execute(code, stop_on_error).await,
            AnySession::Gateway(s) => s.execute(code, stop_on_error).await,
        }
    }

    async fn recv(&mut self) -> SessionEvent {
        match self {
            AnySession::Zmq(s) => s.recv().await,
            AnySession::Gateway(s) => s.recv().await,
        }
    }

    async fn interrupt(&mut self) {
        match self {
            AnySession::Zmq(s) => s.interrupt().await,
            AnySession::Gateway(s) => s.interrupt().await,
        }
    }
}

impl AnySession {
    /// Sends code to run silently (no execution count, no history, no output
    /// recorded): the checks before the first cell.
    async fn execute_silent(&mut self, code: &str) -> Result<String, String> {
        match self {
            AnySession::Zmq(s) => {
                let opts = nbexec_kernel::ExecuteOptions {
                    silent: true,
                    store_history: false,
                    stop_on_error: false,
                };
                s.client
                    .execute(code, opts)
                    .await
                    .map_err(|e| e.to_string())
            }
            AnySession::Gateway(s) => s.execute_silent(code),
        }
    }

    /// The kernel's `kernel_info_reply` content.
    fn kernel_info(&self) -> &Value {
        match self {
            AnySession::Zmq(s) => s.client.kernel_info(),
            AnySession::Gateway(s) => s.kernel.kernel_info(),
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            AnySession::Zmq(s) => s.client.pid(),
            AnySession::Gateway(_) => None,
        }
    }

    fn remote(&self) -> Option<RemoteKernelInfo> {
        match self {
            AnySession::Zmq(_) => None,
            AnySession::Gateway(s) => Some(RemoteKernelInfo {
                gateway: s.kernel.gateway().url().to_owned(),
                kernel_id: s.kernel.id().to_owned(),
            }),
        }
    }

    /// Lets a local kernel begin its graceful exit while the notebook is written.
    async fn request_shutdown(&mut self) {
        if let AnySession::Zmq(s) = self {
            s.client.request_shutdown().await;
        }
    }

    /// Stops the kernel: a local one gracefully then killed, a remote one deleted
    /// (best effort, capped at 10 s).
    async fn shutdown(self, grace: Duration) {
        match self {
            AnySession::Zmq(s) => {
                let _ = s.into_client().shutdown(grace).await;
            }
            AnySession::Gateway(s) => {
                let _ = s.into_kernel().shutdown().await;
            }
        }
    }
}

async fn run_session(
    mut nb: Notebook,
    opts: &RunOptions,
    kernel_name: &str,
    kernel: impl std::future::Future<Output = Result<AnySession, Outcome>>,
    events: &mut (dyn FnMut(&RunEvent) + Send),
    mut cancel: watch::Receiver<Option<CancelReason>>,
) -> Result<RunResult, RunError> {
    prepare(&mut nb, opts);
    let run_started = Utc::now();
    let mut session = tokio::select! {
        started = kernel => match started {
            Ok(session) => session,
            // The output notebook is written whatever happened, as papermill
            // writes it before the kernel starts.
            Err(outcome) => return finish(nb, opts, kernel_name, outcome, run_started, None).await,
        },
        reason = wait_cancel(&mut cancel) => {
            let outcome = Outcome::Cancelled { cell: None, reason };
            return finish(nb, opts, kernel_name, outcome, run_started, None).await;
        }
    };
    trace("kernel ready");
    metadata::set_language_info(&mut nb, session.kernel_info());
    for check in &opts.preflight {
        let failed = tokio::select! {
            failed = run_preflight(&mut session, check, opts.start_timeout) => failed,
            reason = wait_cancel(&mut cancel) => Some(Outcome::Cancelled { cell: None, reason }),
        };
        if let Some(outcome) = failed {
            return finish(nb, opts, kernel_name, outcome, run_started, Some(session)).await;
        }
    }
    let total = nb.cells().iter().filter(|c| is_executable(c)).count();
    events(&RunEvent::KernelReady {
        kernel: kernel_name,
        cells: total,
    });

    let strip = opts.strip_injected_on_save;
    let injected_source = opts.saved_injected_source.clone();
    let output = opts.output.clone();
    let redact = opts.redact.clone();
    let saved = opts.checkpoint_saved.clone();
    let mut autosave = |nb: &Notebook| {
        if let OutputTarget::File(path) = &output {
            // A failed checkpoint is not fatal: the final save reports errors.
            let bytes = if redact.is_empty() {
                notebook_bytes(nb, strip, injected_source.as_deref())
            } else {
                let mut copy = nb.clone();
                redact_outputs(&mut copy, &redact);
                notebook_bytes(&copy, strip, injected_source.as_deref())
            };
            if save::write_checkpoint(path, &bytes).is_ok()
                && let Some(saved) = &saved
            {
                saved.notify_one();
            }
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

/// Runs one preflight check silently and waits for its reply and for the kernel to
/// go idle on it (so none of its messages reach the cells), at most `limit`.
/// `None` when it passed.
async fn run_preflight(
    session: &mut AnySession,
    check: &Preflight,
    limit: Duration,
) -> Option<Outcome> {
    let id = match session.execute_silent(&check.code).await {
        Ok(id) => id,
        Err(detail) => return Some(Outcome::KernelDied { cell: None, detail }),
    };
    let wait = async {
        let (mut status, mut idle) = (None, false);
        while status.is_none() || !idle {
            match session.recv().await {
                SessionEvent::Reply {
                    parent, content, ..
                } if parent.as_deref() == Some(id.as_str()) => {
                    status = Some(content["status"].as_str().unwrap_or("error").to_owned());
                }
                SessionEvent::Iopub {
                    parent,
                    msg_type,
                    content,
                    ..
                } if parent.as_deref() == Some(id.as_str())
                    && msg_type == "status"
                    && content["execution_state"] == "idle" =>
                {
                    idle = true;
                }
                SessionEvent::Died { detail } => return Err(detail),
                _ => {}
            }
        }
        Ok(status.unwrap_or_default())
    };
    match tokio::time::timeout(limit, wait).await {
        Ok(Ok(status)) if status == "ok" => None,
        Ok(Ok(_)) => Some(Outcome::PreflightFailed {
            detail: check.failure.clone(),
        }),
        Ok(Err(detail)) => Some(Outcome::KernelDied { cell: None, detail }),
        Err(_) => Some(Outcome::Timeout {
            cell: None,
            detail: format!(
                "a check before the first cell took longer than {:.0} s",
                limit.as_secs_f64()
            ),
        }),
    }
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

/// Saves the notebook of a run whose kernelspec is unknown or unusable, marked as
/// not run (`kernel_unavailable`), as when a kernel cannot start: the output
/// notebook is written on every failure path (papermill, too, writes it before it
/// looks for the kernel).
pub async fn save_without_kernel(
    mut nb: Notebook,
    opts: &RunOptions,
    detail: String,
) -> Result<RunResult, RunError> {
    prepare(&mut nb, opts);
    let kernel = choose_kernel_name(&nb, opts.kernel_name.as_deref());
    let outcome = Outcome::KernelUnavailable { detail };
    finish(nb, opts, &kernel, outcome, Utc::now(), None).await
}

/// Marks the end of the run in the notebook, saves it, then stops the kernel.
async fn finish(
    mut nb: Notebook,
    opts: &RunOptions,
    kernel: &str,
    mut outcome: Outcome,
    started: chrono::DateTime<Utc>,
    session: Option<AnySession>,
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
    let pid = session.as_ref().and_then(AnySession::pid);
    let remote = session.as_ref().and_then(AnySession::remote);
    let mut extra = opts.extra_metadata.clone();
    if let Some(r) = &remote {
        extra.insert("gateway".into(), Value::from(r.gateway.clone()));
        extra.insert("kernel_id".into(), Value::from(r.kernel_id.clone()));
    }
    record_nbexec(&mut nb, kernel, pid, &outcome, &extra);

    // Let the kernel begin its graceful exit while the notebook is written.
    let mut session = session;
    if let Some(session) = session.as_mut() {
        session.request_shutdown().await;
    }
    redact_outputs(&mut nb, &opts.redact);
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
        if opts.shutdown_in_background {
            let grace = opts.shutdown_grace;
            tokio::spawn(async move { session.shutdown(grace).await });
        } else {
            session.shutdown(opts.shutdown_grace).await;
            trace("kernel shut down");
        }
    }
    match saved {
        Ok(saved_to) => Ok(RunResult {
            notebook: nb,
            outcome,
            kernel: kernel.to_owned(),
            saved_to,
            remote,
        }),
        Err((path, source)) => {
            // Keep the work: write it where it can be written, and say where.
            // A private, unpredictable file (0600, created exclusively).
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "output.ipynb".into());
            match save::write_fallback(&name, &bytes) {
                Ok(fallback) => Err(RunError::SavedToFallback {
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
