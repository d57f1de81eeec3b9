//! Jobs: the ArcGIS-style registry, detached runs, listing, cancelling (spec §4).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn state() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
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
        let job = job_show(state, id);
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
    let (_, text) = jobs_cmd(state.path(), &["-f", "json"]);
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
    let (_, pretty) = jobs_cmd(state.path(), &["-f", "pjson"]);
    assert!(pretty.contains("\n  \"asyncNotebookJobs\""));
    assert_eq!(serde_json::from_str::<Value>(&pretty).unwrap(), v);
    // Without -f: a table for people.
    let (_, table) = jobs_cmd(state.path(), &[]);
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
        let job = job_show(state.path(), &id);
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
    assert_eq!(job_list(state.path()).len(), 3);
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
    let status = job_show(state.path(), &id)["status"]
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
    let job = job_show(state.path(), &id);
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
    // The sleeping cell marks that it has begun, so the test cancels it there
    // whatever the machine's load (a fixed pause was too short on a busy machine).
    let marker = dir.path().join("sleeping");
    let (id, output) = detach(
        state.path(),
        dir.path(),
        "long",
        vec![
            code("print('started', flush=True)", &[]),
            code(
                &format!(
                    "import pathlib, time\npathlib.Path({:?}).touch()\ntime.sleep(60)",
                    marker.to_str().unwrap()
                ),
                &[],
            ),
            code("print('never')", &[]),
        ],
    );
    wait_status(state.path(), &id, "EXECUTING", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the kernel never reached the sleeping cell"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, text) = jobs_cmd(state.path(), &["cancel", &id]);
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
    let (code, text) = jobs_cmd(state.path(), &["cancel", &id]);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({"status": "error", "messages": [format!("Unable to cancel job :[{id}]")], "code": 500, "jobStatus": "COMPLETED"})
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
    let all = job_list(state.path());
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
    pids_with_args(&["--job-id", id]).first().copied()
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
        let k = children_of(pid);
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
    let all = job_list(state.path());
    let job = all.iter().find(|j| j["jobId"] == id.as_str()).unwrap();
    assert_eq!(job["status"], json!("FAILED"), "{job}");
    assert!(
        job_show(state.path(), &id)["messages"]
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
    let (code, _) = jobs_cmd(state.path(), &["prune", "--older-than", "1h"]);
    assert_eq!(code, Some(0));
    assert_eq!(job_list(state.path()).len(), 1, "a fresh job is kept");
    std::thread::sleep(Duration::from_millis(50));
    let (code, text) = jobs_cmd(state.path(), &["prune", "--older-than", "0s", "-f", "json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["pruned"],
        json!(1)
    );
    assert!(job_list(state.path()).is_empty());
}

/// Records jobs straight in the registry (as a run would), for tests that need many.
fn seed_jobs(state: &Path, n: usize) -> Vec<String> {
    use nbexec_runner::jobs::{JobStatus, JobStore, inputs_json, new_job_id};
    let store = JobStore::open(state).unwrap();
    (0..n)
        .map(|i| {
            let id = new_job_id();
            let inputs = inputs_json(&format!("/nb/{i}.ipynb"), false, false, None, json!({}));
            store.create(&id, &inputs).unwrap();
            store
                .finish(&id, JobStatus::Completed, &["done".into()], &json!({}), 0)
                .unwrap();
            id
        })
        .collect()
}

/// Sets a recorded job's owner directly in the database.
fn set_owner_raw(state: &Path, id: &str, pid: u32, pid_start: Option<&str>) {
    let db = rusqlite::Connection::open(state.join("jobs.sqlite3")).unwrap();
    db.execute(
        "UPDATE jobs SET status = 'EXECUTING', end_time = 0, pid = ?2, pid_start = ?3 WHERE id = ?1",
        rusqlite::params![id, pid, pid_start],
    )
    .unwrap();
}

#[test]
fn a_job_whose_owner_cannot_be_proven_is_settled_and_its_pid_never_signalled() {
    let state = state();
    let ids = seed_jobs(state.path(), 2);
    // An unrelated live process holds the recorded pid. SIGUSR1 would kill it.
    let mut bystander = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = bystander.id();
    // No recorded start time: identity unprovable. Another start time: a reused pid.
    set_owner_raw(state.path(), &ids[0], pid, None);
    set_owner_raw(state.path(), &ids[1], pid, Some("1"));
    for id in &ids {
        let (code, text) = jobs_cmd(state.path(), &["cancel", id]);
        assert_eq!(code, Some(1), "{text}");
        let job = job_show(state.path(), id);
        assert_eq!(job["status"], json!("FAILED"), "{job}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "an unrelated process was signalled"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[test]
fn a_corrupt_registry_does_not_stop_a_foreground_run() {
    let state = state();
    std::fs::write(
        state.path().join("jobs.sqlite3"),
        b"this is not a database, not at all; it is just some text".repeat(100),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("print(6 * 7)", &[])]),
    );
    let output = dir.path().join("out.ipynb");
    let out = nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--state-dir",
        ])
        .arg(state.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    assert!(err.contains("not recorded"), "{err}");
    let nb = read_nb(&output);
    assert_eq!(stream_text(cell_with(&nb, "6 * 7"), "stdout"), "42\n");
}

#[test]
fn no_record_leaves_the_registry_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(dir.path(), "in.ipynb", &notebook(vec![code("1", &[])]));
    let output = dir.path().join("out.ipynb");
    for (flag, env) in [(Some("--no-record"), None), (None, Some("1"))] {
        let state = dir.path().join(format!("state-{}", flag.is_some()));
        let mut cmd = nbexec();
        cmd.args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
            .arg("--state-dir")
            .arg(&state)
            .args(flag);
        if let Some(v) = env {
            cmd.env("NBEXEC_NO_RECORD", v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        // No warning about the registry: only the summary line, which names no job.
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("nbexec: completed"), "{err}");
        assert!(!err.contains("; job "), "{err}");
        assert!(!state.exists(), "{flag:?}/{env:?} created the state dir");
        assert!(
            read_nb(&output)["metadata"]["nbexec"]
                .get("job_id")
                .is_none()
        );
    }
}

#[test]
fn jobs_lists_a_registry_it_cannot_write() {
    let state = state();
    let ids = seed_jobs(state.path(), 1);
    let _ro = ReadOnlyDir::new(state.path());
    let (code, text) = jobs_cmd(state.path(), &["-f", "json"]);
    assert_eq!(code, Some(0), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["asyncNotebookJobs"][0]["jobId"], json!(ids[0]));
    let (code, _) = jobs_cmd(state.path(), &["show", &ids[0]]);
    assert_eq!(code, Some(0));
    // A state dir that cannot even be created: no jobs, not an error.
    let nowhere = state.path().join("sub/dir");
    let (code, text) = jobs_cmd(&nowhere, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.trim(), "no jobs");
}

#[test]
fn control_characters_in_names_are_escaped_and_job_urls_percent_encoded() {
    let state = state();
    let dir = tempfile::tempdir().unwrap();
    let name = "evil\x1b[2Jname #1%.ipynb";
    let input = write_nb(dir.path(), name, &notebook(vec![code("1", &[])]));
    let output = dir.path().join("out put#%.ipynb");
    let out = nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--detach",
        ])
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let response: Value = serde_json::from_slice(&out.stdout).unwrap();
    let url = response["jobUrl"].as_str().unwrap();
    assert!(url.ends_with("/out%20put%23%25.ipynb"), "{url}");
    assert!(!url.contains(' ') && !url.contains('#'), "{url}");
    let id = response["jobId"].as_str().unwrap();
    wait_status(state.path(), id, "COMPLETED", Duration::from_secs(60));
    for args in [vec![], vec!["show", id]] {
        let (code, text) = jobs_cmd(state.path(), &args);
        assert_eq!(code, Some(0));
        assert!(
            !text.contains('\x1b'),
            "raw escape printed by jobs {args:?}"
        );
        assert!(text.contains("evil\\u{1b}[2Jname"), "{text}");
    }
}

#[test]
fn a_waited_job_is_not_pruned_under_its_waiter() {
    let state = state();
    let dir = tempfile::tempdir().unwrap();
    let (id, _) = detach(
        state.path(),
        dir.path(),
        "w",
        vec![code("import time\ntime.sleep(2)", &[])],
    );
    let waiter = nbexec()
        .args(["jobs", "wait", &id, "--timeout", "60", "--state-dir"])
        .arg(state.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waiter_pid = waiter.id();
    // Prune with no retention, over and over, until the waiter is done.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pruner = {
        let stop = stop.clone();
        let state = state.path().to_owned();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let _ = jobs_cmd(&state, &["prune", "--older-than", "0s"]);
            }
        })
    };
    let out = waiter.wait_with_output().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    pruner.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "waiter {waiter_pid}: {}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("COMPLETED"), "{}", stdout(&out));
    // Once the waiter is gone, the job can be pruned.
    let (code, _) = jobs_cmd(state.path(), &["prune", "--older-than", "0s"]);
    assert_eq!(code, Some(0));
    assert!(job_list(state.path()).is_empty());
}

#[test]
fn the_list_says_when_it_is_cut() {
    let state = state();
    seed_jobs(state.path(), 53);
    let (code, text) = jobs_cmd(state.path(), &[]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains("showing 50 of 53 jobs; --all for all"),
        "{text}"
    );
    let (_, text) = jobs_cmd(state.path(), &["-f", "text", "--all"]);
    assert!(!text.contains("showing"), "{text}");
    assert_eq!(text.lines().count(), 54, "{text}");
    let (_, text) = jobs_cmd(state.path(), &["-f", "json"]);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["asyncNotebookJobs"].as_array().unwrap().len(), 50);
}

#[test]
fn job_ids_may_be_given_by_a_unique_prefix() {
    let state = state();
    let ids = seed_jobs(state.path(), 2);
    let prefix = |id: &str| -> String {
        let other = ids.iter().find(|o| *o != id).unwrap();
        let common = id
            .bytes()
            .zip(other.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        id[..=common].to_owned()
    };
    for id in &ids {
        let job = job_show(state.path(), &prefix(id));
        assert_eq!(job["jobId"], json!(id));
        let (code, text) = jobs_cmd(state.path(), &["wait", &prefix(id)]);
        assert_eq!(code, Some(0), "{text}");
    }
    let out = nbexec()
        .args(["jobs", "show", "j", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.contains("ambiguous"),
        "{err}"
    );
    for id in &ids {
        assert!(err.contains(id.as_str()), "{err}");
    }
}

#[test]
fn cancel_tells_an_unknown_job_from_a_finished_one() {
    let state = state();
    let ids = seed_jobs(state.path(), 1);
    let out = nbexec()
        .args(["jobs", "cancel", "jnosuchjob", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        json!({"status": "error", "messages": ["No such job :[jnosuchjob]"], "code": 404})
    );
    assert!(stderr(&out).contains("no such job"), "{}", stderr(&out));
    let (code, text) = jobs_cmd(state.path(), &["cancel", &ids[0]]);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], json!(500));
    assert_eq!(v["jobStatus"], json!("COMPLETED"));
}

#[test]
fn show_gives_absolute_paths_parameters_and_the_log_and_wait_the_reason() {
    let state = state();
    let dir = tempfile::tempdir().unwrap();
    write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("x = 1", &["parameters"]),
            code("raise ValueError('bad x')", &[]),
        ]),
    );
    let out = nbexec()
        .current_dir(dir.path())
        .args([
            "run",
            "in.ipynb",
            "out.ipynb",
            "-p",
            "x",
            "5",
            "--secret",
            "token",
            "s3cr3t",
        ])
        .arg("--detach")
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["jobId"]
        .as_str()
        .unwrap()
        .to_owned();
    let wait = nbexec()
        .args(["jobs", "wait", &id, "--timeout", "60", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(wait.status.code(), Some(1));
    let err = stderr(&wait);
    assert!(err.contains("ValueError: bad x"), "{err}");
    let (code, text) = jobs_cmd(state.path(), &["show", &id]);
    assert_eq!(code, Some(0));
    let canon = dir.path().canonicalize().unwrap();
    let abs = |name: &str| {
        [dir.path().join(name), canon.join(name)]
            .iter()
            .any(|p| text.contains(p.to_str().unwrap()))
    };
    assert!(abs("in.ipynb"), "{text}");
    assert!(abs("out.ipynb"), "{text}");
    assert!(text.contains(&format!("logs/{id}.log")), "{text}");
    assert!(text.contains("x = 5"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
}

#[test]
fn id_arguments_are_described_in_help() {
    for cmd in ["show", "cancel", "wait"] {
        let out = run(&["jobs", cmd, "--help"]);
        let text = stdout(&out);
        assert!(text.contains("unique prefix"), "jobs {cmd} --help: {text}");
    }
    let out = run(&["jobs", "--help"]);
    assert!(stdout(&out).contains("- text:"), "{}", stdout(&out));
    let out = run(&["jobs", "-f", "text"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn update_portal_item_is_told_by_the_file_not_its_spelling() {
    let state = state();
    let dir = tempfile::tempdir().unwrap();
    write_nb(dir.path(), "same.ipynb", &notebook(vec![code("1", &[])]));
    let abs = dir.path().join("same.ipynb");
    let other = dir.path().join("other.ipynb");
    for (output, want) in [
        ("./same.ipynb", true),
        (abs.to_str().unwrap(), true),
        ("sub/../same.ipynb", true),
        (other.to_str().unwrap(), false),
    ] {
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let out = nbexec()
            .current_dir(dir.path())
            .args(["run", "same.ipynb", output, "--state-dir"])
            .arg(state.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let id = read_nb(&dir.path().join(output))["metadata"]["nbexec"]["job_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let job = job_show(state.path(), &id);
        assert_eq!(
            job["inputs"]["updatePortalItem"],
            json!(want),
            "{output}: {job}"
        );
    }
}
