//! A scheduled task and its runs, with ArcGIS's field names (portal `tasks` API).

use serde_json::{Map, Value, json};

use crate::cron::{CronError, CronFields, Dialect, Schedule, parse_tz};

/// A task's state (ArcGIS: Active, Paused, Disabled, Completed, Failed; the JSON
/// spells them in lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Active,
    Paused,
    Disabled,
    /// `maxOccurrences` reached or `endDate` passed.
    Completed,
    /// Deactivated after five consecutive failed runs.
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Active => "active",
            TaskState::Paused => "paused",
            TaskState::Disabled => "disabled",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        Some(match s {
            "active" => TaskState::Active,
            "paused" => TaskState::Paused,
            "disabled" => TaskState::Disabled,
            "completed" => TaskState::Completed,
            "failed" => TaskState::Failed,
            _ => return None,
        })
    }
}

/// A run's status (ArcGIS: scheduled, executing, succeeded, failed, skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Scheduled,
    Executing,
    Succeeded,
    Failed,
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Scheduled => "scheduled",
            RunStatus::Executing => "executing",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "scheduled" => RunStatus::Scheduled,
            "executing" => RunStatus::Executing,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "skipped" => RunStatus::Skipped,
            _ => return None,
        })
    }

    pub fn is_live(self) -> bool {
        matches!(self, RunStatus::Scheduled | RunStatus::Executing)
    }
}

/// The only task type nbexec runs.
pub const EXECUTE_NOTEBOOK: &str = "ExecuteNotebook";

/// A scheduled task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// 32 hexadecimal digits, as ArcGIS's.
    pub id: String,
    /// The notebook: a portal item id, or (locally) the notebook's path.
    pub item_id: String,
    pub task_type: String,
    pub title: String,
    pub user_id: String,
    pub dialect: Dialect,
    pub cron: CronFields,
    /// IANA time zone the fields are read in.
    pub time_zone: String,
    /// ArcGIS's `parameters`: `updatePortalItem`, `saveInjectedParameters`,
    /// `notebookParameters` (an object, or a JSON string as ArcGIS sends it).
    pub parameters: Value,
    pub max_occurrences: Option<i64>,
    /// Epoch milliseconds.
    pub start_date: Option<i64>,
    pub end_date: Option<i64>,
    pub created: i64,
    pub updated: i64,
    pub state: TaskState,
    /// When the last run started (epoch ms).
    pub last_start: Option<i64>,
    /// The scheduler's bookmark: the next fire time not yet handled (epoch ms).
    pub next_fire: Option<i64>,
    /// Runs fired (skipped ones do not count toward `maxOccurrences`).
    pub occurrences: i64,
    /// Why the task left the active state, when it did on its own.
    pub state_reason: String,
    /// `--notify-url`: where each run's final job JSON is POSTed.
    pub notify_url: Option<String>,
    /// Failed runs fired before this time (epoch ms) no longer count toward the five
    /// that deactivate the task (set when a failed task is resumed).
    pub failures_since: i64,
}

/// A task that cannot be created as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TaskError(pub String);

impl From<CronError> for TaskError {
    fn from(e: CronError) -> TaskError {
        TaskError(e.0)
    }
}

/// A new task id: 32 lowercase hexadecimal digits.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Task {
    /// The evaluator for this task's fields.
    pub fn schedule(&self) -> Result<Schedule, TaskError> {
        let tz = parse_tz(&self.time_zone)?;
        Ok(Schedule::new(self.dialect, self.cron.clone(), tz)?)
    }

    /// Checks what a store must not hold: a bad expression or zone, a non-positive
    /// `maxOccurrences`, an end before the start, an unknown type.
    pub fn validate(&self) -> Result<(), TaskError> {
        self.schedule()?;
        if self.task_type != EXECUTE_NOTEBOOK {
            return Err(TaskError(format!(
                "task type {:?} is not supported (only {EXECUTE_NOTEBOOK})",
                self.task_type
            )));
        }
        if self.item_id.is_empty() {
            return Err(TaskError("itemId is required".into()));
        }
        if let Some(n) = self.max_occurrences
            && n < 1
        {
            return Err(TaskError(format!(
                "maxOccurrences must be at least 1, got {n}"
            )));
        }
        if let (Some(s), Some(e)) = (self.start_date, self.end_date)
            && e <= s
        {
            return Err(TaskError(format!(
                "endDate ({e}) must be after startDate ({s})"
            )));
        }
        if self.notebook_parameters().is_err() {
            return Err(TaskError(
                "parameters.notebookParameters must be a JSON object (or a string holding one)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The parameters injected into each run's notebook.
    pub fn notebook_parameters(&self) -> Result<Map<String, Value>, TaskError> {
        notebook_parameters(&self.parameters)
    }

    pub fn update_portal_item(&self) -> bool {
        truthy(self.parameters.get("updatePortalItem"))
    }

    pub fn save_injected_parameters(&self) -> bool {
        truthy(self.parameters.get("saveInjectedParameters"))
    }

    /// The seconds between the next two fires after `now_ms` (ArcGIS's
    /// `runIntervalSeconds`), when there are two.
    pub fn run_interval_seconds(&self, now_ms: i64) -> Option<i64> {
        let schedule = self.schedule().ok()?;
        let now = chrono::DateTime::from_timestamp_millis(now_ms)?;
        let a = schedule.next_after(now)?;
        let b = schedule.next_after(a)?;
        Some((b - a).num_seconds())
    }

    /// The task as ArcGIS's `GET …/tasks/<taskId>` shows it, plus nbexec's fields
    /// (`timeZone`, `cronDialect`, `nextFireTime`, `occurrences`, `stateReason`,
    /// `notifyUrl`).
    pub fn to_json(&self, now_ms: i64) -> Value {
        let mut parameters = match &self.parameters {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        // ArcGIS shows notebookParameters as a JSON string.
        if let Some(v) = parameters.get_mut("notebookParameters")
            && !v.is_string()
        {
            *v = Value::String(v.to_string());
        }
        json!({
            "id": self.id,
            "itemId": self.item_id,
            "type": self.task_type,
            "title": self.title,
            "userId": self.user_id,
            "cronSchedule": self.cron.to_json(),
            "runIntervalSeconds": self.run_interval_seconds(now_ms),
            "lastStart": self.last_start,
            "maxOccurrences": self.max_occurrences,
            "parameters": parameters,
            "created": self.created,
            "updated": self.updated,
            "startDate": self.start_date,
            "endDate": self.end_date,
            "active": self.state == TaskState::Active,
            "taskState": self.state.as_str(),
            "timeZone": self.time_zone,
            "cronDialect": self.dialect.as_str(),
            "nextFireTime": self.next_fire,
            "occurrences": self.occurrences,
            "stateReason": self.state_reason,
            "notifyUrl": self.notify_url,
        })
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// `notebookParameters` out of ArcGIS's `parameters`: an object, a JSON string
/// holding one, or absent (no parameters).
pub fn notebook_parameters(parameters: &Value) -> Result<Map<String, Value>, TaskError> {
    let bad = || {
        TaskError(
            "parameters.notebookParameters must be a JSON object (or a string holding one)".into(),
        )
    };
    match parameters.get("notebookParameters") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

/// One run of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRun {
    pub id: String,
    pub task_id: String,
    pub status: RunStatus,
    /// The fire time this run is for (epoch ms).
    pub scheduled: i64,
    pub job_id: Option<String>,
    pub start_time: i64,
    pub end_time: i64,
    pub message: String,
}

impl TaskRun {
    pub fn to_json(&self) -> Value {
        json!({
            "runId": self.id,
            "taskId": self.task_id,
            "status": self.status.as_str(),
            "scheduledTime": self.scheduled,
            "jobId": self.job_id,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "message": self.message,
        })
    }
}
