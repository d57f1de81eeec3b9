//! The command line a new user meets in their first hour, coming from papermill or
//! ArcGIS: what goes to stdout and stderr, progress off a terminal, warnings about
//! invalid notebooks, tracebacks, stdin, help and the missing `run`.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;
use serde_json::{Value, json};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn three_cells() -> Value {
    notebook(vec![
        markdown("# Title"),
        code("print('out one')", &[]),
        code("import sys\nprint('err two', file=sys.stderr)", &[]),
        code("print('out three')", &[]),
    ])
}

/// The `error: ` line's position in stderr, asserting there is exactly one.
fn error_line_at(lines: &[&str]) -> usize {
    let at: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("error: "))
        .collect();
    assert_eq!(at.len(), 1, "one error line: {lines:#?}");
    at[0]
}

// Item 1 ---------------------------------------------------------------------------

#[test]
fn log_output_with_the_notebook_on_stdout_sends_cell_output_to_stderr() {
    let dir = tmp();
    let input = write_nb(dir.path(), "in.ipynb", &three_cells());
    let out = run(&["run", input.to_str().unwrap(), "-", "--log-output"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // stdout is the notebook and nothing else.
    let nb: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not only JSON ({e}): {}", stdout(&out)));
    assert_eq!(
        stream_text(cell_with(&nb, "out one"), "stdout"),
        "out one\n"
    );
    let err = stderr(&out);
    for text in ["out one\n", "err two\n", "out three\n"] {
        assert!(err.contains(text), "{text:?} not on stderr: {err}");
    }

    // To a file, the cells' stdout stays on stdout.
    let output = dir.path().join("out.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--log-output",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out one\nout three\n");
    assert!(stderr(&out).contains("err two\n"));
}

// Item 8 ---------------------------------------------------------------------------

#[test]
fn an_invalid_notebook_runs_after_a_warning_naming_the_problem() {
    let dir = tmp();
    let mut nb = three_cells();
    nb["cells"][0]["cell_type"] = json!("bogus");
    let input = write_nb(dir.path(), "bogus.ipynb", &nb);
    let output = dir.path().join("out.ipynb");
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(
        warning.contains("bogus.ipynb")
            && warning.contains("notebook JSON is invalid")
            && warning.contains(r#"cells[0]: 'cell_type' is "bogus""#),
        "{warning}"
    );
    // The run went on.
    let done = read_nb(&output);
    assert_eq!(
        stream_text(cell_with(&done, "out three"), "stdout"),
        "out three\n"
    );

    // Several problems: the first, and how many more.
    nb["cells"][1]
        .as_object_mut()
        .unwrap()
        .remove("outputs")
        .unwrap();
    let input = write_nb(dir.path(), "worse.ipynb", &nb);
    let out = run(&["run", input.to_str().unwrap(), "--prepare-only", "-"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(and 1 more: `nbexec validate` lists them)"),
        "{}",
        stderr(&out)
    );

    // `validate` says it once, on stdout, without the warning.
    let out = run(&["validate", input.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));

    // A valid notebook gets no warning.
    let input = write_nb(dir.path(), "good.ipynb", &three_cells());
    let out = run(&["run", input.to_str().unwrap(), "--prepare-only", "-"]);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

// Item P ---------------------------------------------------------------------------

#[test]
fn progress_off_a_terminal_is_one_line_per_cell_and_a_summary() {
    let dir = tmp();
    let input = write_nb(dir.path(), "in.ipynb", &three_cells());
    let output = dir.path().join("out.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--progress-bar",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    for (i, (line, cell)) in lines.iter().zip([1, 2, 3]).enumerate() {
        let prefix = format!("[{}/3] cell {cell} done in ", i + 1);
        assert!(
            line.starts_with(&prefix) && line.ends_with(" s"),
            "{line:?} is not {prefix:?}…"
        );
    }
    let nb = read_nb(&output);
    let job = nb["metadata"]["nbexec"]["job_id"].as_str().unwrap();
    let summary = lines[3];
    assert!(
        summary.starts_with("nbexec: completed in ")
            && summary.ends_with(&format!(
                "; executed notebook written to {}; job {job}",
                output.display()
            )),
        "{summary}"
    );

    // --log-output keeps the lines, interleaved with what the cells print.
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        "-",
        "--progress-bar",
        "--log-output",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], "out one", "{err}");
    assert!(lines[1].starts_with("[1/3] cell 1 done in "), "{err}");
    assert_eq!(lines[2], "err two", "{err}");
    assert!(lines[3].starts_with("[2/3] cell 2 done in "), "{err}");
    assert!(
        lines[6].starts_with("nbexec: completed in ")
            && lines[6].contains("; executed notebook written to standard output; job "),
        "{err}"
    );

    // Without --progress-bar, off a terminal: only the summary.
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("nbexec: completed in "), "{err}");
}

#[test]
fn on_a_terminal_log_output_keeps_the_bar() {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("import time\ntime.sleep(0.3)\nprint('first')", &[]),
            code("time.sleep(0.3)\nprint('second')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let seen = run_on_terminal(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--log-output",
    ]);
    assert_eq!(seen.code, Some(0), "{}", seen.terminal);
    assert!(seen.terminal.contains("Executing"), "{}", seen.terminal);
    assert!(seen.terminal.contains("cells"), "{}", seen.terminal);
    // Per-cell lines are for logs; a terminal has the bar.
    assert!(!seen.terminal.contains("[1/2]"), "{}", seen.terminal);
    assert!(
        seen.terminal.contains("nbexec: completed in "),
        "{}",
        seen.terminal
    );
    assert_eq!(String::from_utf8_lossy(&seen.stdout), "first\nsecond\n");
}

// Item T ---------------------------------------------------------------------------

fn failing() -> Value {
    notebook(vec![
        code("x = 1", &[]),
        code("def inner():\n    raise ValueError('boom')\ninner()", &[]),
        code("print('never')", &[]),
    ])
}

#[test]
fn a_failure_prints_the_plain_traceback_then_the_error_then_where_the_notebook_is() {
    let dir = tmp();
    let input = write_nb(dir.path(), "in.ipynb", &failing());
    let output = dir.path().join("out.ipynb");
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(!err.contains('\u{1b}'), "ANSI off a terminal: {err:?}");
    let lines: Vec<&str> = err.lines().collect();
    let at = error_line_at(&lines);
    let traceback = lines[..at].join("\n");
    assert!(
        traceback.contains("inner()") && traceback.contains("raise ValueError('boom')"),
        "{err}"
    );
    assert_eq!(
        lines[at - 1],
        "ValueError: boom",
        "the traceback ends with the exception: {err}"
    );
    assert!(
        lines[at].contains("ValueError: boom") && lines[at].contains("cell 1 (In [2])"),
        "{err}"
    );
    assert_eq!(lines.len(), at + 2, "{err}");
    assert!(
        lines[at + 1].starts_with("nbexec: failed in ")
            && lines[at + 1].contains(&format!(
                "; executed notebook written to {};",
                output.display()
            )),
        "{err}"
    );
    assert!(output.exists());
}

#[test]
fn on_a_terminal_the_traceback_keeps_its_colours() {
    let dir = tmp();
    let input = write_nb(dir.path(), "in.ipynb", &failing());
    let output = dir.path().join("out.ipynb");
    let seen = run_on_terminal(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(seen.code, Some(1), "{}", seen.terminal);
    let error_at = seen.terminal.find("error: ").expect("an error line");
    let before = &seen.terminal[..error_at];
    assert!(
        before.contains("\u{1b}[") && before.contains("boom"),
        "{:?}",
        seen.terminal
    );
}

// Item I ---------------------------------------------------------------------------

#[test]
fn a_notebook_piped_in_runs_without_input_as_papermill_does() {
    let dir = tmp();
    let text = serde_json::to_string(&three_cells()).unwrap();
    let piped = |args: &[&str]| {
        let mut child = nbexec()
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    // No INPUT, no OUTPUT: stdin to stdout.
    let out = piped(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        stream_text(cell_with(&nb, "out three"), "stdout"),
        "out three\n"
    );
    assert_eq!(nb["metadata"]["papermill"]["input_path"], json!("-"));

    // `-` names standard input explicitly.
    let output = dir.path().join("out.ipynb");
    let out = piped(&["run", "-", output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stream_text(cell_with(&read_nb(&output), "out one"), "stdout"),
        "out one\n"
    );

    // A detached run cannot read a pipe after its parent is gone.
    let out = piped(&["run", "-", output.to_str().unwrap(), "--detach"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: --detach cannot read the notebook from standard input"),
        "{}",
        stderr(&out)
    );

    // A redirected file counts as piped.
    let input = write_nb(dir.path(), "in.ipynb", &three_cells());
    let out = nbexec()
        .arg("run")
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(serde_json::from_slice::<Value>(&out.stdout).is_ok());

    // Nothing piped (stdin is /dev/null): a usage error, not a read of nothing.
    let out = run(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: no INPUT given"), "{err}");
}

// Item H ---------------------------------------------------------------------------

#[test]
fn run_help_lists_papermills_options_under_their_own_heading() {
    let out = run(&["run", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    let heading = help
        .find("papermill compatibility:")
        .unwrap_or_else(|| panic!("no heading: {help}"));
    for flag in [
        "--prepare-execute",
        "--no-report-mode",
        "--engine",
        "--log-level",
        "--no-log-output",
        "--request-save-on-cell-execute",
        "--no-request-save-on-cell-execute",
        "--autosave-cell-every",
    ] {
        let at = help
            .find(&format!("{flag} "))
            .or_else(|| help.find(&format!("{flag}\n")))
            .unwrap_or_else(|| panic!("{flag} not listed: {help}"));
        assert!(at > heading, "{flag} is not under the heading");
    }
    for listed in ["--job-id <ID>", "--notebook-parameters", "--parameters_raw"] {
        assert!(help.contains(listed), "{listed} not in: {help}");
    }
}

#[test]
fn log_level_values_are_checked_and_version_works_everywhere() {
    let dir = tmp();
    let input = write_nb(dir.path(), "in.ipynb", &three_cells());
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        "-",
        "--prepare-only",
        "--log-level",
        "LOUD",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: invalid value 'LOUD' for '--log-level <LEVEL>'")
            && err.contains("DEBUG"),
        "{err}"
    );
    for level in ["DEBUG", "info", "WARNING"] {
        let out = run(&[
            "run",
            input.to_str().unwrap(),
            "-",
            "--prepare-only",
            "--log-level",
            level,
        ]);
        assert_eq!(out.status.code(), Some(0), "{level}: {}", stderr(&out));
    }
    let version = env!("CARGO_PKG_VERSION");
    for (sub, name) in [
        (&["--version"][..], "nbexec"),
        (&["run", "--version"], "nbexec-run"),
        (&["jobs", "--version"], "nbexec-jobs"),
        (&["validate", "-V"], "nbexec-validate"),
    ] {
        let out = run(sub);
        assert_eq!(out.status.code(), Some(0), "{sub:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("{name} {version}\n"), "{sub:?}");
    }
}

// Item N ---------------------------------------------------------------------------

#[test]
fn a_notebook_without_run_gets_the_run_command_suggested() {
    let dir = tmp();
    let input = write_nb(dir.path(), "in.ipynb", &three_cells());
    let out = nbexec()
        .args(["in.ipynb", "out put.ipynb", "-p", "a", "1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: unrecognized subcommand 'in.ipynb'"),
        "{err}"
    );
    assert!(
        err.contains("tip: to run a notebook, use 'nbexec run in.ipynb \"out put.ipynb\" -p a 1'"),
        "{err}"
    );
    assert!(!dir.path().join("out put.ipynb").exists());
    assert!(input.exists());

    // A file that exists but is not named .ipynb counts too; a typo does not.
    std::fs::write(dir.path().join("nb.json"), "{}").unwrap();
    let out = nbexec()
        .args(["nb.json", "out.json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("use 'nbexec run nb.json out.json'"),
        "{}",
        stderr(&out)
    );
    let out = run(&["fmat", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !stderr(&out).contains("to run a notebook"),
        "{}",
        stderr(&out)
    );
}
