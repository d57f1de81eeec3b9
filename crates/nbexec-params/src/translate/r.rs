//! R, as papermill 2.7's `RTranslator`, with two fixes (see [`RTranslator`]).

use super::{Translator, hash_comment};
use crate::error::ParamError;
use crate::pyrepr::float_repr;
use crate::value::Value;

/// R literals: `NULL`, `TRUE`/`FALSE`, `list(a, b)`, `list("k" = v)`; names lose
/// their leading `_` (not legal in R).
///
/// Differences from papermill, whose output for these is wrong R: non-finite floats
/// are `NaN`, `Inf`, `-Inf` (papermill writes `nan`, `inf`, which are undefined
/// names), and characters U+0080–U+00FF are written `\u00NN` (papermill's `\xNN` is
/// a raw byte in R, not the character). A date is its ISO-8601 string.
#[derive(Debug, Clone, Copy, Default)]
pub struct RTranslator;

/// How R spells each kind of value.
const R: Syntax = Syntax {
    language: "R",
    null: "NULL",
    true_: "TRUE",
    false_: "FALSE",
    list: ("list(", ")"),
    dict: ("list(", " = ", ")"),
    escape_dollar: false,
};

impl RTranslator {
    fn write(&self, name: &str, value: &Value, out: &mut String) -> Result<(), ParamError> {
        write_literal(&R, name, value, out)
    }
}

/// The tokens of a language whose literals are built the same way (R, Julia).
pub(crate) struct Syntax {
    pub language: &'static str,
    pub null: &'static str,
    pub true_: &'static str,
    pub false_: &'static str,
    /// Opening and closing of a list.
    pub list: (&'static str, &'static str),
    /// Opening, key-value separator and closing of a dict.
    pub dict: (&'static str, &'static str, &'static str),
    /// Escape `$` in strings (Julia interpolates it).
    pub escape_dollar: bool,
}

/// Writes `value` as a literal of `syntax`'s language: non-finite floats as `NaN`,
/// `Inf`, `-Inf`, dates as ISO-8601 strings, an arcgis FeatureSet refused.
pub(crate) fn write_literal(
    syntax: &Syntax,
    name: &str,
    value: &Value,
    out: &mut String,
) -> Result<(), ParamError> {
    let dollar = syntax.escape_dollar;
    match value {
        Value::None => out.push_str(syntax.null),
        Value::Bool(true) => out.push_str(syntax.true_),
        Value::Bool(false) => out.push_str(syntax.false_),
        Value::Int(i) => out.push_str(i.as_str()),
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { "Inf" } else { "-Inf" }),
        Value::Float(f) => out.push_str(&float_repr(*f)),
        Value::Str(s) => out.push_str(&escape(s, dollar)),
        Value::List(items) => {
            out.push_str(syntax.list.0);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_literal(syntax, name, item, out)?;
            }
            out.push_str(syntax.list.1);
        }
        Value::Dict(entries) => {
            out.push_str(syntax.dict.0);
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&escape(k, dollar));
                out.push_str(syntax.dict.1);
                write_literal(syntax, name, v, out)?;
            }
            out.push_str(syntax.dict.2);
        }
        Value::DateTime(dt) => out.push_str(&escape(&dt.to_iso8601(), dollar)),
        Value::FeatureSet(_) => {
            return Err(ParamError::Unsupported {
                name: name.to_owned(),
                language: syntax.language,
                what: "an arcgis FeatureSet (use the esri or geojson rendering)".to_owned(),
            });
        }
    }
    Ok(())
}

/// papermill's escaped string (`unicode_escape`, `"` → `\"`), except U+0080–U+00FF
/// as `\u00NN` and, when `dollar`, `$` as `\$` (Julia interpolation).
pub(crate) fn escape(s: &str, dollar: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '$' if dollar => out.push_str("\\$"),
            '\u{80}'..='\u{ff}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            _ => crate::pyrepr::unicode_escape(c.encode_utf8(&mut [0; 4]), &mut out),
        }
    }
    out.push('"');
    out
}

impl Translator for RTranslator {
    fn language(&self) -> &'static str {
        "R"
    }

    fn literal(&self, name: &str, value: &Value) -> Result<String, ParamError> {
        let mut out = String::new();
        self.write(name, value, &mut out)?;
        Ok(out)
    }

    fn comment(&self, text: &str) -> String {
        hash_comment(text)
    }

    fn assign(&self, name: &str, literal: &str) -> Result<String, ParamError> {
        let stripped = name.trim_start_matches('_');
        if stripped.is_empty() {
            return Err(ParamError::Unsupported {
                name: name.to_owned(),
                language: "R",
                what: "a name made only of underscores".to_owned(),
            });
        }
        Ok(format!("{stripped} = {literal}"))
    }
}
