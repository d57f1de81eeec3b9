//! YAML 1.2 parameters (core schema), parsed with `saphyr`; scalars are resolved
//! here so that integers keep every digit (saphyr's own resolver stops at `i64`).
//!
//! Differences from papermill, which reads YAML 1.1 with PyYAML's `SafeLoader`
//! (timestamps disabled):
//!
//! | text | papermill (YAML 1.1) | nbexec (YAML 1.2 core) |
//! |---|---|---|
//! | `yes`, `no`, `on`, `off`, `y`, `n` (any case) | `True`/`False` | strings |
//! | `010` | `8` (octal) | `10` |
//! | `0o10` | string | `8` |
//! | `0b101` | `5` | string |
//! | `1_000` | `1000` | string |
//! | `1:30` (sexagesimal) | `90` | string |
//! | `1e3`, `1.0e3` (no dot or no exponent sign) | strings | `1000.0` |
//! | `<<: *base` (merge key) | merged | a key named `<<` |
//! | a repeated key | last one wins | error |
//! | `!!binary`, `!!set`, `!!omap`, `!!timestamp`, custom tags | values | error |
//! | top level not a mapping (e.g. `5`) | error, or ignored when falsy (`0`, `""`) | error |
//!
//! Limits (PyYAML has none): nesting deeper than 128 levels, aliases included, and
//! aliases that expand a document beyond twice its text plus 16 MiB are errors.
//!
//! Same in both: `true`/`True`/`TRUE`, `null`/`~`/empty, `0x1F`, `.inf`, `.nan`,
//! `+12`, quoted scalars are strings, integers of any size keep their digits, and
//! non-string keys inside dicts become their Python `str()` (papermill writes any key
//! as a quoted string: `{1: x}` → `{"1": x}`).

use std::collections::HashMap;

use saphyr::{ScalarStyle, Tag, Yaml, YamlLoader};
use saphyr_parser::{Event, ScanError, Span, SpannedEventReceiver};

use crate::pyrepr::float_repr;
use crate::value::{Integer, Value};

/// The deepest nesting of sequences and mappings accepted, aliases included (the
/// limit serde_json sets for `-j`). Deeper documents are an error, not a stack overflow.
const MAX_DEPTH: usize = 128;

/// What aliases may add to a document: its expanded size (scalar bytes plus one per
/// node) may be at most twice its text plus this. A document without aliases never
/// comes near the limit; without one, a 120 KB `-y` that repeats an alias to a long
/// string expands to gigabytes.
const ALIAS_EXPANSION_ALLOWANCE: usize = 16 << 20;

/// Parses one YAML document. `Ok(None)` for an empty stream or an empty document.
pub fn parse(text: &str) -> Result<Option<Value>, String> {
    let mut loader: YamlLoader<Yaml> = YamlLoader::default();
    loader.early_parse(false);
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    // Events are pulled one at a time rather than with `Parser::load`, whose recursion
    // overflows the stack on deeply nested block collections (`- - - ... 1`), and are
    // checked for depth and alias expansion before the loader builds (and clones) them.
    let mut limits = Limits::new(text.len());
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| e.to_string())?;
        limits.check(&event, span).map_err(|e| e.to_string())?;
        loader.on_event(event, span);
        if let Some(e) = loader.error() {
            return Err(e.to_string());
        }
    }
    let mut docs = loader.into_documents();
    match docs.len() {
        0 => Ok(None),
        1 => {
            let doc = docs.remove(0);
            match convert(&doc)? {
                Value::None => Ok(None),
                v => Ok(Some(v)),
            }
        }
        n => Err(format!("expected one YAML document, found {n}")),
    }
}

/// The depth and expanded size of the document so far, event by event.
struct Limits {
    /// For each open collection: its anchor, the expanded size before it, and the
    /// height of its tallest child so far.
    open: Vec<(usize, usize, usize)>,
    /// Expanded size and height of each anchored node, by anchor id.
    anchored: HashMap<usize, (usize, usize)>,
    expanded: usize,
    max_expanded: usize,
}

impl Limits {
    fn new(text_len: usize) -> Limits {
        Limits {
            open: Vec::new(),
            anchored: HashMap::new(),
            expanded: 0,
            max_expanded: text_len
                .saturating_mul(2)
                .saturating_add(ALIAS_EXPANSION_ALLOWANCE),
        }
    }

    /// A node of `size` and `height` ended (or was referred to by an alias).
    fn node(&mut self, anchor: usize, size: usize, height: usize) {
        if anchor != 0 {
            self.anchored.insert(anchor, (size, height));
        }
        if let Some(parent) = self.open.last_mut() {
            parent.2 = parent.2.max(height);
        }
    }

    fn check(&mut self, event: &Event<'_>, span: Span) -> Result<(), ScanError> {
        let too_deep = || {
            ScanError::new(
                span.start,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            )
        };
        match event {
            Event::Scalar(text, _, anchor, _) => {
                self.expanded = self.expanded.saturating_add(text.len() + 1);
                self.node(*anchor, text.len() + 1, 0);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.open.push((*anchor, self.expanded, 0));
                self.expanded = self.expanded.saturating_add(1);
                if self.open.len() > MAX_DEPTH {
                    return Err(too_deep());
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, start, tallest)) = self.open.pop() {
                    self.node(anchor, self.expanded - start, tallest + 1);
                }
            }
            Event::Alias(id) => {
                // An unknown anchor is the loader's error.
                let (size, height) = self.anchored.get(id).copied().unwrap_or((1, 0));
                if self.open.len() + height > MAX_DEPTH {
                    return Err(too_deep());
                }
                self.expanded = self.expanded.saturating_add(size);
                self.node(0, size, height);
            }
            _ => {}
        }
        if self.expanded > self.max_expanded {
            return Err(ScanError::new(
                span.start,
                format!(
                    "aliases expand the document beyond {} bytes",
                    self.max_expanded
                ),
            ));
        }
        Ok(())
    }
}

fn convert(node: &Yaml<'_>) -> Result<Value, String> {
    match node {
        Yaml::Representation(text, style, tag) => scalar(text, *style, tag.as_deref()),
        Yaml::Value(_) => Err("internal: unexpected pre-resolved scalar".to_owned()),
        Yaml::Sequence(items) => items
            .iter()
            .map(convert)
            .collect::<Result<_, _>>()
            .map(Value::List),
        Yaml::Mapping(map) => {
            let mut entries: Vec<(String, Value)> = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key = key_text(k)?;
                if entries.iter().any(|(existing, _)| *existing == key) {
                    return Err(format!("duplicate key {key:?} in a mapping"));
                }
                entries.push((key, convert(v)?));
            }
            Ok(Value::Dict(entries))
        }
        Yaml::Tagged(tag, _) => Err(format!("unsupported YAML tag {}", tag_text(tag))),
        Yaml::Alias(_) | Yaml::BadValue => {
            Err("unresolvable YAML node (unknown alias?)".to_owned())
        }
    }
}

fn key_text(node: &Yaml<'_>) -> Result<String, String> {
    Ok(match convert(node)? {
        Value::Str(s) => s,
        Value::Int(i) => i.as_str().to_owned(),
        Value::Float(f) => float_repr(f),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::None => "None".to_owned(),
        _ => return Err("mapping keys must be scalars".to_owned()),
    })
}

fn tag_text(tag: &Tag) -> String {
    if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag {
        let bad = || format!("{text:?} is not a valid {}", tag_text(tag));
        if tag.is_yaml_core_schema() {
            return match tag.suffix.as_str() {
                "str" => Ok(Value::Str(text.to_owned())),
                "int" => int(text).ok_or_else(bad),
                "float" => float(text)
                    .or_else(|| int(text).and_then(|i| i.as_f64()).map(Value::Float))
                    .ok_or_else(bad),
                "bool" => boolean(text).ok_or_else(bad),
                "null" => null(text).then_some(Value::None).ok_or_else(bad),
                _ => Err(format!("unsupported YAML tag {}", tag_text(tag))),
            };
        }
        // The non-specific tag `!` forces a string.
        if tag.handle.is_empty() && tag.suffix == "!" {
            return Ok(Value::Str(text.to_owned()));
        }
        return Err(format!("unsupported YAML tag {}", tag_text(tag)));
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::Str(text.to_owned()));
    }
    if null(text) {
        return Ok(Value::None);
    }
    Ok(boolean(text)
        .or_else(|| int(text))
        .or_else(|| float(text))
        .unwrap_or_else(|| Value::Str(text.to_owned())))
}

fn null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn boolean(text: &str) -> Option<Value> {
    match text {
        "true" | "True" | "TRUE" => Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => Some(Value::Bool(false)),
        _ => None,
    }
}

/// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`.
fn int(text: &str) -> Option<Value> {
    if let Some(oct) = text.strip_prefix("0o") {
        return Integer::from_radix(false, oct, 8).map(Value::Int);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return Integer::from_radix(false, hex, 16).map(Value::Int);
    }
    Integer::parse(text).map(Value::Int)
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, `[-+]?\.(inf|Inf|INF)`,
/// `\.(nan|NaN|NAN)`.
fn float(text: &str) -> Option<Value> {
    match text {
        ".nan" | ".NaN" | ".NAN" => return Some(Value::Float(f64::NAN)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Value::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Value::Float(f64::NEG_INFINITY)),
        _ => {}
    }
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let int_digits = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_digits = digits(&mut i);
        if int_digits == 0 && frac_digits == 0 {
            return None;
        }
    } else if int_digits == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    text.parse::<f64>().ok().map(Value::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Value {
        match parse(&format!("v: {text}")) {
            Ok(Some(Value::Dict(mut e))) => e.remove(0).1,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn core_schema_scalars() {
        assert_eq!(one("yes"), Value::str("yes"));
        assert_eq!(one("010"), Value::int(10));
        assert_eq!(one("0o10"), Value::int(8));
        assert_eq!(one("0x1F"), Value::int(31));
        assert_eq!(one("1_000"), Value::str("1_000"));
        assert_eq!(one("1:30"), Value::str("1:30"));
        assert_eq!(one("1e3"), Value::Float(1000.0));
        assert_eq!(one("-.5"), Value::Float(-0.5));
        assert_eq!(one("5."), Value::Float(5.0));
        assert_eq!(one("."), Value::str("."));
        assert_eq!(one("~"), Value::None);
        assert_eq!(one(""), Value::None);
        assert_eq!(one("'1'"), Value::str("1"));
        assert_eq!(one("!!str 1"), Value::str("1"));
        assert_eq!(one("! 1"), Value::str("1"));
        assert_eq!(one("!!float 1"), Value::Float(1.0));
        assert_eq!(
            one("12345678901234567890123"),
            Value::Int(Integer::parse("12345678901234567890123").unwrap())
        );
        assert!(matches!(one(".nan"), Value::Float(f) if f.is_nan()));
        assert_eq!(one("-.inf"), Value::Float(f64::NEG_INFINITY));
    }

    #[test]
    fn errors() {
        assert!(parse("a: !foo 1").is_err());
        assert!(parse("a: !!binary aGk=").is_err());
        assert!(parse("a: 1\na: 2").is_err());
        assert!(parse("a: 1\n---\nb: 2").is_err());
        assert!(parse("{a: [").is_err());
        assert!(parse("!!int x").is_err());
    }

    #[test]
    fn keys_become_python_str() {
        assert_eq!(
            parse("{1: a, true: b, ~: c, 1.5: d}"),
            Ok(Some(Value::Dict(vec![
                ("1".into(), Value::str("a")),
                ("True".into(), Value::str("b")),
                ("None".into(), Value::str("c")),
                ("1.5".into(), Value::str("d")),
            ])))
        );
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("~"), Ok(None));
    }
}
