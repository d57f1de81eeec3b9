//! The run builder: everything `nbexec run` does, for embedders.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nbexec_runner::{CancelReason, OutputTarget, RunEvent, RunOptions, RunResult};
use serde_json::Value;
use tokio::sync::watch;

use crate::Error;
use crate::params::{self, ParamSources};

/// Where the executed notebook goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A file; `{name}` in the path is filled from the parameters (as papermill does).
    File(PathBuf),
    /// Standard output, at the end.
    Stdout,
    /// Back over the input (ArcGIS `updatePortalItem`).
    InPlace,
    /// Not written: the result is only returned.
    None,
}

impl Output {
    /// `-` (or `/dev/stdout`, which names the same thing) is stdout; anything else a path.
    pub fn parse(s: &str) -> Output {
        if matches!(s, "-" | "/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1") {
            Output::Stdout
        } else {
            Output::File(PathBuf::from(s))
        }
    }
}

/// What a run records about its parameters, with secrets redacted.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    /// The merged parameters (for the job record).
    pub parameters: Value,
    /// The injected cell's source as saved (secrets redacted), if it differs.
    pub saved_injected_source: Option<String>,
    /// Checks run on the kernel before the cells (packages the injected cell needs).
    pub preflight: Vec<nbexec_runner::Preflight>,
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A kernel started ahead of need for a run (its kernelspec's name and its start);
/// shut down, off the caller's path, if the run does not take it.
struct WarmGuard(Option<(String, KernelStart)>);

impl WarmGuard {
    /// The warm kernel if it is of kernelspec `name`.
    fn take_for(&mut self, name: &str) -> Option<KernelStart> {
        match self.0.take() {
            Some((n, handle)) if n == name => Some(handle),
            other => {
                self.0 = other;
                None
            }
        }
    }
}

impl Drop for WarmGuard {
    fn drop(&mut self) {
        if let Some((_, handle)) = self.0.take() {
            discard_kernel(handle);
        }
    }
}

/// Shuts down a kernel started for nothing, in the background.
pub fn discard_kernel(handle: KernelStart) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            if let Ok(Ok(client)) = handle.await {
                let _ = client.shutdown(Duration::from_millis(500)).await;
            }
        });
    }
}

/// The cancellation channel of a recorded run, the tasks to stop when it ends, and
/// the registry it is recorded in.
type Watched = (
    watch::Receiver<Option<CancelReason>>,
    Vec<tokio::task::JoinHandle<()>>,
    Option<nbexec_runner::jobs::JobStore>,
);

/// What `prepare_only` did.
#[derive(Debug)]
pub struct Prepared {
    pub notebook: nbexec_format::Notebook,
    pub warnings: Vec<String>,
    pub written_to: Option<PathBuf>,
}

/// A notebook run, configured step by step.
///
/// This example runs for real in the test suite (on the project's own kernel):
///
/// ```no_run
/// use std::time::Duration;
/// use serde_json::json;
///
/// let result = nbexec_orchestrate::Run::new("example.ipynb")
///     .parameter("city", json!("Redlands"))
///     .parameter("min_area", json!(2.5))
///     .execution_timeout(Some(Duration::from_secs(120)))
///     .run_blocking()?;
/// assert!(result.outcome.is_success());
/// // The executed notebook: the injected cell follows the `parameters` cell.
/// let injected = &result.notebook.cells()[2];
/// assert!(injected.has_tag("injected-parameters"));
/// assert!(injected.source().contains("city = \"Redlands\""));
/// # Ok::<(), nbexec_orchestrate::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Run {
    pub(crate) input: PathBuf,
    output: Output,
    save_injected: bool,
    pub(crate) params: ParamSources,
    kernel: Option<String>,
    language: Option<String>,
    pub(crate) options: RunOptions,
    pub(crate) cancel_on_signals: bool,
    pub(crate) job: Option<JobSpec>,
    /// Fields that replace those of the job's recorded `inputs`.
    job_inputs: Option<Value>,
    /// The caller records how the job ended (after work of its own on the result).
    defer_job_finish: bool,
    /// Where the final job JSON is POSTed (`--notify-url`).
    notify: Option<nbexec_schedule::notify::Target>,
    pub(crate) no_overwrite: bool,
}

/// A kernel being started ahead of need (see [`Run::run_with_warm`]).
pub type KernelStart =
    tokio::task::JoinHandle<Result<nbexec_kernel::KernelClient, nbexec_kernel::KernelError>>;

/// Record the run as a job in the registry.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub state_dir: PathBuf,
    pub id: String,
    /// The job record exists already (a detached run created it).
    pub exists: bool,
}

impl Run {
    pub fn new(input: impl AsRef<Path>) -> Run {
        Run {
            input: input.as_ref().to_owned(),
            output: Output::None,
            save_injected: false,
            params: ParamSources::default(),
            kernel: None,
            language: None,
            options: RunOptions::default(),
            cancel_on_signals: false,
            job: None,
            job_inputs: None,
            defer_job_finish: false,
            notify: None,
            no_overwrite: false,
        }
    }

    /// POST the job's final JSON to this target once the job is recorded finished
    /// (signed, retried; the outcome is added to the job's messages). Needs a job
    /// ([`Run::job`]); with a deferred finish the caller notifies.
    pub fn notify(mut self, target: Option<nbexec_schedule::notify::Target>) -> Run {
        self.notify = target;
        self
    }

    /// Sends the notification of the finished job, if one is asked for.
    async fn notify_finished(&self) {
        if let (Some(target), Some(job)) = (&self.notify, &self.job) {
            crate::jobs::notify(&job.state_dir, &job.id, target).await;
        }
    }

    /// Leave recording the job's end to the caller, who calls
    /// [`crate::jobs::finish_with_notes`] once its own work on the result is done (a
    /// server updates the item first, so a job seen finished has done everything).
    /// A run that fails before it starts is still recorded here.
    pub fn defer_job_finish(mut self, on: bool) -> Run {
        self.defer_job_finish = on;
        self
    }

    /// Shut the kernel down in the background once the notebook is saved, so the
    /// run's result (and the job's end) does not wait for it. Only for a caller whose
    /// tokio runtime lives on after the run (a server); the kernel is killed with its
    /// process group if the runtime goes first.
    pub fn shutdown_kernel_in_background(mut self, on: bool) -> Run {
        self.options.shutdown_in_background = on;
        self
    }

    /// Fields that replace those of the job's recorded ArcGIS `inputs` (a server
    /// names the item by its id, and says whether it updates it).
    pub fn job_inputs(mut self, overlay: Option<Value>) -> Run {
        self.job_inputs = overlay;
        self
    }

    /// The kernelspec and launch options this run's local kernel would have (reads
    /// the notebook): what a caller needs to start the kernel ahead of need and
    /// hand it to [`Run::run_with_warm`].
    pub fn kernel_launch(
        &self,
    ) -> Result<(nbexec_kernel::KernelSpec, nbexec_kernel::LaunchOptions), Error> {
        let nb = crate::read_notebook_unchecked(&self.input)?;
        let options = self.options.clone();
        let mut options = options;
        options.kernel_name.clone_from(&self.kernel);
        let spec = nbexec_runner::resolve_spec(&nb, &options)?;
        Ok((spec, nbexec_runner::launch_options(&options)))
    }

    pub fn output(mut self, output: Output) -> Run {
        self.output = output;
        self
    }

    /// With `Output::InPlace`, keep the injected parameters cell in the saved file.
    pub fn save_injected_parameters(mut self, keep: bool) -> Run {
        self.save_injected = keep;
        self
    }

    /// All parameter sources at once (what the command line collects).
    pub fn parameters(mut self, sources: ParamSources) -> Run {
        self.params = sources;
        self
    }

    /// One parameter, as a JSON value (exact types, like `-j`).
    pub fn parameter(mut self, name: &str, value: Value) -> Run {
        let mut obj = serde_json::Map::new();
        obj.insert(name.to_owned(), value);
        self.params.json.push(Value::Object(obj).to_string());
        self
    }

    pub fn kernel(mut self, name: Option<String>) -> Run {
        self.kernel = name;
        self
    }

    pub fn language(mut self, language: Option<String>) -> Run {
        self.language = language;
        self
    }

    pub fn cwd(mut self, dir: Option<PathBuf>) -> Run {
        self.options.cwd = dir;
        self
    }

    pub fn report_mode(mut self, on: bool) -> Run {
        self.options.report_mode = on;
        self
    }

    pub fn allow_errors(mut self, on: bool) -> Run {
        self.options.exec.allow_errors = on;
        self
    }

    pub fn execution_timeout(mut self, t: Option<Duration>) -> Run {
        self.options.exec.execution_timeout = t;
        self
    }

    pub fn total_timeout(mut self, t: Option<Duration>) -> Run {
        self.options.exec.total_timeout = t;
        self
    }

    pub fn start_timeout(mut self, t: Duration) -> Run {
        self.options.start_timeout = t;
        self
    }

    /// Checkpoint the output this often during long runs (`None`: only at the end).
    pub fn autosave(mut self, every: Option<Duration>) -> Run {
        self.options.exec.autosave = every;
        self
    }

    /// Up to `n` execute requests in flight at once.
    pub fn pipeline(mut self, n: usize) -> Run {
        self.options.exec.pipeline = n.max(1);
        self
    }

    /// Keep at most this many output bytes per cell (`None`: no limit).
    pub fn max_output_bytes(mut self, max: Option<usize>) -> Run {
        self.options.exec.max_output_bytes = max;
        self
    }

    /// Run the kernel behind a Jupyter Kernel Gateway or Enterprise Gateway (see
    /// [`nbexec_gateway::GatewayConfig::from_env`]); `None`: a local kernel.
    pub fn gateway(mut self, cfg: Option<nbexec_gateway::GatewayConfig>) -> Run {
        self.options.gateway = cfg;
        self
    }

    pub fn tcp(mut self, on: bool) -> Run {
        if on {
            self.options.transport = nbexec_kernel::Transport::Tcp;
        }
        self
    }

    /// SIGINT and SIGTERM (and SIGUSR1, a job cancel) stop the run cleanly: the
    /// kernel is interrupted and shut down, the notebook saved.
    pub fn cancel_on_signals(mut self, on: bool) -> Run {
        self.cancel_on_signals = on;
        self
    }

    /// Refuse to replace an existing output (a conditional create in an object
    /// store); checked before the kernel starts, and again by the store at the end.
    pub fn no_overwrite(mut self, on: bool) -> Run {
        self.no_overwrite = on;
        self
    }

    pub fn job(mut self, job: Option<JobSpec>) -> Run {
        self.job = job;
        self
    }

    pub fn input(&self) -> &Path {
        &self.input
    }

    /// Reads, injects and resolves the output path.
    fn prepare(
        &self,
    ) -> Result<
        (
            nbexec_format::Notebook,
            Option<PathBuf>,
            Vec<String>,
            Recorded,
        ),
        Error,
    > {
        let nb = crate::read_notebook(&self.input)?;
        self.prepare_from(nb, &self.params)
    }

    /// Injects `sources` into an already-read notebook and resolves the output path.
    pub(crate) fn prepare_from(
        &self,
        mut nb: nbexec_format::Notebook,
        sources: &ParamSources,
    ) -> Result<
        (
            nbexec_format::Notebook,
            Option<PathBuf>,
            Vec<String>,
            Recorded,
        ),
        Error,
    > {
        let input_str = self.input.to_string_lossy().into_owned();
        let output_template = match &self.output {
            Output::File(p) => Some(p.to_string_lossy().into_owned()),
            Output::InPlace => Some(input_str.clone()),
            Output::Stdout => Some("-".to_owned()),
            Output::None => None,
        };
        let injected = params::inject(
            &mut nb,
            sources,
            &input_str,
            output_template.as_deref(),
            self.kernel.as_deref(),
            self.language.as_deref(),
        )?;
        let output_path = match &self.output {
            Output::File(_) => injected.output_path.clone().map(PathBuf::from),
            Output::InPlace => Some(self.input.clone()),
            _ => None,
        };
        let recorded = Recorded {
            parameters: injected.parameters,
            saved_injected_source: injected.saved_source,
            preflight: injected.preflight,
        };
        Ok((nb, output_path, injected.warnings, recorded))
    }

    pub(crate) fn run_options(
        &self,
        output_path: Option<PathBuf>,
        recorded: &Recorded,
    ) -> RunOptions {
        let mut options = self.options.clone();
        options
            .saved_injected_source
            .clone_from(&recorded.saved_injected_source);
        options.preflight.clone_from(&recorded.preflight);
        options.input_path = Some(self.input.to_string_lossy().into_owned());
        options.output = match (&self.output, output_path) {
            (Output::Stdout, _) => OutputTarget::Stdout,
            (_, Some(p)) => OutputTarget::File(crate::storage::local_path(&p)),
            _ => OutputTarget::Discard,
        };
        options.kernel_name.clone_from(&self.kernel);
        options.redact = self.params.secret_values();
        options.strip_injected_on_save =
            matches!(self.output, Output::InPlace) && !self.save_injected;
        options
    }

    /// Injects the parameters and writes the notebook, without a kernel
    /// (`--prepare-only`).
    pub fn prepare_only(&self) -> Result<Prepared, Error> {
        let (mut nb, output_path, warnings, recorded) = self.prepare()?;
        let options = self.run_options(output_path.clone(), &recorded);
        let output = match &options.output {
            OutputTarget::File(p) => Some(p.to_string_lossy().into_owned()),
            OutputTarget::Stdout => Some("-".to_owned()),
            OutputTarget::Discard => None,
        };
        crate::prepare::prepare_only(&mut nb, &options, output.as_deref());
        let bytes = nbexec_runner::notebook_bytes(
            &nb,
            options.strip_injected_on_save,
            options.saved_injected_source.as_deref(),
        );
        match &options.output {
            OutputTarget::File(path) => {
                crate::storage::check_output(path, self.no_overwrite)?;
                crate::storage::write_bytes_as(
                    path,
                    &bytes,
                    crate::storage::write_mode(self.no_overwrite),
                )?
            }
            OutputTarget::Stdout => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&bytes).and_then(|()| out.flush());
            }
            OutputTarget::Discard => {}
        }
        Ok(Prepared {
            notebook: nb,
            warnings,
            written_to: output_path,
        })
    }

    /// Runs the notebook; events go to `events` as they happen, warnings (unknown
    /// parameters, say) to `warn` before the kernel starts.
    pub async fn run_with(
        &self,
        events: &mut (dyn FnMut(&RunEvent) + Send),
        warn: impl Fn(&str),
    ) -> Result<RunResult, Error> {
        self.run_with_warm(None, events, warn).await
    }

    /// [`Run::run_with`] on a kernel started ahead of need (`warm`, with the spec
    /// and launch options of [`Run::kernel_launch`]); `None` starts one now. A
    /// warm kernel of another kernelspec than the run's is shut down unused.
    pub async fn run_with_warm(
        &self,
        warm: Option<(String, KernelStart)>,
        events: &mut (dyn FnMut(&RunEvent) + Send),
        warn: impl Fn(&str),
    ) -> Result<RunResult, Error> {
        // Whatever path does not use the warm kernel shuts it down.
        let mut warm = WarmGuard(warm);
        // Everything that can reject the run (notebook, kernel name, parameters, the
        // output path) is checked before a kernel is started; that takes a few
        // milliseconds. The kernel's start-up is the long pole: the job is recorded
        // while it boots.
        let prepared = self.prepare().and_then(|p| {
            if let Some(path) = &p.1 {
                crate::storage::check_output(path, self.no_overwrite)?;
            }
            Ok(p)
        });
        let (nb, output_path, warnings, recorded) = match prepared {
            Ok(p) => p,
            Err(e) => {
                self.record_job_failure(&e);
                self.notify_finished().await;
                return Err(e);
            }
        };
        warnings.iter().for_each(|w| warn(w));
        let mut options = self.run_options(output_path, &recorded);
        if options.gateway.is_some() {
            // Recorded here, so the remote run's future holds no `warn` (it stays Send).
            let watched = self.watch_and_record(recorded.parameters, &mut options, &warn);
            return self.run_remote(nb, options, watched, events).await;
        }
        let spec = match nbexec_runner::resolve_spec(&nb, &options) {
            Ok(spec) => spec,
            Err(e) => {
                // The output notebook is written on this failure path too; the
                // error line says what went wrong, so a failed save is not news.
                let _ = nbexec_runner::save_without_kernel(nb, &options, e.to_string()).await;
                let e = Error::Run(e);
                self.record_job_failure(&e);
                self.notify_finished().await;
                return Err(e);
            }
        };
        nbexec_runner::trace("notebook read, parameters injected");
        let spec_name = spec.name.clone();
        let launch = nbexec_runner::launch_options(&options);
        let kernel = match warm.take_for(&spec_name) {
            Some(handle) => handle,
            None => {
                tokio::spawn(
                    async move { nbexec_kernel::KernelClient::start(&spec, &launch).await },
                )
            }
        };
        // Let the launch begin (the process is spawned) before the rest of the work.
        tokio::task::yield_now().await;
        nbexec_runner::trace("kernel launching");
        let abort = AbortOnDrop(kernel.abort_handle());
        let (rx, tasks, store) = self.watch_and_record(recorded.parameters, &mut options, &warn);
        nbexec_runner::trace("job recorded");
        let start = async move {
            let _abort = abort; // a run cancelled while the kernel starts stops the start too
            match kernel.await {
                Ok(started) => started,
                Err(e) => Err(nbexec_kernel::KernelError::Protocol(format!(
                    "kernel start task failed: {e}"
                ))),
            }
        };
        let result = match crate::storage::stage(&mut options, self.no_overwrite) {
            Ok(upload) => {
                let result =
                    nbexec_runner::run_with_kernel(nb, &options, &spec_name, start, events, rx)
                        .await;
                crate::storage::finish(upload, result).await
            }
            Err(e) => Err(e),
        };
        for task in tasks {
            task.abort();
        }
        if let (Some(store), Some(job), false) = (&store, &self.job, self.defer_job_finish) {
            crate::jobs::finish(store, &job.id, &result, &options.redact);
            self.notify_finished().await;
        }
        Ok(result?)
    }

    /// [`Run::run_with`] for a kernel behind a gateway: the kernel's name is the
    /// gateway's business, so nothing is looked up locally.
    async fn run_remote(
        &self,
        nb: nbexec_format::Notebook,
        options: RunOptions,
        (rx, tasks, store): Watched,
        events: &mut (dyn FnMut(&RunEvent) + Send),
    ) -> Result<RunResult, Error> {
        let Some(cfg) = options.gateway.clone() else {
            return Err(Error::Usage("no gateway configured".into()));
        };
        let name = nbexec_runner::choose_kernel_name(&nb, options.kernel_name.as_deref());
        // Waits for a free kernel slot are said as they happen and kept for the job.
        let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = notes.clone();
        let start = nbexec_runner::start_remote(cfg, name.clone(), &options, move |note| {
            eprintln!("warning: {note}");
            if let Ok(mut n) = sink.lock() {
                n.push(note.to_owned());
            }
        });
        let mut options = options;
        let result = match crate::storage::stage(&mut options, self.no_overwrite) {
            Ok(upload) => {
                let result =
                    nbexec_runner::run_with_gateway(nb, &options, &name, start, events, rx).await;
                crate::storage::finish(upload, result).await
            }
            Err(e) => Err(e),
        };
        for task in tasks {
            task.abort();
        }
        if let (Some(store), Some(job), false) = (&store, &self.job, self.defer_job_finish) {
            let notes = notes.lock().map(|n| n.clone()).unwrap_or_default();
            crate::jobs::finish_with_notes(store, &job.id, &result, &options.redact, &notes);
            self.notify_finished().await;
        }
        Ok(result?)
    }

    /// Starts forwarding signals (when asked) and records the job, watching the
    /// registry for its cancellation. An unusable registry (corrupt, read-only) does
    /// not stop a run: it is said once, and the run goes unrecorded. Returns the
    /// cancellation channel, the tasks to stop when the run ends, and the registry.
    fn watch_and_record(
        &self,
        parameters: Value,
        options: &mut RunOptions,
        warn: &dyn Fn(&str),
    ) -> Watched {
        let (tx, rx) = watch::channel(None::<CancelReason>);
        let mut tasks = Vec::new();
        if self.cancel_on_signals {
            tasks.extend(crate::signals::forward_signals(tx.clone()));
        }
        let store = match &self.job {
            Some(job) => match crate::jobs::start_with(
                job,
                &self.input,
                parameters,
                options,
                self.job_inputs.as_ref(),
            ) {
                Ok(store) => Some(store),
                Err(e) => {
                    warn(&format!(
                        "{e}; this run is not recorded (--no-record says so quietly)"
                    ));
                    None
                }
            },
            None => None,
        };
        if let (Some(store), Some(job)) = (&store, &self.job) {
            options
                .extra_metadata
                .insert("job_id".into(), Value::from(job.id.clone()));
            tasks.push(crate::jobs::watch_cancel(
                store.path().to_owned(),
                job.id.clone(),
                tx.clone(),
            ));
        }
        (rx, tasks, store)
    }

    fn record_job_failure(&self, e: &Error) {
        if let Some(job) = &self.job {
            crate::jobs::record_early_failure(job, &self.input, e);
        }
    }

    /// [`Run::run_with`] on a runtime of its own.
    pub fn run_blocking_with(
        &self,
        events: &mut (dyn FnMut(&RunEvent) + Send),
        warn: impl Fn(&str),
    ) -> Result<RunResult, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(self.run_with(events, warn))
    }

    /// Runs the notebook, blocking, with no event consumer.
    pub fn run_blocking(&self) -> Result<RunResult, Error> {
        self.run_blocking_with(&mut |_| {}, |w| eprintln!("warning: {w}"))
    }
}
