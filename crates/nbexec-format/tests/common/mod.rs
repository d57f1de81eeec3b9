//! Shared by the integration tests: the project's Python, the oracle.
#![allow(dead_code)] // each test file uses a different part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `<root>/.venv/bin/python`, which has nbformat.
pub fn python() -> PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/venv.sh first",
        python.display()
    );
    python
}

/// Runs a Python script with `input` on its stdin; returns its stdout.
pub fn run_python(script: &str, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start Python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to Python");
    let out = child.wait_with_output().expect("wait for Python");
    assert!(out.status.success(), "Python failed");
    out.stdout
}

/// Python nbformat's `writes(reads(text, as_version=4))` plus the final newline that
/// `nbformat.write` adds.
pub fn python_read_write(text: &str) -> String {
    const SCRIPT: &str = r#"
import sys, warnings, nbformat
warnings.simplefilter("ignore")
nb = nbformat.reads(sys.stdin.buffer.read().decode("utf-8"), as_version=4)
sys.stdout.buffer.write((nbformat.writes(nb) + "\n").encode("utf-8"))
"#;
    String::from_utf8(run_python(SCRIPT, text.as_bytes())).expect("Python wrote UTF-8")
}

/// The notebook text with each cell's id (the `"id"` key at cell depth, as the writer
/// indents it) replaced by its cell's number: for comparing the writing of two
/// notebooks whose ids were drawn at random.
pub fn mask_cell_ids(text: &str) -> String {
    let mut n = 0;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.starts_with("   \"id\": \"") {
            let comma = if line.trim_end().ends_with(',') {
                ","
            } else {
                ""
            };
            out.push_str(&format!("   \"id\": \"cell-{n}\"{comma}\n"));
            n += 1;
        } else {
            out.push_str(line);
        }
    }
    out
}
