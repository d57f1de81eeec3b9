//! `nbexec run --batch`: many parameter sets, several at once, kernels warmed ahead.

mod common;

use common::*;
use serde_json::json;

#[test]
fn every_line_runs_with_its_parameters_into_its_own_output_and_job() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("n = 0\nlabel = ''", &["parameters"]),
            code("print(label, n * n)", &[]),
        ]),
    );
    let lines: String = (1..=7)
        .map(|i| format!("{{\"n\": {i}, \"label\": \"run{i}\"}}\n"))
        .collect();
    let batch = dir.path().join("params.jsonl");
    std::fs::write(&batch, format!("\n{lines}\n")).unwrap();
    let template = dir.path().join("out-{label}-{_index}.ipynb");
    let out = nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            template.to_str().unwrap(),
            "--batch",
            batch.to_str().unwrap(),
            "--jobs",
            "2",
            "--state-dir",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut job_ids = Vec::new();
    for i in 1..=7 {
        // Line numbers count the blank first line.
        let path = dir.path().join(format!("out-run{i}-{}.ipynb", i + 1));
        let nb = read_nb(&path);
        assert_eq!(
            stream_text(&nb["cells"][2], "stdout"),
            format!("run{i} {}\n", i * i)
        );
        assert_eq!(
            nb["metadata"]["papermill"]["parameters"],
            json!({"n": i, "label": format!("run{i}")})
        );
        job_ids.push(
            nb["metadata"]["nbexec"]["job_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        assert_kernel_gone(&nb);
    }
    job_ids.sort();
    job_ids.dedup();
    assert_eq!(job_ids.len(), 7);
    let listing = nbexec()
        .args(["jobs", "-f", "json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    let jobs = v["asyncNotebookJobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 7);
    assert!(jobs.iter().all(|j| j["status"] == "COMPLETED"));
}

#[test]
fn a_failing_line_fails_the_batch_but_the_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("n = 0", &["parameters"]),
            code("assert n != 2\nprint(n)", &[]),
        ]),
    );
    let batch = dir.path().join("params.jsonl");
    std::fs::write(&batch, "{\"n\": 1}\n{\"n\": 2}\n{\"n\": 3}\n").unwrap();
    let template = dir.path().join("out-{n}.ipynb");
    let out = nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            template.to_str().unwrap(),
            "--batch",
            batch.to_str().unwrap(),
            "--jobs",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("error: 1 of 3 runs did not succeed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stream_text(
            &read_nb(&dir.path().join("out-1.ipynb"))["cells"][2],
            "stdout"
        ),
        "1\n"
    );
    assert_eq!(
        stream_text(
            &read_nb(&dir.path().join("out-3.ipynb"))["cells"][2],
            "stdout"
        ),
        "3\n"
    );
    let failed = read_nb(&dir.path().join("out-2.ipynb"));
    assert_eq!(failed["metadata"]["papermill"]["exception"], json!(true));
}

#[test]
fn two_lines_writing_the_same_output_are_refused_before_any_kernel_starts() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("n = 0", &["parameters"])]),
    );
    let batch = dir.path().join("params.jsonl");
    std::fs::write(&batch, "{\"n\": 1}\n{\"n\": 2}\n").unwrap();
    let out = nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            dir.path().join("same.ipynb").to_str().unwrap(),
            "--batch",
            batch.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.contains("batch lines 1 and 2 both write"),
        "{err}"
    );
    assert!(!dir.path().join("same.ipynb").exists());
}

#[test]
fn a_line_that_is_not_a_json_object_is_a_usage_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("n = 0", &["parameters"])]),
    );
    let batch = dir.path().join("params.jsonl");
    std::fs::write(&batch, "{\"n\": 1}\n[1, 2]\n").unwrap();
    let out = nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            "out-{n}.ipynb",
            "--batch",
            batch.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("batch line 2: expected a JSON object"),
        "{}",
        stderr(&out)
    );
}
