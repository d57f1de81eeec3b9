//! Validation against the nbformat v4 schemas, with Python nbformat's verdict as the
//! oracle: every notebook here is also checked by `nbformat.validator.isvalid`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Python nbformat's verdict on each notebook text, read as nbexec reads it (lines
/// joined, transient keys dropped, missing 4.5 ids added) and then `isvalid`; a text
/// that Python's reader raises on counts as invalid.
fn python_verdicts(texts: &[String]) -> Vec<bool> {
    const SCRIPT: &str = r#"
import json, sys, warnings
from nbformat import reader
from nbformat.corpus.words import generate_corpus_id
from nbformat.validator import isvalid
warnings.simplefilter("ignore")
verdicts = []
for text in json.load(sys.stdin):
    try:
        nb = reader.reads(text)
    except Exception:
        # Python cannot even read it (e.g. a source list holding a number).
        verdicts.append(False)
        continue
    if (nb.nbformat, nb.nbformat_minor) >= (4, 5):
        for cell in nb.cells:
            if "id" not in cell:
                cell["id"] = generate_corpus_id()
    verdicts.append(isvalid(nb))
print(json.dumps(verdicts))
"#;
    let input = serde_json::to_vec(texts).unwrap();
    let out = common::run_python(SCRIPT, &input);
    serde_json::from_slice(&out).expect("Python's verdicts")
}

fn issues_of(text: &str) -> Vec<String> {
    let nb = nbexec_format::read_str(text).unwrap_or_else(|e| panic!("read: {e}"));
    nbexec_format::validate(&nb)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut out = Vec::new();
    for sub in ["canonical", "raw"] {
        for entry in fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.to_string_lossy();
            if name.ends_with(".ipynb") || name.ends_with(".json") {
                out.push(path);
            }
        }
    }
    out.sort();
    assert!(out.len() > 10);
    out
}

/// Corpus notebooks that are invalid on purpose (they test that nothing is dropped).
const INVALID_ON_PURPOSE: &[&str] = &["unknown-keys.ipynb"];

#[test]
fn every_corpus_notebook_is_valid_except_those_meant_not_to_be_and_python_agrees() {
    let files = corpus_files();
    let texts: Vec<String> = files
        .iter()
        .map(|p| fs::read_to_string(p).unwrap())
        .collect();
    let verdicts = python_verdicts(&texts);
    for ((path, text), python_valid) in files.iter().zip(&texts).zip(verdicts) {
        let name = path.file_name().unwrap().to_string_lossy();
        let issues = issues_of(text);
        let meant_invalid = INVALID_ON_PURPOSE.contains(&name.as_ref());
        assert_eq!(issues.is_empty(), !meant_invalid, "{name}: {issues:?}");
        assert_eq!(python_valid, !meant_invalid, "{name}: Python disagrees");
    }
}

#[test]
fn the_unknown_keys_notebook_is_reported_key_by_key() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/canonical/unknown-keys.ipynb");
    assert_eq!(
        issues_of(&fs::read_to_string(path).unwrap()),
        vec![
            r#"cells[0].outputs[0]: 'output_type' is "future_output", expected one of "execute_result", "display_data", "stream", "error""#,
            "cells[0]: unexpected key 'x_unknown' (allowed: cell_type, execution_count, id, metadata, outputs, source)",
            "notebook: unexpected key 'x_top_level' (allowed: cells, metadata, nbformat, nbformat_minor)",
        ]
    );
}

/// A valid 4.5 notebook with one cell of each type and one output of each type.
fn base() -> Value {
    json!({
        "cells": [
            {
                "cell_type": "code", "id": "c0", "execution_count": 3,
                "metadata": {"tags": ["x"], "scrolled": "auto", "collapsed": false},
                "source": "print(1)\n",
                "outputs": [
                    {"output_type": "execute_result", "execution_count": 3, "metadata": {},
                     "data": {"text/plain": ["1\n", "2"], "application/json": {"a": [1]},
                              "application/vnd.x+json": 5}},
                    {"output_type": "stream", "name": "stdout", "text": "1\n"},
                    {"output_type": "display_data", "metadata": {"image/png": {"width": 4}},
                     "data": {"image/png": "iVBOR\n"}},
                    {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t"]}
                ]
            },
            {"cell_type": "markdown", "id": "c1", "metadata": {}, "source": ["# T\n", "x"],
             "attachments": {"img.png": {"image/png": "AAAA"}}},
            {"cell_type": "raw", "id": "c2", "metadata": {"format": "text/x"}, "source": ""}
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python", "codemirror_mode": {"name": "ipython"}},
            "anything": [1, 2]
        },
        "nbformat": 4,
        "nbformat_minor": 5
    })
}

/// The base notebook changed by `edit`.
fn with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut nb = base();
    edit(&mut nb);
    nb
}

fn cell(nb: &mut Value, i: usize) -> &mut Value {
    &mut nb["cells"][i]
}

fn output(nb: &mut Value, i: usize) -> &mut Value {
    &mut nb["cells"][0]["outputs"][i]
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().shift_remove(key);
}

/// (what, notebook, every issue nbexec must report). Python must agree on the verdict.
fn cases() -> Vec<(&'static str, Value, Vec<&'static str>)> {
    vec![
        ("the base notebook", base(), vec![]),
        (
            "an unknown output type",
            with(|nb| output(nb, 1)["output_type"] = json!("bogus")),
            vec![
                r#"cells[0].outputs[1]: 'output_type' is "bogus", expected one of "execute_result", "display_data", "stream", "error""#,
            ],
        ),
        (
            "a cell without source",
            with(|nb| remove(cell(nb, 2), "source")),
            vec!["cells[2]: missing required key 'source'"],
        ),
        (
            "an unknown key in a code cell",
            with(|nb| cell(nb, 0)["foo"] = json!(1)),
            vec![
                "cells[0]: unexpected key 'foo' (allowed: cell_type, execution_count, id, metadata, outputs, source)",
            ],
        ),
        (
            "an unknown cell type",
            with(|nb| cell(nb, 1)["cell_type"] = json!("heading")),
            vec![
                r#"cells[1]: 'cell_type' is "heading", expected one of "raw", "markdown", "code""#,
            ],
        ),
        (
            "a cell without a type",
            with(|nb| remove(cell(nb, 1), "cell_type")),
            vec!["cells[1]: missing required key 'cell_type'"],
        ),
        (
            "a code cell without outputs",
            with(|nb| remove(cell(nb, 0), "outputs")),
            vec!["cells[0]: missing required key 'outputs'"],
        ),
        (
            "an execution count that is a string",
            with(|nb| cell(nb, 0)["execution_count"] = json!("3")),
            vec![r#"cells[0].execution_count: expected an integer or null, found a string "3""#],
        ),
        (
            "a negative execution count",
            with(|nb| output(nb, 0)["execution_count"] = json!(-1)),
            vec!["cells[0].outputs[0].execution_count: expected at least 0, found -1"],
        ),
        (
            "an execution count that is a float",
            with(|nb| cell(nb, 0)["execution_count"] = json!(1.0)),
            vec!["cells[0].execution_count: expected an integer or null, found a number 1.0"],
        ),
        (
            "a stream without a name",
            with(|nb| remove(output(nb, 1), "name")),
            vec!["cells[0].outputs[1]: missing required key 'name'"],
        ),
        (
            "stream text that is a number",
            with(|nb| output(nb, 1)["text"] = json!(5)),
            vec![
                "cells[0].outputs[1].text: expected a string or an array of strings, found an integer 5",
            ],
        ),
        (
            "a source line that is not a string",
            with(|nb| cell(nb, 1)["source"] = json!(["a\n", 5])),
            vec!["cells[1].source[1]: expected a string, found an integer 5"],
        ),
        (
            "a tag with a comma",
            with(|nb| cell(nb, 0)["metadata"]["tags"] = json!(["a,b"])),
            vec![r#"cells[0].metadata.tags[0]: a string "a,b" does not match the pattern ^[^,]+$"#],
        ),
        (
            "a repeated tag",
            with(|nb| cell(nb, 0)["metadata"]["tags"] = json!(["x", "y", "x"])),
            vec![
                r#"cells[0].metadata.tags: items [0] and [2] are equal ("x"); items must be unique"#,
            ],
        ),
        (
            "a cell id with a space",
            with(|nb| cell(nb, 1)["id"] = json!("a b")),
            vec![r#"cells[1].id: a string "a b" does not match the pattern ^[a-zA-Z0-9-_]+$"#],
        ),
        (
            "a cell id of 65 characters",
            with(|nb| cell(nb, 1)["id"] = json!("a".repeat(65))),
            vec!["cells[1].id: expected at most 64 characters, found 65"],
        ),
        (
            "an empty cell id",
            with(|nb| cell(nb, 1)["id"] = json!("")),
            vec![
                r#"cells[1].id: a string "" does not match the pattern ^[a-zA-Z0-9-_]+$"#,
                "cells[1].id: expected at least 1 character(s), found 0",
            ],
        ),
        (
            "a kernelspec without display_name",
            with(|nb| remove(&mut nb["metadata"]["kernelspec"], "display_name")),
            vec!["metadata.kernelspec: missing required key 'display_name'"],
        ),
        (
            "a language name that is not a string",
            with(|nb| nb["metadata"]["language_info"]["name"] = json!(["python"])),
            vec!["metadata.language_info.name: expected a string, found an array"],
        ),
        (
            "a codemirror mode that is a number",
            with(|nb| nb["metadata"]["language_info"]["codemirror_mode"] = json!(3)),
            vec![
                "metadata.language_info.codemirror_mode: expected a string or an object, found an integer 3",
            ],
        ),
        (
            "an unknown top-level key",
            with(|nb| nb["extra"] = json!(true)),
            vec![
                "notebook: unexpected key 'extra' (allowed: cells, metadata, nbformat, nbformat_minor)",
            ],
        ),
        (
            "text/plain data that is a number",
            with(|nb| output(nb, 0)["data"]["text/plain"] = json!(1)),
            vec![
                r#"cells[0].outputs[0].data["text/plain"]: expected a string or an array of strings, found an integer 1"#,
            ],
        ),
        (
            "an attachment that is not text",
            with(|nb| cell(nb, 1)["attachments"]["img.png"]["image/png"] = json!({"a": 1})),
            vec![
                r#"cells[1].attachments["img.png"]["image/png"]: expected a string or an array of strings, found an object"#,
            ],
        ),
        (
            "a traceback that is a string",
            with(|nb| output(nb, 3)["traceback"] = json!("t")),
            vec![r#"cells[0].outputs[3].traceback: expected an array, found a string "t""#],
        ),
        (
            "a scrolled value that is not allowed",
            with(|nb| cell(nb, 0)["metadata"]["scrolled"] = json!("yes")),
            vec![
                r#"cells[0].metadata.scrolled: expected one of true, false, "auto", found a string "yes""#,
            ],
        ),
        (
            "an execution timestamp that is a number",
            with(|nb| {
                cell(nb, 0)["metadata"]["execution"] = json!({"iopub.status.busy": 5, "x": 1})
            }),
            vec![
                r#"cells[0].metadata.execution["iopub.status.busy"]: expected a string, found an integer 5"#,
                "cells[0].metadata.execution.x: expected a string, found an integer 1",
            ],
        ),
        (
            "an empty cell name",
            with(|nb| cell(nb, 2)["metadata"]["name"] = json!("")),
            vec![r#"cells[2].metadata.name: a string "" does not match the pattern ^.+$"#],
        ),
        (
            "NaN as an execution count",
            json!(null), // replaced below: serde_json cannot build NaN
            vec!["cells[0].execution_count: expected an integer or null, found a number NaN"],
        ),
        (
            "a cell id with a final newline (Python's `$` allows it)",
            with(|nb| cell(nb, 1)["id"] = json!("abc\n")),
            vec![],
        ),
        (
            "a 4.4 notebook whose cells have ids",
            with(|nb| nb["nbformat_minor"] = json!(4)),
            vec![
                "cells[0]: unexpected key 'id' (allowed: cell_type, execution_count, metadata, outputs, source)",
                "cells[1]: unexpected key 'id' (allowed: attachments, cell_type, metadata, source)",
                "cells[2]: unexpected key 'id' (allowed: attachments, cell_type, metadata, source)",
            ],
        ),
        (
            "a 4.0 notebook without ids",
            with(|nb| {
                nb["nbformat_minor"] = json!(0);
                for i in 0..3 {
                    remove(cell(nb, i), "id");
                }
            }),
            vec![],
        ),
        (
            "a 4.0 notebook with a repeated tag",
            with(|nb| {
                nb["nbformat_minor"] = json!(0);
                for i in 0..3 {
                    remove(cell(nb, i), "id");
                }
                cell(nb, 0)["metadata"]["tags"] = json!(["x", "x"]);
            }),
            vec![
                r#"cells[0].metadata.tags: items [0] and [1] are equal ("x"); items must be unique"#,
            ],
        ),
        (
            "a 4.6 notebook with new cell and output types and keys",
            with(|nb| {
                nb["nbformat_minor"] = json!(6);
                nb["new_key"] = json!(1);
                cell(nb, 0)["new_key"] = json!(1);
                output(nb, 1)["output_type"] = json!("hologram");
                cell(nb, 2)["cell_type"] = json!("sketch");
            }),
            vec![],
        ),
        (
            "a 4.6 notebook whose code cell has no outputs",
            with(|nb| {
                nb["nbformat_minor"] = json!(6);
                remove(cell(nb, 0), "outputs");
            }),
            vec!["cells[0]: missing required key 'outputs'"],
        ),
    ]
}

#[test]
fn bad_notebooks_are_reported_with_path_and_message_and_python_agrees() {
    let cases = cases();
    let mut texts = Vec::new();
    for (what, nb, expected) in &cases {
        let text = if nb.is_null() {
            serde_json::to_string(&base()).unwrap().replacen(
                "\"execution_count\":3",
                "\"execution_count\":NaN",
                1,
            )
        } else {
            serde_json::to_string(nb).unwrap()
        };
        assert_eq!(&issues_of(&text), expected, "{what}");
        texts.push(text);
    }
    let verdicts = python_verdicts(&texts);
    for ((what, _, expected), python_valid) in cases.iter().zip(verdicts) {
        assert_eq!(
            expected.is_empty(),
            python_valid,
            "{what}: nbexec and Python nbformat disagree on validity"
        );
    }
}

#[test]
fn cells_added_through_the_model_validate() {
    let mut nb = nbexec_format::Notebook::new();
    for cell in [
        nbexec_format::Cell::new_code("x = 1"),
        nbexec_format::Cell::new_markdown("# T"),
        nbexec_format::Cell::new_raw(""),
    ] {
        let id = nb.new_cell_id();
        nb.cells_mut().push(cell);
        nb.cells_mut().last_mut().unwrap().set_id(id);
    }
    nb.metadata_mut().insert(
        "kernelspec".into(),
        json!({"name": "python3", "display_name": "P"}),
    );
    assert_eq!(nbexec_format::validate(&nb), vec![]);
}

/// A repeated cell id is repaired on read, as Python's `nbformat.read` repairs it (see
/// tests/cell_ids.rs), so it can only come from changes made in memory: the validator
/// still reports it, and Python's validator (without its repair) agrees.
#[test]
fn a_repeated_cell_id_made_in_memory_is_reported_and_python_agrees() {
    let text = serde_json::to_string(&base()).unwrap();
    let mut nb = nbexec_format::read_str(&text).unwrap();
    nb.cells_mut()[2].set_id(Some("c0".into()));
    let issues: Vec<String> = nbexec_format::validate(&nb)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        issues,
        vec![r#"cells[2].id: duplicate cell id "c0" (also cells[0])"#]
    );
    let repeated = serde_json::to_string(&with(|nb| cell(nb, 2)["id"] = json!("c0"))).unwrap();
    assert_eq!(python_verdicts(&[repeated]), vec![false]);
}
