//! Turning IOPub messages into notebook outputs, as nbclient does, plus the terminal
//! handling of streams that Jupyter front-ends apply: consecutive stream outputs of
//! the same name are merged, `\r` rewrites the current line and backspace erases.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Where outputs with a `display_id` live, so `update_display_data` can find them.
#[derive(Default)]
pub(crate) struct DisplayIds {
    map: HashMap<String, Vec<(usize, usize)>>,
}

impl DisplayIds {
    pub(crate) fn record(&mut self, display_id: &str, cell: usize, output: usize) {
        self.map
            .entry(display_id.to_owned())
            .or_default()
            .push((cell, output));
    }

    /// Forgets a cell's outputs (after `clear_output`).
    pub(crate) fn clear_cell(&mut self, cell: usize) {
        for places in self.map.values_mut() {
            places.retain(|(c, _)| *c != cell);
        }
    }

    pub(crate) fn places(&self, display_id: &str) -> &[(usize, usize)] {
        self.map.get(display_id).map_or(&[], Vec::as_slice)
    }
}

/// The display id in a message's `transient`, if any.
pub(crate) fn display_id(content: &Value) -> Option<&str> {
    content.get("transient")?.get("display_id")?.as_str()
}

fn field(content: &Value, key: &str, default: Value) -> Value {
    content.get(key).cloned().unwrap_or(default)
}

/// nbformat's `output_from_msg`: the output a message becomes, if it is one.
pub(crate) fn output_from_msg(msg_type: &str, content: &Value) -> Option<Value> {
    let mut out = Map::new();
    let obj = Value::Object(Map::new());
    match msg_type {
        "execute_result" => {
            out.insert("output_type".into(), Value::from("execute_result"));
            out.insert("data".into(), field(content, "data", obj.clone()));
            out.insert("metadata".into(), field(content, "metadata", obj));
            out.insert(
                "execution_count".into(),
                field(content, "execution_count", Value::Null),
            );
        }
        "display_data" | "update_display_data" => {
            out.insert("output_type".into(), Value::from("display_data"));
            out.insert("data".into(), field(content, "data", obj.clone()));
            out.insert("metadata".into(), field(content, "metadata", obj));
        }
        "stream" => {
            out.insert("output_type".into(), Value::from("stream"));
            out.insert("name".into(), field(content, "name", Value::from("stdout")));
            let text = content.get("text").and_then(Value::as_str).unwrap_or("");
            out.insert("text".into(), Value::from(terminal_text(text)));
        }
        "error" => {
            out.insert("output_type".into(), Value::from("error"));
            out.insert("ename".into(), field(content, "ename", Value::from("")));
            out.insert("evalue".into(), field(content, "evalue", Value::from("")));
            out.insert(
                "traceback".into(),
                field(content, "traceback", Value::Array(Vec::new())),
            );
        }
        _ => return None,
    }
    Some(Value::Object(out))
}

/// Appends stream text to the last output if it is a stream of the same name;
/// returns false when a new output is needed.
pub(crate) fn merge_stream(outputs: &mut [Value], name: &str, text: &str) -> bool {
    let Some(Value::Object(last)) = outputs.last_mut() else {
        return false;
    };
    if last.get("output_type").and_then(Value::as_str) != Some("stream")
        || last.get("name").and_then(Value::as_str) != Some(name)
    {
        return false;
    }
    let Some(Value::String(existing)) = last.get_mut("text") else {
        return false;
    };
    append_terminal_text(existing, text);
    true
}

/// Applies `\r` and backspace to a whole text.
pub(crate) fn terminal_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    append_terminal_text(&mut out, text);
    out
}

/// Appends `chunk` to `text` and applies terminal semantics to what changed, in time
/// proportional to the chunk plus the last line (a million short prints stay linear).
///
/// The rules are nbclient's: a backspace erases the character before it on the same
/// line; a `\r` not followed by `\n` erases the line up to it. A `\r` at the very end
/// is kept until the next chunk shows what follows it.
pub(crate) fn append_terminal_text(text: &mut String, chunk: &str) {
    if !chunk.contains(['\r', '\x08']) && !text.ends_with('\r') {
        text.push_str(chunk);
        return;
    }
    // Only the last line of `text` can be affected.
    let line_start = text.rfind('\n').map_or(0, |i| i + 1);
    let mut tail: String = text[line_start..].to_owned();
    tail.push_str(chunk);
    text.truncate(line_start);
    let mut line = String::new();
    let mut chars = tail.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => match chars.peek() {
                Some('\n') => line.push('\r'),
                Some(_) => line.clear(),
                None => line.push('\r'),
            },
            '\x08' => {
                if line.pop().is_none() {
                    // Nothing to erase on this line: the backspace stays, as in nbclient.
                    line.push('\x08');
                }
            }
            '\n' => {
                line.push('\n');
                text.push_str(&line);
                line.clear();
            }
            c => line.push(c),
        }
    }
    text.push_str(&line);
}

/// The front end's part of Jupyter widgets, as nbclient plays it: the state of every
/// widget model the kernel opened (`comm_open`, then `comm_msg` updates), saved as
/// `metadata.widgets`, and the Output widget, which captures the output its
/// `with` block produces instead of the cell.
#[derive(Default)]
pub(crate) struct Widgets {
    /// Model state by comm id.
    state: Map<String, Value>,
    /// Output widgets by comm id: whether a `clear_output(wait=True)` is pending.
    output_widgets: HashMap<String, OutputWidget>,
    /// For each request msg_id, the Output widgets capturing its output, innermost last.
    hooks: HashMap<String, Vec<String>>,
}

#[derive(Default)]
struct OutputWidget {
    msg_id: Option<String>,
    clear_pending: bool,
}

const OUTPUT_MODULE: &str = "@jupyter-widgets/output";
const OUTPUT_MODEL: &str = "OutputModel";

impl Widgets {
    /// Takes in a `comm_open` or `comm_msg`.
    pub(crate) fn handle_comm(&mut self, msg_type: &str, content: &Value) {
        let Some(comm_id) = content.get("comm_id").and_then(Value::as_str) else {
            return;
        };
        let Some(Value::Object(update)) = content.get("data").and_then(|d| d.get("state")) else {
            // Custom messages (`widget.send(...)`) carry no state.
            return;
        };
        let slot = self
            .state
            .entry(comm_id.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(state) = slot {
            for (k, v) in update {
                state.insert(k.clone(), v.clone());
            }
        }
        match msg_type {
            "comm_open" => {
                let is_output = content.get("target_name").and_then(Value::as_str)
                    == Some("jupyter.widget")
                    && update.get("_model_module").and_then(Value::as_str) == Some(OUTPUT_MODULE)
                    && update.get("_model_name").and_then(Value::as_str) == Some(OUTPUT_MODEL);
                if is_output {
                    self.output_widgets
                        .insert(comm_id.to_owned(), OutputWidget::default());
                }
            }
            "comm_msg" => {
                let Some(widget) = self.output_widgets.get_mut(comm_id) else {
                    return;
                };
                // The kernel sets `msg_id` when a `with` block starts capturing and
                // clears it when the block ends.
                match update.get("msg_id") {
                    Some(Value::String(id)) if !id.is_empty() => {
                        self.hooks
                            .entry(id.clone())
                            .or_default()
                            .push(comm_id.to_owned());
                        widget.msg_id = Some(id.clone());
                    }
                    Some(_) => {
                        if let Some(previous) = widget.msg_id.take()
                            && let Some(stack) = self.hooks.get_mut(&previous)
                        {
                            stack.pop();
                        }
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }

    /// The Output widget capturing the output of request `parent`, if any.
    pub(crate) fn capturing(&self, parent: &str) -> Option<String> {
        self.hooks.get(parent)?.last().cloned()
    }

    fn outputs_mut(&mut self, comm_id: &str) -> Option<&mut Vec<Value>> {
        let Some(Value::Object(state)) = self.state.get_mut(comm_id) else {
            return None;
        };
        let outputs = state
            .entry("outputs")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !outputs.is_array() {
            *outputs = Value::Array(Vec::new());
        }
        outputs.as_array_mut()
    }

    /// An output message the Output widget `comm_id` captures.
    pub(crate) fn output(&mut self, comm_id: &str, msg_type: &str, content: &Value) {
        let Some(out) = output_from_msg(msg_type, content) else {
            return;
        };
        let clear = self
            .output_widgets
            .get_mut(comm_id)
            .is_some_and(|w| std::mem::take(&mut w.clear_pending));
        let Some(outputs) = self.outputs_mut(comm_id) else {
            return;
        };
        if clear {
            outputs.clear();
        }
        if msg_type == "stream" {
            let name = content
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("stdout");
            let text = content.get("text").and_then(Value::as_str).unwrap_or("");
            if merge_stream(outputs, name, text) {
                return;
            }
        }
        outputs.push(out);
    }

    /// A `clear_output` the Output widget `comm_id` captures.
    pub(crate) fn clear_output(&mut self, comm_id: &str, wait: bool) {
        if wait {
            if let Some(w) = self.output_widgets.get_mut(comm_id) {
                w.clear_pending = true;
            }
        } else if let Some(outputs) = self.outputs_mut(comm_id) {
            outputs.clear();
        }
    }

    /// `metadata.widgets` as nbclient writes it: the run's widget models replace
    /// whatever the notebook had saved. A run that made no widgets changes nothing.
    pub(crate) fn save(&self, metadata: &mut Map<String, Value>) {
        if self.state.is_empty() {
            return;
        }
        let mut models = Map::new();
        for (comm_id, state) in &self.state {
            let Value::Object(fields) = state else {
                continue;
            };
            if !fields.contains_key("_model_name") {
                continue;
            }
            let get = |k: &str| fields.get(k).cloned().unwrap_or(Value::Null);
            models.insert(
                comm_id.clone(),
                serde_json::json!({
                    "model_name": get("_model_name"),
                    "model_module": get("_model_module"),
                    "model_module_version": get("_model_module_version"),
                    "state": state,
                }),
            );
        }
        metadata.insert(
            "widgets".into(),
            serde_json::json!({
                "application/vnd.jupyter.widget-state+json": {
                    "state": models,
                    "version_major": 2,
                    "version_minor": 0,
                }
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carriage_return_rewrites_the_line_as_a_terminal_does() {
        assert_eq!(terminal_text("10%\r50%\r100%\ndone\n"), "100%\ndone\n");
        assert_eq!(terminal_text("a\r\nb"), "a\r\nb");
        let mut s = String::from("progress 1\r");
        append_terminal_text(&mut s, "progress 2\r");
        append_terminal_text(&mut s, "progress 3\n");
        assert_eq!(s, "progress 3\n");
        let mut s = String::from("keep\nab");
        append_terminal_text(&mut s, "\x08c");
        assert_eq!(s, "keep\nac");
    }

    #[test]
    fn streams_merge_only_with_the_same_name() {
        let mut outs = vec![
            output_from_msg("stream", &serde_json::json!({"name":"stdout","text":"a\n"})).unwrap(),
        ];
        assert!(merge_stream(&mut outs, "stdout", "b\n"));
        assert!(!merge_stream(&mut outs, "stderr", "c\n"));
        assert_eq!(outs[0]["text"], "a\nb\n");
    }
}
