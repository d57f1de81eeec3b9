//! Secret parameters: how they come in (never needing the command line), and that
//! their values land nowhere nbexec writes or prints.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn detach_response(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    let response: Value = serde_json::from_slice(&out.stdout).expect("executeNotebook response");
    response["jobId"].as_str().unwrap().to_owned()
}

fn assert_nowhere(text: &str, secrets: &[&str], what: &str) {
    for s in secrets {
        assert!(!text.contains(s), "{what} shows the secret {s:?}:\n{text}");
    }
}

#[test]
fn a_detached_run_gets_its_secrets_through_no_command_line_or_environment() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (argv_s, env_s, file_s, yaml_s) = (
        "argv-S3cr3t-7781",
        "env-S3cr3t-5521",
        "file-S3cr3t-9931",
        "yaml-S3cr3t-4417",
    );
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("a = b = c = d = ''", &["parameters"]),
            code(
                "import time\nprint(a[::-1], b[::-1], c[::-1], d[::-1])\ntime.sleep(3)",
                &[],
            ),
        ]),
    );
    let secret_file = dir.path().join("pw.txt");
    std::fs::write(&secret_file, format!("{file_s}\n")).unwrap();
    let secrets_yaml = dir.path().join("secrets.yaml");
    std::fs::write(&secrets_yaml, format!("d: {yaml_s}\n")).unwrap();
    let output = dir.path().join("out.ipynb");
    let out = nbexec()
        .env("NBEXEC_TEST_SECRET", env_s)
        .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
        .args([
            "--secret",
            "a",
            argv_s,
            "--secret-env",
            "b=NBEXEC_TEST_SECRET",
        ])
        .arg("--secret-file")
        .arg(format!("c={}", secret_file.display()))
        .arg("--secrets-file")
        .arg(&secrets_yaml)
        .args(["--detach", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    let id = detach_response(&out);
    let all = [argv_s, env_s, file_s, yaml_s];

    // While it runs: the detached nbexec and its kernel show none of the values.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_kernel = false;
    while Instant::now() < deadline && !seen_kernel {
        for pid in pids_with_args(&["--job-id", &id]) {
            let kernels = children_of(pid);
            seen_kernel |= !kernels.is_empty();
            for p in std::iter::once(pid).chain(kernels) {
                for s in all {
                    assert!(!process_shows(p, s), "process {p} shows {s:?}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen_kernel, "the detached run never started its kernel");

    let job = wait_job_finished(state.path(), &id, Duration::from_secs(60));
    assert_eq!(job["status"], "COMPLETED", "{job}");
    // The kernel got every value (printed reversed, so redaction leaves it).
    let nb = read_nb(&output);
    let printed = stream_text(cell_with(&nb, "time.sleep"), "stdout");
    let reversed: Vec<String> = all.iter().map(|s| s.chars().rev().collect()).collect();
    assert_eq!(printed, format!("{}\n", reversed.join(" ")));
    // And nothing kept shows them.
    assert_nowhere(
        &std::fs::read_to_string(&output).unwrap(),
        &all,
        "the notebook",
    );
    assert_nowhere(&job.to_string(), &all, "the job record");
    let log = state.path().join("logs").join(format!("{id}.log"));
    assert_nowhere(&std::fs::read_to_string(log).unwrap(), &all, "the log");
    assert_eq!(job["inputs"]["notebookParameters"]["a"], "[REDACTED]");
}

#[test]
fn a_secret_from_an_unset_variable_or_a_missing_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(dir.path(), "in.ipynb", &notebook(vec![code("1", &[])]));
    let output = dir.path().join("out.ipynb");
    for extra in [
        ["--secret-env", "a=NBEXEC_TEST_UNSET_VARIABLE"],
        ["--secret-file", "a=/nonexistent/secret.txt"],
        ["--secret-env", "no-equals-sign"],
    ] {
        let out = nbexec()
            .env_remove("NBEXEC_TEST_UNSET_VARIABLE")
            .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(!output.exists());
    }
}

/// Runs `nbexec run` in the foreground with a job registry; returns the output,
/// the saved notebook's text and the job record's text.
fn run_recorded(
    dir: &Path,
    cells: Vec<Value>,
    extra: &[&str],
) -> (std::process::Output, String, String) {
    run_recorded_env(dir, cells, extra, &[])
}

/// [`run_recorded`] with extra environment variables for nbexec and its kernel.
fn run_recorded_env(
    dir: &Path,
    cells: Vec<Value>,
    extra: &[&str],
    env: &[(&str, &Path)],
) -> (std::process::Output, String, String) {
    let state = dir.join("state");
    let input = write_nb(dir, "in.ipynb", &notebook(cells));
    let output = dir.join("out.ipynb");
    let out = nbexec()
        .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
        .args(extra)
        .arg("--state-dir")
        .arg(&state)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&output).unwrap_or_default();
    let jobs = job_list(&state);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = job_show(&state, jobs[0]["jobId"].as_str().unwrap());
    (out, text, job.to_string())
}

#[test]
fn a_secret_printed_or_raised_by_a_cell_is_redacted_in_the_notebook_the_job_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "cell-S3cr3t-\"quoted\"-ü";
    let (out, text, job) = run_recorded(
        dir.path(),
        vec![
            code("token = ''", &["parameters"]),
            code("print('the token is', token)", &[]),
            code("raise ValueError('bad token ' + token)", &[]),
        ],
        &["--secret", "token", secret],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_nowhere(&text, &[secret], "the notebook");
    // JSON escapes the quotes: look for that form too.
    assert_nowhere(&text, &["cell-S3cr3t-\\\"quoted"], "the notebook");
    assert!(text.contains("the token is [REDACTED]"), "{text}");
    assert!(text.contains("bad token [REDACTED]"), "{text}");
    assert_nowhere(&job, &[secret, "cell-S3cr3t-\\\"quoted"], "the job record");
    assert!(job.contains("bad token [REDACTED]"), "{job}");
    assert_nowhere(&stderr(&out), &[secret], "stderr");
}

#[test]
fn an_injected_cell_that_raises_does_not_show_the_secret_in_its_traceback() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "inject-S3cr3t-6620";
    // An arcgis package whose FeatureSet cannot load (nbexec checks only that the
    // package exists before the cells run): the injected cell's import fails, and
    // the traceback quotes the cell, secret assignment included.
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(pkg.join("arcgis")).unwrap();
    std::fs::write(pkg.join("arcgis/__init__.py"), "").unwrap();
    std::fs::write(
        pkg.join("arcgis/features.py"),
        "raise ImportError('this arcgis cannot load FeatureSet')\n",
    )
    .unwrap();
    let featureset = r#"{"fs": {"geometryType": "esriGeometryPoint", "spatialReference": {"wkid": 4326}, "fields": [{"name": "id", "type": "esriFieldTypeOID"}], "features": [{"geometry": {"x": 1, "y": 2}, "attributes": {"id": 1}}]}}"#;
    let (out, text, job) = run_recorded_env(
        dir.path(),
        vec![
            code("token = ''\nfs = None", &["parameters"]),
            code("print(1)", &[]),
        ],
        &[
            "--secret",
            "token",
            secret,
            "--featureset-format",
            "arcgis",
            "-j",
            featureset,
        ],
        &[("PYTHONPATH", pkg.as_path())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        text.contains("arcgis"),
        "the injected cell did not fail on arcgis:\n{text}"
    );
    assert!(
        text.contains("Traceback") || text.contains("ModuleNotFoundError"),
        "{text}"
    );
    assert_nowhere(&text, &[secret], "the notebook");
    assert_nowhere(&job, &[secret], "the job record");
    assert_nowhere(&stderr(&out), &[secret], "stderr");
}

#[test]
fn a_secret_with_a_bad_declared_type_is_not_quoted_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let secret = "type-S3cr3t-1203";
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("token = ''", &["parameters"])]),
    );
    let output = dir.path().join("out.ipynb");
    for detach in [false, true] {
        let mut cmd = nbexec();
        cmd.args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
            .args(["--param-type", "token=date", "--secret", "token", secret])
            .arg("--state-dir")
            .arg(&state);
        if detach {
            cmd.arg("--detach");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
        assert_nowhere(&stderr(&out), &[secret], "the error");
        assert_nowhere(&stdout(&out), &[secret], "stdout");
    }
    for job in job_list(&state) {
        let job = job_show(&state, job["jobId"].as_str().unwrap());
        assert_nowhere(&job.to_string(), &[secret], "the job record");
    }
}

#[test]
fn a_secret_in_the_output_path_template_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "path-S3cr3t-3310";
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("token = ''", &["parameters"])]),
    );
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let template = out_dir.join("r-{token}.ipynb");
    for detach in [false, true] {
        let mut cmd = nbexec();
        cmd.args(["run", input.to_str().unwrap(), template.to_str().unwrap()])
            .args(["--secret", "token", secret]);
        if detach {
            cmd.arg("--detach");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("error: ") && err.contains("secret"),
            "{err}"
        );
        assert_nowhere(&err, &[secret], "the error");
        assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
    }
}

#[test]
fn a_secret_that_is_also_common_text_is_redacted_in_outputs_without_breaking_the_notebook() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("n = ''\nkind = ''", &["parameters"]),
            code("print(n, 'x1y')\nprint(kind)", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--secret",
        "n",
        "1",
        "--secret",
        "kind",
        "stdout",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Still a valid notebook: counts, output types and stream names untouched.
    let check = run(&["validate", output.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let nb = read_nb(&output);
    let cell = cell_with(&nb, "print(kind)");
    assert_eq!(cell["execution_count"], serde_json::json!(3));
    assert_eq!(cell["outputs"][0]["name"], "stdout");
    assert_eq!(
        stream_text(cell, "stdout"),
        "[REDACTED] x[REDACTED]y\n[REDACTED]\n"
    );
}
