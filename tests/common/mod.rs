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

/// Runs `cmd` to completion, or SIGKILLs it after `limit` and returns `None`: a test
/// of a possible hang then fails with a message instead of hanging itself.
pub fn output_within(mut cmd: Command, limit: std::time::Duration) -> Option<Output> {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}
