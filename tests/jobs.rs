//! Jobs: the ArcGIS-style registry, detached runs, listing, cancelling (spec §4).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn state() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn jobs(state: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = nbexec()
        .arg("jobs")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn list(state: &Path) -> Vec<Value> {
    let (code, text) = jobs(state, &["-f", "json", "--all"]);
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&text).unwrap();
    v["asyncNotebookJobs"].as_array().unwrap().clone()
}

fn show(state: &Path, id: &str) -> Value {
    let (code, text) = jobs(state, &["show", id, "-f", "json"]);
    assert_eq!(code, Some(0), "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Runs `nbexec run` (not detached) and returns (exit code, job id from the output).
fn run_job(
    state: &Path,
    dir: &Path,
    cells: Vec<Value>,
    extra: &[&str],
) -> (Option<i32>, String, PathBuf) {
    let input = write_nb(dir, "in.ipynb", &notebook(cells));
    let output = dir.join("out.ipynb");
    let out = nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--state-dir",
        ])
        .arg(state)
        .args(extra)
        .output()
        .unwrap();
    let nb = read_nb(&output);
    let id = nb["metadata"]["nbexec"]["job_id"]
        .as_str()
        .expect("job id recorded")
        .to_owned();
    (out.status.code(), id, output)
}

fn detach(state: &Path, dir: &Path, name: &str, cells: Vec<Value>) -> (String, PathBuf) {
    let input = write_nb(dir, &format!("{name}.ipynb"), &notebook(cells));
    let output = dir.join(format!("{name}.out.ipynb"));
    let out = nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--detach",
            "--state-dir",
        ])
        .arg(state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let response: Value =
        serde_json::from_slice(&out.stdout).expect("executeNotebook response is JSON");
    let keys: Vec<&str> = response
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 3, "{response}");
    assert_eq!(response["status"], json!("success"));
    assert!(response["jobUrl"].as_str().unwrap().starts_with("file://"));
    let id = response["jobId"].as_str().unwrap().to_owned();
    assert_job_id(&id);
    (id, output)
}

fn assert_job_id(id: &str) {
    assert_eq!(id.len(), 33, "{id}");
    assert!(id.starts_with('j'));
    assert!(
        id[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
        "{id}"
    );
}

fn wait_status(state: &Path, id: &str, want: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let job = show(state, id);
        if job["status"] == want {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} is {} after {within:?}, wanted {want}",
            job["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn listing_matches_the_arcgis_shape_exactly() {
    let state = state();
    let dir = tempfile::tempdir().unwrap();
    let (code, id, _) = run_job(state.path(), dir.path(), vec![code("1", &[])], &[]);
    assert_eq!(code, Some(0));
    let (_, text) = jobs(state.path(), &["-f", "json"]);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["asyncNotebookJobs"]
    );
    let job = &v["asyncNotebookJobs"][0];
    let mut keys: Vec<&str> = job
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec!["endTime", "jobId", "name", "startTime", "status"]
    );
    assert_eq!(job["jobId"], json!(id));
    assert_eq!(job["name"], json!("executeNotebook"));
    assert!(job["startTime"].is_i64() && job["endTime"].is_i64());
    assert!(job["endTime"].as_i64().unwrap() >= job["startTime"].as_i64().unwrap());
    assert!(
        job["startTime"].as_i64().unwrap() > 1_700_000_000_000,
        "epoch milliseconds"
    );
    assert_eq!(job["status"], json!("COMPLETED"));
    // pjson is the same document, pretty.
    let (_, pretty) = jobs(state.path(), &["-f", "pjson"]);
    assert!(pretty.contains("\n  \"asyncNotebookJobs\""));
    assert_eq!(serde_json::from_str::<Value>(&pretty).unwrap(), v);
    // Without -f: a table for people.
    let (_, table) = jobs(state.path(), &[]);
    assert!(
        table.starts_with("JOB") && table.contains(&id) && table.contains("COMPLETED"),
        "{table}"
    );
}

#[test]
fn finished_runs_record_their_status_inputs_and_results() {
    let state = state();
    type Case<'a> = (Vec<Value>, Vec<&'a str>, Option<i32>, &'a str);
    let cases: Vec<Case> = vec![
        (vec![code("1", &[])], vec![], Some(0), "COMPLETED"),
        (
            vec![code("raise ValueError('no')", &[])],
            vec![],
            Some(1),
            "FAILED",
        ),
        (
            vec![code("import time\ntime.sleep(30)", &[])],
            vec!["--execution-timeout", "1"],
            Some(124),
            "FAILED",
        ),
    ];
    for (cells, extra, want_code, want_status) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (code, id, output) = run_job(state.path(), dir.path(), cells, &extra);
        assert_eq!(code, want_code);
        let job = show(state.path(), &id);
        assert_eq!(job["status"], json!(want_status), "{job}");
        assert!(
            job["inputs"]["itemId"]
                .as_str()
                .unwrap()
                .ends_with("in.ipynb")
        );
        for key in [
            "updatePortalItem",
            "saveInjectedParameters",
            "executionTimeoutInMinutes",
            "notebookParameters",
        ] {
            assert!(
                job["inputs"].get(key).is_some(),
                "inputs.{key} missing: {job}"
            );
        }
        assert_eq!(
            job["results"]["outputNotebook"],
            json!(output.to_str().unwrap())
        );
        assert_eq!(job["results"]["exitCode"], json!(want_code.unwrap()));
        assert!(!job["messages"].as_array().unwrap().is_empty());
        if want_status == "FAILED" && want_code == Some(1) {
            assert_eq!(job["results"]["failedCell"]["ename"], json!("ValueError"));
        }
    }
    assert_eq!(list(state.path()).len(), 3);
}

#[test]
fn a_detached_run_goes_submitted_to_completed_and_wait_returns_its_exit_code() {
    let state = state();
    let dir = tempfile::tempdir().unwrap();
    let (id, output) = detach(
        state.path(),
        dir.path(),
        "ok",
        vec![code("import time\ntime.sleep(1)\nprint('done')", &[])],
    );
    let status = show(state.path(), &id)["status"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        ["SUBMITTED", "EXECUTING"].contains(&status.as_str()),
        "{status}"
    );
    let out = nbexec()
        .args(["jobs", "wait", &id, "--timeout", "60", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let job = show(state.path(), &id);
    assert_eq!(job["status"], json!("COMPLETED"));
    assert!(job["endTime"].as_i64().unwrap() >= job["startTime"].as_i64().unwrap());
    assert_eq!(
        stream_text(&read_nb(&output)["cells"][0], "stdout"),
        "done\n"
    );
}

#[test]
fn cancel_from_another_process_stops_the_run_saves_it_and_leaves_no_kernel() {
    let state = state();
    let dir = tempfile::tempdir().unwrap();
    let (id, output) = detach(
        state.path(),
        dir.path(),
        "long",
        vec![
            code("print('started', flush=True)", &[]),
            code("import time\ntime.sleep(60)", &[]),
            code("print('never')", &[]),
        ],
    );
    wait_status(state.path(), &id, "EXECUTING", Duration::from_secs(30));
    // Let the kernel reach the sleeping cell.
    std::thread::sleep(Duration::from_millis(1500));
    let (code, text) = jobs(state.path(), &["cancel", &id]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"status": "success"})
    );
    let cancelled_at = Instant::now();
    wait_status(state.path(), &id, "CANCELLED", Duration::from_secs(3));
    assert!(cancelled_at.elapsed() <= Duration::from_secs(3));
    let out = nbexec()
        .args(["jobs", "wait", &id, "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(130));
    let nb = read_nb(&output);
    assert_eq!(stream_text(&nb["cells"][1], "stdout"), "started\n");
    assert_eq!(status(cell_with(&nb, "time.sleep(60)")), "failed");
    assert_eq!(nb["metadata"]["nbexec"]["status"], json!("cancelled"));
    assert_kernel_gone(&nb);
}

#[test]
fn cancelling_a_finished_job_gives_the_arcgis_error_object() {
    let state = state();
    let dir = tempfile::tempdir().unwrap();
    let (_, id, _) = run_job(state.path(), dir.path(), vec![code("1", &[])], &[]);
    let (code, text) = jobs(state.path(), &["cancel", &id]);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({"status": "error", "messages": [format!("Unable to cancel job :[{id}]")], "code": 500})
    );
}

#[test]
fn twenty_detached_jobs_at_once_are_all_recorded_with_the_right_status() {
    let state = state();
    let dir = tempfile::tempdir().unwrap();
    let mut launched = Vec::new();
    for i in 0..20 {
        let cells = if i % 5 == 4 {
            vec![code(&format!("raise RuntimeError('job {i}')"), &[])]
        } else {
            vec![code(&format!("print({i})"), &[])]
        };
        launched.push((
            i,
            detach(state.path(), dir.path(), &format!("nb{i}"), cells),
        ));
    }
    for (i, (id, output)) in &launched {
        let out = nbexec()
            .args(["jobs", "wait", id, "--timeout", "180", "--state-dir"])
            .arg(state.path())
            .output()
            .unwrap();
        let want = if i % 5 == 4 { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(want), "job {i}: {}", stderr(&out));
        let nb = read_nb(output);
        if want == 0 {
            assert_eq!(stream_text(&nb["cells"][0], "stdout"), format!("{i}\n"));
        }
    }
    let all = list(state.path());
    assert_eq!(all.len(), 20);
    let completed = all.iter().filter(|j| j["status"] == "COMPLETED").count();
    let failed = all.iter().filter(|j| j["status"] == "FAILED").count();
    assert_eq!((completed, failed), (16, 4));
    let mut ids: Vec<&str> = all.iter().map(|j| j["jobId"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

/// The pid of the detached `nbexec run` serving a job.
fn runner_pid(id: &str) -> Option<i32> {
    for entry in std::fs::read_dir("/proc").ok()? {
        let entry = entry.ok()?;
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&id.as_bytes()) && args.contains(&b"--job-id".as_slice()) {
            return Some(pid);
        }
    }
    None
}

/// Kernel processes (ipykernel) whose connection file names this run.
fn kernel_pids_of_parent(parent: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r.to_owned()) else {
            continue;
        };
        let ppid: i32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == parent {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn kill_9_of_a_detached_run_leaves_a_failed_job_and_no_kernel() {
    let state = state();
    let dir = tempfile::tempdir().unwrap();
    let (id, _) = detach(
        state.path(),
        dir.path(),
        "killed",
        vec![code("import time\ntime.sleep(60)", &[])],
    );
    wait_status(state.path(), &id, "EXECUTING", Duration::from_secs(30));
    let pid = runner_pid(&id).expect("detached nbexec is running");
    // Wait for its kernel to be up, then kill nbexec outright.
    let deadline = Instant::now() + Duration::from_secs(20);
    let kernels = loop {
        let k = kernel_pids_of_parent(pid);
        if !k.is_empty() {
            break k;
        }
        assert!(Instant::now() < deadline, "no kernel child appeared");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(500));
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_pid_gone(pid);
    let all = list(state.path());
    let job = all.iter().find(|j| j["jobId"] == id.as_str()).unwrap();
    assert_eq!(job["status"], json!("FAILED"), "{job}");
    assert!(
        show(state.path(), &id)["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().contains("ended without finishing"))
    );
    // The kernel notices its parent is gone (parent-death signal) and dies too.
    for k in kernels {
        assert_pid_gone(k);
    }
}

#[test]
fn prune_removes_finished_jobs_older_than_the_retention() {
    let state = state();
    let dir = tempfile::tempdir().unwrap();
    run_job(state.path(), dir.path(), vec![code("1", &[])], &[]);
    let (code, _) = jobs(state.path(), &["prune", "--older-than", "1h"]);
    assert_eq!(code, Some(0));
    assert_eq!(list(state.path()).len(), 1, "a fresh job is kept");
    std::thread::sleep(Duration::from_millis(50));
    let (code, text) = jobs(state.path(), &["prune", "--older-than", "0s", "-f", "json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["pruned"],
        json!(1)
    );
    assert!(list(state.path()).is_empty());
}
