//! Python, byte-for-byte as papermill 2.7's `PythonTranslator` without `black`.

use super::{Translator, hash_comment, python_style_string};
use crate::error::ParamError;
use crate::inspect::{ParamSpec, inspect_python};
use crate::pyrepr::float_repr;
use crate::value::Value;

/// Python literals: `ast.literal_eval` of every literal gives back the value
/// (non-finite floats are `float('nan')`, `float('inf')`, `float('-inf')`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonTranslator;

impl PythonTranslator {
    fn write(&self, value: &Value, out: &mut String) {
        match value {
            Value::None => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(i) => out.push_str(i.as_str()),
            Value::Float(f) if f.is_nan() => out.push_str("float('nan')"),
            Value::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 {
                "float('inf')"
            } else {
                "float('-inf')"
            }),
            Value::Float(f) => out.push_str(&float_repr(*f)),
            Value::Str(s) => out.push_str(&python_style_string(s)),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.write(item, out);
                }
                out.push(']');
            }
            Value::Dict(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&python_style_string(k));
                    out.push_str(": ");
                    self.write(v, out);
                }
                out.push('}');
            }
            Value::DateTime(dt) => out.push_str(&dt.python_literal()),
            Value::FeatureSet(inner) => {
                out.push_str("FeatureSet.from_dict(");
                self.write(inner, out);
                out.push(')');
            }
        }
    }
}

/// Does any value (at any depth) satisfy `pred`?
fn any_value(params: &[(String, Value)], pred: &dyn Fn(&Value) -> bool) -> bool {
    fn walk(v: &Value, pred: &dyn Fn(&Value) -> bool) -> bool {
        pred(v)
            || match v {
                Value::List(items) => items.iter().any(|i| walk(i, pred)),
                Value::Dict(entries) => entries.iter().any(|(_, v)| walk(v, pred)),
                Value::FeatureSet(inner) => walk(inner, pred),
                _ => false,
            }
    }
    params.iter().any(|(_, v)| walk(v, pred))
}

impl Translator for PythonTranslator {
    fn language(&self) -> &'static str {
        "python"
    }

    fn literal(&self, _name: &str, value: &Value) -> Result<String, ParamError> {
        let mut out = String::new();
        self.write(value, &mut out);
        Ok(out)
    }

    fn comment(&self, text: &str) -> String {
        hash_comment(text)
    }

    fn assign(&self, name: &str, literal: &str) -> Result<String, ParamError> {
        Ok(format!("{name} = {literal}"))
    }

    /// `import datetime` for dates, `from arcgis.features import FeatureSet` for the
    /// `arcgis` FeatureSet rendering.
    fn preamble(&self, params: &[(String, Value)]) -> Vec<String> {
        let mut lines = Vec::new();
        if any_value(params, &|v| matches!(v, Value::DateTime(_))) {
            lines.push("import datetime".to_owned());
        }
        if any_value(params, &|v| matches!(v, Value::FeatureSet(_))) {
            lines.push("from arcgis.features import FeatureSet".to_owned());
        }
        lines
    }

    fn inspect(&self, source: &str) -> Option<Vec<ParamSpec>> {
        Some(inspect_python(source))
    }
}
