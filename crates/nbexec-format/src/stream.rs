//! The reader's fast path: parses notebook JSON straight into the model's pieces,
//! joining multi-line strings while they are parsed.
//!
//! A notebook holds most of its text as lists of lines (sources, stream text, `text/*`
//! data). Parsed as `serde_json::Value`, each line would be a 72-byte `Value` and a
//! heap string, only to be joined and freed again: about 3× the file in memory and
//! most of the reading time. Here each line is appended to the joined string as it
//! is parsed. Where joining depends on something later in the object (an output's
//! data is joined only in a code cell, and only for some output types), the lines are
//! joined with their boundaries kept, and split back if it turns out they must stay
//! a list. Everything else is parsed as `Value`, as [`crate::from_value`] sees it; the
//! two paths build the same notebook (a property test checks).

use std::fmt;

use serde::Deserialize;
use serde::de::value::SeqAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::read::is_json_mime;

/// A parsed JSON document, as far as the reader needs to know it.
pub(crate) enum Document {
    /// An object: every top-level key but `cells`, and `cells` if present.
    Notebook {
        top: Map<String, Value>,
        cells: Option<Cells>,
    },
    /// Anything but an object.
    Other,
}

/// The value of `cells`.
pub(crate) enum Cells {
    /// An array: each cell's map with its lines joined, or the value that is no object.
    List(Vec<Result<Map<String, Value>, Value>>),
    /// Not an array.
    Other(Value),
}

/// Parses a whole document; trailing characters are an error, as in `from_slice`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Document, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let doc = Shaped(DocumentShape).deserialize(&mut de)?;
    de.end()?;
    Ok(doc)
}

/// serde_json hands a number over (with `arbitrary_precision`) as a map with this one
/// key, whose value is the number's text.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// What to make of a JSON value whose objects, arrays or strings need special
/// handling; anything not handled becomes a plain [`Value`] through [`Shape::other`].
trait Shape<'de>: Sized {
    type Out;

    fn other(self, value: Value) -> Self::Out;

    /// An object, whose first key (if any) has been read and is not serde_json's
    /// number token.
    fn object<A: MapAccess<'de>>(
        self,
        first: Option<String>,
        map: A,
    ) -> Result<Self::Out, A::Error> {
        let mut object = Map::new();
        entries(first, map, |key, map| {
            object.insert(key, map.next_value::<Value>()?);
            Ok(())
        })?;
        Ok(self.other(Value::Object(object)))
    }

    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Out, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(|v| self.other(v))
    }

    fn string(self, s: &str) -> Self::Out {
        self.other(Value::String(s.to_owned()))
    }
}

/// Deserializes any JSON value, letting `S` handle the parts it cares about.
struct Shaped<S>(S);

impl<'de, S: Shape<'de>> DeserializeSeed<'de> for Shaped<S> {
    type Value = S::Out;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Out, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de, S: Shape<'de>> Visitor<'de> for Shaped<S> {
    type Value = S::Out;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<S::Out, E> {
        Ok(self.0.other(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<S::Out, E> {
        Ok(self.0.other(Value::Number(v.into())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<S::Out, E> {
        Ok(self.0.other(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<S::Out, E> {
        // As serde_json's own `Value` does.
        Ok(self
            .0
            .other(Number::from_f64(v).map_or(Value::Null, Value::Number)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<S::Out, E> {
        Ok(self.0.string(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<S::Out, E> {
        Ok(self.0.string(&v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<S::Out, E> {
        Ok(self.0.other(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<S::Out, E> {
        Ok(self.0.other(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<S::Out, A::Error> {
        self.0.seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<S::Out, A::Error> {
        let first = map.next_key::<String>()?;
        if first.as_deref() == Some(NUMBER_TOKEN) {
            let text = map.next_value::<String>()?;
            let number = text.parse::<Number>().map_err(de::Error::custom)?;
            return Ok(self.0.other(Value::Number(number)));
        }
        self.0.object(first, map)
    }
}

/// Reads an object's entries, the first already keyed, handing each to `each`.
fn entries<'de, A: MapAccess<'de>>(
    first: Option<String>,
    mut map: A,
    mut each: impl FnMut(String, &mut A) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    let Some(first) = first else {
        return Ok(());
    };
    each(first, &mut map)?;
    while let Some(key) = map.next_key::<String>()? {
        each(key, &mut map)?;
    }
    Ok(())
}

struct DocumentShape;

impl<'de> Shape<'de> for DocumentShape {
    type Out = Document;

    fn other(self, _: Value) -> Document {
        Document::Other
    }

    fn object<A: MapAccess<'de>>(
        self,
        first: Option<String>,
        map: A,
    ) -> Result<Document, A::Error> {
        let mut top = Map::new();
        let mut cells = None;
        entries(first, map, |key, map| {
            if key == "cells" {
                cells = Some(map.next_value_seed(Shaped(CellsShape))?);
            } else {
                top.insert(key, map.next_value::<Value>()?);
            }
            Ok(())
        })?;
        Ok(Document::Notebook { top, cells })
    }
}

struct CellsShape;

impl<'de> Shape<'de> for CellsShape {
    type Out = Cells;

    fn other(self, value: Value) -> Cells {
        Cells::Other(value)
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cells, A::Error> {
        let mut cells = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(cell) = seq.next_element_seed(Shaped(CellShape))? {
            cells.push(cell);
        }
        Ok(Cells::List(cells))
    }
}

struct CellShape;

impl<'de> Shape<'de> for CellShape {
    type Out = Result<Map<String, Value>, Value>;

    fn other(self, value: Value) -> Self::Out {
        Err(value)
    }

    fn object<A: MapAccess<'de>>(
        self,
        first: Option<String>,
        map: A,
    ) -> Result<Self::Out, A::Error> {
        let mut raw = Map::new();
        let mut outputs = None;
        entries(first, map, |key, map| {
            let value = match key.as_str() {
                "source" => map.next_value_seed(Shaped(TextShape))?.joined(),
                "attachments" => map.next_value_seed(Shaped(AttachmentsShape))?,
                "outputs" => {
                    outputs = Some(map.next_value_seed(Shaped(OutputsShape))?);
                    // Holds the key's place until the cell type is known.
                    Value::Null
                }
                _ => map.next_value::<Value>()?,
            };
            raw.insert(key, value);
            Ok(())
        })?;
        if let Some(outputs) = outputs {
            let is_code = raw.get("cell_type").and_then(Value::as_str) == Some("code");
            raw.insert("outputs".into(), outputs.finish(is_code));
        }
        Ok(Ok(raw))
    }
}

/// `attachments`: an object of MIME bundles, always joined.
struct AttachmentsShape;

impl<'de> Shape<'de> for AttachmentsShape {
    type Out = Value;

    fn other(self, value: Value) -> Value {
        value
    }

    fn object<A: MapAccess<'de>>(self, first: Option<String>, map: A) -> Result<Value, A::Error> {
        let mut attachments = Map::new();
        entries(first, map, |name, map| {
            let bundle = map.next_value_seed(Shaped(BundleShape))?.finish(true);
            attachments.insert(name, bundle);
            Ok(())
        })?;
        Ok(Value::Object(attachments))
    }
}

/// A MIME bundle, its text joined until it is known whether it should be.
enum Bundle {
    Entries(Vec<(String, Text)>),
    Other(Value),
}

impl Bundle {
    fn finish(self, join: bool) -> Value {
        match self {
            Bundle::Entries(entries) => {
                let mut map = Map::new();
                for (mime, text) in entries {
                    let value = if join { text.joined() } else { text.unjoined() };
                    map.insert(mime, value);
                }
                Value::Object(map)
            }
            Bundle::Other(value) => value,
        }
    }
}

struct BundleShape;

impl<'de> Shape<'de> for BundleShape {
    type Out = Bundle;

    fn other(self, value: Value) -> Bundle {
        Bundle::Other(value)
    }

    fn object<A: MapAccess<'de>>(self, first: Option<String>, map: A) -> Result<Bundle, A::Error> {
        let mut out: Vec<(String, Text)> = Vec::new();
        entries(first, map, |mime, map| {
            // JSON MIME types hold data, never lines.
            let text = if is_json_mime(&mime) {
                Text::Other(map.next_value::<Value>()?)
            } else {
                map.next_value_seed(Shaped(TextShape))?
            };
            // A repeated key keeps its first place and its last value, as in `Map`.
            match out.iter_mut().find(|(m, _)| *m == mime) {
                Some(slot) => slot.1 = text,
                None => out.push((mime, text)),
            }
            Ok(())
        })?;
        Ok(Bundle::Entries(out))
    }
}

/// A cell's `outputs`, each output's text held joined until the cell type is known.
enum Outputs {
    List(Vec<Result<Output, Value>>),
    Other(Value),
}

impl Outputs {
    fn finish(self, is_code: bool) -> Value {
        match self {
            Outputs::List(outputs) => Value::Array(
                outputs
                    .into_iter()
                    .map(|o| match o {
                        Ok(output) => output.finish(is_code),
                        Err(value) => value,
                    })
                    .collect(),
            ),
            Outputs::Other(value) => value,
        }
    }
}

struct OutputsShape;

impl<'de> Shape<'de> for OutputsShape {
    type Out = Outputs;

    fn other(self, value: Value) -> Outputs {
        Outputs::Other(value)
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Outputs, A::Error> {
        let mut outputs = Vec::new();
        while let Some(output) = seq.next_element_seed(Shaped(OutputShape))? {
            outputs.push(output);
        }
        Ok(Outputs::List(outputs))
    }
}

struct Output {
    /// Every key in its place; `data` and `text` hold `null` until finished.
    raw: Map<String, Value>,
    data: Option<Bundle>,
    text: Option<Text>,
}

impl Output {
    /// Python's `rejoin_lines`: in a code cell, `execute_result` and `display_data`
    /// data is joined; any other output type's `text` is.
    fn finish(mut self, is_code: bool) -> Value {
        let output_type = self
            .raw
            .get("output_type")
            .and_then(Value::as_str)
            .unwrap_or("");
        let bundle_output = matches!(output_type, "execute_result" | "display_data");
        let join_data = is_code && bundle_output;
        let join_text = is_code && !bundle_output && !output_type.is_empty();
        if let Some(data) = self.data {
            self.raw.insert("data".into(), data.finish(join_data));
        }
        if let Some(text) = self.text {
            let text = if join_text {
                text.joined()
            } else {
                text.unjoined()
            };
            self.raw.insert("text".into(), text);
        }
        Value::Object(self.raw)
    }
}

struct OutputShape;

impl<'de> Shape<'de> for OutputShape {
    type Out = Result<Output, Value>;

    fn other(self, value: Value) -> Self::Out {
        Err(value)
    }

    fn object<A: MapAccess<'de>>(
        self,
        first: Option<String>,
        map: A,
    ) -> Result<Self::Out, A::Error> {
        let mut output = Output {
            raw: Map::new(),
            data: None,
            text: None,
        };
        entries(first, map, |key, map| {
            let value = match key.as_str() {
                "data" => {
                    output.data = Some(map.next_value_seed(Shaped(BundleShape))?);
                    Value::Null
                }
                "text" => {
                    output.text = Some(map.next_value_seed(Shaped(TextShape))?);
                    Value::Null
                }
                _ => map.next_value::<Value>()?,
            };
            output.raw.insert(key, value);
            Ok(())
        })?;
        Ok(Ok(output))
    }
}

/// A value that may be a list of lines.
enum Text {
    /// A list of strings, joined, with where each line ended.
    Lines { joined: String, ends: Vec<usize> },
    /// Anything else, as it was.
    Other(Value),
}

impl Text {
    /// As the reader keeps it where lines are joined.
    fn joined(self) -> Value {
        match self {
            Text::Lines { joined, .. } => Value::String(joined),
            Text::Other(value) => value,
        }
    }

    /// As it was in the file.
    fn unjoined(self) -> Value {
        match self {
            Text::Lines { joined, ends } => Value::Array(split(&joined, &ends)),
            Text::Other(value) => value,
        }
    }
}

fn split(joined: &str, ends: &[usize]) -> Vec<Value> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let line = Value::String(joined[start..end].to_owned());
            start = end;
            line
        })
        .collect()
}

struct TextShape;

impl<'de> Shape<'de> for TextShape {
    type Out = Text;

    fn other(self, value: Value) -> Text {
        Text::Other(value)
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
        let mut joined = String::new();
        let mut ends = Vec::new();
        loop {
            match seq.next_element_seed(Shaped(LineShape(&mut joined)))? {
                None => return Ok(Text::Lines { joined, ends }),
                Some(None) => ends.push(joined.len()),
                // Not all strings: a plain array after all.
                Some(Some(value)) => {
                    let mut items = split(&joined, &ends);
                    items.push(value);
                    while let Some(item) = seq.next_element::<Value>()? {
                        items.push(item);
                    }
                    return Ok(Text::Other(Value::Array(items)));
                }
            }
        }
    }
}

/// One element of a list of lines: a string is appended (`None`), anything else is
/// handed back.
struct LineShape<'b>(&'b mut String);

impl<'de> Shape<'de> for LineShape<'_> {
    type Out = Option<Value>;

    fn other(self, value: Value) -> Option<Value> {
        Some(value)
    }

    fn string(self, s: &str) -> Option<Value> {
        self.0.push_str(s);
        None
    }
}
