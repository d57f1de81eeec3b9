//! Reading nbformat 3 notebooks by upgrading them to 4.5, as Python
//! `nbformat.read(…, as_version=4)` does (and so papermill): the v3 reader joins
//! multi-line strings by its own rules, then the upgrade flattens the worksheets and
//! rewrites each cell and output in the v4 shape. Nothing else changes; keys the
//! upgrade does not know are kept where they were.

use serde_json::{Map, Value};

use crate::error::FormatError;
use crate::pyjson::splitlines_keepends;
use crate::read::kind;

/// v3 output keys that may hold text split into lines.
const MULTILINE_OUTPUT_KEYS: [&str; 6] = ["text", "html", "svg", "latex", "javascript", "json"];

/// The v3 short names of MIME types, in the order Python's upgrade applies them.
const MIME_ALIASES: [(&str, &str); 8] = [
    ("text", "text/plain"),
    ("html", "text/html"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpeg", "image/jpeg"),
    ("latex", "text/latex"),
    ("json", "application/json"),
    ("javascript", "application/javascript"),
];

/// The deepest heading level read (Markdown has 6; old tools wrote a few more).
const MAX_HEADING_LEVEL: i64 = 100;

/// A JSON object.
type Object = Map<String, Value>;

/// Turns the top level of a v3 notebook (everything but a `cells` key, which v3 does
/// not have) into the top level and the cells of a v4.5 one. Cells get no ids here:
/// the caller gives every cell a fresh one.
pub(crate) fn from_v3(mut top: Object) -> Result<(Object, Vec<Object>), FormatError> {
    let worksheets = match top.shift_remove("worksheets") {
        Some(Value::Array(worksheets)) => worksheets,
        Some(other) => {
            return Err(FormatError::structure(
                "worksheets",
                format!("expected an array, found {}", kind(&other)),
            ));
        }
        None => {
            return Err(FormatError::structure(
                "top level",
                "no 'worksheets' key: not a valid nbformat 3 notebook",
            ));
        }
    };
    let mut cells = Vec::new();
    for (w, worksheet) in worksheets.into_iter().enumerate() {
        let Value::Object(mut worksheet) = worksheet else {
            return Err(FormatError::structure(
                format!("worksheets[{w}]"),
                format!("expected an object, found {}", kind(&worksheet)),
            ));
        };
        let list = match worksheet.shift_remove("cells") {
            Some(Value::Array(list)) => list,
            Some(other) => {
                return Err(FormatError::structure(
                    format!("worksheets[{w}].cells"),
                    format!("expected an array, found {}", kind(&other)),
                ));
            }
            None => {
                return Err(FormatError::structure(
                    format!("worksheets[{w}]"),
                    "no 'cells' key",
                ));
            }
        };
        for (c, cell) in list.into_iter().enumerate() {
            let place = format!("worksheets[{w}].cells[{c}]");
            let Value::Object(cell) = cell else {
                return Err(FormatError::structure(
                    place,
                    format!("expected an object, found {}", kind(&cell)),
                ));
            };
            cells.push(upgrade_cell(cell, &place)?);
        }
    }
    // Python stores where the notebook came from in `metadata.orig_nbformat*`, then
    // drops those keys again when it writes; they never reach a file.
    top.shift_remove("orig_nbformat");
    top.shift_remove("orig_nbformat_minor");
    let metadata = match top.get_mut("metadata") {
        Some(Value::Object(metadata)) => metadata,
        Some(other) => {
            return Err(FormatError::structure(
                "metadata",
                format!("expected an object, found {}", kind(other)),
            ));
        }
        None => {
            return Err(FormatError::structure(
                "top level",
                "no 'metadata' key: not a valid nbformat 3 notebook",
            ));
        }
    };
    metadata.shift_remove("name");
    metadata.shift_remove("signature");
    top.insert("nbformat".into(), Value::from(4));
    top.insert("nbformat_minor".into(), Value::from(crate::NEWEST_MINOR));
    Ok((top, cells))
}

fn upgrade_cell(
    mut cell: Map<String, Value>,
    place: &str,
) -> Result<Map<String, Value>, FormatError> {
    if !cell.contains_key("metadata") {
        cell.insert("metadata".into(), Value::Object(Map::new()));
    }
    let cell_type = cell
        .get("cell_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    match cell_type.as_str() {
        "code" => {
            if let Some(input) = cell.get_mut("input") {
                join_v3_lines(input);
            }
            cell.shift_remove("language");
            if let Some(collapsed) = cell.shift_remove("collapsed") {
                let Some(Value::Object(metadata)) = cell.get_mut("metadata") else {
                    return Err(FormatError::structure(
                        format!("{place}.metadata"),
                        "expected an object",
                    ));
                };
                metadata.insert("collapsed".into(), collapsed);
            }
            let source = cell
                .shift_remove("input")
                .unwrap_or_else(|| Value::from(""));
            cell.insert("source".into(), source);
            let count = cell.shift_remove("prompt_number").unwrap_or(Value::Null);
            cell.insert("execution_count".into(), count);
            let outputs = match cell.shift_remove("outputs") {
                Some(Value::Array(outputs)) => outputs,
                Some(other) => {
                    return Err(FormatError::structure(
                        format!("{place}.outputs"),
                        format!("expected an array, found {}", kind(&other)),
                    ));
                }
                None => {
                    return Err(FormatError::structure(
                        place,
                        "code cell has no 'outputs' key",
                    ));
                }
            };
            let outputs = outputs
                .into_iter()
                .enumerate()
                .map(|(i, output)| upgrade_output(output, &format!("{place}.outputs[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            cell.insert("outputs".into(), Value::Array(outputs));
        }
        _ => {
            for key in ["source", "rendered"] {
                if let Some(value) = cell.get_mut(key) {
                    join_v3_lines(value);
                }
            }
            if cell_type == "heading" {
                let level = match cell.shift_remove("level") {
                    None => 1,
                    Some(level) => level.as_i64().ok_or_else(|| {
                        FormatError::structure(
                            format!("{place}.level"),
                            format!("expected an integer, found {}", kind(&level)),
                        )
                    })?,
                };
                let text = match cell.get("source") {
                    None => String::new(),
                    Some(Value::String(s)) => splitlines_keepends(s)
                        .into_iter()
                        .map(strip_line_end)
                        .collect::<Vec<_>>()
                        .join(" "),
                    Some(other) => {
                        return Err(FormatError::structure(
                            format!("{place}.source"),
                            format!("expected a string, found {}", kind(other)),
                        ));
                    }
                };
                // Python repeats `#` `level` times, however many; past any real
                // heading that is only a way to exhaust memory.
                if level > MAX_HEADING_LEVEL {
                    return Err(FormatError::structure(
                        format!("{place}.level"),
                        format!(
                            "heading level {level} is out of range (at most {MAX_HEADING_LEVEL})"
                        ),
                    ));
                }
                let hashes = "#".repeat(usize::try_from(level).unwrap_or(0));
                cell.insert("source".into(), Value::from(format!("{hashes} {text}")));
                cell.insert("cell_type".into(), Value::from("markdown"));
            } else if cell_type == "html" {
                cell.insert("cell_type".into(), Value::from("markdown"));
            }
        }
    }
    Ok(cell)
}

fn upgrade_output(output: Value, place: &str) -> Result<Value, FormatError> {
    let Value::Object(mut output) = output else {
        return Err(FormatError::structure(
            place,
            format!("expected an object, found {}", kind(&output)),
        ));
    };
    for key in MULTILINE_OUTPUT_KEYS {
        if let Some(value) = output.get_mut(key) {
            join_v3_lines(value);
        }
    }
    let output_type = output
        .get("output_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    match output_type.as_str() {
        "pyout" | "display_data" => {
            let metadata = match output.shift_remove("metadata") {
                None => Map::new(),
                Some(Value::Object(metadata)) => metadata,
                Some(other) => {
                    return Err(FormatError::structure(
                        format!("{place}.metadata"),
                        format!("expected an object, found {}", kind(&other)),
                    ));
                }
            };
            if output_type == "pyout" {
                output.insert("output_type".into(), Value::from("execute_result"));
                let count = output.shift_remove("prompt_number").unwrap_or(Value::Null);
                output.insert("execution_count".into(), count);
            }
            let mut data = Map::new();
            let keys: Vec<String> = output
                .keys()
                .filter(|k| !matches!(k.as_str(), "output_type" | "execution_count"))
                .cloned()
                .collect();
            for key in keys {
                if let Some(value) = output.shift_remove(&key) {
                    data.insert(key, value);
                }
            }
            to_mime_keys(&mut data);
            let mut metadata = metadata;
            to_mime_keys(&mut metadata);
            if let Some(json) = data.get_mut("application/json") {
                let Value::String(text) = json else {
                    return Err(FormatError::structure(
                        format!("{place}.json"),
                        format!("expected a string of JSON, found {}", kind(json)),
                    ));
                };
                *json = serde_json::from_str(text).map_err(|e| {
                    FormatError::structure(format!("{place}.json"), format!("not valid JSON: {e}"))
                })?;
            }
            output.insert("data".into(), Value::Object(data));
            output.insert("metadata".into(), Value::Object(metadata));
        }
        "pyerr" => {
            output.insert("output_type".into(), Value::from("error"));
        }
        "stream" => {
            let name = output
                .shift_remove("stream")
                .unwrap_or_else(|| Value::from("stdout"));
            output.insert("name".into(), name);
        }
        _ => {}
    }
    Ok(Value::Object(output))
}

/// Renames v3 short MIME names (`png`) to MIME types (`image/png`).
fn to_mime_keys(map: &mut Map<String, Value>) {
    for (alias, mime) in MIME_ALIASES {
        if let Some(value) = map.shift_remove(alias) {
            map.insert(mime.into(), value);
        }
    }
}

/// The v3 reader's join: lines that end in a line break are concatenated, lines
/// that do not (written by an old `splitlines()`) are joined with `\n`.
fn join_v3_lines(value: &mut Value) {
    let Value::Array(items) = value else { return };
    let Some(strings) = items
        .iter()
        .map(Value::as_str)
        .collect::<Option<Vec<&str>>>()
    else {
        return;
    };
    let kept_ends = strings
        .first()
        .is_some_and(|first| first.ends_with('\n') || first.ends_with('\r'));
    let joined = strings.join(if kept_ends { "" } else { "\n" });
    *value = Value::String(joined);
}

/// A line from `splitlines_keepends` without its line boundary.
fn strip_line_end(line: &str) -> &str {
    if let Some(rest) = line.strip_suffix("\r\n") {
        return rest;
    }
    match line.chars().last() {
        Some(
            '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}'
            | '\u{2028}' | '\u{2029}',
        ) => {
            let end = line.len() - line.chars().last().map_or(0, char::len_utf8);
            &line[..end]
        }
        _ => line,
    }
}
