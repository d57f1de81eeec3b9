//! Tasks, their runs, webhook receivers and seen deliveries, in SQLite
//! (`schedule.sqlite3` in the state directory, beside the job registry; WAL mode,
//! private to its user like the registry, shared by `nbexec schedule` and
//! `nbexec serve`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::cron::{CronFields, Dialect};
use crate::task::{RunStatus, Task, TaskRun, TaskState};
use crate::webhook::Receiver;
use nbexec_runner::jobs::now_ms;

/// The database file in the state directory.
pub const DB_NAME: &str = "schedule.sqlite3";

/// How many runs of a task are kept (ArcGIS shows the last 30).
pub const RUNS_KEPT: i64 = 30;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("schedule store {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no such task {0}")]
    NoTask(String),
    #[error("task id prefix {prefix} is ambiguous: it matches {}", .matches.join(", "))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
    #[error("no such webhook receiver {0}")]
    NoReceiver(String),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    type TEXT NOT NULL,
    title TEXT NOT NULL,
    user_id TEXT NOT NULL,
    dialect TEXT NOT NULL,
    second TEXT,
    minute TEXT NOT NULL,
    hour TEXT NOT NULL,
    day_of_month TEXT NOT NULL,
    month TEXT NOT NULL,
    day_of_week TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    parameters TEXT NOT NULL,
    max_occurrences INTEGER,
    start_date INTEGER,
    end_date INTEGER,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    state TEXT NOT NULL,
    last_start INTEGER,
    next_fire INTEGER,
    occurrences INTEGER NOT NULL DEFAULT 0,
    state_reason TEXT NOT NULL DEFAULT '',
    notify_url TEXT,
    failures_since INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS task_runs (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled INTEGER NOT NULL,
    job_id TEXT,
    start_time INTEGER NOT NULL DEFAULT 0,
    end_time INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS task_runs_task ON task_runs(task_id, seq);
CREATE TABLE IF NOT EXISTS webhook_receivers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    item_id TEXT NOT NULL,
    secret TEXT NOT NULL,
    signature_headers TEXT NOT NULL,
    api_token TEXT NOT NULL DEFAULT '',
    parameters TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    username TEXT NOT NULL,
    created INTEGER NOT NULL,
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    receiver_id TEXT NOT NULL,
    key TEXT NOT NULL,
    received INTEGER NOT NULL,
    job_id TEXT,
    PRIMARY KEY (receiver_id, key)
);
";

/// The columns of `tasks`, in the order `ScheduleStore::write_task` numbers its values.
const TASK_COLUMNS: [&str; 26] = [
    "id",
    "item_id",
    "type",
    "title",
    "user_id",
    "dialect",
    "second",
    "minute",
    "hour",
    "day_of_month",
    "month",
    "day_of_week",
    "time_zone",
    "parameters",
    "max_occurrences",
    "start_date",
    "end_date",
    "created",
    "updated",
    "state",
    "last_start",
    "next_fire",
    "occurrences",
    "state_reason",
    "notify_url",
    "failures_since",
];

/// The two statements that write a task, both made from [`TASK_COLUMNS`], so a
/// column is named once.
struct TaskSql {
    insert: String,
    /// Every column but the key and `created`, which a rewrite keeps.
    update: String,
}

static TASK_SQL: std::sync::LazyLock<TaskSql> = std::sync::LazyLock::new(|| {
    let numbered = || TASK_COLUMNS.iter().enumerate().map(|(i, c)| (i + 1, *c));
    let marks: Vec<String> = numbered().map(|(n, _)| format!("?{n}")).collect();
    let sets: Vec<String> = numbered()
        .filter(|(_, c)| !matches!(*c, "id" | "created"))
        .map(|(n, c)| format!("{c}=?{n}"))
        .collect();
    TaskSql {
        insert: format!(
            "INSERT INTO tasks ({}) VALUES ({})",
            TASK_COLUMNS.join(", "),
            marks.join(", ")
        ),
        update: format!("UPDATE tasks SET {} WHERE id=?1", sets.join(", ")),
    }
});

/// The schedule store.
pub struct ScheduleStore {
    conn: Connection,
    path: PathBuf,
}

impl ScheduleStore {
    /// Opens (creating if needed) the store in `dir`, which must be this user's and
    /// writable by nobody else (tasks run notebooks; receivers hold secrets).
    pub fn open(dir: &Path) -> Result<ScheduleStore, StoreError> {
        use nbexec_runner::jobs::{PrivateDbError, open_private_db};
        let path = dir.join(DB_NAME);
        let conn = open_private_db(dir, DB_NAME, SCHEMA).map_err(|e| match e {
            PrivateDbError::Dir(source) => StoreError::Dir {
                path: dir.to_owned(),
                source,
            },
            PrivateDbError::Db(source) => StoreError::Db {
                path: path.clone(),
                source,
            },
        })?;
        Ok(ScheduleStore { conn, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    // ---- tasks ----

    pub fn insert_task(&self, t: &Task) -> Result<(), StoreError> {
        self.write_task(&TASK_SQL.insert, t, t.updated)?;
        Ok(())
    }

    /// Rewrites a task (all its fields but `created`) and stamps `updated`.
    pub fn update_task(&self, t: &Task) -> Result<(), StoreError> {
        if self.write_task(&TASK_SQL.update, t, now_ms())? == 0 {
            return Err(StoreError::NoTask(t.id.clone()));
        }
        Ok(())
    }

    /// Runs `sql` (one of [`TASK_SQL`]) with the task's values, numbered as
    /// [`TASK_COLUMNS`] orders them; the rows it changed.
    fn write_task(&self, sql: &str, t: &Task, updated: i64) -> Result<usize, StoreError> {
        self.conn
            .execute(
                sql,
                params![
                    t.id,
                    t.item_id,
                    t.task_type,
                    t.title,
                    t.user_id,
                    t.dialect.as_str(),
                    t.cron.second,
                    t.cron.minute,
                    t.cron.hour,
                    t.cron.day_of_month,
                    t.cron.month,
                    t.cron.day_of_week,
                    t.time_zone,
                    t.parameters.to_string(),
                    t.max_occurrences,
                    t.start_date,
                    t.end_date,
                    t.created,
                    updated,
                    t.state.as_str(),
                    t.last_start,
                    t.next_fire,
                    t.occurrences,
                    t.state_reason,
                    t.notify_url,
                    t.failures_since,
                ],
            )
            .map_err(|e| self.db(e))
    }

    fn row_to_task(row: &rusqlite::Row<'_>) -> rusqlite::Result<Task> {
        let dialect: String = row.get("dialect")?;
        let state: String = row.get("state")?;
        let parameters: String = row.get("parameters")?;
        Ok(Task {
            id: row.get("id")?,
            item_id: row.get("item_id")?,
            task_type: row.get("type")?,
            title: row.get("title")?,
            user_id: row.get("user_id")?,
            dialect: Dialect::parse(&dialect).unwrap_or(Dialect::Quartz),
            cron: CronFields {
                second: row.get("second")?,
                minute: row.get("minute")?,
                hour: row.get("hour")?,
                day_of_month: row.get("day_of_month")?,
                month: row.get("month")?,
                day_of_week: row.get("day_of_week")?,
            },
            time_zone: row.get("time_zone")?,
            parameters: serde_json::from_str(&parameters).unwrap_or(Value::Null),
            max_occurrences: row.get("max_occurrences")?,
            start_date: row.get("start_date")?,
            end_date: row.get("end_date")?,
            created: row.get("created")?,
            updated: row.get("updated")?,
            state: TaskState::parse(&state).unwrap_or(TaskState::Disabled),
            last_start: row.get("last_start")?,
            next_fire: row.get("next_fire")?,
            occurrences: row.get("occurrences")?,
            state_reason: row.get("state_reason")?,
            notify_url: row.get("notify_url")?,
            failures_since: row.get("failures_since")?,
        })
    }

    pub fn get_task(&self, id: &str) -> Result<Option<Task>, StoreError> {
        self.conn
            .query_row("SELECT * FROM tasks WHERE id = ?1", [id], Self::row_to_task)
            .optional()
            .map_err(|e| self.db(e))
    }

    /// A task by id, or a unique prefix of one (the command line's convenience).
    pub fn resolve_task(&self, prefix: &str) -> Result<Task, StoreError> {
        if let Some(t) = self.get_task(prefix)? {
            return Ok(t);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM tasks WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id")
            .map_err(|e| self.db(e))?;
        let ids: Vec<String> = stmt
            .query_map([prefix], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.db(e))?;
        match ids.as_slice() {
            [] => Err(StoreError::NoTask(prefix.into())),
            [one] => self
                .get_task(one)?
                .ok_or_else(|| StoreError::NoTask(prefix.into())),
            _ => Err(StoreError::Ambiguous {
                prefix: prefix.into(),
                matches: ids,
            }),
        }
    }

    /// All tasks (of one user, when given), oldest first.
    pub fn list_tasks(&self, user: Option<&str>) -> Result<Vec<Task>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM tasks WHERE ?1 IS NULL OR user_id = ?1 ORDER BY created, id")
            .map_err(|e| self.db(e))?;
        stmt.query_map([user], Self::row_to_task)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.db(e))
    }

    /// Deletes a task and its runs; false when there was none.
    pub fn delete_task(&self, id: &str) -> Result<bool, StoreError> {
        self.conn
            .execute("DELETE FROM task_runs WHERE task_id = ?1", [id])
            .map_err(|e| self.db(e))?;
        let n = self
            .conn
            .execute("DELETE FROM tasks WHERE id = ?1", [id])
            .map_err(|e| self.db(e))?;
        Ok(n > 0)
    }

    // ---- runs ----

    fn next_seq(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT coalesce(max(seq), 0) + 1 FROM task_runs", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.db(e))
    }

    /// Records a run; returns its id. Only the newest [`RUNS_KEPT`] finished runs
    /// of a task are kept.
    pub fn add_run(
        &self,
        task_id: &str,
        status: RunStatus,
        scheduled: i64,
        message: &str,
    ) -> Result<String, StoreError> {
        let id = crate::task::new_id();
        let seq = self.next_seq()?;
        let now = now_ms();
        let start = if status == RunStatus::Skipped { 0 } else { now };
        let end = if status == RunStatus::Skipped { now } else { 0 };
        self.conn
            .execute(
                "INSERT INTO task_runs (id, task_id, status, scheduled, start_time, end_time, message, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, task_id, status.as_str(), scheduled, start, end, message, seq],
            )
            .map_err(|e| self.db(e))?;
        self.conn
            .execute(
                "DELETE FROM task_runs WHERE task_id = ?1 AND status IN ('succeeded','failed','skipped')
                 AND seq NOT IN (SELECT seq FROM task_runs WHERE task_id = ?1
                   AND status IN ('succeeded','failed','skipped') ORDER BY seq DESC LIMIT ?2)",
                params![task_id, RUNS_KEPT],
            )
            .map_err(|e| self.db(e))?;
        Ok(id)
    }

    /// Sets a run's status (and its job, message); a finished status stamps its end.
    pub fn set_run(
        &self,
        run_id: &str,
        status: RunStatus,
        job_id: Option<&str>,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        let end = if status.is_live() { 0 } else { now_ms() };
        self.conn
            .execute(
                "UPDATE task_runs SET status = ?2, job_id = coalesce(?3, job_id),
                 message = coalesce(?4, message), end_time = ?5 WHERE id = ?1",
                params![run_id, status.as_str(), job_id, message, end],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    fn row_to_run(row: &rusqlite::Row<'_>) -> rusqlite::Result<TaskRun> {
        let status: String = row.get("status")?;
        Ok(TaskRun {
            id: row.get("id")?,
            task_id: row.get("task_id")?,
            status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
            scheduled: row.get("scheduled")?,
            job_id: row.get("job_id")?,
            start_time: row.get("start_time")?,
            end_time: row.get("end_time")?,
            message: row.get("message")?,
        })
    }

    pub fn get_run(&self, run_id: &str) -> Result<Option<TaskRun>, StoreError> {
        self.conn
            .query_row(
                "SELECT * FROM task_runs WHERE id = ?1",
                [run_id],
                Self::row_to_run,
            )
            .optional()
            .map_err(|e| self.db(e))
    }

    /// A task's runs, newest first (at most [`RUNS_KEPT`] finished ones).
    pub fn runs(&self, task_id: &str) -> Result<Vec<TaskRun>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM task_runs WHERE task_id = ?1 ORDER BY seq DESC")
            .map_err(|e| self.db(e))?;
        stmt.query_map([task_id], Self::row_to_run)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.db(e))
    }

    /// Does the task have a run still scheduled or executing?
    pub fn has_live_run(&self, task_id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM task_runs WHERE task_id = ?1 AND status IN ('scheduled','executing')",
                [task_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|e| self.db(e))
    }

    /// Failed runs since the task's last succeeded one (skipped and cancelled runs
    /// neither count nor break the streak), of those fired at or after `since`
    /// (epoch ms).
    pub fn consecutive_failures(&self, task_id: &str, since: i64) -> Result<u32, StoreError> {
        let mut n = 0;
        for run in self.runs(task_id)? {
            if run.scheduled < since {
                break;
            }
            match run.status {
                // A cancelled run (someone stopped it) is no failure of the task.
                RunStatus::Failed if run.message == crate::scheduler::CANCELLED => {}
                RunStatus::Failed => n += 1,
                RunStatus::Succeeded => break,
                _ => {}
            }
        }
        Ok(n)
    }

    /// Live runs of every task (what a restarted server must settle).
    pub fn live_runs(&self) -> Result<Vec<TaskRun>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT * FROM task_runs WHERE status IN ('scheduled','executing') ORDER BY seq",
            )
            .map_err(|e| self.db(e))?;
        stmt.query_map([], Self::row_to_run)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.db(e))
    }

    // ---- webhook receivers ----

    pub fn insert_receiver(&self, r: &Receiver) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO webhook_receivers (id, name, item_id, secret, signature_headers,
                 api_token, parameters, disabled, username, created, message)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
                params![
                    r.id,
                    r.name,
                    r.item_id,
                    r.secret,
                    r.signature_headers.join(","),
                    r.api_token,
                    r.parameters.to_string(),
                    r.disabled,
                    r.username,
                    r.created,
                    r.message,
                ],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    pub fn update_receiver(&self, r: &Receiver) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE webhook_receivers SET name=?2, item_id=?3, secret=?4, signature_headers=?5,
                 api_token=?6, parameters=?7, disabled=?8, message=?9 WHERE id=?1",
                params![
                    r.id,
                    r.name,
                    r.item_id,
                    r.secret,
                    r.signature_headers.join(","),
                    r.api_token,
                    r.parameters.to_string(),
                    r.disabled,
                    r.message,
                ],
            )
            .map_err(|e| self.db(e))?;
        if n == 0 {
            return Err(StoreError::NoReceiver(r.id.clone()));
        }
        Ok(())
    }

    fn row_to_receiver(row: &rusqlite::Row<'_>) -> rusqlite::Result<Receiver> {
        let headers: String = row.get("signature_headers")?;
        let parameters: String = row.get("parameters")?;
        Ok(Receiver {
            id: row.get("id")?,
            name: row.get("name")?,
            item_id: row.get("item_id")?,
            secret: row.get("secret")?,
            signature_headers: headers
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect(),
            api_token: row.get("api_token")?,
            parameters: serde_json::from_str(&parameters).unwrap_or(Value::Null),
            disabled: row.get("disabled")?,
            username: row.get("username")?,
            created: row.get("created")?,
            message: row.get("message")?,
        })
    }

    pub fn get_receiver(&self, id: &str) -> Result<Option<Receiver>, StoreError> {
        self.conn
            .query_row(
                "SELECT * FROM webhook_receivers WHERE id = ?1",
                [id],
                Self::row_to_receiver,
            )
            .optional()
            .map_err(|e| self.db(e))
    }

    pub fn list_receivers(&self) -> Result<Vec<Receiver>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM webhook_receivers ORDER BY created, id")
            .map_err(|e| self.db(e))?;
        stmt.query_map([], Self::row_to_receiver)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.db(e))
    }

    pub fn delete_receiver(&self, id: &str) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "DELETE FROM webhook_deliveries WHERE receiver_id = ?1",
                [id],
            )
            .map_err(|e| self.db(e))?;
        let n = self
            .conn
            .execute("DELETE FROM webhook_receivers WHERE id = ?1", [id])
            .map_err(|e| self.db(e))?;
        Ok(n > 0)
    }

    /// Records that `receiver_id` got the delivery `key`; false when it had already
    /// (a replay). Deliveries older than `keep` are forgotten first.
    pub fn record_delivery(
        &self,
        receiver_id: &str,
        key: &str,
        keep: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let cutoff = now - keep.as_millis() as i64;
        self.conn
            .execute(
                "DELETE FROM webhook_deliveries WHERE received < ?1",
                [cutoff],
            )
            .map_err(|e| self.db(e))?;
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO webhook_deliveries (receiver_id, key, received) VALUES (?1, ?2, ?3)",
                params![receiver_id, key, now],
            )
            .map_err(|e| self.db(e))?;
        Ok(n == 1)
    }

    /// Forgets a recorded delivery (its job could not be started, so the sender's
    /// retry must be let through).
    pub fn forget_delivery(&self, receiver_id: &str, key: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM webhook_deliveries WHERE receiver_id = ?1 AND key = ?2",
                params![receiver_id, key],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Runs `f` in one transaction (the scheduler's read-decide-write of a task).
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&ScheduleStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // `f` takes the store (its methods use the one connection), so the transaction
        // is begun unchecked; dropping it uncommitted (an error, a panic) rolls back.
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(|e| self.db(e))?;
        let v = f(self)?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(v)
    }
}
