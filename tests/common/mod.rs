//! Shared helpers for the end-to-end tests: they run the real `nbexec` binary on
//! notebooks in temporary directories, with the project's own Python kernel.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn venv() -> PathBuf {
    let venv = root().join(".venv");
    assert!(
        venv.join("bin/python").exists(),
        "no Python environment at {}: run scripts/venv.sh first (scripts/test.sh does)",
        venv.display()
    );
    venv
}

/// The `nbexec` binary, with the project's kernel reachable and nothing else assumed.
pub fn nbexec() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nbexec"));
    cmd.env("VIRTUAL_ENV", venv());
    cmd.env_remove("JUPYTER_PATH");
    cmd.env(
        "NBEXEC_STATE_DIR",
        std::env::temp_dir().join("nbexec-test-state"),
    );
    cmd
}

/// A code cell; `tags` may be empty.
pub fn code(source: &str, tags: &[&str]) -> Value {
    json!({"cell_type": "code", "execution_count": null, "metadata": {"tags": tags}, "outputs": [], "source": source})
}

pub fn markdown(source: &str) -> Value {
    json!({"cell_type": "markdown", "metadata": {}, "source": source})
}

/// A 4.5 Python notebook with these cells (ids added).
pub fn notebook(cells: Vec<Value>) -> Value {
    let cells: Vec<Value> = cells
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c["id"] = json!(format!("cell{i:04}"));
            c
        })
        .collect();
    json!({
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5
    })
}

pub fn write_nb(dir: &Path, name: &str, nb: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(nb).unwrap()).unwrap();
    path
}

pub fn read_nb(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn run(args: &[&str]) -> Output {
    nbexec().args(args).output().expect("nbexec runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Joined text of a cell's stream outputs of `name`.
pub fn stream_text(cell: &Value, name: &str) -> String {
    cell["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["output_type"] == "stream" && o["name"] == name)
        .map(|o| match &o["text"] {
            Value::Array(lines) => lines
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect::<String>(),
            Value::String(s) => s.clone(),
            _ => String::new(),
        })
        .collect()
}

pub fn status(cell: &Value) -> &str {
    cell["metadata"]["papermill"]["status"]
        .as_str()
        .unwrap_or("")
}

/// Finds the cell whose source (joined) contains `needle`.
pub fn cell_with<'a>(nb: &'a Value, needle: &str) -> &'a Value {
    nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| source(c).contains(needle))
        .unwrap_or_else(|| panic!("no cell contains {needle:?}"))
}

pub fn source(cell: &Value) -> String {
    match &cell["source"] {
        Value::Array(lines) => lines.iter().map(|l| l.as_str().unwrap()).collect(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// Asserts that the kernel recorded in `metadata.nbexec.kernel_pid` is gone.
pub fn assert_kernel_gone(nb: &Value) {
    let pid = nb["metadata"]["nbexec"]["kernel_pid"]
        .as_i64()
        .expect("kernel_pid recorded");
    assert_pid_gone(pid as i32);
}

pub fn assert_pid_gone(pid: i32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        // Gone, or a zombie that only its (exited) parent could reap.
        let alive = match &stat {
            Ok(s) => !s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z'),
            Err(_) => false,
        };
        if !alive {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kernel process {pid} is still running"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs `script` with the project's Python, `input` on its stdin; returns its stdout.
pub fn python(script: &str, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(venv().join("bin/python"))
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start Python");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().expect("wait for Python");
    assert!(out.status.success(), "Python failed");
    out.stdout
}

/// Runs the project's papermill (the oracle) with `args`.
pub fn papermill(args: &[&str]) -> Output {
    Command::new(venv().join("bin/papermill"))
        .args(args)
        .env("VIRTUAL_ENV", venv())
        .output()
        .expect("papermill runs")
}

/// What `nbexec` did with its stderr on a pseudo-terminal.
pub struct OnTerminal {
    pub code: Option<i32>,
    /// Its stdout (a pipe).
    pub stdout: Vec<u8>,
    /// Everything it wrote to the terminal (its stderr), `\r\n` as the terminal sent it.
    pub terminal: String,
}

/// Runs `nbexec args` with stderr on a pseudo-terminal (stdout a pipe, stdin empty),
/// through Python's `pty` module from the project's environment.
pub fn run_on_terminal(args: &[&str]) -> OnTerminal {
    const DRIVER: &str = r#"
import os, pty, subprocess, sys
out_path = sys.argv[1]
master, slave = pty.openpty()
with open(out_path, "wb") as out:
    child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=out, stderr=slave)
os.close(slave)
seen = bytearray()
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:  # EIO: the child closed its side
        break
    if not chunk:
        break
    seen += chunk
code = child.wait(timeout=120)
sys.stdout.buffer.write(bytes(seen))
sys.exit(code if code >= 0 else 128 - code)
"#;
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("stdout");
    let cmd = nbexec();
    let mut driver = Command::new(venv().join("bin/python"));
    driver
        .arg("-c")
        .arg(DRIVER)
        .arg(&out_path)
        .arg(cmd.get_program())
        .args(args)
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .env_remove("JUPYTER_PATH");
    let done = driver.output().expect("python runs the pty driver");
    assert!(
        done.stderr.is_empty(),
        "pty driver: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    OnTerminal {
        code: done.status.code(),
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        terminal: String::from_utf8_lossy(&done.stdout).into_owned(),
    }
}

/// `nbexec jobs ARGS --state-dir STATE`: (exit code, stdout).
pub fn jobs_cmd(state: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = nbexec()
        .arg("jobs")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("nbexec jobs runs");
    (out.status.code(), stdout(&out))
}

/// `nbexec jobs show ID -f json`.
pub fn job_show(state: &Path, id: &str) -> Value {
    let (code, text) = jobs_cmd(state, &["show", id, "-f", "json"]);
    assert_eq!(code, Some(0), "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Every job in the registry (`nbexec jobs -f json --all`).
pub fn job_list(state: &Path) -> Vec<Value> {
    let (code, text) = jobs_cmd(state, &["-f", "json", "--all"]);
    assert_eq!(code, Some(0), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["asyncNotebookJobs"].as_array().unwrap().clone()
}

/// Waits (bounded) until job `id` has finished (COMPLETED, FAILED or CANCELLED).
pub fn wait_job_finished(state: &Path, id: &str, within: std::time::Duration) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let job = job_show(state, id);
        if matches!(
            job["status"].as_str(),
            Some("COMPLETED" | "FAILED" | "CANCELLED")
        ) {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} is {} after {within:?}",
            job["status"]
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Pids of the processes whose command line has every one of `args` as an argument.
pub fn pids_with_args(args: &[&str]) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let have: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.iter().all(|a| have.contains(&a.as_bytes())) {
            pids.push(pid);
        }
    }
    pids
}

/// Pids whose parent is `parent`.
pub fn children_of(parent: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1).map(str::to_owned))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `needle` appears in the command line or the environment of process `pid`.
pub fn process_shows(pid: i32, needle: &str) -> bool {
    ["cmdline", "environ"].iter().any(|f| {
        std::fs::read(format!("/proc/{pid}/{f}"))
            .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or(false)
    })
}

/// Waits (bounded, 5 s) until process `pid` has reached the Rust runtime's start-up,
/// which ignores SIGPIPE before `main`: a fixed point after `exec` and the dynamic
/// loader, the same for every build of nbexec. Returns false if it never did (it
/// may have ended).
pub fn wait_rust_runtime_started(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return false;
        };
        let ignored = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .unwrap_or(0);
        if ignored & (1 << (libc::SIGPIPE - 1)) != 0 {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    false
}

/// The permission bits of `path` (not following a final symlink).
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Runs the child under `mask` as its umask.
pub fn with_umask(cmd: &mut Command, mask: u32) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: umask(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask as libc::mode_t);
            Ok(())
        })
    }
}

/// Makes a directory read-only for as long as the guard lives: immutable when run as
/// root (whom permission bits do not stop), mode 0555 otherwise.
pub struct ReadOnlyDir(PathBuf);

impl ReadOnlyDir {
    pub fn new(dir: &Path) -> ReadOnlyDir {
        use std::os::unix::fs::PermissionsExt;
        if unsafe { libc::geteuid() } == 0 {
            let ok = Command::new("chattr")
                .arg("+i")
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chattr +i {} failed", dir.display());
        } else {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        ReadOnlyDir(dir.to_owned())
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if unsafe { libc::geteuid() } == 0 {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        } else {
            let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
        }
    }
}

/// The start time of process `pid` as nbexec records it (field 22 of its stat).
pub fn process_start(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    after.split_whitespace().nth(19).unwrap().to_owned()
}
