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
    /// Who ran it: `None` for a run from the command line; for `nbexec serve` the
    /// signed-in user (`Some("")`: anonymous on a loopback server).
    pub username: Option<String>,
    /// What started it: `None` for the command line, `Some("server")` for a job of
    /// `nbexec serve` (queued in the registry: a dead server's SUBMITTED jobs wait
    /// for the next one instead of being settled FAILED).
    pub kind: Option<String>,
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
        let mut v = json!({
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
        });
        if let Some(user) = &self.username {
            v["username"] = Value::from(user.clone());
        }
        v
    }

    /// The job as it is shown to others than the local user: [`Job::detail_json`],
    /// without the server's file system path of a server job's output notebook
    /// (`results.outputNotebook`), which is the machine's business; the server gives
    /// the notebook's URL instead.
    pub fn public_json(&self) -> Value {
        let mut v = self.detail_json();
        if self.is_server_job()
            && let Some(results) = v["results"].as_object_mut()
        {
            results.remove("outputNotebook");
        }
        v
    }

    /// Is this a job of `nbexec serve`?
    pub fn is_server_job(&self) -> bool {
        self.kind.as_deref() == Some(SERVER_KIND)
    }
}

/// The `kind` of a job `nbexec serve` runs.
pub const SERVER_KIND: &str = "server";

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
    #[error("no such job {0}")]
    NotFound(String),
    #[error("job id prefix {prefix} is ambiguous: it matches {}", .matches.join(", "))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
}

/// The database file in the state directory.
const DB_NAME: &str = "jobs.sqlite3";

/// Why [`open_private_db`] failed: the directory, or SQLite.
#[derive(Debug)]
pub enum PrivateDbError {
    Dir(std::io::Error),
    Db(rusqlite::Error),
}

/// Opens (creating if needed) the SQLite database `name` in the state directory `dir`,
/// as every store of nbexec's state is opened (the job registry, the schedule store):
/// `dir` must be this user's and writable by nobody else; the file is created 0600
/// before SQLite opens it, because its -wal and -shm files take its mode; WAL with
/// NORMAL sync, a 30 s busy timeout, and `schema` applied.
pub fn open_private_db(dir: &Path, name: &str, schema: &str) -> Result<Connection, PrivateDbError> {
    use std::os::unix::fs::OpenOptionsExt;
    nbexec_kernel::ensure_private_dir(dir).map_err(PrivateDbError::Dir)?;
    let path = dir.join(name);
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    let conn = Connection::open(&path).map_err(PrivateDbError::Db)?;
    conn.busy_timeout(Duration::from_secs(30))
        .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
        .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
        .and_then(|()| conn.execute_batch(schema))
        .map_err(PrivateDbError::Db)?;
    Ok(conn)
}

/// Creates `dir` (and its parents) if needed; the directory itself is made private
/// (0700): job records hold parameters and logs that are nobody else's business.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Is `dir` a directory of ours that nobody else can write?
fn is_private_dir(dir: &Path) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o022 == 0)
}

/// Creates the console log of a detached job, `<state dir>/logs/<id>.log`, private to
/// its user (directory 0700, file 0600).
pub fn create_log_file(state_dir: &Path, id: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let logs = state_dir.join("logs");
    create_private_dir(&logs)?;
    let path = logs.join(format!("{id}.log"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    Ok((path, file))
}

/// The log file of job `id` (whether or not it exists: only detached runs have one).
pub fn log_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("logs").join(format!("{id}.log"))
}

/// A `file://` URL for `path` (made absolute), percent-encoding every byte outside
/// the unreserved set and `/`.
pub fn file_url(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut url = String::from("file://");
    for &b in abs.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
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
    /// Opened read-only (a read-only state directory): nothing is written, dead
    /// owners' jobs are shown FAILED without being recorded so.
    read_only: bool,
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
CREATE TABLE IF NOT EXISTS waiters (
    job_id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT
);
";

/// Columns added after the first release, added to an older registry when it is
/// opened (an older nbexec ignores them).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('jobs')")?;
    let have: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    for (col, ddl) in [
        ("username", "ALTER TABLE jobs ADD COLUMN username TEXT"),
        ("kind", "ALTER TABLE jobs ADD COLUMN kind TEXT"),
    ] {
        if !have.iter().any(|c| c == col) {
            match conn.execute_batch(ddl) {
                // Another process added it meanwhile.
                Err(e) if e.to_string().contains("duplicate column") => {}
                other => other?,
            }
        }
    }
    Ok(())
}

/// Does the row have this column (a read-only registry of an older nbexec may not)?
fn opt_col<T: rusqlite::types::FromSql>(row: &rusqlite::Row<'_>, name: &str) -> Option<T> {
    row.get::<_, Option<T>>(name).ok().flatten()
}

impl JobStore {
    /// Opens (creating if needed) the registry in `dir`.
    pub fn open(dir: &Path) -> Result<JobStore, JobError> {
        // Owned by us and writable by nobody else, or whoever can could read
        // and rewrite the jobs.
        let path = dir.join(DB_NAME);
        let conn = open_private_db(dir, DB_NAME, SCHEMA).map_err(|e| match e {
            PrivateDbError::Dir(source) => JobError::Dir {
                path: dir.to_owned(),
                source,
            },
            PrivateDbError::Db(source) => JobError::Db {
                path: path.clone(),
                source,
            },
        })?;
        let db = |source| JobError::Db {
            path: path.clone(),
            source,
        };
        migrate(&conn).map_err(db)?;
        Ok(JobStore {
            conn,
            path,
            read_only: false,
        })
    }

    /// Opens the registry in `dir` for reading (`nbexec jobs`): read-write when it
    /// can be, else read-only (a read-only state directory or file system), else, when
    /// there is no registry at all, an empty one.
    pub fn open_for_reading(dir: &Path) -> Result<JobStore, JobError> {
        use rusqlite::OpenFlags;
        let first = match JobStore::open(dir) {
            Ok(store) => return Ok(store),
            Err(e) => e,
        };
        // A directory that is not ours, or that others can write, is refused, not
        // read: its registry could be forged (and `jobs cancel` signals the pids it
        // names). Only a registry we merely cannot write is read.
        if dir.exists() && !is_private_dir(dir) {
            return Err(first);
        }
        let path = dir.join(DB_NAME);
        if !path.exists() {
            if dir.is_dir() || !dir.exists() {
                let conn = Connection::open_in_memory().map_err(|source| JobError::Db {
                    path: path.clone(),
                    source,
                })?;
                conn.execute_batch(SCHEMA)
                    .and_then(|()| migrate(&conn))
                    .map_err(|source| JobError::Db {
                        path: path.clone(),
                        source,
                    })?;
                return Ok(JobStore {
                    conn,
                    path,
                    read_only: true,
                });
            }
            return Err(first);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
        // Read-only first; a WAL database whose -shm cannot be created is read as
        // immutable (no other writer can be running where nothing can be written).
        let plain = format!("file:{}?mode=ro", uri_path(&path));
        let immutable = format!("file:{}?immutable=1", uri_path(&path));
        for uri in [plain, immutable] {
            if let Ok(conn) = Connection::open_with_flags(&uri, flags) {
                let _ = conn.busy_timeout(Duration::from_secs(30));
                if conn
                    .query_row("SELECT count(*) FROM jobs", [], |r| r.get::<_, i64>(0))
                    .is_ok()
                {
                    return Ok(JobStore {
                        conn,
                        path,
                        read_only: true,
                    });
                }
            }
        }
        Err(first)
    }

    /// Was the registry opened read-only?
    pub fn is_read_only(&self) -> bool {
        self.read_only
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

    /// Records a new job of `nbexec serve` (SUBMITTED, queued), owned by this process
    /// and by `username` (`""`: anonymous).
    pub fn create_server_job(
        &self,
        id: &str,
        inputs: &Value,
        username: &str,
    ) -> Result<(), JobError> {
        let pid = std::process::id() as i64;
        self.conn
            .execute(
                "INSERT INTO jobs (id, status, submitted, pid, pid_start, inputs, username, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, JobStatus::Submitted.as_str(), now_ms(), pid, process_start(pid), inputs.to_string(), username, SERVER_KIND],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Appends a message to a job's messages.
    pub fn add_message(&self, id: &str, message: &str) -> Result<(), JobError> {
        let current: Option<String> = self
            .conn
            .query_row(
                "SELECT messages FROM jobs WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db(e))?;
        let Some(current) = current else {
            return Err(JobError::NotFound(id.to_owned()));
        };
        let mut list: Vec<Value> = serde_json::from_str(&current).unwrap_or_default();
        list.push(Value::from(message));
        self.conn
            .execute(
                "UPDATE jobs SET messages = ?2 WHERE id = ?1",
                params![id, Value::from(list).to_string()],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Ends a job that never started (a queued job cancelled, say): only if it is
    /// still SUBMITTED or CANCELLING; returns whether it did.
    pub fn finish_unstarted(
        &self,
        id: &str,
        status: JobStatus,
        message: &str,
    ) -> Result<bool, JobError> {
        let n = self
            .conn
            .execute(
                "UPDATE jobs SET status = ?2, end_time = ?3, start_time = CASE WHEN start_time = 0 THEN ?3 ELSE start_time END,
                 messages = ?4 WHERE id = ?1 AND status IN ('SUBMITTED', 'CANCELLING') AND start_time = 0",
                params![id, status.as_str(), now_ms(), Value::from(vec![message.to_owned()]).to_string()],
            )
            .map_err(|e| self.db(e))?;
        Ok(n > 0)
    }

    /// Deletes one finished job; returns whether it did.
    pub fn delete_finished(&self, id: &str) -> Result<bool, JobError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM jobs WHERE id = ?1 AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')",
                params![id],
            )
            .map_err(|e| self.db(e))?;
        Ok(n > 0)
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

    /// Replaces the job's `inputs` (a detached run learns its parameters only once
    /// its child has read them).
    pub fn set_inputs(&self, id: &str, inputs: &Value) -> Result<(), JobError> {
        self.conn
            .execute(
                "UPDATE jobs SET inputs = ?2 WHERE id = ?1",
                params![id, inputs.to_string()],
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
                username: opt_col(row, "username"),
                kind: opt_col(row, "kind"),
            },
            row.get("pid_start")?,
        ))
    }

    /// One job, with a dead owner's job settled first.
    pub fn get(&self, id: &str) -> Result<Option<Job>, JobError> {
        self.settle_orphans()?;
        let row = self
            .conn
            .query_row("SELECT * FROM jobs WHERE id = ?1", params![id], |r| {
                Self::row_to_job(r)
            })
            .optional()
            .map_err(|e| self.db(e))?;
        Ok(row.map(|(job, start)| self.as_settled(job, start)))
    }

    /// The full id of the one job whose id starts with `prefix` (an exact id always
    /// wins); an error naming the matches when there are several.
    pub fn resolve_id(&self, prefix: &str) -> Result<String, JobError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM jobs WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id")
            .map_err(|e| self.db(e))?;
        let ids = stmt
            .query_map(params![prefix], |r| r.get::<_, String>(0))
            .map_err(|e| self.db(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db(e))?;
        if prefix.is_empty() {
            return Err(JobError::NotFound(prefix.to_owned()));
        }
        if ids.iter().any(|id| id == prefix) {
            return Ok(prefix.to_owned());
        }
        match ids.len() {
            0 => Err(JobError::NotFound(prefix.to_owned())),
            1 => Ok(ids.into_iter().next().unwrap_or_default()),
            _ => Err(JobError::Ambiguous {
                prefix: prefix.to_owned(),
                matches: ids,
            }),
        }
    }

    /// In a read-only registry, an unfinished job whose owner is gone is shown as
    /// settle_orphans would record it.
    fn as_settled(&self, mut job: Job, pid_start: Option<String>) -> Job {
        if self.read_only
            && !job.status.is_finished()
            && !(job.is_server_job() && job.status == JobStatus::Submitted)
            && let Some(pid) = job.pid
            && !owner_alive(pid, pid_start.as_deref())
        {
            job.status = if job.status == JobStatus::Cancelling {
                JobStatus::Cancelled
            } else {
                JobStatus::Failed
            };
            let message = orphan_message(&job, pid);
            job.messages.push(message);
        }
        job
    }

    /// Jobs, newest first: all, or only those not finished.
    pub fn list(&self, all: bool) -> Result<Vec<Job>, JobError> {
        self.settle_orphans()?;
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM jobs ORDER BY submitted DESC, id")
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], Self::row_to_job)
            .map_err(|e| self.db(e))?;
        let mut jobs = Vec::new();
        for row in rows {
            let (job, start) = row.map_err(|e| self.db(e))?;
            let job = self.as_settled(job, start);
            if all || !job.status.is_finished() {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// One page of the jobs, newest first: those of `owner` only when given (a
    /// user's view; `None`: everyone's), skipping `offset`, at most `limit`. The
    /// database does the filtering and paging, so a page costs the same with ten
    /// jobs in the registry as with ten thousand.
    pub fn page(
        &self,
        owner: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Job>, JobError> {
        self.settle_orphans()?;
        let (limit, offset) = (
            i64::try_from(limit).unwrap_or(i64::MAX),
            i64::try_from(offset).unwrap_or(i64::MAX),
        );
        let mut stmt = self
            .conn
            .prepare(
                "SELECT * FROM jobs WHERE ?1 IS NULL OR username = ?1 \
                 ORDER BY submitted DESC, id LIMIT ?2 OFFSET ?3",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(rusqlite::params![owner, limit, offset], Self::row_to_job)
            .map_err(|e| self.db(e))?;
        let mut jobs = Vec::new();
        for row in rows {
            let (job, start) = row.map_err(|e| self.db(e))?;
            jobs.push(self.as_settled(job, start));
        }
        Ok(jobs)
    }

    /// Marks FAILED every unfinished job whose owning process is gone.
    pub fn settle_orphans(&self) -> Result<usize, JobError> {
        if self.read_only {
            return Ok(0);
        }
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
            // A server's queued job waits for the next server (which re-queues it).
            if job.is_server_job() && job.status == JobStatus::Submitted {
                continue;
            }
            if let Some(pid) = job.pid
                && !owner_alive(pid, pid_start.as_deref())
            {
                dead.push((job, pid));
            }
        }
        for (job, pid) in &dead {
            let mut messages = job.messages.clone();
            messages.push(orphan_message(job, *pid));
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

    /// The queued (SUBMITTED) jobs of servers that are gone, oldest first: a
    /// starting server takes them over (see [`JobStore::set_owner`]).
    pub fn orphaned_server_queue(&self) -> Result<Vec<Job>, JobError> {
        if self.read_only {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM jobs WHERE status = 'SUBMITTED' AND kind = ?1 ORDER BY submitted, id")
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(params![SERVER_KIND], Self::row_to_job)
            .map_err(|e| self.db(e))?;
        let mut jobs = Vec::new();
        for row in rows {
            let (job, pid_start) = row.map_err(|e| self.db(e))?;
            if !job
                .pid
                .is_some_and(|pid| owner_alive(pid, pid_start.as_deref()))
            {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// Asks a running job to stop: CANCELLING in the registry, and SIGUSR1 to its
    /// owner, which interrupts the kernel, saves and records CANCELLED. Returns false
    /// when the job is not running (finished, or unknown).
    pub fn request_cancel(&self, id: &str) -> Result<bool, JobError> {
        let Some(job) = self.get(id)? else {
            return Ok(false);
        };
        let pid_start: Option<String> = self
            .conn
            .query_row(
                "SELECT pid_start FROM jobs WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db(e))?
            .flatten();
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
        // Signal only a process proven to be the job's owner: a positive pid whose
        // start time is the one recorded. Anything else (a reused pid, no recorded
        // start time) is left alone; the owner, if any, polls the registry anyway.
        if let Some(pid) = job
            .pid
            .filter(|p| *p > 0 && *p <= i64::from(libc::pid_t::MAX))
            && owner_alive(pid, pid_start.as_deref())
        {
            // SAFETY: kill(2) on a single positive pid whose identity was just checked.
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
    /// Deletes finished jobs that ended more than `older_than` ago; returns how many.
    /// A job someone waits for (`nbexec jobs wait`) is kept until the waiter has read it.
    pub fn prune(&self, older_than: Duration) -> Result<usize, JobError> {
        self.forget_dead_waiters()?;
        let cutoff = now_ms() - older_than.as_millis() as i64;
        self.conn
            .execute(
                "DELETE FROM jobs WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND end_time < ?1
                 AND id NOT IN (SELECT job_id FROM waiters)",
                params![cutoff],
            )
            .map_err(|e| self.db(e))
    }

    /// This process waits for job `id`: it is not pruned until [`JobStore::unwait`].
    pub fn wait_for(&self, id: &str) -> Result<(), JobError> {
        let pid = std::process::id() as i64;
        self.conn
            .execute(
                "INSERT INTO waiters (job_id, pid, pid_start) VALUES (?1, ?2, ?3)",
                params![id, pid, process_start(pid)],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// This process no longer waits for job `id`.
    pub fn unwait(&self, id: &str) -> Result<(), JobError> {
        self.conn
            .execute(
                "DELETE FROM waiters WHERE job_id = ?1 AND pid = ?2",
                params![id, std::process::id() as i64],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Drops the wait marks of waiters that died (killed while waiting).
    fn forget_dead_waiters(&self) -> Result<(), JobError> {
        let mut stmt = self
            .conn
            .prepare("SELECT rowid, pid, pid_start FROM waiters")
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .map_err(|e| self.db(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db(e))?;
        for (rowid, pid, start) in rows {
            if !owner_alive(pid, start.as_deref()) {
                self.conn
                    .execute("DELETE FROM waiters WHERE rowid = ?1", params![rowid])
                    .map_err(|e| self.db(e))?;
            }
        }
        Ok(())
    }
}

/// What a job whose owner died without finishing it is told.
fn orphan_message(job: &Job, pid: i64) -> String {
    if job.is_server_job() {
        format!("the server stopped during the run (nbexec serve, process {pid})")
    } else {
        format!("the nbexec process ({pid}) running this job ended without finishing it")
    }
}

/// The start time of a process (field 22 of /proc/PID/stat), to tell a reused pid
/// from the original owner.
pub fn process_start(pid: i64) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    // Fields after the command: state is field 3, starttime field 22.
    after.split_whitespace().nth(19).map(str::to_owned)
}

fn owner_alive(pid: i64, recorded_start: Option<&str>) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if state == Some("Z") || state == Some("X") {
        return false;
    }
    // Without a recorded start time the owner's identity cannot be proven: a pid
    // alone may long since belong to another process.
    match recorded_start {
        Some(start) => process_start(pid).as_deref() == Some(start),
        None => false,
    }
}

/// `path` for a `file:` URI (percent-encoding what a URI path may not hold).
fn uri_path(path: &Path) -> String {
    file_url(path)
        .strip_prefix("file://")
        .unwrap_or_default()
        .to_owned()
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
    // Absolute, so `nbexec jobs show` means the same file from any directory.
    let item = std::path::absolute(item)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| item.to_owned());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_one_owners_jobs_newest_first_cut_by_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = JobStore::open(&state).unwrap();
        // Seven jobs, alternately alice's and bob's, one millisecond apart, so that
        // "newest first" is well defined.
        for i in 0..7 {
            let owner = if i % 2 == 0 { "alice" } else { "bob" };
            store
                .create_server_job(&format!("j{i}"), &serde_json::json!({}), owner)
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.page(None, 0, 100).unwrap()),
            ["j6", "j5", "j4", "j3", "j2", "j1", "j0"]
        );
        assert_eq!(ids(store.page(None, 2, 3).unwrap()), ["j4", "j3", "j2"]);
        assert_eq!(
            ids(store.page(Some("alice"), 0, 100).unwrap()),
            ["j6", "j4", "j2", "j0"]
        );
        assert_eq!(ids(store.page(Some("alice"), 1, 2).unwrap()), ["j4", "j2"]);
        assert_eq!(
            ids(store.page(Some("bob"), 3, 10).unwrap()),
            Vec::<String>::new()
        );
        assert!(store.page(Some("carol"), 0, 10).unwrap().is_empty());
    }
}
