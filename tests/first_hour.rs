//! The command line a new user meets in their first hour, coming from papermill or
//! ArcGIS: what goes to stdout and stderr, progress off a terminal, warnings about
//! invalid notebooks, tracebacks, stdin, help and the missing `run`.

mod common;

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
