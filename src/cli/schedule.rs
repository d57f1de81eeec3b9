//! `nbexec schedule`: scheduled notebook tasks (ArcGIS's portal `tasks`), stored in
//! the state directory; `nbexec serve` runs them. Every subcommand works with no
//! server running.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use nbexec_schedule::cron::{CronFields, Dialect, Schedule, parse_tz};
use nbexec_schedule::{ScheduleStore, Scheduler, SystemClock, Task, TaskState};
use serde_json::{Map, Value, json};

use super::jobs::Format;

/// `println!` that ignores a closed stdout (`nbexec schedule list | head`).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
use super::{EXIT_OK, EXIT_USAGE, error_line};
use nbexec_runner::jobs::now_ms;

#[derive(Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    command: ScheduleCommand,
}

#[derive(Args, Clone)]
struct Common {
    /// Response format: text (for people, the default), json (compact) or pjson (pretty)
    #[arg(short = 'f', long = "format", value_enum)]
    format: Option<Format>,
    /// Where tasks live (default: $NBEXEC_STATE_DIR, $XDG_STATE_HOME/nbexec, ~/.local/state/nbexec)
    #[arg(long = "state-dir", value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Args)]
struct AddArgs {
    /// The notebook to run: a path (added to the item store) or an item's id
    #[arg(value_name = "NOTEBOOK")]
    notebook: String,
    /// The item store (default: <state dir>/items, where `nbexec serve` looks)
    #[arg(long, value_name = "DIR")]
    items: Option<PathBuf>,
    /// A POSIX cron expression: minute hour day-of-month month day-of-week (0 or 7 = Sunday); a sixth, leading field is seconds
    #[arg(
        long,
        value_name = "EXPR",
        conflicts_with = "quartz",
        required_unless_present = "quartz"
    )]
    cron: Option<String>,
    /// ArcGIS's Quartz fields as one string: minute hour dayOfMonth month dayOfWeek (1 = Sunday; ? L W #); a sixth, leading field is seconds
    #[arg(long, value_name = "EXPR")]
    quartz: Option<String>,
    /// The time zone the expression is read in (an IANA name; default UTC)
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    tz: String,
    /// A parameter, its value typed as papermill does (True/False/None, int, float, else string)
    #[arg(short = 'p', long = "parameters", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append, allow_hyphen_values = true)]
    parameters: Vec<String>,
    /// A parameter whose value is always a string
    #[arg(short = 'r', long = "parameters-raw", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append, allow_hyphen_values = true)]
    parameters_raw: Vec<String>,
    /// Parameters as a JSON object (ArcGIS `notebookParameters`)
    #[arg(short = 'j', long = "parameters-json", value_name = "JSON", action = clap::ArgAction::Append)]
    parameters_json: Vec<String>,
    /// The task's title (default: the notebook's file name)
    #[arg(long, value_name = "TITLE")]
    title: Option<String>,
    /// Stop after this many runs
    #[arg(long = "max-occurrences", value_name = "N")]
    max_occurrences: Option<i64>,
    /// No run before this time: RFC 3339, YYYY-MM-DD[THH:MM[:SS]] in --tz, or epoch milliseconds
    #[arg(long, value_name = "WHEN")]
    start: Option<String>,
    /// No run after this time (same forms as --start)
    #[arg(long, value_name = "WHEN")]
    end: Option<String>,
    /// Each run writes the executed notebook back to the item (ArcGIS `updatePortalItem`)
    #[arg(long = "update-item")]
    update_item: bool,
    /// With --update-item, keep the injected parameters cell in the saved notebook
    #[arg(long = "save-injected-parameters")]
    save_injected_parameters: bool,
    /// POST each run's final job JSON here (signed, see `nbexec run --notify-url`)
    #[arg(long = "notify-url", value_name = "URL")]
    notify_url: Option<String>,
    /// The task's owner (ArcGIS `userId`; default: $USER)
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// Schedule a notebook: --cron (POSIX) or --quartz (ArcGIS fields), in --tz
    Add(Box<AddArgs>),
    /// List the tasks
    List {
        #[command(flatten)]
        common: Common,
    },
    /// One task in detail, with its recent runs
    Show {
        /// The task's id, or any unique prefix of it
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Pause a task: it runs nothing until resumed
    Pause {
        /// The task's id, or any unique prefix of it
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Resume a paused, completed or failed task from now (missed fires are not run)
    Resume {
        /// The task's id, or any unique prefix of it
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Delete a task and its run history
    Rm {
        /// The task's id, or any unique prefix of it
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

pub fn main(args: ScheduleArgs) -> i32 {
    match run(args) {
        Ok(()) => EXIT_OK,
        Err(message) => {
            error_line(message);
            EXIT_USAGE
        }
    }
}

fn open(common: &Common) -> Result<ScheduleStore, String> {
    let dir = common
        .state_dir
        .clone()
        .unwrap_or_else(nbexec::jobs::default_state_dir);
    ScheduleStore::open(&dir).map_err(|e| e.to_string())
}

fn print(format: Option<Format>, value: &Value, text: impl FnOnce()) {
    match format {
        Some(Format::Json) => out!("{value}"),
        Some(Format::Pjson) => out!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        None | Some(Format::Text) => text(),
    }
}

/// `ms` as a time in `zone` (`2026-12-01 06:00:00 CET`).
fn local(ms: i64, zone: &str) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return ms.to_string();
    };
    match parse_tz(zone) {
        Ok(tz) => t
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        Err(_) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

fn run(args: ScheduleArgs) -> Result<(), String> {
    let scheduler = Scheduler::new(SystemClock);
    match args.command {
        ScheduleCommand::Add(add) => {
            let store = open(&add.common)?;
            let task = build_task(&add)?;
            let task = scheduler.create(&store, task).map_err(|e| e.to_string())?;
            let json = task.to_json(now_ms());
            print(add.common.format, &json, || {
                out!("task {} scheduled: {}", task.id, describe(&task));
                match task.next_fire {
                    Some(n) => out!("next run: {}", local(n, &task.time_zone)),
                    None => out!("next run: none (the end date comes first)"),
                }
                out!(
                    "runs happen while `nbexec serve` is running (state directory {})",
                    store.path().parent().unwrap_or(Path::new("")).display()
                );
            });
        }
        ScheduleCommand::List { common } => {
            let store = open(&common)?;
            let tasks = store.list_tasks(None).map_err(|e| e.to_string())?;
            let now = now_ms();
            let json = json!({
                "tasks": tasks.iter().map(|t| t.to_json(now)).collect::<Vec<_>>(),
                "nextStart": -1,
            });
            print(common.format, &json, || {
                if tasks.is_empty() {
                    out!("no tasks");
                }
                for t in &tasks {
                    let next = t
                        .next_fire
                        .map(|n| local(n, &t.time_zone))
                        .unwrap_or_else(|| "-".into());
                    out!(
                        "{}  {:<9}  {:<28}  next {}  {}",
                        t.id,
                        t.state.as_str(),
                        format!("{} ({})", t.cron.expression(), t.dialect.as_str()),
                        next,
                        t.title
                    );
                }
            });
        }
        ScheduleCommand::Show { id, common } => {
            let store = open(&common)?;
            let task = store.resolve_task(&id).map_err(|e| e.to_string())?;
            let runs = store.runs(&task.id).map_err(|e| e.to_string())?;
            let mut json = task.to_json(now_ms());
            json["runs"] = Value::from(runs.iter().map(|r| r.to_json()).collect::<Vec<_>>());
            print(common.format, &json, || {
                out!("task {}  {}", task.id, task.title);
                out!("notebook: {}", task.item_id);
                out!("schedule: {}", describe(&task));
                let state = if task.state_reason.is_empty() {
                    task.state.as_str().to_owned()
                } else {
                    format!("{} ({})", task.state.as_str(), task.state_reason)
                };
                out!("state: {state}");
                if let Some(n) = task.next_fire {
                    out!("next run: {}", local(n, &task.time_zone));
                }
                let params = task.notebook_parameters().unwrap_or_default();
                if !params.is_empty() {
                    out!("parameters: {}", Value::Object(params));
                }
                out!(
                    "runs: {}{}",
                    task.occurrences,
                    task.max_occurrences
                        .map(|m| format!(" of {m}"))
                        .unwrap_or_default()
                );
                for r in &runs {
                    out!(
                        "  {}  {:<9}  {}  {}",
                        local(r.scheduled, &task.time_zone),
                        r.status.as_str(),
                        r.job_id.as_deref().unwrap_or("-"),
                        r.message
                    );
                }
            });
        }
        ScheduleCommand::Pause { id, common } => {
            let store = open(&common)?;
            let task = store.resolve_task(&id).map_err(|e| e.to_string())?;
            let task = scheduler
                .pause(&store, &task.id, TaskState::Paused)
                .map_err(|e| e.to_string())?;
            print(common.format, &task.to_json(now_ms()), || {
                out!("task {} paused", task.id)
            });
        }
        ScheduleCommand::Resume { id, common } => {
            let store = open(&common)?;
            let task = store.resolve_task(&id).map_err(|e| e.to_string())?;
            let task = scheduler
                .resume(&store, &task.id)
                .map_err(|e| e.to_string())?;
            print(common.format, &task.to_json(now_ms()), || {
                out!("task {} active: {}", task.id, describe(&task));
                if let Some(n) = task.next_fire {
                    out!("next run: {}", local(n, &task.time_zone));
                }
            });
        }
        ScheduleCommand::Rm { id, common } => {
            let store = open(&common)?;
            let task = store.resolve_task(&id).map_err(|e| e.to_string())?;
            store.delete_task(&task.id).map_err(|e| e.to_string())?;
            print(
                common.format,
                &json!({"success": true, "id": task.id}),
                || out!("task {} deleted", task.id),
            );
        }
    }
    Ok(())
}

/// `"0 6 * * 1-5" (POSIX cron) in Europe/Berlin`, saying when the zone is the default.
fn describe(task: &Task) -> String {
    let dialect = match task.dialect {
        Dialect::Posix => "POSIX cron",
        Dialect::Quartz => "ArcGIS Quartz fields",
    };
    let zone = if task.time_zone == "UTC" {
        "UTC (the default time zone; --tz to change)".to_owned()
    } else {
        task.time_zone.clone()
    };
    format!("\"{}\" ({dialect}) in {zone}", task.cron.expression())
}

/// `--start`/`--end`: RFC 3339, a local date-time in `zone`, or epoch milliseconds.
fn parse_when(text: &str, zone: &str, what: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "{what} {text:?}: expected RFC 3339 (2026-12-01T06:00:00Z), YYYY-MM-DD[THH:MM[:SS]] \
             in the task's time zone, or epoch milliseconds"
        )
    };
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let tz = parse_tz(zone).map_err(|e| e.to_string())?;
    let naive = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .ok_or_else(bad)?;
    use chrono::TimeZone as _;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| format!("{what} {text:?} does not exist in {zone} (a daylight saving gap)"))
}

fn build_task(add: &AddArgs) -> Result<Task, String> {
    // The notebook: a path (added to the item store once the task checks out), or
    // the id of an item already there.
    let path = Path::new(&add.notebook);
    let is_file = path.is_file();
    let items = items_store(add)?;
    if !is_file {
        let looks_like_id =
            add.notebook.len() == 32 && add.notebook.chars().all(|c| c.is_ascii_hexdigit());
        if !looks_like_id {
            return Err(format!(
                "{}: no such notebook (give a notebook path or the id of an item: `nbexec items list`)",
                add.notebook
            ));
        }
        items
            .get(&add.notebook)
            .map_err(|e| format!("item {}: {e}", add.notebook))?;
    }
    let (dialect, expr) = match (&add.cron, &add.quartz) {
        (Some(c), None) => (Dialect::Posix, c),
        (None, Some(q)) => (Dialect::Quartz, q),
        _ => return Err("give one of --cron (POSIX) or --quartz (ArcGIS fields)".into()),
    };
    let tz = parse_tz(&add.tz).map_err(|e| e.to_string())?;
    let fields = CronFields::split(expr).map_err(|e| e.to_string())?;
    Schedule::new(dialect, fields.clone(), tz).map_err(|e| e.to_string())?;

    // Parameters, typed as `nbexec run` types them.
    let mut sources = nbexec_params::ParameterSources::new();
    for j in &add.parameters_json {
        sources.json(j.clone());
    }
    for pair in add.parameters.chunks(2) {
        if let [n, v] = pair {
            sources.param(n.clone(), v.clone());
        }
    }
    for pair in add.parameters_raw.chunks(2) {
        if let [n, v] = pair {
            sources.raw(n.clone(), v.clone());
        }
    }
    let (params, _warnings) = sources.build().map_err(|e| e.to_string())?;
    let notebook_parameters = match params.to_json() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let parameters = json!({
        "updatePortalItem": add.update_item,
        "saveInjectedParameters": add.save_injected_parameters,
        "notebookParameters": notebook_parameters,
    });
    if let Some(url) = &add.notify_url {
        nbexec_schedule::notify::check_url(url).map_err(|e| format!("--notify-url: {e}"))?;
    }
    let title = add.title.clone().unwrap_or_else(|| {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| add.notebook.clone())
    });
    let mut task = Task {
        id: nbexec_schedule::task::new_id(),
        item_id: add.notebook.clone(),
        task_type: nbexec_schedule::task::EXECUTE_NOTEBOOK.into(),
        title,
        user_id: add
            .user
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "nbexec".into()),
        dialect,
        cron: fields,
        time_zone: add.tz.clone(),
        parameters,
        max_occurrences: add.max_occurrences,
        start_date: add
            .start
            .as_deref()
            .map(|s| parse_when(s, &add.tz, "--start"))
            .transpose()?,
        end_date: add
            .end
            .as_deref()
            .map(|s| parse_when(s, &add.tz, "--end"))
            .transpose()?,
        created: 0,
        updated: 0,
        state: TaskState::Active,
        last_start: None,
        next_fire: None,
        occurrences: 0,
        state_reason: String::new(),
        notify_url: add.notify_url.clone(),
        failures_since: 0,
    };
    task.validate().map_err(|e| e.to_string())?;
    if is_file {
        let item = items
            .add(path, add.title.as_deref(), &task.user_id)
            .map_err(|e| e.to_string())?;
        eprintln!(
            "item {} added to the item store from {}",
            item.id,
            path.display()
        );
        task.item_id = item.id;
    }
    Ok(task)
}

/// The item store: --items, else `<state dir>/items` (where `nbexec serve` looks).
fn items_store(add: &AddArgs) -> Result<nbexec_serve::ItemStore, String> {
    let dir = add.items.clone().unwrap_or_else(|| {
        add.common
            .state_dir
            .clone()
            .unwrap_or_else(nbexec::jobs::default_state_dir)
            .join("items")
    });
    nbexec_serve::ItemStore::open(&dir).map_err(|e| e.to_string())
}
