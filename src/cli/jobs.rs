//! `nbexec jobs`: the ArcGIS `notebooks/jobs` resource, locally.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use nbexec_runner::jobs::{Job, JobError, JobStore};
use serde_json::{Value, json};

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, error_line};

/// How many jobs `nbexec jobs` lists without --all.
const LIST_LIMIT: usize = 50;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: Option<JobsCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// A readable table (the default)
    Text,
    /// Compact JSON
    Json,
    /// Pretty JSON
    Pjson,
}

#[derive(Args, Clone)]
pub struct Common {
    /// Response format (ArcGIS `f`): text (for people, the default), json (compact) or pjson (pretty)
    #[arg(short = 'f', long = "format", value_enum)]
    format: Option<Format>,
    /// Where the job registry lives (default: $NBEXEC_STATE_DIR, $XDG_STATE_HOME/nbexec, ~/.local/state/nbexec)
    #[arg(long = "state-dir", value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ListArgs {
    /// All jobs, not only the 50 newest
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// One job in detail: paths, log, parameters, messages, results, times, status
    Show {
        /// The job's id (`j` and 32 characters), or any unique prefix of it
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Cancel a running job (from any terminal)
    Cancel {
        /// The job's id (`j` and 32 characters), or any unique prefix of it
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Wait for a job to finish and exit with its run's exit code
    Wait {
        /// The job's id (`j` and 32 characters), or any unique prefix of it
        #[arg(value_name = "ID")]
        id: String,
        /// Give up after this many seconds (exit 124)
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<f64>,
        #[command(flatten)]
        common: Common,
    },
    /// Delete finished jobs older than a retention period
    Prune {
        /// e.g. 6h, 30m, 2d, 90s
        #[arg(long = "older-than", value_name = "AGE", default_value = "6h")]
        older_than: String,
        #[command(flatten)]
        common: Common,
    },
}

fn print(format: Option<Format>, value: &Value, text: impl FnOnce()) {
    match format {
        Some(Format::Json) => println!("{value}"),
        Some(Format::Pjson) => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        None | Some(Format::Text) => text(),
    }
}

fn state_dir(common: &Common) -> PathBuf {
    common
        .state_dir
        .clone()
        .unwrap_or_else(nbexec::jobs::default_state_dir)
}

/// The registry for reading: read-only when it cannot be written.
fn reader(common: &Common) -> Result<JobStore, i32> {
    JobStore::open_for_reading(&state_dir(common)).map_err(|e| {
        error_line(e);
        EXIT_USAGE
    })
}

/// The registry for changing it (cancel, prune).
fn writer(common: &Common) -> Result<JobStore, i32> {
    JobStore::open(&state_dir(common)).map_err(|e| {
        error_line(e);
        EXIT_USAGE
    })
}

/// The full id for what the user typed (an id or a unique prefix).
fn resolve(store: &JobStore, id: &str) -> Result<String, i32> {
    store.resolve_id(id).map_err(|e| {
        match e {
            JobError::NotFound(_) => {
                error_line(format!("no such job {id} in {}", store.path().display()))
            }
            e => error_line(e),
        }
        EXIT_USAGE
    })
}

/// Text from the registry (file names, messages), safe for a terminal: control
/// characters are shown escaped, never sent raw.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn when(ms: i64) -> String {
    if ms == 0 {
        return "-".into();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| ms.to_string())
}

pub fn main(args: JobsArgs) -> i32 {
    let code = match args.command {
        None => list(args.list),
        Some(JobsCommand::Show { id, common }) => show(&id, &common),
        Some(JobsCommand::Cancel { id, common }) => cancel(&id, &common),
        Some(JobsCommand::Wait {
            id,
            timeout,
            common,
        }) => wait(&id, timeout, &common),
        Some(JobsCommand::Prune { older_than, common }) => prune(&older_than, &common),
    };
    match code {
        Ok(c) | Err(c) => c,
    }
}

fn list(args: ListArgs) -> Result<i32, i32> {
    let store = reader(&args.common)?;
    let mut jobs = store.list(true).map_err(|e| {
        error_line(e);
        EXIT_FAILED
    })?;
    let total = jobs.len();
    if !args.all {
        jobs.truncate(LIST_LIMIT);
    }
    let cut = (jobs.len() < total)
        .then(|| format!("showing {} of {total} jobs; --all for all", jobs.len()));
    let value =
        json!({"asyncNotebookJobs": jobs.iter().map(|j| j.summary_json()).collect::<Vec<_>>()});
    let text = matches!(args.common.format, None | Some(Format::Text));
    print(args.common.format, &value, || {
        if jobs.is_empty() {
            println!("no jobs");
            return;
        }
        println!(
            "{:<34}  {:<10}  {:<19}  {:<19}  NOTEBOOK",
            "JOB", "STATUS", "STARTED", "ENDED"
        );
        for j in &jobs {
            let item = j.inputs.get("itemId").and_then(Value::as_str).unwrap_or("");
            println!(
                "{:<34}  {:<10}  {:<19}  {:<19}  {}",
                j.id,
                j.status.as_str(),
                when(j.start_time),
                when(j.end_time),
                esc(item)
            );
        }
    });
    if let Some(cut) = cut {
        // The JSON stays the ArcGIS shape; the note goes beside it.
        if text {
            println!("{cut}");
        } else {
            eprintln!("note: {cut}");
        }
    }
    Ok(EXIT_OK)
}

fn show(id: &str, common: &Common) -> Result<i32, i32> {
    let store = reader(common)?;
    let id = resolve(&store, id)?;
    let job = match store.get(&id) {
        Ok(Some(job)) => job,
        Ok(None) => {
            error_line(format!("no such job {id} in {}", store.path().display()));
            return Err(EXIT_USAGE);
        }
        Err(e) => {
            error_line(e);
            return Err(EXIT_FAILED);
        }
    };
    let log = nbexec_runner::jobs::log_path(&state_dir(common), &job.id);
    let log = log.exists().then_some(log);
    let mut value = job.detail_json();
    if let Some(log) = &log {
        value["logFile"] = json!(log.to_string_lossy());
    }
    print(common.format, &value, || show_text(&job, log.as_deref()));
    Ok(EXIT_OK)
}

fn show_text(job: &Job, log: Option<&Path>) {
    let item = job
        .inputs
        .get("itemId")
        .and_then(Value::as_str)
        .unwrap_or("");
    println!("job        {}", job.id);
    println!("status     {}", job.status.as_str());
    println!("notebook   {}", esc(item));
    if let Some(out) = job.results.get("outputNotebook").and_then(Value::as_str) {
        println!("output     {}", esc(out));
    }
    if let Some(log) = log {
        println!("log        {}", esc(&log.display().to_string()));
    }
    println!("submitted  {}", when(job.submitted));
    println!("started    {}", when(job.start_time));
    println!("ended      {}", when(job.end_time));
    if let Some(code) = job.exit_code {
        println!("exit code  {code}");
    }
    // Recorded parameters already have secrets redacted.
    if let Some(params) = job
        .inputs
        .get("notebookParameters")
        .and_then(Value::as_object)
        .filter(|p| !p.is_empty())
    {
        println!("parameters");
        for (name, value) in params {
            println!("  {} = {}", esc(name), esc(&value.to_string()));
        }
    }
    for m in &job.messages {
        println!("message    {}", esc(m));
    }
}

/// The ArcGIS answer is JSON whatever the format; pretty only when asked.
fn print_response(format: Option<Format>, value: &Value) {
    match format {
        Some(Format::Pjson) => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        _ => println!("{value}"),
    }
}

fn cancel(id: &str, common: &Common) -> Result<i32, i32> {
    let store = writer(common)?;
    let full = match store.resolve_id(id) {
        Ok(full) => full,
        Err(JobError::NotFound(_)) => {
            print_response(
                common.format,
                &json!({"status": "error", "messages": [format!("No such job :[{id}]")], "code": 404}),
            );
            error_line(format!("no such job {id} in {}", store.path().display()));
            return Err(EXIT_USAGE);
        }
        Err(e) => {
            error_line(e);
            return Err(EXIT_USAGE);
        }
    };
    let ok = store.request_cancel(&full).unwrap_or(false);
    let value = if ok {
        json!({"status": "success"})
    } else {
        let mut v = json!({"status": "error", "messages": [format!("Unable to cancel job :[{full}]")], "code": 500});
        if let Ok(Some(job)) = store.get(&full) {
            v["jobStatus"] = json!(job.status.as_str());
        }
        v
    };
    print_response(common.format, &value);
    Ok(if ok { EXIT_OK } else { EXIT_FAILED })
}

fn wait(id: &str, timeout: Option<f64>, common: &Common) -> Result<i32, i32> {
    let store = reader(common)?;
    let id = resolve(&store, id)?;
    // Keep the job from being pruned while it is waited for (nothing to keep in a
    // read-only registry: nothing prunes there).
    let registered = !store.is_read_only() && store.wait_for(&id).is_ok();
    let code = wait_loop(&store, &id, timeout, common);
    if registered {
        let _ = store.unwait(&id);
    }
    code
}

fn wait_loop(
    store: &JobStore,
    id: &str,
    timeout: Option<f64>,
    common: &Common,
) -> Result<i32, i32> {
    let deadline = timeout
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(|t| Instant::now() + Duration::from_secs_f64(t));
    let mut last: Option<Job> = None;
    loop {
        match store.get(id) {
            Ok(Some(job)) if job.status.is_finished() => {
                print(common.format, &job.detail_json(), || {
                    println!("{} {}", job.id, job.status.as_str())
                });
                let code = job
                    .exit_code
                    .unwrap_or(if job.status.as_str() == "COMPLETED" {
                        0
                    } else {
                        EXIT_FAILED
                    });
                if job.status.as_str() != "COMPLETED" || code != 0 {
                    error_line(format!(
                        "job {} {}: {}",
                        job.id,
                        job.status.as_str().to_lowercase(),
                        esc(&failure_reason(&job))
                    ));
                }
                return Ok(code);
            }
            Ok(Some(job)) => last = Some(job),
            Ok(None) => {
                match last {
                    // Pruned by someone who did not know of this waiter.
                    Some(job) => error_line(format!(
                        "job {id} was pruned before its end could be read (last seen {})",
                        job.status.as_str()
                    )),
                    None => error_line(format!("no such job {id} in {}", store.path().display())),
                }
                return Err(EXIT_USAGE);
            }
            Err(e) => {
                error_line(e);
                return Err(EXIT_FAILED);
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            error_line(format!("job {id} did not finish in time"));
            return Err(124);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Why a job did not succeed: its failing cell, else its last message.
fn failure_reason(job: &Job) -> String {
    let cell = &job.results["failedCell"];
    if let Some(ename) = cell.get("ename").and_then(Value::as_str) {
        let evalue = cell.get("evalue").and_then(Value::as_str).unwrap_or("");
        let index = cell
            .get("cellIndex")
            .and_then(Value::as_i64)
            .map(|i| format!(" in cell {i}"))
            .unwrap_or_default();
        return format!("{ename}: {evalue}{index}");
    }
    job.messages
        .last()
        .cloned()
        .unwrap_or_else(|| "no reason recorded".into())
}

fn prune(older_than: &str, common: &Common) -> Result<i32, i32> {
    let Some(age) = nbexec::jobs::parse_age(older_than) else {
        error_line(format!(
            "--older-than {older_than:?}: expected a number with s, m, h or d (e.g. 6h)"
        ));
        return Err(EXIT_USAGE);
    };
    let store = writer(common)?;
    match store.prune(age) {
        Ok(n) => {
            print(
                common.format,
                &json!({"status": "success", "pruned": n}),
                || println!("pruned {n} job(s)"),
            );
            Ok(EXIT_OK)
        }
        Err(e) => {
            error_line(e);
            Err(EXIT_FAILED)
        }
    }
}
