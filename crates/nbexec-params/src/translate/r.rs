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

impl RTranslator {
    fn write(&self, name: &str, value: &Value, out: &mut String) -> Result<(), ParamError> {
        match value {
            Value::None => out.push_str("NULL"),
            Value::Bool(true) => out.push_str("TRUE"),
            Value::Bool(false) => out.push_str("FALSE"),
            Value::Int(i) => out.push_str(i.as_str()),
            Value::Float(f) if f.is_nan() => out.push_str("NaN"),
            Value::Float(f) if f.is_infinite() => {
                out.push_str(if *f > 0.0 { "Inf" } else { "-Inf" })
            }
            Value::Float(f) => out.push_str(&float_repr(*f)),
            Value::Str(s) => out.push_str(&escape(s, false)),
            Value::List(items) => {
                out.push_str("list(");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.write(name, item, out)?;
                }
                out.push(')');
            }
            Value::Dict(entries) => {
                out.push_str("list(");
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&escape(k, false));
                    out.push_str(" = ");
                    self.write(name, v, out)?;
                }
                out.push(')');
            }
            Value::DateTime(dt) => out.push_str(&escape(&dt.to_iso8601(), false)),
            Value::FeatureSet(_) => {
                return Err(ParamError::Unsupported {
                    name: name.to_owned(),
                    language: "R",
                    what: "an arcgis FeatureSet (use the esri or geojson rendering)".to_owned(),
                });
            }
        }
        Ok(())
    }
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
