//! The command line: fmt, validate, inspect, kernels, help, and papermill's own
//! spelling of a run.

mod common;

use common::*;
use serde_json::{Value, json};

#[test]
fn fmt_check_passes_canonical_notebooks_and_flags_others_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let canonical = root().join("fixtures/example.ipynb");
    let out = run(&["fmt", "--check", canonical.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let messy = dir.path().join("messy.ipynb");
    let compact = r#"{"nbformat": 4, "nbformat_minor": 4, "metadata": {"z": 1, "a": 2}, "cells": [{"cell_type": "code", "source": "x = 1\ny = 2", "metadata": {}, "outputs": [], "execution_count": null}]}"#;
    std::fs::write(&messy, compact).unwrap();
    let out = run(&["fmt", "--check", messy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("would reformat"), "{}", stdout(&out));
    assert_eq!(
        std::fs::read_to_string(&messy).unwrap(),
        compact,
        "--check writes nothing"
    );

    let out = run(&["fmt", messy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(&messy).unwrap();
    assert!(
        text.starts_with("{\n \"cells\": [\n  {\n   \"cell_type\": \"code\""),
        "{text}"
    );
    assert!(
        text.contains("\"source\": [\n    \"x = 1\\n\",\n    \"y = 2\"\n   ]"),
        "{text}"
    );
    assert!(text.ends_with("\"nbformat_minor\": 4\n}\n"));
    let out = run(&["fmt", "--check", messy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "formatted once, stable after");
}

#[test]
fn fmt_and_validate_refuse_broken_files_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.ipynb");
    std::fs::write(&broken, "{\"cells\": [\n  {\"cell_type\": }\n]}").unwrap();
    for cmd in ["fmt", "validate"] {
        let out = run(&[cmd, broken.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{cmd}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains("broken.ipynb") && err.contains("line 2"),
            "{cmd}: {err}"
        );
    }
    // nbformat 3 is read by upgrading it (tests/upgrade.rs); older ones are refused.
    let v2 = dir.path().join("v2.ipynb");
    std::fs::write(
        &v2,
        r#"{"nbformat": 2, "nbformat_minor": 0, "metadata": {}, "worksheets": []}"#,
    )
    .unwrap();
    let out = run(&["validate", v2.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nbformat 2"), "{}", stderr(&out));
}

#[test]
fn validate_names_the_cell_and_key_of_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = root().join("fixtures/example.ipynb");
    let out = run(&["validate", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("valid"));

    let mut nb = notebook(vec![code("1", &[]), code("2", &[])]);
    nb["cells"][1]["outputs"] = json!([{"output_type": "bogus"}]);
    nb["cells"][0].as_object_mut().unwrap().remove("source");
    let bad = write_nb(dir.path(), "bad.ipynb", &nb);
    let out = run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("cells[0]") && text.contains("'source'"),
        "{text}"
    );
    assert!(
        text.contains("cells[1].outputs[0]") && text.contains("bogus"),
        "{text}"
    );
}

#[test]
fn inspect_shows_the_parameters_as_papermill_does_and_as_json() {
    let example = root().join("fixtures/example.ipynb");
    let out = run(&["inspect", example.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "Parameters inferred for notebook '{}':",
            example.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("  city: str (default \"Springfield\")"),
        "{text}"
    );
    assert!(text.contains("the city the report is for"), "{text}");
    assert!(text.contains("  min_area: float (default 1.0)"), "{text}");

    let out = run(&["inspect", "--json", example.to_str().unwrap()]);
    let params: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = params
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["city", "min_area", "report_date", "parcels"]);
    assert_eq!(params[1]["inferred_type_name"], json!("float"));
    assert_eq!(params[1]["default"], json!("1.0"));

    // papermill's spelling of the same question.
    let out = run(&["run", example.to_str().unwrap(), "--help-notebook"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("  city: str"), "{}", stdout(&out));

    let dir = tempfile::tempdir().unwrap();
    let plain = write_nb(
        dir.path(),
        "plain.ipynb",
        &notebook(vec![code("x = 1", &[])]),
    );
    // No parameters cell: no parameters (tests/cli.rs `inspect_without_parameters_*`).
    let out = run(&["inspect", plain.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("No cell tagged 'parameters'"));
}

/// papermill's `inspect_notebook` of the notebook at `path`, as JSON.
fn papermill_inspect(path: &std::path::Path) -> Value {
    let script = r#"
import json, sys, logging
logging.disable(logging.CRITICAL)
import papermill
print(json.dumps(papermill.inspect_notebook(sys.stdin.readline().strip())))
"#;
    serde_json::from_slice(&python(script, format!("{}\n", path.display()).as_bytes())).unwrap()
}

#[test]
fn inspect_without_a_parameters_cell_finds_none_as_papermill_does() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write_nb(
        dir.path(),
        "plain.ipynb",
        &notebook(vec![code("x = 1", &[]), markdown("# no parameters")]),
    );
    let p = plain.to_str().unwrap();
    assert_eq!(papermill_inspect(&plain), json!({}));

    let out = run(&["inspect", "--json", p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!([])
    );
    assert_eq!(stderr(&out), "");

    // The human form is papermill's --help-notebook text.
    let expected =
        format!("Parameters inferred for notebook '{p}':\n\n  No cell tagged 'parameters'\n");
    let out = run(&["inspect", p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), expected);
    let theirs = papermill(&[p, "--help-notebook"]);
    assert!(
        stdout(&theirs).ends_with(&format!("\n{expected}")),
        "{}",
        stdout(&theirs)
    );
    // papermill's own spelling exits as papermill does.
    let out = run(&["run", p, "--help-notebook"]);
    assert_eq!(out.status.code(), theirs.status.code());
    assert_eq!(stdout(&out), expected);
}

#[test]
fn inspect_of_a_language_without_an_inspector_warns_and_finds_none_as_papermill_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut nb = notebook(vec![code("a <- 1", &["parameters"])]);
    nb["metadata"]["kernelspec"] = json!({"name": "ir", "display_name": "R", "language": "R"});
    nb["metadata"]["language_info"] = json!({"name": "R"});
    let path = write_nb(dir.path(), "r.ipynb", &nb);
    let p = path.to_str().unwrap();
    assert_eq!(papermill_inspect(&path), json!({}));

    let out = run(&["inspect", "--json", p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!([])
    );
    let err = stderr(&out);
    assert!(
        err.starts_with("warning: ") && err.contains("not supported") && err.contains("\"R\""),
        "{err}"
    );

    let out = run(&["inspect", p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Can't infer anything about this notebook's parameters."),
        "{}",
        stdout(&out)
    );
    let theirs = papermill(&[p, "--help-notebook"]);
    assert_eq!(theirs.status.code(), Some(0));
    assert!(stdout(&theirs).contains("Can't infer anything about this notebook's parameters."));
}

#[test]
fn every_command_has_help_and_usage_errors_exit_2() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["inspect", "--help"],
        vec!["fmt", "--help"],
        vec!["validate", "--help"],
        vec!["kernels", "--help"],
        vec!["jobs", "--help"],
        vec!["jobs", "cancel", "--help"],
        vec!["--version"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!stdout(&out).is_empty(), "{args:?}");
    }
    let out = run(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["run", "x.ipynb", "y.ipynb", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["run", "/no/such/notebook.ipynb", "out.ipynb"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: cannot read /no/such/notebook.ipynb"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn kernels_lists_the_project_kernel_as_jupyter_does() {
    let out = run(&["kernels", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let spec = &v["kernelspecs"]["python3"];
    assert!(
        spec["resource_dir"].as_str().unwrap().contains(".venv"),
        "{v}"
    );
    assert_eq!(spec["spec"]["language"], json!("python"));
    let out = run(&["kernels"]);
    assert!(stdout(&out).contains("python3"));
}

#[test]
fn a_papermill_command_line_works_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code(
                "alpha = 0.1\nratio = 0\nname = ''\nextra = None\nfrom_file = None",
                &["parameters"],
            ),
            code(
                "import sys\nprint(alpha, ratio, name, extra, from_file)\nprint('warn', file=sys.stderr)",
                &[],
            ),
        ]),
    );
    let params = dir.path().join("params.yaml");
    std::fs::write(&params, "from_file: [1, 2]\n").unwrap();
    let output = dir.path().join("out.ipynb");
    let stdout_file = dir.path().join("cells.out");
    let stderr_file = dir.path().join("cells.err");
    // Spelled as papermill documents it, underscores and all.
    let out = nbexec()
        .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
        .args([
            "-p",
            "alpha",
            "0.6",
            "--parameters",
            "ratio",
            "3",
            "-r",
            "name",
            "007",
        ])
        .args([
            "--parameters_yaml",
            "extra: {k: v}",
            "--parameters_file",
            params.to_str().unwrap(),
        ])
        .args([
            "--kernel",
            "python3",
            "--cwd",
            dir.path().to_str().unwrap(),
            "--start_timeout",
            "60",
        ])
        .args([
            "--execution-timeout",
            "120",
            "--no-progress-bar",
            "--no-log-output",
            "--report-mode",
        ])
        .args([
            "--request-save-on-cell-execute",
            "--autosave-cell-every",
            "30",
            "--log-level",
            "INFO",
        ])
        .args(["--engine", "nbclient", "--prepare-execute"])
        .args([
            "--stdout-file",
            stdout_file.to_str().unwrap(),
            "--stderr-file",
            stderr_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&output);
    let printed = "0.6 3 007 {'k': 'v'} [1, 2]\n";
    assert_eq!(stream_text(&nb["cells"][2], "stdout"), printed);
    assert_eq!(std::fs::read_to_string(&stdout_file).unwrap(), printed);
    assert_eq!(std::fs::read_to_string(&stderr_file).unwrap(), "warn\n");
    assert_eq!(
        nb["cells"][2]["metadata"]["jupyter"]["source_hidden"],
        json!(true)
    );
    assert!(
        stdout(&out).is_empty(),
        "nothing on stdout without --log-output"
    );
}

#[test]
fn prepare_only_writes_what_papermill_prepare_only_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut nb = notebook(vec![
        code("a = 1", &["parameters"]),
        code("print(a)", &[]),
        markdown("text"),
        code("b = 2", &[]),
    ]);
    // Saved outputs and counts of an earlier run, and the marks papermill left on it.
    nb["cells"][1]["execution_count"] = json!(7);
    nb["cells"][1]["outputs"] =
        json!([{"output_type": "stream", "name": "stdout", "text": "old output\n"}]);
    nb["cells"][3]["execution_count"] = json!(8);
    nb["cells"][3]["metadata"]["papermill"] = json!({"status": "completed", "duration": 0.5});
    let input = write_nb(dir.path(), "in.ipynb", &nb);
    let ours_path = dir.path().join("ours.ipynb");
    let theirs_path = dir.path().join("theirs.ipynb");
    let (i, o, t) = (
        input.to_str().unwrap(),
        ours_path.to_str().unwrap(),
        theirs_path.to_str().unwrap(),
    );

    for extra in [&[][..], &["--report-mode"][..]] {
        let args = [&["--prepare-only", "-p", "a", "2"][..], extra].concat();
        let out = run(&[&["run", i, o][..], &args].concat());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let out = papermill(&[&[i, t][..], &args].concat());
        assert!(out.status.success(), "{}", stderr(&out));
        compare_prepared(&ours_path, &theirs_path);
    }
}

/// `nbexec run --prepare-only` (at `ours`) against papermill's (at `theirs`).
fn compare_prepared(ours_path: &std::path::Path, theirs_path: &std::path::Path) {
    let o = ours_path.to_str().unwrap();
    let t = theirs_path.to_str().unwrap();
    let mut ours = read_nb(ours_path);
    let mut theirs = read_nb(theirs_path);

    // Outputs and counts are kept; nothing is marked pending.
    assert_eq!(
        stream_text(cell_with(&ours, "print(a)"), "stdout"),
        "old output\n"
    );
    assert_eq!(cell_with(&ours, "print(a)")["execution_count"], json!(7));

    // Cell by cell the same, but for the injected cell's random id and the empty
    // `tags` papermill adds to untagged cells (nbexec adds none, run or not).
    let cells = |nb: &mut Value| -> Vec<Value> {
        let mut cells = nb["cells"].as_array().unwrap().clone();
        for cell in &mut cells {
            let md = cell["metadata"].as_object_mut().unwrap();
            if md.get("tags") == Some(&json!([])) {
                md.remove("tags");
            }
            if source(cell).starts_with("# Parameters") {
                cell.as_object_mut().unwrap().remove("id");
            }
        }
        cells
    };
    assert_eq!(cells(&mut ours), cells(&mut theirs));

    // metadata.papermill: the same paths and parameters, and no times (nothing ran).
    let (ours_pm, theirs_pm) = (
        &ours["metadata"]["papermill"],
        &theirs["metadata"]["papermill"],
    );
    assert_eq!(ours_pm["input_path"], theirs_pm["input_path"]);
    assert_eq!(ours_pm["output_path"], json!(o));
    assert_eq!(theirs_pm["output_path"], json!(t));
    assert_eq!(ours_pm["parameters"], json!({"a": 2}));
    assert_eq!(ours_pm["parameters"], theirs_pm["parameters"]);
    for key in ["start_time", "end_time", "duration", "exception"] {
        assert!(ours_pm.get(key).is_none(), "{key}: {ours_pm}");
        assert!(theirs_pm.get(key).is_none(), "{key}: {theirs_pm}");
    }
}
