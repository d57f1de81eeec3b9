//! `nbexec jobs`: the ArcGIS `notebooks/jobs` resource, locally.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, error_line};

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
    /// Compact JSON
    Json,
    /// Pretty JSON
    Pjson,
}

#[derive(Args, Clone)]
pub struct Common {
    /// Response format (ArcGIS `f`): json (compact) or pjson (pretty); text for people without it
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
    /// One job in detail: inputs, messages, results, times, status
    Show {
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Cancel a running job (from any terminal)
    Cancel {
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Wait for a job to finish and exit with its run's exit code
    Wait {
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
        None => text(),
    }
}

fn state_dir(common: &Common) -> PathBuf {
    common
        .state_dir
        .clone()
        .unwrap_or_else(nbexec::jobs::default_state_dir)
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
    match args.command {
        None => list(args.list),
        Some(JobsCommand::Show { id, common }) => show(&id, &common),
        Some(JobsCommand::Cancel { id, common }) => cancel(&id, &common),
        Some(JobsCommand::Wait {
            id,
            timeout,
            common,
        }) => wait(&id, timeout, &common),
        Some(JobsCommand::Prune { older_than, common }) => prune(&older_than, &common),
    }
}

fn list(args: ListArgs) -> i32 {
    let store = match nbexec::jobs::registry(&state_dir(&args.common)) {
        Ok(s) => s,
        Err(e) => {
            error_line(e);
            return EXIT_USAGE;
        }
    };
    let mut jobs = match store.list(true) {
        Ok(j) => j,
        Err(e) => {
            error_line(e);
            return EXIT_FAILED;
        }
    };
    if !args.all {
        jobs.truncate(50);
    }
    let value =
        json!({"asyncNotebookJobs": jobs.iter().map(|j| j.summary_json()).collect::<Vec<_>>()});
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
                "{:<34}  {:<10}  {:<19}  {:<19}  {item}",
                j.id,
                j.status.as_str(),
                when(j.start_time),
                when(j.end_time)
            );
        }
    });
    EXIT_OK
}

fn show(id: &str, common: &Common) -> i32 {
    let store = match nbexec::jobs::registry(&state_dir(common)) {
        Ok(s) => s,
        Err(e) => {
            error_line(e);
            return EXIT_USAGE;
        }
    };
    match store.get(id) {
        Ok(Some(job)) => {
            let value = job.detail_json();
            print(common.format, &value, || {
                println!("job       {}", job.id);
                println!("status    {}", job.status.as_str());
                println!(
                    "notebook  {}",
                    job.inputs
                        .get("itemId")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                );
                println!("started   {}", when(job.start_time));
                println!("ended     {}", when(job.end_time));
                if let Some(out) = job.results.get("outputNotebook").and_then(Value::as_str) {
                    println!("output    {out}");
                }
                if let Some(code) = job.exit_code {
                    println!("exit code {code}");
                }
                for m in &job.messages {
                    println!("message   {m}");
                }
            });
            EXIT_OK
        }
        Ok(None) => {
            error_line(format!("no job {id} in {}", store.path().display()));
            EXIT_USAGE
        }
        Err(e) => {
            error_line(e);
            EXIT_FAILED
        }
    }
}

fn cancel(id: &str, common: &Common) -> i32 {
    let store = match nbexec::jobs::registry(&state_dir(common)) {
        Ok(s) => s,
        Err(e) => {
            error_line(e);
            return EXIT_USAGE;
        }
    };
    let ok = store.request_cancel(id).unwrap_or(false);
    let value = if ok {
        json!({"status": "success"})
    } else {
        json!({"status": "error", "messages": [format!("Unable to cancel job :[{id}]")], "code": 500})
    };
    // The ArcGIS answer is JSON whatever the format; pretty only when asked.
    match common.format {
        Some(Format::Pjson) => println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        ),
        _ => println!("{value}"),
    }
    if ok { EXIT_OK } else { EXIT_FAILED }
}

fn wait(id: &str, timeout: Option<f64>, common: &Common) -> i32 {
    let store = match nbexec::jobs::registry(&state_dir(common)) {
        Ok(s) => s,
        Err(e) => {
            error_line(e);
            return EXIT_USAGE;
        }
    };
    let deadline = timeout
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(|t| Instant::now() + Duration::from_secs_f64(t));
    loop {
        match store.get(id) {
            Ok(Some(job)) if job.status.is_finished() => {
                print(common.format, &job.detail_json(), || {
                    println!("{} {}", job.id, job.status.as_str())
                });
                return job
                    .exit_code
                    .unwrap_or(if job.status.as_str() == "COMPLETED" {
                        0
                    } else {
                        EXIT_FAILED
                    });
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                error_line(format!("no job {id} in {}", store.path().display()));
                return EXIT_USAGE;
            }
            Err(e) => {
                error_line(e);
                return EXIT_FAILED;
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            error_line(format!("job {id} did not finish in time"));
            return 124;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn prune(older_than: &str, common: &Common) -> i32 {
    let Some(age) = nbexec::jobs::parse_age(older_than) else {
        error_line(format!(
            "--older-than {older_than:?}: expected a number with s, m, h or d (e.g. 6h)"
        ));
        return EXIT_USAGE;
    };
    let store = match nbexec::jobs::registry(&state_dir(common)) {
        Ok(s) => s,
        Err(e) => {
            error_line(e);
            return EXIT_USAGE;
        }
    };
    match store.prune(age) {
        Ok(n) => {
            print(
                common.format,
                &json!({"status": "success", "pruned": n}),
                || println!("pruned {n} job(s)"),
            );
            EXIT_OK
        }
        Err(e) => {
            error_line(e);
            EXIT_FAILED
        }
    }
}
