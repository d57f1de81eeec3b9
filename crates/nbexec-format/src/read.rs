use serde_json::{Map, Value};

use crate::error::{FormatError, Warning};
use crate::model::{Cell, Notebook};
use crate::stream::{self, Cells, Document};
use crate::upgrade;

/// The newest minor version of nbformat 4 this crate knows.
pub const NEWEST_MINOR: u64 = 5;

/// A notebook that was read, with what is worth telling the user about it.
#[derive(Debug)]
pub struct ReadOutcome {
    /// The notebook.
    pub notebook: Notebook,
    /// What the user should hear about it, in the order found.
    pub warnings: Vec<Warning>,
    /// `(major, minor)` of a notebook of an older major version that was upgraded to
    /// 4.5 while reading (nbformat 3), as Python `nbformat.read(…, as_version=4)` does.
    pub upgraded_from: Option<(u64, u64)>,
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
/// does: multi-line strings are joined, a 4.5+ notebook's cells get ids where they
/// lack them and fresh ids where an earlier cell has the same one, and an nbformat 3
/// notebook is upgraded to 4.5. Nothing else changes. Like Python's `json.loads`, it takes `NaN`,
/// `Infinity` and `-Infinity`, and keeps them as numbers whose text is the literal.
pub fn read_slice(bytes: &[u8]) -> Result<ReadOutcome, FormatError> {
    let error = match stream::parse(bytes) {
        Ok(Document::Notebook { top, cells }) => return build(top, cells),
        Ok(Document::Other) => return Err(not_an_object()),
        Err(error) => error,
    };
    // Python's `json.loads` also takes `NaN`, `Infinity` and `-Infinity` (and Python
    // nbformat writes them for such floats). The rare files that hold them cost a
    // second parse; valid JSON never gets here.
    if error.is_syntax()
        && let Some(result) = nonfinite::parse(bytes)
    {
        return from_value(result?);
    }
    Err(json_error(&error, None))
}

fn json_error(e: &serde_json::Error, position: Option<(usize, usize)>) -> FormatError {
    let (line, column) = position.unwrap_or((e.line(), e.column()));
    FormatError::Json {
        line,
        column,
        message: json_message(e),
    }
}

fn not_an_object() -> FormatError {
    FormatError::structure("top level", "expected a JSON object (a notebook)")
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
        return Err(not_an_object());
    };
    let cells = top.shift_remove("cells").map(|cells| match cells {
        Value::Array(cells) => Cells::List(
            cells
                .into_iter()
                .map(|cell| match cell {
                    Value::Object(mut raw) => {
                        rejoin_cell(&mut raw);
                        Ok(raw)
                    }
                    other => Err(other),
                })
                .collect(),
        ),
        other => Cells::Other(other),
    });
    build(top, cells)
}

/// Checks the version and the cells' shape, then does what Python's reader does.
fn build(mut top: Map<String, Value>, cells: Option<Cells>) -> Result<ReadOutcome, FormatError> {
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
    let mut warnings = Vec::new();
    let mut upgraded_from = None;
    let cells = match major {
        4 => cells,
        3 => {
            // A v3 notebook has worksheets, not cells; Python ignores a stray `cells`.
            let (new_top, new_cells) = upgrade::from_v3(top)?;
            top = new_top;
            upgraded_from = Some((major, minor));
            warnings.push(Warning::Upgraded { major, minor });
            Some(Cells::List(new_cells.into_iter().map(Ok).collect()))
        }
        1 | 2 => {
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
    };
    if upgraded_from.is_none() && minor > NEWEST_MINOR {
        warnings.push(Warning::NewerMinor { minor });
    }
    let cells = match cells {
        Some(Cells::List(cells)) => cells,
        Some(Cells::Other(other)) => {
            return Err(FormatError::structure(
                "cells",
                format!("expected an array, found {}", kind(&other)),
            ));
        }
        None => return Err(FormatError::structure("top level", "no 'cells' key")),
    };
    let mut out = Vec::with_capacity(cells.len());
    for (index, cell) in cells.into_iter().enumerate() {
        match cell {
            Ok(raw) => out.push(Cell { raw }),
            Err(other) => {
                return Err(FormatError::structure(
                    format!("cells[{index}]"),
                    format!("expected an object, found {}", kind(&other)),
                ));
            }
        }
    }
    let mut notebook = Notebook { top, cells: out };
    // Python nbformat drops these on every read; so do we, to write what it writes.
    notebook.strip_transient();
    if notebook.has_cell_ids() {
        // An upgraded notebook's cells all get fresh ids, as Python's upgrade gives them.
        let added = notebook.add_missing_ids();
        if added > 0 && upgraded_from.is_none() {
            warnings.push(Warning::MissingIdsAdded { count: added });
        }
        let replaced = notebook.replace_duplicate_ids();
        if !replaced.is_empty() {
            warnings.push(Warning::DuplicateIdsReplaced { ids: replaced });
        }
    }
    Ok(ReadOutcome {
        notebook,
        warnings,
        upgraded_from,
    })
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
        } else if !output_type.is_empty()
            && let Some(text) = output.get_mut("text")
        {
            join_if_lines(text);
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

/// Python's non-finite float literals, which serde_json does not take.
mod nonfinite {
    use serde_json::{Number, Value};

    use super::json_error;
    use crate::error::FormatError;

    const LITERALS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];

    /// One literal replaced: where it was in the original text, and what it was.
    struct Replacement {
        offset: usize,
        literal: &'static str,
    }

    /// Parses text that may hold `NaN`, `Infinity` or `-Infinity` outside strings, or
    /// `None` when it holds none (the original error stands).
    ///
    /// Each literal is replaced by a marked JSON string, then turned back into a number
    /// whose text is the literal (`Number::as_str` gives `NaN`; `as_f64` gives `None`,
    /// as for every non-finite number), so that the writer writes it as Python does.
    pub(super) fn parse(bytes: &[u8]) -> Option<Result<Value, FormatError>> {
        let found = scan(bytes);
        if found.is_empty() {
            return None;
        }
        let marker = format!("nbexec-nonfinite-{}-", uuid::Uuid::new_v4().simple());
        let (text, shifts) = substitute(bytes, &found, &marker);
        let mut value: Value = match serde_json::from_slice(&text) {
            Ok(value) => value,
            Err(e) => {
                let position = original_position(&text, &shifts, e.line(), e.column());
                return Some(Err(json_error(&e, Some(position))));
            }
        };
        // Fewer than were put in: a literal stood where a key goes (the original error
        // stands); more: the marker occurred in the text (it holds a fresh random id).
        (restore(&mut value, &marker) == found.len()).then_some(Ok(value))
    }

    /// Finds the literals outside strings.
    fn scan(bytes: &[u8]) -> Vec<Replacement> {
        let mut found = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
                b'-' | b'I' | b'N' => {
                    match LITERALS
                        .iter()
                        .find(|l| bytes[i..].starts_with(l.as_bytes()))
                    {
                        Some(literal) => {
                            found.push(Replacement { offset: i, literal });
                            i += literal.len();
                        }
                        None => i += 1,
                    }
                }
                _ => i += 1,
            }
        }
        found
    }

    /// The text with each literal replaced by `"MARKER<literal>"`, and for each
    /// replacement its offset in the new text and how many bytes longer it made it.
    fn substitute(
        bytes: &[u8],
        found: &[Replacement],
        marker: &str,
    ) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut text = Vec::with_capacity(bytes.len() + found.len() * (marker.len() + 4));
        let mut shifts = Vec::with_capacity(found.len());
        let mut start = 0;
        for r in found {
            text.extend_from_slice(&bytes[start..r.offset]);
            let at = text.len();
            text.push(b'"');
            text.extend_from_slice(marker.as_bytes());
            text.extend_from_slice(r.literal.as_bytes());
            text.push(b'"');
            shifts.push((at, text.len() - at - r.literal.len()));
            start = r.offset + r.literal.len();
        }
        text.extend_from_slice(&bytes[start..]);
        (text, shifts)
    }

    /// Maps serde_json's line and column in the substituted text back to the original
    /// (replacements hold no newline, so only the column moves).
    fn original_position(
        text: &[u8],
        shifts: &[(usize, usize)],
        line: usize,
        column: usize,
    ) -> (usize, usize) {
        let line_start = if line <= 1 {
            0
        } else {
            text.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(line - 2)
                .map_or(text.len(), |(i, _)| i + 1)
        };
        let at = line_start + column;
        let moved: usize = shifts
            .iter()
            .filter(|(offset, _)| *offset >= line_start && *offset < at)
            .map(|(_, extra)| *extra)
            .sum();
        (line, column.saturating_sub(moved).max(1))
    }

    /// Turns marked strings back into numbers; returns how many it turned.
    fn restore(value: &mut Value, marker: &str) -> usize {
        match value {
            Value::String(s) => match s.strip_prefix(marker) {
                Some(literal) if LITERALS.contains(&literal) => {
                    // `from_string_unchecked` is doc(hidden) in serde_json: the only way
                    // to hold a number it would not parse itself. If it ever goes, this
                    // fails to build; if it changes, the non-finite tests fail.
                    *value = Value::Number(Number::from_string_unchecked(literal.to_owned()));
                    1
                }
                _ => 0,
            },
            Value::Array(items) => items.iter_mut().map(|v| restore(v, marker)).sum(),
            Value::Object(map) => map.values_mut().map(|v| restore(v, marker)).sum(),
            _ => 0,
        }
    }
}
