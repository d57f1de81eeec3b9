//! Cell ids on read: a 4.5 notebook whose cells repeat an id gets fresh ids for the
//! later repeats, with a warning, as Python `nbformat.read` does, so what is written is
//! valid. The fresh ids are random on both sides; the shape of the fix is compared.

mod common;

use std::collections::HashSet;

use nbexec_format::Warning;
use serde_json::{Value, json};

fn notebook(ids: &[&str]) -> String {
    let cells: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"cell_type": "code", "id": id, "execution_count": null, "metadata": {},
                   "outputs": [], "source": format!("x = {i}")})
        })
        .collect();
    json!({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).to_string()
}

/// Which cells kept their id (`Some(id)`) and which got a new one (`None`).
fn kept(before: &[&str], after: &[String]) -> Vec<Option<String>> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| (*b == a.as_str()).then(|| a.clone()))
        .collect()
}

/// Python's `nbformat.reads(text, as_version=4)`: the cell ids it ends with.
fn python_ids(text: &str) -> Vec<String> {
    const SCRIPT: &str = r#"
import json, sys, warnings, nbformat
warnings.simplefilter("ignore")
nb = nbformat.reads(sys.stdin.read(), as_version=4)
print(json.dumps([c["id"] for c in nb.cells]))
"#;
    serde_json::from_slice(&common::run_python(SCRIPT, text.as_bytes())).unwrap()
}

#[test]
fn later_repeats_of_a_cell_id_get_fresh_ids_with_a_warning_as_python_does() {
    let before = ["a", "b", "a", "c", "b", "a"];
    let text = notebook(&before);
    let read = nbexec_format::read_str_with_warnings(&text).unwrap();
    let ids: Vec<String> = read
        .notebook
        .cells()
        .iter()
        .map(|c| c.id().unwrap().to_owned())
        .collect();

    // Unique, and the notebook is valid (it was not: the validator says so in memory).
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "{ids:?}"
    );
    assert_eq!(nbexec_format::validate(&read.notebook), vec![]);

    // The first of each id stays; each later repeat is replaced, and the warning says
    // which by what.
    let [Warning::DuplicateIdsReplaced { ids: replaced }] = &read.warnings[..] else {
        panic!("{:?}", read.warnings);
    };
    assert_eq!(
        replaced,
        &vec![
            ("a".to_owned(), ids[2].clone()),
            ("b".to_owned(), ids[4].clone()),
            ("a".to_owned(), ids[5].clone()),
        ]
    );
    for fresh in [&ids[2], &ids[4], &ids[5]] {
        assert!(
            fresh.len() == 8 && fresh.bytes().all(|b| b.is_ascii_hexdigit()),
            "{fresh}"
        );
    }
    let shown = read.warnings[0].to_string();
    assert!(
        shown.contains(r#""a" -> "#) && !shown.contains('\n'),
        "{shown}"
    );

    // Python makes the same shape of fix: the same cells keep their ids.
    let python = python_ids(&text);
    assert_eq!(kept(&before, &ids), kept(&before, &python));

    // Written and read again, nothing more changes.
    let written = nbexec_format::write_string(&read.notebook);
    let again = nbexec_format::read_str_with_warnings(&written).unwrap();
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(nbexec_format::write_string(&again.notebook), written);
}

#[test]
fn a_4_4_notebook_has_no_ids_to_repair() {
    // Before 4.5 an `id` is no cell id (Python neither checks nor repairs it).
    let text = notebook(&["a", "a"]).replace("\"nbformat_minor\":5", "\"nbformat_minor\":4");
    let read = nbexec_format::read_str_with_warnings(&text).unwrap();
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    let ids: Vec<_> = read.notebook.cells().iter().map(|c| c.id()).collect();
    assert_eq!(ids, vec![Some("a"), Some("a")]);
    assert_eq!(python_ids(&text), vec!["a", "a"]);
}
