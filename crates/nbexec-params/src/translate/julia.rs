//! Julia, as papermill 2.7's `JuliaTranslator`, with three fixes (see
//! [`JuliaTranslator`]).

use super::r::escape;
use super::{Translator, hash_comment};
use crate::error::ParamError;
use crate::pyrepr::float_repr;
use crate::value::Value;

/// Julia literals: `nothing`, `true`/`false`, `[a, b]`, `Dict("k" => v)`.
///
/// Differences from papermill: `$` in strings is written `\$` (papermill leaves it,
/// so `"$(run(...))"` would run code when the cell is evaluated); non-finite floats
/// are `NaN`, `Inf`, `-Inf` (papermill's `nan`, `inf` are undefined names); characters
/// U+0080–U+00FF are `\u00NN` (papermill's `\xNN` is a raw, invalid UTF-8 byte in
/// Julia). A date is its ISO-8601 string.
#[derive(Debug, Clone, Copy, Default)]
pub struct JuliaTranslator;

impl JuliaTranslator {
    fn write(&self, name: &str, value: &Value, out: &mut String) -> Result<(), ParamError> {
        match value {
            Value::None => out.push_str("nothing"),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Int(i) => out.push_str(i.as_str()),
            Value::Float(f) if f.is_nan() => out.push_str("NaN"),
            Value::Float(f) if f.is_infinite() => {
                out.push_str(if *f > 0.0 { "Inf" } else { "-Inf" })
            }
            Value::Float(f) => out.push_str(&float_repr(*f)),
            Value::Str(s) => out.push_str(&escape(s, true)),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.write(name, item, out)?;
                }
                out.push(']');
            }
            Value::Dict(entries) => {
                out.push_str("Dict(");
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&escape(k, true));
                    out.push_str(" => ");
                    self.write(name, v, out)?;
                }
                out.push(')');
            }
            Value::DateTime(dt) => out.push_str(&escape(&dt.to_iso8601(), true)),
            Value::FeatureSet(_) => {
                return Err(ParamError::Unsupported {
                    name: name.to_owned(),
                    language: "julia",
                    what: "an arcgis FeatureSet (use the esri or geojson rendering)".to_owned(),
                });
            }
        }
        Ok(())
    }
}

impl Translator for JuliaTranslator {
    fn language(&self) -> &'static str {
        "julia"
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
        Ok(format!("{name} = {literal}"))
    }
}
