//! `--detach` and signals: what a detached run is handed and records, runs that can
//! never start, detached batches, and signals in the first milliseconds.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn detached_id(out: &std::process::Output) -> (String, String) {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    let response: Value = serde_json::from_slice(&out.stdout).expect("executeNotebook response");
    (
        response["jobId"].as_str().unwrap().to_owned(),
        response["jobUrl"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_run_that_can_never_start_fails_before_detaching_and_records_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("when = None\nn = 1", &["parameters"])]),
    );
    let input = input.to_str().unwrap();
    let output = dir.path().join("out.ipynb");
    let output = output.to_str().unwrap();
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, "").unwrap();
    let unwritable = a_file.join("out.ipynb");
    let missing = dir.path().join("missing.ipynb");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("missing notebook", vec![missing.to_str().unwrap(), output]),
        (
            "unknown kernel",
            vec![input, output, "-k", "no-such-kernel-xyz"],
        ),
        (
            "strict",
            vec![input, output, "--strict", "-p", "undeclared", "1"],
        ),
        (
            "bad value",
            vec![
                input,
                output,
                "--param-type",
                "when=date",
                "-p",
                "when",
                "not a date",
            ],
        ),
        (
            "unwritable output",
            vec![input, unwritable.to_str().unwrap()],
        ),
    ];
    for (what, args) in cases {
        let out = nbexec()
            .arg("run")
            .args(&args)
            .args(["--detach", "--state-dir"])
            .arg(&state)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.starts_with("error: "), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert_eq!(stdout(&out), "", "{what}");
    }
    // No job was recorded for any of them.
    if state.exists() {
        assert_eq!(job_list(&state), Vec::<Value>::new());
    }
}

#[test]
fn a_detached_run_records_its_inputs_and_keeps_a_parameter_valued_detach() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("region = ''\nflag = ''\ntoken = ''", &["parameters"]),
            code("print(region, flag, len(token))", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let out = nbexec()
        .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
        .args(["-p", "region", "East", "-p", "flag", "--detach"])
        .args(["--secret", "token", "12345", "--timeout-minutes", "5"])
        .args(["--detach", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let (id, url) = detached_id(&out);
    assert_eq!(url, format!("file://{}", output.display()));
    // Recorded at once, before the run starts.
    let job = job_show(&state, &id);
    assert_eq!(
        job["inputs"]["notebookParameters"],
        json!({"region": "East", "flag": "--detach", "token": "[REDACTED]"})
    );
    assert_eq!(job["inputs"]["executionTimeoutInMinutes"], json!(5));
    let job = wait_job_finished(&state, &id, Duration::from_secs(60));
    assert_eq!(job["status"], "COMPLETED", "{job}");
    let nb = read_nb(&output);
    assert_eq!(
        stream_text(cell_with(&nb, "print(region"), "stdout"),
        "East --detach 5\n"
    );
}

#[test]
fn a_detached_batch_is_one_job_over_the_jobs_of_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("n = 0", &["parameters"]),
            code("print(n * 10)", &[]),
        ]),
    );
    let batch = dir.path().join("batch.jsonl");
    std::fs::write(&batch, "{\"n\": 1}\n{\"n\": 2}\n").unwrap();
    let template = dir.path().join("out-{_index}.ipynb");
    let out = nbexec()
        .args(["run", input.to_str().unwrap(), template.to_str().unwrap()])
        .arg("--batch")
        .arg(&batch)
        .args(["--detach", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let (id, url) = detached_id(&out);
    assert!(!url.contains('{'), "{url}");
    let job = wait_job_finished(&state, &id, Duration::from_secs(120));
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["results"]["exitCode"], json!(0));
    let runs = job["results"]["runs"]
        .as_array()
        .expect("runs listed")
        .clone();
    assert_eq!(runs.len(), 2, "{job}");
    for (i, run) in runs.iter().enumerate() {
        let line = i + 1;
        assert_eq!(run["line"], json!(line));
        let child = job_show(&state, run["jobId"].as_str().unwrap());
        assert_eq!(child["status"], "COMPLETED", "{child}");
        let nb = read_nb(&dir.path().join(format!("out-{line}.ipynb")));
        assert_eq!(
            stream_text(cell_with(&nb, "print(n"), "stdout"),
            format!("{}\n", line * 10)
        );
    }
    // The parent and its two runs, nothing else.
    assert_eq!(job_list(&state).len(), 3);
}

/// Connection files left in a runtime directory.
fn connection_files(runtime: &Path) -> Vec<String> {
    std::fs::read_dir(runtime)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn signals_in_the_first_milliseconds_cancel_the_run_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    let state = dir.path().join("state");
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("x = 1", &["parameters"]), code("print(x)", &[])]),
    );
    let signals = [libc::SIGTERM, libc::SIGUSR1, libc::SIGINT];
    let mut tally = std::collections::BTreeMap::new();
    for i in 0..20u64 {
        let output = dir.path().join(format!("out{i}.ipynb"));
        let child = nbexec()
            .env("JUPYTER_RUNTIME_DIR", &runtime)
            .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
            .arg("--state-dir")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // 0–19 ms after the process reached its own code (its start-up before
        // that, exec and the dynamic loader, is out of any program's hands), spread
        // over nbexec's start-up: parsing, reading, injecting, launching the kernel.
        assert!(
            wait_rust_runtime_started(child.id()),
            "run {i} did not start"
        );
        std::thread::sleep(Duration::from_micros(i * 1000));
        let sig = signals[i as usize % signals.len()];
        // SAFETY: kill(2) of our own child, not yet waited for.
        unsafe {
            libc::kill(child.id() as libc::pid_t, sig);
        }
        let out = child.wait_with_output().unwrap();
        let code = out.status.code();
        let want: &[i32] = if sig == libc::SIGTERM {
            &[0, 143]
        } else {
            &[0, 130]
        };
        assert!(
            code.is_some_and(|c| want.contains(&c)),
            "run {i}, signal {sig}: {:?} (killed by a signal if None); {}",
            out.status,
            stderr(&out)
        );
        *tally.entry(code.unwrap()).or_insert(0) += 1;
        // The run ended properly: its notebook is written.
        let nb = read_nb(&output);
        assert!(nb["cells"].is_array());
    }
    eprintln!("exit codes: {tally:?}");
    assert_eq!(connection_files(&runtime), Vec::<String>::new());
    // Every run is recorded, none left running.
    let jobs = job_list(&state);
    assert_eq!(jobs.len(), 20);
    assert!(
        jobs.iter()
            .all(|j| matches!(j["status"].as_str(), Some("COMPLETED" | "CANCELLED"))),
        "{jobs:?}"
    );
}

#[test]
fn cancelling_jobs_as_they_are_submitted_never_kills_a_detaching_nbexec() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("import time\ntime.sleep(1)", &[])]),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Another "shell" cancels every job it sees, as fast as it can (bounded).
    let canceller = {
        let stop = stop.clone();
        let state = state.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                if state.join("jobs.db").exists() || state.exists() {
                    let (_, text) = jobs_cmd(&state, &["-f", "json"]);
                    let listed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    for job in listed["asyncNotebookJobs"].as_array().into_iter().flatten() {
                        if let Some(id) = job["jobId"].as_str() {
                            let _ = jobs_cmd(&state, &["cancel", id]);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut ids = Vec::new();
    for i in 0..10 {
        let output = dir.path().join(format!("out{i}.ipynb"));
        let out = nbexec()
            .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
            .args(["--detach", "--state-dir"])
            .arg(&state)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "detach {i}: {:?}; {}",
            out.status,
            stderr(&out)
        );
        ids.push(detached_id(&out).0);
    }
    let mut statuses = Vec::new();
    for id in &ids {
        let job = wait_job_finished(&state, id, Duration::from_secs(90));
        if job["status"] == "FAILED" {
            eprintln!("failed job: {job}");
        }
        statuses.push(job["status"].as_str().unwrap().to_owned());
        if job["status"] == "CANCELLED" {
            assert_eq!(job["results"]["exitCode"], json!(130), "{job}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    canceller.join().unwrap();
    eprintln!("statuses: {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| s == "CANCELLED" || s == "COMPLETED"),
        "{statuses:?}"
    );
}

#[test]
fn a_job_cancelled_the_moment_it_is_submitted_ends_cancelled_with_its_notebook_written() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("print('ran')", &[])]),
    );
    for i in 0..5 {
        let output = dir.path().join(format!("out{i}.ipynb"));
        let out = nbexec()
            .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
            .args(["--detach", "--state-dir"])
            .arg(&state)
            .output()
            .unwrap();
        let (id, _) = detached_id(&out);
        // At once: the detached process is still starting up.
        let (code, text) = jobs_cmd(&state, &["cancel", &id]);
        assert_eq!(code, Some(0), "{text}");
        let job = wait_job_finished(&state, &id, Duration::from_secs(60));
        assert_eq!(job["status"], "CANCELLED", "run {i}: {job}");
        assert_eq!(job["results"]["exitCode"], json!(130), "{job}");
        let (code, _) = jobs_cmd(&state, &["wait", &id]);
        assert_eq!(code, Some(130));
        // Its notebook is written, nothing ran.
        let nb = read_nb(&output);
        assert_eq!(stream_text(&nb["cells"][0], "stdout"), "");
    }
}

#[test]
fn a_ctrl_c_while_detaching_either_starts_the_job_or_records_none() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let input = write_nb(dir.path(), "in.ipynb", &notebook(vec![code("1", &[])]));
    let mut started = Vec::new();
    for i in 0..10u64 {
        let output = dir.path().join(format!("out{i}.ipynb"));
        let child = nbexec()
            .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
            .args(["--detach", "--state-dir"])
            .arg(&state)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            wait_rust_runtime_started(child.id()),
            "run {i} did not start"
        );
        std::thread::sleep(Duration::from_micros(i * 1000));
        // SAFETY: kill(2) of our own child, not yet waited for.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGINT);
        }
        let out = child.wait_with_output().unwrap();
        match out.status.code() {
            Some(0) => started.push(detached_id(&out).0),
            Some(130) => assert_eq!(stdout(&out), "", "run {i}"),
            other => panic!("run {i}: {other:?} ({:?}); {}", out.status, stderr(&out)),
        }
    }
    eprintln!("{} of 10 detached before the Ctrl-C", started.len());
    // Exactly the jobs that were announced exist, and they run to the end.
    let listed = if state.exists() {
        job_list(&state)
    } else {
        Vec::new()
    };
    assert_eq!(listed.len(), started.len(), "{listed:?}");
    for id in &started {
        let job = wait_job_finished(&state, id, Duration::from_secs(60));
        assert_eq!(job["status"], "COMPLETED", "{job}");
    }
}
