//! `nbexec run`: papermill's command line, plus ArcGIS `executeNotebook` options.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{EXIT_USAGE, error_line, warning_line};
use crate::cli::progress;

/// The heading papermill's own spellings are listed under in `nbexec run --help`.
const COMPAT: &str = "papermill compatibility";

#[derive(Args, Debug)]
#[command(
    after_help = "Parameters are merged in this order, later wins: -b, -f, -y, -j, -p, -r.\n\
Exit codes: 0 success, 1 a cell failed, 2 usage or input error, 124 timeout,\n\
130 cancelled (SIGINT or `nbexec jobs cancel`), 138 kernel died, 143 SIGTERM.\n\
The underscore spellings of papermill's options (--parameters_raw, --log_output,\n\
--prepare_only, …) are accepted as well."
)]
pub struct RunArgs {
    /// The notebook to run: a path or a URL (s3://, gs://, az://, http(s)://, jupyter+http(s)://…; `-`: standard input; omitted: standard input when it is piped)
    #[arg(value_name = "INPUT")]
    input: Option<PathBuf>,
    /// Where to write the executed notebook, a path or a URL (`-` for stdout); `{name}` is filled from parameters
    #[arg(value_name = "OUTPUT")]
    output: Option<String>,
    /// Refuse to replace an existing output (a conditional create in an object store)
    #[arg(long = "no-overwrite")]
    no_overwrite: bool,

    /// A parameter, its value typed as papermill does (True/False/None, int, float, else string)
    #[arg(short = 'p', long = "parameters", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append, allow_hyphen_values = true)]
    parameters: Vec<String>,
    /// A parameter whose value is always a string
    #[arg(short = 'r', long = "parameters-raw", alias = "parameters_raw", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append, allow_hyphen_values = true)]
    parameters_raw: Vec<String>,
    /// A JSON or YAML file of parameters
    #[arg(short = 'f', long = "parameters-file", alias = "parameters_file", value_name = "FILE", action = clap::ArgAction::Append)]
    parameters_file: Vec<PathBuf>,
    /// Parameters as a YAML string
    #[arg(short = 'y', long = "parameters-yaml", alias = "parameters_yaml", value_name = "YAML", action = clap::ArgAction::Append)]
    parameters_yaml: Vec<String>,
    /// Parameters as a base64-encoded YAML string
    #[arg(short = 'b', long = "parameters-base64", alias = "parameters_base64", value_name = "B64", action = clap::ArgAction::Append)]
    parameters_base64: Vec<String>,
    /// Parameters as a JSON object (ArcGIS `notebookParameters`): exact JSON types, order kept; @FILE reads it from a file, - from stdin
    #[arg(short = 'j', long = "parameters-json", visible_alias = "notebook-parameters", value_name = "JSON", action = clap::ArgAction::Append)]
    parameters_json: Vec<String>,
    /// Declare a parameter's type (`NAME=date`), e.g. to read an epoch-ms integer as a date
    #[arg(long = "param-type", value_name = "NAME=TYPE", action = clap::ArgAction::Append)]
    param_type: Vec<String>,
    /// How Esri FeatureSets are injected: esri (a dict), geojson (a FeatureCollection dict), arcgis (FeatureSet.from_dict)
    #[arg(
        long = "featureset-format",
        value_name = "FORMAT",
        default_value = "esri"
    )]
    featureset_format: String,
    /// Parameters the notebook does not declare are an error, not a warning
    #[arg(long)]
    strict: bool,
    /// Also inject PAPERMILL_INPUT_PATH and PAPERMILL_OUTPUT_PATH
    #[arg(long = "inject-paths", alias = "inject_paths")]
    inject_paths: bool,
    /// Also inject PAPERMILL_INPUT_PATH
    #[arg(long = "inject-input-path", alias = "inject_input_path")]
    inject_input_path: bool,
    /// Also inject PAPERMILL_OUTPUT_PATH
    #[arg(long = "inject-output-path", alias = "inject_output_path")]
    inject_output_path: bool,

    /// The kernel to run on (default: the notebook's kernelspec, else its language's default)
    #[arg(short = 'k', long = "kernel", value_name = "NAME")]
    kernel: Option<String>,
    /// The notebook's language, to pick a translator when the kernel name does not tell
    #[arg(short = 'l', long = "language", value_name = "LANG")]
    language: Option<String>,
    /// Working directory of the kernel
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Inject parameters and write the notebook, without running it
    #[arg(
        long = "prepare-only",
        alias = "prepare_only",
        overrides_with = "prepare_execute"
    )]
    prepare_only: bool,
    /// Run the notebook (the default)
    #[arg(long = "prepare-execute", help_heading = COMPAT)]
    prepare_execute: bool,
    /// Hide code inputs in the output notebook
    #[arg(
        long = "report-mode",
        alias = "report_mode",
        overrides_with = "no_report_mode"
    )]
    report_mode: bool,
    /// Show code inputs (the default)
    #[arg(long = "no-report-mode", help_heading = COMPAT)]
    no_report_mode: bool,
    /// Also write an HTML report of the executed notebook to FILE (on success and on failure)
    #[arg(long = "report", value_name = "FILE")]
    report: Option<PathBuf>,
    #[command(flatten)]
    report_html: super::render::HtmlArgs,
    /// Print the parameters INPUT takes and exit (as `nbexec inspect`; papermill --help-notebook)
    #[arg(long = "help-notebook")]
    help_notebook: bool,
    /// Also write the cells' stdout to FILE (papermill --stdout-file)
    #[arg(long = "stdout-file", value_name = "FILE")]
    stdout_file: Option<PathBuf>,
    /// Also write the cells' stderr to FILE (papermill --stderr-file)
    #[arg(long = "stderr-file", value_name = "FILE")]
    stderr_file: Option<PathBuf>,
    /// Only `nbclient` is accepted: nbexec's own engine stands in for it
    #[arg(long, value_name = "NAME", help_heading = COMPAT)]
    engine: Option<String>,
    /// Checked and otherwise ignored: errors always print one line
    #[arg(
        long = "log-level",
        value_name = "LEVEL",
        help_heading = COMPAT,
        ignore_case = true,
        value_parser = ["NOTSET", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    )]
    _log_level: Option<String>,
    /// Run the cells even after one raises; the run succeeds
    #[arg(long = "allow-errors", alias = "allow_errors")]
    allow_errors: bool,
    /// Seconds a single cell may run
    #[arg(
        long = "execution-timeout",
        alias = "execution_timeout",
        value_name = "SECONDS"
    )]
    execution_timeout: Option<f64>,
    /// Minutes the whole notebook may run (ArcGIS executionTimeoutInMinutes)
    #[arg(long = "timeout-minutes", value_name = "MINUTES")]
    timeout_minutes: Option<f64>,
    /// Seconds the kernel may take to start [default: 60; 120 through a gateway, sent
    /// to it as KERNEL_LAUNCH_TIMEOUT]
    #[arg(
        long = "start-timeout",
        alias = "start_timeout",
        value_name = "SECONDS"
    )]
    start_timeout: Option<f64>,
    /// Run the kernel behind this Jupyter Kernel Gateway or Enterprise Gateway
    /// (http://host:port); the JUPYTER_GATEWAY_* environment (URL, AUTH_TOKEN, HEADERS,
    /// …) is read as Jupyter reads it, and this flag wins over JUPYTER_GATEWAY_URL
    #[arg(long = "gateway-url", value_name = "URL")]
    gateway_url: Option<String>,
    /// Print the cells' stdout and stderr as they come
    #[arg(
        long = "log-output",
        alias = "log_output",
        overrides_with = "no_log_output"
    )]
    log_output: bool,
    /// Do not print the cells' output (the default)
    #[arg(long = "no-log-output", help_heading = COMPAT)]
    no_log_output: bool,
    /// Show a progress bar (default when stderr is a terminal)
    #[arg(long = "progress-bar", overrides_with = "no_progress_bar")]
    progress_bar: bool,
    /// Never show a progress bar
    #[arg(long = "no-progress-bar", alias = "no_progress_bar")]
    no_progress_bar: bool,
    /// Write the executed notebook back over INPUT (ArcGIS updatePortalItem)
    #[arg(long = "in-place")]
    in_place: bool,
    /// With --in-place, keep the injected parameters cell in the saved notebook
    #[arg(long = "save-injected-parameters")]
    save_injected_parameters: bool,
    /// Seconds between checkpoints of the output during long runs (0: only at the end)
    #[arg(
        long = "autosave-seconds",
        value_name = "SECONDS",
        default_value_t = 10.0
    )]
    autosave_seconds: f64,
    /// Up to N execute requests in flight at once (1: strictly one after another)
    #[arg(
        long = "pipeline",
        value_name = "N",
        env = "NBEXEC_PIPELINE",
        default_value_t = 1
    )]
    pipeline: usize,
    /// The most output kept per cell, in MiB (later output is dropped with a note; 0: no limit)
    #[arg(long = "max-output-mb", value_name = "MIB", default_value_t = 64.0)]
    max_output_mb: f64,
    /// A secret parameter: injected as a string like -r, but never written to the saved
    /// notebook, its outputs or the job record. On a shared machine a VALUE on the command
    /// line shows in `ps` to every user: prefer --secret-env or --secret-file
    #[arg(long = "secret", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append, allow_hyphen_values = true)]
    secret: Vec<String>,
    /// A secret parameter read from environment variable ENVVAR (not passed on to a --detach run)
    #[arg(long = "secret-env", value_name = "NAME=ENVVAR", action = clap::ArgAction::Append)]
    secret_env: Vec<String>,
    /// A secret parameter read from a file (one trailing newline dropped)
    #[arg(long = "secret-file", value_name = "NAME=PATH", action = clap::ArgAction::Append)]
    secret_file: Vec<String>,
    /// Secret parameters from a JSON (.json) or YAML file of NAME: VALUE strings
    #[arg(long = "secrets-file", value_name = "FILE", action = clap::ArgAction::Append)]
    secrets_file: Vec<PathBuf>,
    /// Internal: the background process --detach starts; it reads the run (arguments and
    /// secrets) from standard input, never from its command line
    #[arg(long = "detached-child", requires = "job_id")]
    detached_child: bool,
    /// Connect to the kernel over TCP instead of IPC
    #[arg(long)]
    tcp: bool,
    /// Start the run in the background and print the job (ArcGIS executeNotebook)
    #[arg(long)]
    detach: bool,
    /// Run once per line of FILE (JSON Lines: one object of parameters per line); OUTPUT is
    /// a template filled from each line's parameters, `{_index}` being the line number
    #[arg(long, value_name = "FILE")]
    batch: Option<PathBuf>,
    /// With --batch: how many runs at once (the next kernels warm up meanwhile)
    #[arg(long = "jobs", short = 'J', value_name = "N", default_value_t = 1)]
    jobs: usize,
    /// Where the job registry lives (default: $NBEXEC_STATE_DIR, $XDG_STATE_HOME/nbexec, ~/.local/state/nbexec)
    #[arg(long = "state-dir", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// When the run ends, POST its final job JSON to URL (signed, retried; the outcome goes in the job's messages)
    #[arg(long = "notify-url", value_name = "URL")]
    notify_url: Option<String>,
    /// The environment variable whose value signs --notify-url POSTs (X-Nbexec-Signature: sha256=HMAC)
    #[arg(
        long = "notify-secret-env",
        value_name = "ENVVAR",
        default_value = "NBEXEC_NOTIFY_SECRET"
    )]
    notify_secret_env: String,
    /// Do not record this run in the job registry (for read-only containers)
    #[arg(long = "no-record", env = "NBEXEC_NO_RECORD", value_parser = clap::builder::BoolishValueParser::new())]
    no_record: bool,
    /// Run as the already-recorded job ID (what --detach starts in the background)
    #[arg(long = "job-id", value_name = "ID")]
    job_id: Option<String>,
    /// Accepted and ignored: nbexec never rewrites per cell (see --autosave-seconds)
    #[arg(
        long = "request-save-on-cell-execute",
        alias = "request_save_on_cell_execute",
        help_heading = COMPAT
    )]
    _request_save: bool,
    /// Accepted and ignored
    #[arg(
        long = "no-request-save-on-cell-execute",
        alias = "no_request_save_on_cell_execute",
        help_heading = COMPAT
    )]
    _no_request_save: bool,
    /// Accepted and ignored (see --autosave-seconds)
    #[arg(
        long = "autosave-cell-every",
        alias = "autosave_cell_every",
        help_heading = COMPAT,
        value_name = "N"
    )]
    _autosave_cell_every: Option<u64>,
}

fn secs(s: f64) -> Option<std::time::Duration> {
    (s.is_finite() && s > 0.0).then(|| std::time::Duration::from_secs_f64(s))
}

/// As papermill: with no INPUT, the notebook is read from standard input when that is
/// a pipe or a redirected file (never from a terminal, nor from /dev/null).
fn stdin_is_piped() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .map(|m| m.file_type().is_fifo() || m.file_type().is_file())
        .unwrap_or(false)
}

/// `nbexec run`'s arguments alone, to parse the run a detached child is handed.
#[derive(clap::Parser)]
#[command(name = "nbexec run")]
struct RunOnly {
    #[command(flatten)]
    args: RunArgs,
}

/// What a `--detach` parent hands its child on standard input: the arguments of
/// `nbexec run` as given (bytes, so any path survives) and the secrets, resolved.
/// Nothing of it is in the child's command line or environment.
fn child_spec(secrets: &[(String, String)]) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    let argv: Vec<Vec<u8>> = std::env::args_os()
        .skip(2)
        .map(OsStringExt::into_vec)
        .collect();
    serde_json::json!({"argv": argv, "secrets": secrets})
        .to_string()
        .into_bytes()
}

/// In the detached child: the run its parent handed over on standard input.
fn child_args(own: &RunArgs) -> Result<RunArgs, String> {
    use std::io::Read;
    use std::os::unix::ffi::OsStringExt;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the detached run: {e}"))?;
    if bytes.is_empty() {
        return Err("no run was handed over: the detaching nbexec ended first".into());
    }
    let bad = || "bad detached run spec".to_owned();
    let spec: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let mut argv = vec![std::ffi::OsString::from("nbexec run")];
    for arg in spec["argv"].as_array().ok_or_else(bad)? {
        let bytes = arg
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        argv.push(std::ffi::OsString::from_vec(bytes));
    }
    let mut secrets = Vec::new();
    for pair in spec["secrets"].as_array().ok_or_else(bad)? {
        match (pair[0].as_str(), pair[1].as_str()) {
            (Some(n), Some(v)) => secrets.push((n.to_owned(), v.to_owned())),
            _ => return Err(bad()),
        }
    }
    let mut args = <RunOnly as clap::Parser>::try_parse_from(argv)
        .map_err(|e| e.to_string())?
        .args;
    args.detach = false;
    args.detached_child = false;
    args.job_id.clone_from(&own.job_id);
    args.no_progress_bar = true;
    args.progress_bar = false;
    args.secret_env.clear();
    args.secret_file.clear();
    args.secrets_file.clear();
    args.secret = secrets.into_iter().flat_map(|(n, v)| [n, v]).collect();
    Ok(args)
}

/// `NAME=REST` of --secret-env and --secret-file.
fn split_secret_arg<'a>(flag: &str, arg: &'a str) -> Result<(&'a str, &'a str), String> {
    match arg.split_once('=') {
        Some((name, rest)) if !name.is_empty() && !rest.is_empty() => Ok((name, rest)),
        _ => Err(format!("{flag} {arg:?}: expected NAME=...")),
    }
}

/// Secret parameters: names and values.
type Secrets = Vec<(String, String)>;

/// Every secret, from --secrets-file, --secret-file, --secret-env and --secret (in
/// that order; a later one wins), and the environment variables they came from.
fn resolve_secrets(args: &RunArgs) -> Result<(Secrets, Vec<String>), String> {
    let mut secrets = Vec::new();
    let mut env_vars = Vec::new();
    for file in &args.secrets_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let mut sources = nbexec_params::ParameterSources::new();
        sources.file(file.to_string_lossy(), text);
        let (params, _) = sources
            .build()
            .map_err(|e| format!("--secrets-file {}: {e}", file.display()))?;
        for (name, value) in params.iter() {
            let value = match value.to_json() {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                _ => {
                    return Err(format!(
                        "--secrets-file {}: the value of {name} is not a string",
                        file.display()
                    ));
                }
            };
            secrets.push((name.to_owned(), value));
        }
    }
    for arg in &args.secret_file {
        let (name, path) = split_secret_arg("--secret-file", arg)?;
        let mut text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        secrets.push((name.to_owned(), text));
    }
    for arg in &args.secret_env {
        let (name, var) = split_secret_arg("--secret-env", arg)?;
        let value = std::env::var(var).map_err(|_| {
            format!("--secret-env {arg}: the environment variable {var} is not set")
        })?;
        secrets.push((name.to_owned(), value));
        env_vars.push(var.to_owned());
    }
    secrets.extend(args.secret.chunks(2).map(|p| (p[0].clone(), p[1].clone())));
    Ok((secrets, env_vars))
}

pub fn main(args: RunArgs) -> i32 {
    let mut args = if args.detached_child {
        match child_args(&args) {
            Ok(a) => a,
            Err(e) => {
                error_line(e);
                return EXIT_USAGE;
            }
        }
    } else {
        args
    };
    if args.input.is_none() {
        if !stdin_is_piped() {
            error_line(
                "no INPUT given: name the notebook to run, or pipe it in (`nbexec run - OUT < in.ipynb`)",
            );
            return EXIT_USAGE;
        }
        args.input = Some(PathBuf::from("-"));
    }
    let input = args.input.clone().unwrap_or_default();
    let (secrets, secret_env_vars) = match resolve_secrets(&args) {
        Ok(s) => s,
        Err(e) => {
            error_line(e);
            return EXIT_USAGE;
        }
    };
    if args.help_notebook {
        return super::inspect::show(
            &input,
            args.kernel.as_deref(),
            args.language.as_deref(),
            false,
            // papermill's --help-notebook exits 1 when there is no parameters cell.
            super::EXIT_FAILED,
        );
    }
    if let Some(engine) = args.engine.as_deref().filter(|e| *e != "nbclient") {
        error_line(format!(
            "unknown engine {engine:?}: nbexec runs notebooks itself (papermill's nbclient engine)"
        ));
        return EXIT_USAGE;
    }
    let mut builder = nbexec::Run::new(&input);
    let output = match (&args.output, args.in_place) {
        (Some(_), true) => {
            error_line("give either OUTPUT or --in-place, not both");
            return EXIT_USAGE;
        }
        (Some(o), false) => nbexec::Output::parse(o),
        (None, true) => nbexec::Output::InPlace,
        // As papermill: with standard output piped, a missing OUTPUT means stdout.
        (None, false) if !std::io::IsTerminal::is_terminal(&std::io::stdout()) => {
            nbexec::Output::Stdout
        }
        (None, false) => {
            error_line(
                "no OUTPUT given: name the output notebook, `-` for stdout, or use --in-place",
            );
            return EXIT_USAGE;
        }
    };
    let stdout_is_notebook = matches!(output, nbexec::Output::Stdout);
    let shown_output = match &output {
        nbexec::Output::Stdout => Some("standard output".to_owned()),
        _ => None,
    };
    builder = builder
        .output(output)
        .save_injected_parameters(args.save_injected_parameters);
    let mut sources = nbexec::ParamSources::default();
    sources.base64.clone_from(&args.parameters_base64);
    sources.files.clone_from(&args.parameters_file);
    sources.yaml.clone_from(&args.parameters_yaml);
    sources.json.clone_from(&args.parameters_json);
    sources.typed = args
        .parameters
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    sources.raw = args
        .parameters_raw
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    sources.secrets = secrets;
    sources.declared_types.clone_from(&args.param_type);
    sources
        .featureset_format
        .clone_from(&args.featureset_format);
    sources.strict = args.strict;
    sources.inject_input_path = args.inject_paths || args.inject_input_path;
    sources.inject_output_path = args.inject_paths || args.inject_output_path;
    let gateway = match nbexec_gateway::GatewayConfig::from_env(args.gateway_url.as_deref()) {
        Ok(g) => g,
        Err(e) => {
            error_line(e);
            return EXIT_USAGE;
        }
    };
    builder =
        builder
            .parameters(sources)
            .kernel(args.kernel.clone())
            .language(args.language.clone())
            .cwd(args.cwd.clone())
            .report_mode(args.report_mode)
            .allow_errors(args.allow_errors)
            .execution_timeout(args.execution_timeout.and_then(secs))
            .total_timeout(args.timeout_minutes.and_then(|m| secs(m * 60.0)))
            .start_timeout(args.start_timeout.and_then(secs).unwrap_or(
                std::time::Duration::from_secs(if gateway.is_some() { 120 } else { 60 }),
            ))
            .gateway(gateway)
            .autosave(secs(args.autosave_seconds))
            .pipeline(args.pipeline)
            .max_output_bytes(
                (args.max_output_mb > 0.0)
                    .then_some((args.max_output_mb * 1024.0 * 1024.0) as usize),
            )
            .tcp(args.tcp)
            .no_overwrite(args.no_overwrite);

    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(nbexec::jobs::default_state_dir);
    if input.as_os_str() == "-" && args.parameters_json.iter().any(|j| j == "-") {
        error_line("-j - and the input notebook cannot both come from standard input");
        return EXIT_USAGE;
    }
    if let Some(url) = &args.notify_url {
        if let Err(e) = nbexec_schedule::notify::check_url(url) {
            error_line(format!("--notify-url: {e}"));
            return EXIT_USAGE;
        }
        if args.no_record {
            error_line("--notify-url sends the finished job: it cannot go with --no-record");
            return EXIT_USAGE;
        }
        builder = builder.notify(Some(nbexec_schedule::notify::Target::from_env(
            url,
            &args.notify_secret_env,
        )));
    }
    if args.report.is_some() && (args.batch.is_some() || args.prepare_only) {
        error_line(
            "--report renders an executed notebook: it does not apply to --batch or --prepare-only",
        );
        return EXIT_USAGE;
    }
    // Like the output, the report's place is checked before any kernel starts.
    if let Some(report) = &args.report
        && let Err(e) = nbexec::check_report(report)
    {
        error_line(&e);
        return e.exit_code();
    }
    if args.detach && !args.prepare_only {
        if args.no_record {
            error_line("--detach needs the job registry: it cannot go with --no-record");
            return EXIT_USAGE;
        }
        if args.parameters_json.iter().any(|j| j == "-") {
            // The detached run starts afresh with no standard input to read.
            error_line(
                "-j - cannot be used with --detach: write the JSON to a file and pass -j @FILE",
            );
            return EXIT_USAGE;
        }
        return detach(&args, builder, &state_dir, secret_env_vars);
    }
    let job = nbexec::JobSpec {
        state_dir,
        exists: args.job_id.is_some(),
        id: args.job_id.clone().unwrap_or_else(nbexec::jobs::new_job_id),
    };
    let job_id = (!args.no_record).then(|| job.id.clone());
    builder = builder
        .job((!args.no_record).then_some(job))
        .cancel_on_signals(true);

    if let Some(batch) = &args.batch {
        return run_batch(&builder, batch, args.jobs);
    }

    if args.prepare_only {
        return match builder.prepare_only() {
            Ok(report) => {
                report.warnings.iter().for_each(warning_line);
                0
            }
            Err(e) => {
                error_line(&e);
                e.exit_code()
            }
        };
    }

    // `--log-output` keeps the progress: a bar steps aside for the cells' text.
    let mut console = match progress::Console::new(
        progress::Progress::choose(args.progress_bar, args.no_progress_bar),
        args.log_output,
        stdout_is_notebook,
        args.stdout_file.as_deref(),
        args.stderr_file.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => {
            error_line(e);
            return EXIT_USAGE;
        }
    };
    let started = std::time::Instant::now();
    let result = builder.run_blocking_with(&mut |event| console.event(event), |w| warning_line(w));
    console.finish();
    // A cell that failed with a secret in its message does not print it.
    let redact = |text: String| builder.redact(&text);
    match result {
        Ok(done) => {
            let mut code = done.outcome.exit_code();
            if let Some(path) = &args.report
                && let Err(e) = write_run_report(&args, &input, &done, &builder, path)
            {
                error_line(e);
                if code == 0 {
                    code = super::EXIT_FAILED;
                }
            }
            if let nbexec::Outcome::CellFailed(failure) = &done.outcome {
                print_traceback(failure, redact);
            }
            // A failed report has said so already; the run's summary is for a failed run.
            if done.outcome.exit_code() != 0 {
                error_line(redact(done.outcome.summary()));
            }
            let written =
                shown_output.or_else(|| done.saved_to.as_ref().map(|p| p.display().to_string()));
            eprintln!(
                "{}",
                summary_line(
                    done.outcome.status_word(),
                    started.elapsed(),
                    written.as_deref(),
                    job_id.as_deref()
                )
            );
            code
        }
        Err(e) => {
            error_line(redact(e.to_string()));
            if let Some(path) = &args.report {
                warning_line(format!(
                    "no report written to {}: the notebook did not run",
                    path.display()
                ));
            }
            e.exit_code()
        }
    }
}

/// `--report FILE`: the executed notebook as saved (secrets redacted) rendered as HTML.
/// The saved file is what the report shows when there is one; otherwise the notebook
/// in memory, with every secret value redacted.
fn write_run_report(
    args: &RunArgs,
    input: &std::path::Path,
    done: &nbexec::RunResult,
    builder: &nbexec::Run,
    path: &std::path::Path,
) -> Result<(), String> {
    let nb = match &done.saved_to {
        Some(saved) if saved.as_os_str() != "-" && !nbexec::is_url(saved) => {
            nbexec::read_notebook_unchecked(saved)
                .map_err(|e| format!("cannot read the executed notebook for the report: {e}"))?
        }
        _ => {
            let mut nb = done.notebook.clone();
            super::render::redact_notebook(&mut nb, &|text: &str| builder.redact(text));
            nb
        }
    };
    let mut html = args.report_html.clone();
    html.no_input |= args.report_mode;
    let title = input
        .file_name()
        .filter(|_| input.as_os_str() != "-")
        .map(|n| n.to_string_lossy().into_owned());
    super::render::write_report_file(&nb, &html.options(title), path)
}

/// The failing cell's traceback as the kernel sent it: coloured on a terminal, plain
/// text in a log.
fn print_traceback(failure: &nbexec::CellError, redact: impl Fn(String) -> String) {
    if failure.traceback.is_empty() {
        return;
    }
    let text = failure.traceback.join("\n");
    // Secrets are redacted in what is printed as in what is saved.
    let text = if progress::stderr_is_terminal() {
        redact(text)
    } else {
        redact(progress::strip_ansi(&text))
    };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", text.trim_end_matches('\n'));
}

/// One line at the end of every run that got to its kernel, as papermill names the
/// input and output notebooks: how it ended, how long it took, where the executed
/// notebook is, and the job to look it up by.
fn summary_line(
    status: &str,
    took: std::time::Duration,
    written: Option<&str>,
    job: Option<&str>,
) -> String {
    let mut line = format!("nbexec: {status} in {:.2} s", took.as_secs_f64());
    match written {
        Some(path) => line.push_str(&format!("; executed notebook written to {path}")),
        None => line.push_str("; executed notebook not written"),
    }
    if let Some(job) = job {
        line.push_str(&format!("; job {job}"));
    }
    line
}

/// Checks the run (or every line of the batch) in the foreground, then starts it
/// in the background as a recorded job and prints the executeNotebook response.
/// A run that can never start fails here, exit 2, and no job is recorded.
fn detach(
    args: &RunArgs,
    builder: nbexec::Run,
    state_dir: &std::path::Path,
    env_remove: Vec<String>,
) -> i32 {
    let input = args.input.clone().unwrap_or_default();
    if input.as_os_str() == "-" {
        error_line("--detach cannot read the notebook from standard input: name a file");
        return EXIT_USAGE;
    }
    let plan = match &args.batch {
        Some(file) => read_batch(file).and_then(|lines| {
            builder
                .check_batch(&lines, file)
                .map_err(|e| (redact_error(&e, &builder), e.exit_code()))
        }),
        None => builder
            .check()
            .map_err(|e| (redact_error(&e, &builder), e.exit_code())),
    };
    let plan = match plan {
        Ok(p) => p,
        Err((message, code)) => {
            error_line(message);
            return code;
        }
    };
    plan.warnings.iter().for_each(warning_line);
    let output = match (&args.output, &args.batch) {
        (Some(o), None) if o != "-" => plan.output.clone(),
        (None, None) if args.in_place => Some(input.clone()),
        _ => None,
    };
    if let Some(code) = nbexec::signals::take_pending_exit_code() {
        // A Ctrl-C (or SIGTERM) while checking: the run is not started.
        error_line("interrupted before the detached run was started; no job was recorded");
        return code;
    }
    let secrets = builder.secrets().to_vec();
    let request = nbexec::jobs::Detach {
        state_dir,
        input: &input,
        inputs: plan.inputs,
        output,
        spec: child_spec(&secrets),
        env_remove,
    };
    match nbexec::jobs::spawn_detached(request) {
        Ok(response) => {
            println!("{response}");
            0
        }
        Err(e) => {
            error_line(&e);
            e.exit_code()
        }
    }
}

fn redact_error(e: &nbexec::Error, builder: &nbexec::Run) -> String {
    builder.redact(&e.to_string())
}

/// The parameter sets of a --batch file, or the error line and exit code.
fn read_batch(file: &std::path::Path) -> Result<Vec<(usize, String)>, (String, i32)> {
    let text = nbexec::read_text(file).map_err(|e| (e.to_string(), EXIT_USAGE))?;
    nbexec::parse_batch_lines(&text).map_err(|e| (format!("{}: {e}", file.display()), EXIT_USAGE))
}

fn run_batch(builder: &nbexec::Run, file: &std::path::Path, jobs: usize) -> i32 {
    let lines = match read_batch(file) {
        Ok(l) => l,
        Err((message, code)) => {
            error_line(message);
            return code;
        }
    };
    let total = lines.len();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error_line(format!("cannot start the async runtime: {e}"));
            return 1;
        }
    };
    let mut finished = 0;
    let summary = runtime.block_on(builder.run_batch(
        lines,
        jobs,
        |r| {
            finished += 1;
            let out = r
                .output
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "-".into());
            eprintln!(
                "[{finished}/{total}] line {} -> {out}: {} ({:.2} s)",
                r.line,
                builder.redact(&r.summary),
                r.duration.as_secs_f64()
            );
        },
        |w| warning_line(w),
    ));
    match summary {
        Ok(summary) => {
            let ok = summary.results.iter().filter(|r| r.exit_code == 0).count();
            let code = summary.exit_code();
            if code != 0 {
                error_line(format!("{} of {total} runs did not succeed", total - ok));
            } else {
                eprintln!("{total} runs succeeded");
            }
            code
        }
        Err(e) => {
            error_line(&e);
            e.exit_code()
        }
    }
}
