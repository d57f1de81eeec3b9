use serde_json::{Map, Value};

use crate::model::Notebook;
use crate::pyjson::{push_json_line, push_json_string, push_python_float_repr};
use crate::read::is_json_mime;

/// Writes the notebook as Python `nbformat.write` does: `indent=1`, keys sorted at
/// every depth, raw UTF-8, multi-line strings split into lines, trailing newline.
pub fn write_string(nb: &Notebook) -> String {
    // The writer only ever appends whole UTF-8 strings and ASCII punctuation.
    String::from_utf8(write_to_vec(nb))
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// As [`write_string`], into bytes.
pub fn write_to_vec(nb: &Notebook) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::with_capacity(estimate(nb)),
        depth: 0,
    };
    w.notebook(nb);
    w.out.push(b'\n');
    w.out
}

/// About how many bytes the notebook takes written, erring high: a buffer that never
/// grows is never copied, and capacity that is never written costs no memory.
fn estimate(nb: &Notebook) -> usize {
    fn value(v: &Value) -> usize {
        match v {
            // Room for splitting into indented lines and a few escapes.
            Value::String(s) => s.len() + s.len() / 2 + 16,
            Value::Array(items) => items.iter().map(|v| value(v) + 16).sum::<usize>() + 8,
            Value::Object(map) => {
                map.iter()
                    .map(|(k, v)| k.len() + value(v) + 16)
                    .sum::<usize>()
                    + 8
            }
            _ => 32,
        }
    }
    let cells: usize = nb
        .cells
        .iter()
        .map(|c| {
            c.raw
                .iter()
                .map(|(k, v)| k.len() + value(v) + 16)
                .sum::<usize>()
                + 16
        })
        .sum();
    4096 + cells + nb.top.values().map(value).sum::<usize>()
}

/// How a string under a given key is written.
#[derive(Clone, Copy)]
enum Strings {
    /// As one JSON string.
    Whole,
    /// Split into a list of lines (`str.splitlines(keepends=True)`).
    Lines,
}

struct Writer {
    out: Vec<u8>,
    depth: usize,
}

impl Writer {
    fn newline(&mut self) {
        self.out.push(b'\n');
        self.out.resize(self.out.len() + self.depth, b' ');
    }

    /// Writes `{ sorted keys }`, letting `each` write every value.
    fn object<'a, I, F>(&mut self, keys: I, mut each: F)
    where
        I: IntoIterator<Item = &'a str>,
        F: FnMut(&mut Self, &str),
    {
        let mut keys: Vec<&str> = keys.into_iter().collect();
        if keys.is_empty() {
            self.out.extend_from_slice(b"{}");
            return;
        }
        keys.sort_unstable();
        self.out.push(b'{');
        self.depth += 1;
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.newline();
            push_json_string(&mut self.out, key);
            self.out.extend_from_slice(b": ");
            each(self, key);
        }
        self.depth -= 1;
        self.newline();
        self.out.push(b'}');
    }

    fn array<T, F>(&mut self, items: &[T], mut each: F)
    where
        F: FnMut(&mut Self, &T),
    {
        if items.is_empty() {
            self.out.extend_from_slice(b"[]");
            return;
        }
        self.out.push(b'[');
        self.depth += 1;
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.newline();
            each(self, item);
        }
        self.depth -= 1;
        self.newline();
        self.out.push(b']');
    }

    fn notebook(&mut self, nb: &Notebook) {
        let keys = nb
            .top
            .keys()
            .map(String::as_str)
            .chain(std::iter::once("cells"));
        self.object(keys, |w, key| {
            if key == "cells" {
                w.array(&nb.cells, |w, cell| w.cell(&cell.raw));
            } else {
                w.value(&nb.top[key]);
            }
        });
    }

    fn cell(&mut self, raw: &Map<String, Value>) {
        let is_code = raw.get("cell_type").and_then(Value::as_str) == Some("code");
        self.object(raw.keys().map(String::as_str), |w, key| {
            let value = &raw[key];
            match key {
                "source" => w.value_with(value, Strings::Lines),
                "attachments" => w.bundles(value),
                "outputs" if is_code => match value {
                    Value::Array(outputs) => w.array(outputs, |w, o| w.output(o)),
                    other => w.value(other),
                },
                _ => w.value(value),
            }
        });
    }

    /// `attachments`: an object of MIME bundles.
    fn bundles(&mut self, value: &Value) {
        match value {
            Value::Object(map) => self.object(map.keys().map(String::as_str), |w, key| {
                w.mimebundle(&map[key])
            }),
            other => self.value(other),
        }
    }

    fn mimebundle(&mut self, value: &Value) {
        match value {
            Value::Object(map) => self.object(map.keys().map(String::as_str), |w, mime| {
                let split = mime.starts_with("text/")
                    || mime == "application/javascript"
                    || mime == "image/svg+xml";
                // JSON MIME types are data, never text to split (Python checks the
                // same two conditions; `text/…+json` does not occur in practice).
                let how = if split && !is_json_mime(mime) {
                    Strings::Lines
                } else {
                    Strings::Whole
                };
                w.value_with(&map[mime], how)
            }),
            other => self.value(other),
        }
    }

    fn output(&mut self, output: &Value) {
        let Value::Object(map) = output else {
            self.value(output);
            return;
        };
        let output_type = map.get("output_type").and_then(Value::as_str).unwrap_or("");
        self.object(map.keys().map(String::as_str), |w, key| {
            let value = &map[key];
            match (output_type, key) {
                ("execute_result" | "display_data", "data") => w.mimebundle(value),
                ("stream", "text") => w.value_with(value, Strings::Lines),
                _ => w.value(value),
            }
        });
    }

    fn value(&mut self, value: &Value) {
        self.value_with(value, Strings::Whole)
    }

    fn value_with(&mut self, value: &Value, strings: Strings) {
        match value {
            Value::Null => self.out.extend_from_slice(b"null"),
            Value::Bool(true) => self.out.extend_from_slice(b"true"),
            Value::Bool(false) => self.out.extend_from_slice(b"false"),
            Value::Number(n) => self.number(n),
            Value::String(s) => match strings {
                Strings::Lines => self.lines(s),
                Strings::Whole => push_json_string(&mut self.out, s),
            },
            Value::Array(items) => self.array(items, |w, v| w.value(v)),
            Value::Object(map) => {
                self.object(map.keys().map(String::as_str), |w, k| w.value(&map[k]))
            }
        }
    }

    /// A string as the list of its lines (`str.splitlines(keepends=True)`); `""` is `[]`.
    fn lines(&mut self, s: &str) {
        if s.is_empty() {
            self.out.extend_from_slice(b"[]");
            return;
        }
        self.out.push(b'[');
        self.depth += 1;
        let mut from = 0;
        while from < s.len() {
            if from > 0 {
                self.out.push(b',');
            }
            self.newline();
            from = push_json_line(&mut self.out, s, from);
        }
        self.depth -= 1;
        self.newline();
        self.out.push(b']');
    }

    /// Numbers as Python's `json.dumps` writes what `json.loads` made of them:
    /// integers keep every digit, floats go through `float.__repr__`.
    fn number(&mut self, n: &serde_json::Number) {
        let text = n.as_str();
        if matches!(text, "NaN" | "Infinity" | "-Infinity") {
            // Read from Python's non-finite literals; written back as Python writes them.
            self.out.extend_from_slice(text.as_bytes());
            return;
        }
        if !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
            if text.bytes().skip(1).all(|b| b == b'0') && text.starts_with("-0") {
                self.out.push(b'0');
            } else {
                self.out.extend_from_slice(text.as_bytes());
            }
            return;
        }
        match text.parse::<f64>() {
            Ok(x) if x.is_infinite() => {
                self.out
                    .extend_from_slice(if x > 0.0 { b"Infinity" } else { b"-Infinity" })
            }
            Ok(x) => {
                let mut s = String::new();
                push_python_float_repr(&mut s, x);
                self.out.extend_from_slice(s.as_bytes());
            }
            Err(_) => self.out.extend_from_slice(text.as_bytes()),
        }
    }
}
