//! `nbexec run`: papermill's command line, plus ArcGIS `executeNotebook` options.

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_USAGE, error_line, warning_line};
use crate::cli::progress;

#[derive(Args, Debug)]
#[command(
    after_help = "Parameters are merged in this order, later wins: -b, -f, -y, -j, -p, -r.\n\
Exit codes: 0 success, 1 a cell failed, 2 usage or input error, 124 timeout,\n\
130 cancelled (SIGINT or `nbexec jobs cancel`), 138 kernel died, 143 SIGTERM."
)]
pub struct RunArgs {
    /// The notebook to run
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    /// Where to write the executed notebook (`-` for stdout); `{name}` is filled from parameters
    #[arg(value_name = "OUTPUT")]
    output: Option<String>,

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
    #[arg(short = 'j', long = "parameters-json", alias = "notebook-parameters", value_name = "JSON", action = clap::ArgAction::Append)]
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
    /// Run the notebook (the default; papermill compatibility)
    #[arg(long = "prepare-execute", hide = true)]
    prepare_execute: bool,
    /// Hide code inputs in the output notebook
    #[arg(
        long = "report-mode",
        alias = "report_mode",
        overrides_with = "no_report_mode"
    )]
    report_mode: bool,
    /// Show code inputs (the default; papermill compatibility)
    #[arg(long = "no-report-mode", hide = true)]
    no_report_mode: bool,
    /// Print the parameters INPUT takes and exit (as `nbexec inspect`; papermill --help-notebook)
    #[arg(long = "help-notebook")]
    help_notebook: bool,
    /// Also write the cells' stdout to FILE (papermill --stdout-file)
    #[arg(long = "stdout-file", value_name = "FILE")]
    stdout_file: Option<PathBuf>,
    /// Also write the cells' stderr to FILE (papermill --stderr-file)
    #[arg(long = "stderr-file", value_name = "FILE")]
    stderr_file: Option<PathBuf>,
    /// papermill compatibility: only `nbclient` (nbexec's own engine stands in for it)
    #[arg(long, value_name = "NAME", hide = true)]
    engine: Option<String>,
    /// papermill compatibility: accepted and ignored (errors always print one line)
    #[arg(long = "log-level", value_name = "LEVEL", hide = true)]
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
    /// Seconds the kernel may take to start
    #[arg(
        long = "start-timeout",
        alias = "start_timeout",
        value_name = "SECONDS",
        default_value_t = 60.0
    )]
    start_timeout: f64,
    /// Print the cells' stdout and stderr as they come
    #[arg(
        long = "log-output",
        alias = "log_output",
        overrides_with = "no_log_output"
    )]
    log_output: bool,
    /// Do not print the cells' output (the default; papermill compatibility)
    #[arg(long = "no-log-output", hide = true)]
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
    /// notebook's metadata, its injected cell or the job record
    #[arg(long = "secret", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append, allow_hyphen_values = true)]
    secret: Vec<String>,
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
    /// Run as this already-recorded job (used by --detach)
    #[arg(long = "job-id", hide = true, value_name = "ID")]
    job_id: Option<String>,
    /// papermill compatibility: accepted and ignored (nbexec never rewrites per cell)
    #[arg(
        long = "request-save-on-cell-execute",
        alias = "request_save_on_cell_execute",
        hide = true
    )]
    _request_save: bool,
    /// papermill compatibility: accepted and ignored
    #[arg(
        long = "no-request-save-on-cell-execute",
        alias = "no_request_save_on_cell_execute",
        hide = true
    )]
    _no_request_save: bool,
    /// papermill compatibility: accepted and ignored (see --autosave-seconds)
    #[arg(
        long = "autosave-cell-every",
        alias = "autosave_cell_every",
        hide = true,
        value_name = "N"
    )]
    _autosave_cell_every: Option<u64>,
}

fn secs(s: f64) -> Option<std::time::Duration> {
    (s.is_finite() && s > 0.0).then(|| std::time::Duration::from_secs_f64(s))
}

pub fn main(args: RunArgs) -> i32 {
    if args.help_notebook {
        return super::inspect::show(
            &args.input,
            args.kernel.as_deref(),
            args.language.as_deref(),
            false,
        );
    }
    if let Some(engine) = args.engine.as_deref().filter(|e| *e != "nbclient") {
        error_line(format!(
            "unknown engine {engine:?}: nbexec runs notebooks itself (papermill's nbclient engine)"
        ));
        return EXIT_USAGE;
    }
    let mut builder = nbexec::Run::new(&args.input);
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
    sources.secrets = args
        .secret
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    sources.declared_types.clone_from(&args.param_type);
    sources
        .featureset_format
        .clone_from(&args.featureset_format);
    sources.strict = args.strict;
    sources.inject_input_path = args.inject_paths || args.inject_input_path;
    sources.inject_output_path = args.inject_paths || args.inject_output_path;
    builder = builder
        .parameters(sources)
        .kernel(args.kernel.clone())
        .language(args.language.clone())
        .cwd(args.cwd.clone())
        .report_mode(args.report_mode)
        .allow_errors(args.allow_errors)
        .execution_timeout(args.execution_timeout.and_then(secs))
        .total_timeout(args.timeout_minutes.and_then(|m| secs(m * 60.0)))
        .start_timeout(secs(args.start_timeout).unwrap_or(std::time::Duration::from_secs(60)))
        .autosave(secs(args.autosave_seconds))
        .pipeline(args.pipeline)
        .max_output_bytes(
            (args.max_output_mb > 0.0).then_some((args.max_output_mb * 1024.0 * 1024.0) as usize),
        )
        .tcp(args.tcp);

    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(nbexec::jobs::default_state_dir);
    if args.input.as_os_str() == "-" && args.parameters_json.iter().any(|j| j == "-") {
        error_line("-j - and the input notebook cannot both come from standard input");
        return EXIT_USAGE;
    }
    if args.detach && !args.prepare_only {
        if args.parameters_json.iter().any(|j| j == "-") {
            // The detached run starts afresh with no standard input to read.
            error_line(
                "-j - cannot be used with --detach: write the JSON to a file and pass -j @FILE",
            );
            return EXIT_USAGE;
        }
        return detach(&args, &state_dir);
    }
    let job = nbexec::JobSpec {
        state_dir,
        exists: args.job_id.is_some(),
        id: args.job_id.clone().unwrap_or_else(nbexec::jobs::new_job_id),
    };
    builder = builder.job(Some(job)).cancel_on_signals(true);

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

    let show_bar = !args.no_progress_bar
        && (args.progress_bar || progress::stderr_is_terminal())
        && !args.log_output;
    let mut console = match progress::Console::new(
        show_bar,
        args.log_output,
        args.stdout_file.as_deref(),
        args.stderr_file.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => {
            error_line(e);
            return EXIT_USAGE;
        }
    };
    let result = builder.run_blocking_with(&mut |event| console.event(event), |w| warning_line(w));
    console.finish();
    match result {
        Ok(done) => {
            let code = done.outcome.exit_code();
            if code != 0 {
                error_line(done.outcome.summary());
            }
            code
        }
        Err(e) => {
            error_line(&e);
            e.exit_code()
        }
    }
}

/// Starts this same command in the background as a recorded job, and prints the
/// executeNotebook response at once.
fn detach(args: &RunArgs, state_dir: &std::path::Path) -> i32 {
    match nbexec::jobs::spawn_detached(state_dir, &args.input, args.output.as_deref()) {
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

fn run_batch(builder: &nbexec::Run, file: &std::path::Path, jobs: usize) -> i32 {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            error_line(format!("cannot read {}: {e}", file.display()));
            return EXIT_USAGE;
        }
    };
    let lines = match nbexec::parse_batch_lines(&text) {
        Ok(l) => l,
        Err(e) => {
            error_line(format!("{}: {e}", file.display()));
            return EXIT_USAGE;
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
                r.summary,
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
