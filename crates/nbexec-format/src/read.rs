use serde_json::{Map, Value};

use crate::error::{FormatError, Warning};
use crate::model::{Cell, Notebook};

/// The newest minor version of nbformat 4 this crate knows.
pub const NEWEST_MINOR: u64 = 5;

/// A notebook that was read, with what is worth telling the user about it.
#[derive(Debug)]
pub struct ReadOutcome {
    pub notebook: Notebook,
    pub warnings: Vec<Warning>,
}

/// Reads a notebook from its JSON text. See [`read_str_with_warnings`].
pub fn read_str(text: &str) -> Result<Notebook, FormatError> {
    read_slice(text.as_bytes()).map(|r| r.notebook)
}

/// Reads a notebook from its JSON text, keeping the warnings.
pub fn read_str_with_warnings(text: &str) -> Result<ReadOutcome, FormatError> {
    read_slice(text.as_bytes())
}

/// Reads a notebook from UTF-8 JSON bytes, as Python `nbformat.read(…, as_version=4)`
/// does: multi-line strings are joined, and a 4.5+ notebook's cells get ids where
/// they lack them. Nothing else changes.
pub fn read_slice(bytes: &[u8]) -> Result<ReadOutcome, FormatError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| FormatError::Json {
        line: e.line(),
        column: e.column(),
        message: json_message(&e),
    })?;
    from_value(value)
}

/// serde_json's message without its own " at line L column C" suffix.
fn json_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    }
}

/// Builds a notebook from parsed JSON (see [`read_slice`]).
pub fn from_value(value: Value) -> Result<ReadOutcome, FormatError> {
    let Value::Object(mut top) = value else {
        return Err(FormatError::structure(
            "top level",
            "expected a JSON object (a notebook)",
        ));
    };
    let major = match top.get("nbformat") {
        Some(v) => v.as_u64().ok_or_else(|| {
            FormatError::structure(
                "nbformat",
                format!("expected an integer, found {}", kind(v)),
            )
        })?,
        None => {
            return Err(FormatError::structure(
                "top level",
                "no 'nbformat' key: this is not a Jupyter notebook",
            ));
        }
    };
    let minor = match top.get("nbformat_minor") {
        Some(v) => v.as_u64().ok_or_else(|| {
            FormatError::structure(
                "nbformat_minor",
                format!("expected an integer, found {}", kind(v)),
            )
        })?,
        None => 0,
    };
    match major {
        4 => {}
        1..=3 => {
            return Err(FormatError::UnsupportedVersion(format!(
                "nbformat {major} notebooks are not supported; convert it to version 4 first \
                 (jupyter nbconvert --to notebook --nbformat 4)"
            )));
        }
        _ => {
            return Err(FormatError::UnsupportedVersion(format!(
                "nbformat {major}.{minor} is not supported (this version of nbexec reads 4.0 to 4.{NEWEST_MINOR})"
            )));
        }
    }
    let mut warnings = Vec::new();
    if minor > NEWEST_MINOR {
        warnings.push(Warning::NewerMinor { minor });
    }
    let cells = match top.shift_remove("cells") {
        Some(Value::Array(cells)) => cells,
        Some(other) => {
            return Err(FormatError::structure(
                "cells",
                format!("expected an array, found {}", kind(&other)),
            ));
        }
        None => return Err(FormatError::structure("top level", "no 'cells' key")),
    };
    let mut out = Vec::with_capacity(cells.len());
    for (index, cell) in cells.into_iter().enumerate() {
        let Value::Object(mut raw) = cell else {
            return Err(FormatError::structure(
                format!("cell {index}"),
                format!("expected an object, found {}", kind(&cell)),
            ));
        };
        rejoin_cell(&mut raw);
        out.push(Cell { raw });
    }
    let mut notebook = Notebook { top, cells: out };
    // Python nbformat drops these on every read; so do we, to write what it writes.
    notebook.strip_transient();
    if notebook.has_cell_ids() {
        let added = notebook.add_missing_ids();
        if added > 0 {
            warnings.push(Warning::MissingIdsAdded { count: added });
        }
    }
    Ok(ReadOutcome { notebook, warnings })
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Python nbformat's `rejoin_lines` for one cell.
fn rejoin_cell(raw: &mut Map<String, Value>) {
    if let Some(source) = raw.get_mut("source") {
        join_if_lines(source);
    }
    if let Some(Value::Object(attachments)) = raw.get_mut("attachments") {
        for bundle in attachments.values_mut() {
            if let Value::Object(bundle) = bundle {
                rejoin_mimebundle(bundle);
            }
        }
    }
    if raw.get("cell_type").and_then(Value::as_str) != Some("code") {
        return;
    }
    let Some(Value::Array(outputs)) = raw.get_mut("outputs") else {
        return;
    };
    for output in outputs {
        let Value::Object(output) = output else {
            continue;
        };
        let output_type = output
            .get("output_type")
            .and_then(Value::as_str)
            .unwrap_or("");
        if output_type == "execute_result" || output_type == "display_data" {
            if let Some(Value::Object(data)) = output.get_mut("data") {
                rejoin_mimebundle(data);
            }
        } else if !output_type.is_empty() {
            if let Some(text) = output.get_mut("text") {
                join_if_lines(text);
            }
        }
    }
}

pub(crate) fn is_json_mime(mime: &str) -> bool {
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn rejoin_mimebundle(data: &mut Map<String, Value>) {
    for (mime, value) in data.iter_mut() {
        if !is_json_mime(mime) {
            join_if_lines(value);
        }
    }
}

/// Joins an array of strings into one string; leaves anything else alone.
fn join_if_lines(value: &mut Value) {
    let Value::Array(items) = value else { return };
    if !items.iter().all(Value::is_string) {
        return;
    }
    let len = items.iter().map(|s| s.as_str().map_or(0, str::len)).sum();
    let mut joined = String::with_capacity(len);
    for item in items.iter() {
        if let Some(s) = item.as_str() {
            joined.push_str(s);
        }
    }
    *value = Value::String(joined);
}
