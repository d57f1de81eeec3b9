//! `nbexec run` end to end: the real binary, a real ipykernel, real files.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn parameters_are_injected_after_the_parameters_cell_and_used() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("x = 1\nname = 'default'", &["parameters"]),
            code("print(x * 2, name)", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "-p",
        "x",
        "5",
        "-r",
        "name",
        "42",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&output);
    let cells = nb["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3);
    assert_eq!(cells[1]["metadata"]["tags"], json!(["injected-parameters"]));
    assert_eq!(source(&cells[1]), "# Parameters\nx = 5\nname = \"42\"\n");
    assert_eq!(stream_text(&cells[2], "stdout"), "10 42\n");
    assert_eq!(
        nb["metadata"]["papermill"]["parameters"],
        json!({"x": 5, "name": "42"})
    );
    assert!(cells.iter().all(|c| status(c) == "completed"));
    // The input is never modified.
    assert_eq!(read_nb(&input)["cells"].as_array().unwrap().len(), 2);
    assert_kernel_gone(&nb);
}

#[test]
fn output_notebook_is_valid_and_carries_papermill_metadata() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("1 + 1", &[]), markdown("# done")]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let check = std::process::Command::new(venv().join("bin/python"))
        .args(["-c", "import nbformat, sys; nbformat.validate(nbformat.read(sys.argv[1], as_version=4)); print('ok')"])
        .arg(&output)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let nb = read_nb(&output);
    let pm = &nb["metadata"]["papermill"];
    for key in [
        "parameters",
        "input_path",
        "output_path",
        "start_time",
        "end_time",
        "duration",
        "exception",
    ] {
        assert!(pm.get(key).is_some(), "metadata.papermill.{key} missing");
    }
    assert_eq!(pm["input_path"], json!(input.to_str().unwrap()));
    assert_eq!(pm["output_path"], json!(output.to_str().unwrap()));
    assert!(pm["duration"].as_f64().unwrap() > 0.0);
    let cell = &nb["cells"][0];
    assert_eq!(cell["execution_count"], json!(1));
    assert_eq!(cell["outputs"][0]["data"]["text/plain"], json!(["2"]));
    for key in ["start_time", "end_time", "duration", "exception", "status"] {
        assert!(
            cell["metadata"]["papermill"].get(key).is_some(),
            "cell metadata.papermill.{key} missing"
        );
    }
    assert!(
        cell["metadata"]["papermill"]["start_time"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );
    assert_eq!(nb["metadata"]["nbexec"]["status"], json!("completed"));
}

#[test]
fn a_failing_cell_stops_the_run_with_banners_and_exit_1() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("print('one')", &[]),
            code("raise ValueError('boom')", &[]),
            code("print('after')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    // The cell's traceback comes first (tests/first_hour.rs), then exactly one
    // `error: ` line, naming the exception.
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert!(
        errors.len() == 1 && errors[0].contains("ValueError"),
        "{err}"
    );
    let nb = read_nb(&output);
    let cells = nb["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 5);
    assert_eq!(
        cells[0]["metadata"]["tags"],
        json!(["papermill-error-cell-tag"])
    );
    assert!(
        source(&cells[0]).contains("In [2]") && source(&cells[0]).contains("#papermill-error-cell")
    );
    assert_eq!(
        cells[2]["metadata"]["tags"],
        json!(["papermill-error-cell-tag"])
    );
    assert!(source(&cells[2]).contains("id=\"papermill-error-cell\""));
    assert_eq!(status(&cells[1]), "completed");
    assert_eq!(status(&cells[3]), "failed");
    assert_eq!(cells[3]["outputs"][0]["ename"], json!("ValueError"));
    assert_eq!(status(&cells[4]), "pending");
    assert_eq!(cells[4]["outputs"], json!([]));
    assert_eq!(cells[4]["execution_count"], json!(null));
    assert_eq!(nb["metadata"]["papermill"]["exception"], json!(true));
    assert_kernel_gone(&nb);
}

#[test]
fn sys_exit_zero_ends_the_run_successfully_at_that_cell() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("print(1)", &[]),
            code("import sys\nsys.exit(0)", &[]),
            code("print('never')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&output);
    assert_eq!(status(&nb["cells"][1]), "completed");
    assert_eq!(nb["cells"][2]["outputs"], json!([]));
    assert_eq!(status(&nb["cells"][2]), "pending");
}

#[test]
fn raises_exception_cells_are_expected_to_fail_and_the_run_goes_on() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("1/0", &["raises-exception"]),
            code("print('still here')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&output);
    assert_eq!(
        nb["cells"][0]["outputs"][0]["ename"],
        json!("ZeroDivisionError")
    );
    assert_eq!(stream_text(&nb["cells"][1], "stdout"), "still here\n");
}

#[test]
fn skip_execution_and_empty_cells_are_not_run() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("print('skipped')", &["skip-execution"]),
            code("  \n", &[]),
            code("print('ran')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&output);
    for i in 0..2 {
        assert_eq!(nb["cells"][i]["outputs"], json!([]));
        assert_eq!(nb["cells"][i]["execution_count"], json!(null));
        assert_eq!(status(&nb["cells"][i]), "completed");
    }
    assert_eq!(nb["cells"][2]["execution_count"], json!(1));
    assert_eq!(stream_text(&nb["cells"][2], "stdout"), "ran\n");
}

#[test]
fn allow_errors_runs_every_cell_and_succeeds() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("raise KeyError('k')", &[]),
            code("print('next')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--allow-errors",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&output);
    assert_eq!(nb["cells"][0]["outputs"][0]["ename"], json!("KeyError"));
    assert_eq!(stream_text(&nb["cells"][1], "stdout"), "next\n");
}

#[test]
fn a_cell_over_its_execution_timeout_fails_with_exit_124() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("print('before')", &[]),
            code("import time\ntime.sleep(60)", &[]),
            code("print('after')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let started = Instant::now();
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--execution-timeout",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let nb = read_nb(&output);
    let cell = cell_with(&nb, "time.sleep(60)");
    assert_eq!(status(cell), "failed");
    let outputs = cell["outputs"].as_array().unwrap();
    assert!(
        outputs.iter().any(|o| o["ename"] == "CellTimeoutError"),
        "{outputs:?}"
    );
    assert_eq!(status(cell_with(&nb, "print('after')")), "pending");
    assert_kernel_gone(&nb);
}

#[test]
fn a_kernel_that_dies_mid_cell_gives_exit_138() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("print('x')", &[]),
            code("import os\nos._exit(1)", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let started = Instant::now();
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(138), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        stderr(&out).starts_with("error: ") && stderr(&out).contains("kernel died"),
        "{}",
        stderr(&out)
    );
    let nb = read_nb(&output);
    let cell = cell_with(&nb, "os._exit(1)");
    assert_eq!(status(cell), "failed");
    assert_eq!(cell["outputs"][0]["ename"], json!("DeadKernelError"));
    assert_eq!(stream_text(&nb["cells"][1], "stdout"), "x\n");
    assert_kernel_gone(&nb);
}

/// Starts a long run, waits for its first cell's output, then signals nbexec.
fn signal_midway(signal: i32) -> (Option<i32>, serde_json::Value) {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("print('first', flush=True)", &[]),
            code("import time\ntime.sleep(60)", &[]),
            code("print('never')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let mut child = nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--log-output",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "first");
    // Give the second cell time to start sleeping.
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    unsafe {
        libc_kill(child.id() as i32, signal);
    }
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        started.elapsed()
    );
    (status.code(), read_nb(&output))
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn sigint_cancels_saves_what_ran_and_exits_130() {
    let (code, nb) = signal_midway(2);
    assert_eq!(code, Some(130));
    assert_eq!(stream_text(&nb["cells"][1], "stdout"), "first\n");
    assert_eq!(status(cell_with(&nb, "time.sleep(60)")), "failed");
    assert_kernel_gone(&nb);
}

#[test]
fn sigterm_cancels_saves_what_ran_and_exits_143() {
    let (code, nb) = signal_midway(15);
    assert_eq!(code, Some(143));
    assert_eq!(status(cell_with(&nb, "print('first'")), "completed");
    assert_eq!(status(cell_with(&nb, "time.sleep(60)")), "failed");
    assert_kernel_gone(&nb);
}

#[test]
fn cwd_sets_the_kernels_working_directory() {
    let dir = tmp();
    let work = dir.path().join("work dir");
    std::fs::create_dir(&work).unwrap();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("import os\nprint(os.getcwd())", &[])]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--cwd",
        work.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stream_text(&read_nb(&output)["cells"][0], "stdout");
    assert_eq!(
        std::fs::canonicalize(printed.trim()).unwrap(),
        std::fs::canonicalize(&work).unwrap()
    );
}

#[test]
fn prepare_only_injects_and_writes_without_a_kernel() {
    let dir = tmp();
    let mut nb = notebook(vec![
        code("a = 1", &["parameters"]),
        code("raise ValueError()", &[]),
    ]);
    nb["cells"][1]["outputs"] =
        json!([{"output_type": "error", "ename": "ValueError", "evalue": "", "traceback": []}]);
    nb["cells"][1]["execution_count"] = json!(7);
    let input = write_nb(dir.path(), "in.ipynb", &nb);
    let output = dir.path().join("out.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--prepare-only",
        "-p",
        "a",
        "2",
        "-k",
        "no-such-kernel",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&output);
    assert_eq!(source(&nb["cells"][1]), "# Parameters\na = 2\n");
    assert_eq!(nb["metadata"]["papermill"]["parameters"], json!({"a": 2}));
}

#[test]
fn report_mode_hides_code_inputs() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("1", &[]), markdown("text")]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--report-mode",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&output);
    assert_eq!(
        nb["cells"][0]["metadata"]["jupyter"]["source_hidden"],
        json!(true)
    );
    assert!(nb["cells"][1]["metadata"].get("jupyter").is_none());
}

#[test]
fn output_dash_writes_the_notebook_to_stdout() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("print('hi')", &[])]),
    );
    let out = run(&["run", input.to_str().unwrap(), "-"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is the notebook");
    assert_eq!(stream_text(&nb["cells"][0], "stdout"), "hi\n");
}

#[test]
fn in_place_without_save_injected_parameters_keeps_parameters_out_of_the_file() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("token = ''", &["parameters"]),
            code("print(len(token))", &[]),
        ]),
    );
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        "--in-place",
        "-p",
        "token",
        "s3cret",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&input).unwrap();
    assert!(!text.contains("s3cret"), "secret persisted: {text}");
    let nb = read_nb(&input);
    assert_eq!(nb["cells"].as_array().unwrap().len(), 2);
    assert_eq!(stream_text(&nb["cells"][1], "stdout"), "6\n");
}

#[test]
fn in_place_with_save_injected_parameters_keeps_the_injected_cell() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("n = 0", &["parameters"]), code("print(n)", &[])]),
    );
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        "--in-place",
        "--save-injected-parameters",
        "-p",
        "n",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&input);
    assert_eq!(
        nb["cells"][1]["metadata"]["tags"],
        json!(["injected-parameters"])
    );
    assert_eq!(stream_text(&nb["cells"][2], "stdout"), "3\n");
}

#[test]
fn an_output_notebook_can_be_run_again() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("n = 0", &["parameters"]),
            code("assert n != 1\nprint(n)", &[]),
        ]),
    );
    let first = dir.path().join("first.ipynb");
    let second = dir.path().join("second.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        first.to_str().unwrap(),
        "-p",
        "n",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&[
        "run",
        first.to_str().unwrap(),
        second.to_str().unwrap(),
        "-p",
        "n",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&second);
    let cells = nb["cells"].as_array().unwrap();
    assert_eq!(
        cells.len(),
        3,
        "banners removed, injected cell replaced: {cells:?}"
    );
    assert_eq!(source(&cells[1]), "# Parameters\nn = 2\n");
    assert_eq!(stream_text(&cells[2], "stdout"), "2\n");
}

#[test]
fn log_output_prints_exactly_what_the_cells_printed() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("print('a', end='')", &[]),
            code("print('b')", &[]),
            code(
                "import sys\nsys.stdout.write('c\\nd')\nsys.stderr.write('to stderr\\n')",
                &[],
            ),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--log-output",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ab\nc\nd");
    assert!(stderr(&out).contains("to stderr\n"));
}

#[test]
fn input_fails_cleanly_instead_of_hanging() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("input('name? ')", &[])]),
    );
    let output = dir.path().join("out.ipynb");
    let started = Instant::now();
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(15));
    let nb = read_nb(&output);
    let cell = cell_with(&nb, "input(");
    assert_eq!(
        cell["outputs"][0]["ename"],
        json!("StdinNotImplementedError")
    );
}

#[test]
fn a_notebook_without_kernelspec_runs_on_python3() {
    let dir = tmp();
    let mut nb = notebook(vec![code("import sys\nprint(sys.version_info[0])", &[])]);
    nb["metadata"] = json!({});
    let input = write_nb(dir.path(), "in.ipynb", &nb);
    let output = dir.path().join("out.ipynb");
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stream_text(&read_nb(&output)["cells"][0], "stdout"), "3\n");
}

#[test]
fn an_unknown_kernel_is_a_usage_error_that_lists_the_kernels() {
    let dir = tmp();
    let input = write_nb(dir.path(), "in.ipynb", &notebook(vec![code("1", &[])]));
    let output = dir.path().join("out.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "-k",
        "no-such-kernel",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.contains("no-such-kernel") && err.contains("python3"),
        "{err}"
    );
    // The output notebook is written, marked as not run, as on every failure path.
    let nb = read_nb(&output);
    assert_eq!(
        nb["metadata"]["nbexec"]["status"],
        json!("kernel_unavailable")
    );
    assert!(nb["cells"][0]["execution_count"].is_null());
}

#[test]
fn secret_parameters_reach_the_kernel_but_nothing_that_is_written() {
    let dir = tmp();
    let state = dir.path().join("state");
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("token = ''\nuser = ''", &["parameters"]),
            code("print(len(token), user)", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let out = nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--secret",
            "token",
            "hunter2-s3cret",
            "-p",
            "user",
            "ann",
        ])
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(!text.contains("hunter2"), "secret in the saved notebook");
    let nb = read_nb(&output);
    assert_eq!(
        stream_text(&nb["cells"][2], "stdout"),
        "14 ann\n",
        "the kernel got the real value"
    );
    assert_eq!(
        nb["metadata"]["papermill"]["parameters"],
        json!({"user": "ann", "token": "[REDACTED]"})
    );
    assert!(source(&nb["cells"][1]).contains("token = \"[REDACTED]\""));
    let job = nb["metadata"]["nbexec"]["job_id"].as_str().unwrap();
    let shown = nbexec()
        .args(["jobs", "show", job, "-f", "json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("[REDACTED]") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert!(!stderr(&out).contains("hunter2"));
}

#[test]
fn a_cell_that_prints_without_end_is_capped_with_a_note() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("for i in range(300_000):\n    print('line', i)", &[]),
            code("print('next cell')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--max-output-mb",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&output);
    let kept = stream_text(&nb["cells"][0], "stdout");
    assert!(
        kept.len() <= 1 << 20 && kept.starts_with("line 0\nline 1\n"),
        "{} bytes kept",
        kept.len()
    );
    let note = stream_text(&nb["cells"][0], "stderr");
    assert!(
        note.contains("reached the limit of 1 MiB")
            && note.contains("more bytes were not recorded"),
        "{note}"
    );
    assert_eq!(stream_text(&nb["cells"][1], "stdout"), "next cell\n");
}

#[test]
fn a_notebook_piped_in_and_out_needs_no_paths() {
    use std::io::Write;
    let dir = tmp();
    let nb = notebook(vec![
        code("x = 0", &["parameters"]),
        code("print(x + 1)", &[]),
    ]);
    let mut child = nbexec()
        .args(["run", "-", "-p", "x", "41"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&nb).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let executed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stream_text(&executed["cells"][2], "stdout"), "42\n");
    assert_eq!(executed["metadata"]["papermill"]["input_path"], json!("-"));
    assert_eq!(executed["metadata"]["papermill"]["output_path"], json!("-"));
}
