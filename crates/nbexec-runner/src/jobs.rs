//! The job registry: every run is a job (the ArcGIS Notebook Server `jobs` resource,
//! kept locally). Jobs live in a SQLite database in WAL mode under the user's state
//! directory, shared safely by any number of nbexec processes.
//!
//! A job whose owning process died without finishing it (kill -9, power loss) is
//! found out the next time anyone reads the registry: its owner's pid is gone, or
//! now belongs to another process (the recorded process start time differs), and the
//! job is marked FAILED with a message saying so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};

/// A job's status, as ArcGIS spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Submitted,
    Executing,
    Cancelling,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Submitted => "SUBMITTED",
            JobStatus::Executing => "EXECUTING",
            JobStatus::Cancelling => "CANCELLING",
            JobStatus::Completed => "COMPLETED",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "SUBMITTED" => JobStatus::Submitted,
            "EXECUTING" => JobStatus::Executing,
            "CANCELLING" => JobStatus::Cancelling,
            "COMPLETED" => JobStatus::Completed,
            "FAILED" => JobStatus::Failed,
            "CANCELLED" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// One job, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub status: JobStatus,
    /// Epoch milliseconds.
    pub submitted: i64,
    /// Epoch milliseconds; 0 until it starts executing.
    pub start_time: i64,
    /// Epoch milliseconds; 0 until it is finished.
    pub end_time: i64,
    pub pid: Option<i64>,
    /// The ArcGIS `inputs` object (itemId, updatePortalItem, saveInjectedParameters,
    /// executionTimeoutInMinutes, notebookParameters).
    pub inputs: Value,
    pub messages: Vec<String>,
    /// Output notebook, failing cell, exit code.
    pub results: Value,
    pub exit_code: Option<i32>,
}

impl Job {
    /// The entry of `GET notebooks/jobs`.
    pub fn summary_json(&self) -> Value {
        json!({
            "jobId": self.id,
            "name": "executeNotebook",
            "startTime": self.start_time,
            "endTime": self.end_time,
            "status": self.status.as_str(),
        })
    }

    /// The job in detail (`nbexec jobs show`).
    pub fn detail_json(&self) -> Value {
        json!({
            "jobId": self.id,
            "name": "executeNotebook",
            "type": "executeNotebook",
            "status": self.status.as_str(),
            "dateCreated": self.submitted,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "inputs": self.inputs,
            "messages": self.messages,
            "results": self.results,
        })
    }
}

/// Why the registry could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    #[error("job registry {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no job {0}")]
    NotFound(String),
}

/// The default state directory: `$NBEXEC_STATE_DIR`, else `$XDG_STATE_HOME/nbexec`,
/// else `~/.local/state/nbexec`, else (no HOME) `/tmp/nbexec-state-<uid>`. It must
/// be owned by this user and writable by nobody else (see [`JobStore::open`]).
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NBEXEC_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("nbexec");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/nbexec"),
        // Not `/tmp/.local/...`, shared by every user without a HOME.
        None => {
            // SAFETY: geteuid cannot fail and has no preconditions.
            let uid = unsafe { libc::geteuid() };
            std::env::temp_dir().join(format!("nbexec-state-{uid}"))
        }
    }
}

/// A new job id: `j` and 32 lowercase alphanumerics.
pub fn new_job_id() -> String {
    format!("j{}", uuid::Uuid::new_v4().simple())
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The job registry.
pub struct JobStore {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    submitted INTEGER NOT NULL,
    start_time INTEGER NOT NULL DEFAULT 0,
    end_time INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    pid_start TEXT,
    inputs TEXT NOT NULL,
    messages TEXT NOT NULL DEFAULT '[]',
    results TEXT NOT NULL DEFAULT '{}',
    exit_code INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_submitted ON jobs(submitted);
";

impl JobStore {
    /// Opens (creating if needed) the registry in `dir`.
    pub fn open(dir: &Path) -> Result<JobStore, JobError> {
        // Owned by us and writable by nobody else, or whoever can could read
        // and rewrite the jobs.
        nbexec_kernel::ensure_private_dir(dir).map_err(|source| JobError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join("jobs.sqlite3");
        let db = |source| JobError::Db {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(JobStore { conn, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self, source: rusqlite::Error) -> JobError {
        JobError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// Records a new job (SUBMITTED), owned by this process.
    pub fn create(&self, id: &str, inputs: &Value) -> Result<(), JobError> {
        let pid = std::process::id() as i64;
        self.conn
            .execute(
                "INSERT INTO jobs (id, status, submitted, pid, pid_start, inputs) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, JobStatus::Submitted.as_str(), now_ms(), pid, process_start(pid), inputs.to_string()],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// The job is now run by process `pid` (the detached child, say).
    pub fn set_owner(&self, id: &str, pid: u32) -> Result<(), JobError> {
        let pid = pid as i64;
        self.conn
            .execute(
                "UPDATE jobs SET pid = ?2, pid_start = ?3 WHERE id = ?1",
                params![id, pid, process_start(pid)],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// SUBMITTED → EXECUTING (unless a cancel came first).
    pub fn set_executing(&self, id: &str) -> Result<(), JobError> {
        self.conn
            .execute(
                "UPDATE jobs SET status = ?2, start_time = ?3 WHERE id = ?1 AND status = ?4",
                params![
                    id,
                    JobStatus::Executing.as_str(),
                    now_ms(),
                    JobStatus::Submitted.as_str()
                ],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Records the end of a job.
    pub fn finish(
        &self,
        id: &str,
        status: JobStatus,
        messages: &[String],
        results: &Value,
        exit_code: i32,
    ) -> Result<(), JobError> {
        let now = now_ms();
        self.conn
            .execute(
                "UPDATE jobs SET status = ?2, end_time = ?3, start_time = CASE WHEN start_time = 0 THEN ?3 ELSE start_time END,
                 messages = ?4, results = ?5, exit_code = ?6 WHERE id = ?1",
                params![id, status.as_str(), now, Value::from(messages.to_vec()).to_string(), results.to_string(), exit_code],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    fn row_to_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Job, Option<String>)> {
        let parse = |s: String| serde_json::from_str::<Value>(&s).unwrap_or(Value::Null);
        let status: String = row.get("status")?;
        let messages = match parse(row.get("messages")?) {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Ok((
            Job {
                id: row.get("id")?,
                status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
                submitted: row.get("submitted")?,
                start_time: row.get("start_time")?,
                end_time: row.get("end_time")?,
                pid: row.get("pid")?,
                inputs: parse(row.get("inputs")?),
                messages,
                results: parse(row.get("results")?),
                exit_code: row.get("exit_code")?,
            },
            row.get("pid_start")?,
        ))
    }

    /// One job, with a dead owner's job settled first.
    pub fn get(&self, id: &str) -> Result<Option<Job>, JobError> {
        self.settle_orphans()?;
        self.conn
            .query_row("SELECT * FROM jobs WHERE id = ?1", params![id], |r| {
                Self::row_to_job(r).map(|(j, _)| j)
            })
            .optional()
            .map_err(|e| self.db(e))
    }

    /// Jobs, newest first: all, or only those not finished.
    pub fn list(&self, all: bool) -> Result<Vec<Job>, JobError> {
        self.settle_orphans()?;
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM jobs ORDER BY submitted DESC, id")
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], |r| Self::row_to_job(r).map(|(j, _)| j))
            .map_err(|e| self.db(e))?;
        let mut jobs = Vec::new();
        for job in rows {
            let job = job.map_err(|e| self.db(e))?;
            if all || !job.status.is_finished() {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// Marks FAILED every unfinished job whose owning process is gone.
    pub fn settle_orphans(&self) -> Result<usize, JobError> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM jobs WHERE status IN ('SUBMITTED', 'EXECUTING', 'CANCELLING')")
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], Self::row_to_job)
            .map_err(|e| self.db(e))?;
        let mut dead = Vec::new();
        for row in rows {
            let (job, pid_start) = row.map_err(|e| self.db(e))?;
            if let Some(pid) = job.pid
                && !owner_alive(pid, pid_start.as_deref())
            {
                dead.push((job, pid));
            }
        }
        for (job, pid) in &dead {
            let mut messages = job.messages.clone();
            messages.push(format!(
                "the nbexec process ({pid}) running this job ended without finishing it"
            ));
            let status = if job.status == JobStatus::Cancelling {
                JobStatus::Cancelled
            } else {
                JobStatus::Failed
            };
            self.conn
                .execute(
                    "UPDATE jobs SET status = ?2, end_time = ?3, messages = ?4 WHERE id = ?1 AND status = ?5",
                    params![job.id, status.as_str(), now_ms(), Value::from(messages).to_string(), job.status.as_str()],
                )
                .map_err(|e| self.db(e))?;
        }
        Ok(dead.len())
    }

    /// Asks a running job to stop: CANCELLING in the registry, and SIGUSR1 to its
    /// owner, which interrupts the kernel, saves and records CANCELLED. Returns false
    /// when the job is not running (finished, or unknown).
    pub fn request_cancel(&self, id: &str) -> Result<bool, JobError> {
        let Some(job) = self.get(id)? else {
            return Ok(false);
        };
        if !matches!(
            job.status,
            JobStatus::Submitted | JobStatus::Executing | JobStatus::Cancelling
        ) {
            return Ok(false);
        }
        self.conn
            .execute(
                "UPDATE jobs SET status = 'CANCELLING' WHERE id = ?1 AND status IN ('SUBMITTED', 'EXECUTING')",
                params![id],
            )
            .map_err(|e| self.db(e))?;
        if let Some(pid) = job.pid {
            // SAFETY: kill(2) with a pid read from the registry; a stale pid was ruled
            // out by `get` (settle_orphans) just above.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGUSR1);
            }
        }
        Ok(true)
    }

    /// Is a cancel pending for this job (polled by its owner as a fallback)?
    pub fn cancel_requested(&self, id: &str) -> Result<bool, JobError> {
        let status: Option<String> = self
            .conn
            .query_row("SELECT status FROM jobs WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.db(e))?;
        Ok(status.as_deref() == Some("CANCELLING"))
    }

    /// Deletes finished jobs that ended more than `older_than` ago; returns how many.
    pub fn prune(&self, older_than: Duration) -> Result<usize, JobError> {
        let cutoff = now_ms() - older_than.as_millis() as i64;
        self.conn
            .execute(
                "DELETE FROM jobs WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND end_time < ?1",
                params![cutoff],
            )
            .map_err(|e| self.db(e))
    }
}

/// The start time of a process (field 22 of /proc/PID/stat), to tell a reused pid
/// from the original owner.
fn process_start(pid: i64) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    // Fields after the command: state is field 3, starttime field 22.
    after.split_whitespace().nth(19).map(str::to_owned)
}

fn owner_alive(pid: i64, recorded_start: Option<&str>) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if state == Some("Z") || state == Some("X") {
        return false;
    }
    match recorded_start {
        Some(start) => process_start(pid).as_deref() == Some(start),
        None => true,
    }
}

/// The ArcGIS `inputs` of a run.
pub fn inputs_json(
    item: &str,
    update_item: bool,
    save_injected: bool,
    timeout_minutes: Option<u64>,
    parameters: Value,
) -> Value {
    let mut m = Map::new();
    m.insert("itemId".into(), Value::from(item));
    m.insert("updatePortalItem".into(), Value::Bool(update_item));
    m.insert("saveInjectedParameters".into(), Value::Bool(save_injected));
    m.insert(
        "executionTimeoutInMinutes".into(),
        timeout_minutes.map_or(Value::Null, Value::from),
    );
    m.insert("notebookParameters".into(), parameters);
    Value::Object(m)
}
