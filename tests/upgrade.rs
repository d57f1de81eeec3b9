//! nbformat 3 notebooks through the command line: `run` and `validate` read them as
//! Jupyter does (upgraded to 4.5), `fmt --upgrade` rewrites them as Python nbformat
//! would, and plain `fmt` refuses to change a notebook's major version.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// nbformat's own v3 test notebook (see crates/nbexec-format/tests/corpus/v3/NOTICE.md).
fn test3() -> PathBuf {
    root().join("crates/nbexec-format/tests/corpus/v3/test3.ipynb")
}

/// A small v3 notebook with a parameters cell (v3 cells may carry metadata tags).
const PARAMETERISED_V3: &str = r#"{
 "metadata": {"name": "", "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 3,
 "nbformat_minor": 0,
 "worksheets": [{"metadata": {}, "cells": [
  {"cell_type": "heading", "level": 1, "metadata": {}, "source": ["Old notebook"]},
  {"cell_type": "code", "collapsed": false, "input": ["x = 1"], "language": "python",
   "metadata": {"tags": ["parameters"]}, "outputs": [], "prompt_number": 3},
  {"cell_type": "code", "collapsed": false, "input": ["print(x * 2)"], "language": "python",
   "metadata": {}, "outputs": [{"output_type": "stream", "stream": "stdout", "text": ["stale\n"]}], "prompt_number": 4}
 ]}]
}"#;

/// Python nbformat's `write(read(path, as_version=4))`.
fn python_upgrade(path: &Path) -> String {
    const SCRIPT: &str = r#"
import sys, warnings, nbformat
warnings.simplefilter("ignore")
nb = nbformat.read(sys.stdin.readline().strip(), as_version=4)
sys.stdout.buffer.write((nbformat.writes(nb) + "\n").encode("utf-8"))
"#;
    let out = python(SCRIPT, format!("{}\n", path.display()).as_bytes());
    String::from_utf8(out).unwrap()
}

/// Cell ids are random on both sides: compare everything else.
fn without_ids(text: &str) -> Value {
    let mut nb: Value = serde_json::from_str(text).unwrap();
    for cell in nb["cells"].as_array_mut().unwrap() {
        let id = cell.as_object_mut().unwrap().remove("id");
        assert!(id.is_some_and(|id| id.as_str().is_some_and(|s| s.len() == 8)));
    }
    nb
}

#[test]
fn fmt_refuses_a_v3_notebook_without_upgrade_and_rewrites_it_as_python_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.ipynb");
    let original = std::fs::read_to_string(test3()).unwrap();
    std::fs::write(&path, &original).unwrap();
    let p = path.to_str().unwrap();

    for args in [vec!["fmt", p], vec!["fmt", "--check", p]] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains("old.ipynb") && err.contains("--upgrade"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    }

    let out = run(&["fmt", "--check", "--upgrade", p]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("would upgrade"), "{}", stdout(&out));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);

    let out = run(&["fmt", "--upgrade", p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("upgraded"), "{}", stdout(&out));
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        without_ids(&written),
        without_ids(&python_upgrade(&test3()))
    );
    // Byte for byte what Python writes, but for the random ids: Python's writing of
    // our upgraded file (ids kept) is the file itself.
    let out = python(
        r#"
import sys, nbformat
nb = nbformat.read(sys.stdin.readline().strip(), as_version=4)
sys.stdout.buffer.write((nbformat.writes(nb) + "\n").encode("utf-8"))
"#,
        format!("{p}\n").as_bytes(),
    );
    assert_eq!(String::from_utf8(out).unwrap(), written);

    let out = run(&["fmt", "--check", p]);
    assert_eq!(out.status.code(), Some(0), "now 4.5 and canonical");
}

#[test]
fn validate_reads_a_v3_notebook_as_upgraded_and_says_so() {
    let out = run(&["validate", test3().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("test3.ipynb: valid"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("warning:") && stderr(&out).contains("nbformat 3.0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_executes_a_v3_notebook_with_parameters_and_writes_4_5() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("old.ipynb");
    std::fs::write(&input, PARAMETERISED_V3).unwrap();
    let output = dir.path().join("out.ipynb");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "-p",
        "x",
        "21",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&output);
    assert_eq!(nb["nbformat"], 4);
    assert_eq!(nb["nbformat_minor"], 5);
    assert_eq!(source(&nb["cells"][0]), "# Old notebook");
    let printed = cell_with(&nb, "print(x * 2)");
    assert_eq!(stream_text(printed, "stdout"), "42\n");
    assert!(
        nb["cells"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"].is_string())
    );
    assert_kernel_gone(&nb);
}
