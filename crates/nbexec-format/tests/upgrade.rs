//! nbformat 3 notebooks are read by upgrading them to 4.5, as Python
//! `nbformat.read(…, as_version=4)` does, and written byte for byte as Python writes
//! the upgrade. The oracle is Python nbformat: the committed expected files (see
//! `tests/corpus/v3/generate.py`) and a live run.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use nbexec_format::{FormatError, Warning};

fn v3_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/v3")
}

fn notebooks_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ipynb"))
        .collect();
    out.sort();
    out
}

fn is_fresh_id(id: &str) -> bool {
    id.len() == 8
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[test]
fn v3_notebooks_upgrade_to_what_python_writes() {
    let inputs = notebooks_in(&v3_dir());
    assert!(inputs.len() >= 3, "{inputs:?}");
    for input in inputs {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&input).unwrap();
        let read =
            nbexec_format::read_str_with_warnings(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(read.upgraded_from.map(|v| v.0), Some(3), "{name}");
        assert!(
            matches!(
                read.warnings.as_slice(),
                [Warning::Upgraded { major: 3, .. }]
            ),
            "{name}: {:?}",
            read.warnings
        );
        let mut nb = read.notebook;
        assert_eq!(nb.nbformat(), (4, 5), "{name}");

        // Every cell has a fresh id of Python's shape, unique in the notebook.
        let ids: Vec<String> = nb
            .cells()
            .iter()
            .map(|c| c.id().unwrap().to_owned())
            .collect();
        assert!(ids.iter().all(|id| is_fresh_id(id)), "{name}: {ids:?}");
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            ids.len(),
            "{name}"
        );

        // Live: Python's read+write of the same file, ids masked on both sides.
        let ours = nbexec_format::write_string(&nb);
        assert_eq!(
            common::mask_cell_ids(&ours),
            common::mask_cell_ids(&common::python_read_write(&text)),
            "{name}: differs from Python's upgrade (live)"
        );

        // Committed: with the expected file's numbered ids, the very same bytes.
        let expected = fs::read_to_string(v3_dir().join("expected").join(&name)).unwrap();
        let expected_nb = nbexec_format::read_str(&expected).unwrap();
        assert_eq!(expected_nb.cells().len(), nb.cells().len(), "{name}");
        for (cell, want) in nb.cells_mut().iter_mut().zip(expected_nb.cells()) {
            cell.set_id(want.id().map(str::to_owned));
        }
        assert!(
            nbexec_format::write_string(&nb) == expected,
            "{name}: differs from expected/{name}"
        );
    }
}

#[test]
fn an_upgraded_notebook_validates_as_python_says() {
    let read = |name: &str| {
        nbexec_format::read_str(&fs::read_to_string(v3_dir().join(name)).unwrap()).unwrap()
    };
    // Python: valid.
    for name in [
        "test3.ipynb",
        "test3-no-min-version.ipynb",
        "test2-as-v3.ipynb",
    ] {
        let issues = nbexec_format::validate(&read(name));
        assert!(issues.is_empty(), "{name}: {issues:?}");
    }
    // Python: invalid (it keeps keys v4 does not allow, as we do).
    let issues: Vec<String> = nbexec_format::validate(&read("edge-cases.ipynb"))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        issues.iter().any(|i| i.contains("'x_top'")),
        "edge-cases: {issues:?}"
    );
}

#[test]
fn v3_notebooks_python_refuses_are_refused_with_a_clear_message() {
    let cases = [
        ("test3-no-metadata.ipynb", "no 'metadata' key"),
        ("test3-no-worksheets.ipynb", "no 'worksheets' key"),
        (
            "test3-worksheet-with-no-cells.ipynb",
            "worksheets[0]: no 'cells' key",
        ),
    ];
    let bad = notebooks_in(&v3_dir().join("bad"));
    assert_eq!(bad.len(), cases.len());
    for (name, message) in cases {
        let text = fs::read_to_string(v3_dir().join("bad").join(name)).unwrap();
        let err = nbexec_format::read_str(&text).unwrap_err();
        assert!(
            matches!(err, FormatError::Structure { .. }),
            "{name}: {err:?}"
        );
        let shown = err.to_string();
        assert!(shown.contains(message), "{name}: {shown}");
        assert!(!shown.contains('\n'), "{name}: {shown}");
    }
}

#[test]
fn v1_and_v2_notebooks_are_still_refused_with_advice() {
    for major in [1, 2] {
        let text = format!(r#"{{"metadata": {{}}, "nbformat": {major}, "worksheets": []}}"#);
        let err = nbexec_format::read_str(&text).unwrap_err();
        assert!(matches!(err, FormatError::UnsupportedVersion(_)), "{err:?}");
        assert!(err.to_string().contains("nbformat 4"), "{err}");
    }
}

#[test]
fn hostile_v3_notebooks_are_refused_in_one_line_not_a_panic() {
    let nb = |cell: &str| {
        format!(
            r#"{{"metadata": {{}}, "nbformat": 3, "nbformat_minor": 0,
                "worksheets": [{{"cells": [{cell}]}}]}}"#
        )
    };
    let cases = [
        (
            nb(r#"{"cell_type": "heading", "level": 1000000000000, "source": "x"}"#),
            "heading level 1000000000000 is out of range",
        ),
        (
            nb(r#"{"cell_type": "heading", "level": "2", "source": "x"}"#),
            "level: expected an integer",
        ),
        (
            nb(r#"{"cell_type": "heading", "source": [1, 2]}"#),
            "source: expected a string",
        ),
        (
            nb(r#"{"cell_type": "code", "input": ""}"#),
            "no 'outputs' key",
        ),
        (nb("5"), "worksheets[0].cells[0]: expected an object"),
        (
            nb(r#"{"cell_type": "code", "outputs": [{"output_type": "pyout", "json": "{"}]}"#),
            "outputs[0].json: not valid JSON",
        ),
        (
            nb(r#"{"cell_type": "code", "outputs": [{"output_type": "pyout", "json": 5}]}"#),
            "expected a string of JSON",
        ),
        (
            r#"{"metadata": [], "nbformat": 3, "worksheets": []}"#.to_owned(),
            "metadata: expected an object",
        ),
    ];
    for (text, message) in cases {
        let err = nbexec_format::read_str(&text).unwrap_err().to_string();
        assert!(err.contains(message), "{text}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
