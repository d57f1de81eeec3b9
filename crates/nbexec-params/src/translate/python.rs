//! Python, byte-for-byte as papermill 2.7's `PythonTranslator` without `black`.

use super::{Translator, hash_comment, python_style_string};
use crate::error::ParamError;
use crate::inspect::{ParamSpec, inspect_python};
use crate::pyrepr::float_repr;
use crate::value::Value;

/// Python literals: `ast.literal_eval` of every literal gives back the value
/// (non-finite floats are `float('nan')`, `float('inf')`, `float('-inf')`).
///
/// What the cell imports is bound to private names (`import datetime as
/// __nbexec_datetime`), so that no parameter or notebook name can shadow it; a
/// parameter named `float` next to a NaN makes the cell call
/// `__nbexec_builtins.float('nan')` instead (papermill's text otherwise).
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonTranslator;

/// The name the injected cell binds the `datetime` module to.
pub const DATETIME_ALIAS: &str = "__nbexec_datetime";
/// The name the injected cell binds `arcgis.features.FeatureSet` to.
pub const FEATURESET_ALIAS: &str = "__nbexec_FeatureSet";
/// The name the injected cell binds `builtins` to, where a parameter shadows `float`.
pub const BUILTINS_ALIAS: &str = "__nbexec_builtins";

/// Does the cell need `float` from `builtins`: a non-finite float next to a
/// parameter named `float`?
fn needs_builtins(params: &[(String, Value)]) -> bool {
    params.iter().any(|(n, _)| n == "float")
        && any_value(params, &|v| matches!(v, Value::Float(f) if !f.is_finite()))
}

impl PythonTranslator {
    fn write(&self, value: &Value, out: &mut String, builtins: bool) {
        match value {
            Value::None => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(i) => out.push_str(i.as_str()),
            Value::Float(f) if !f.is_finite() => {
                if builtins {
                    out.push_str(BUILTINS_ALIAS);
                    out.push('.');
                }
                out.push_str(if f.is_nan() {
                    "float('nan')"
                } else if *f > 0.0 {
                    "float('inf')"
                } else {
                    "float('-inf')"
                });
            }
            Value::Float(f) => out.push_str(&float_repr(*f)),
            Value::Str(s) => out.push_str(&python_style_string(s)),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.write(item, out, builtins);
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
                    self.write(v, out, builtins);
                }
                out.push('}');
            }
            Value::DateTime(dt) => out.push_str(&dt.python_literal(DATETIME_ALIAS)),
            Value::FeatureSet(inner) => {
                out.push_str(FEATURESET_ALIAS);
                out.push_str(".from_dict(");
                self.write(inner, out, builtins);
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
        self.write(value, &mut out, false);
        Ok(out)
    }

    fn literal_in_cell(
        &self,
        _name: &str,
        value: &Value,
        params: &[(String, Value)],
    ) -> Result<String, ParamError> {
        let mut out = String::new();
        self.write(value, &mut out, needs_builtins(params));
        Ok(out)
    }

    fn comment(&self, text: &str) -> String {
        hash_comment(text)
    }

    fn assign(&self, name: &str, literal: &str) -> Result<String, ParamError> {
        Ok(format!("{name} = {literal}"))
    }

    /// `import datetime as __nbexec_datetime` for dates, `from arcgis.features
    /// import FeatureSet as __nbexec_FeatureSet` for the `arcgis` FeatureSet
    /// rendering, `import builtins as __nbexec_builtins` where a parameter named
    /// `float` would shadow the builtin a NaN or infinity needs.
    fn preamble(&self, params: &[(String, Value)]) -> Vec<String> {
        let mut lines = Vec::new();
        if any_value(params, &|v| matches!(v, Value::DateTime(_))) {
            lines.push(format!("import datetime as {DATETIME_ALIAS}"));
        }
        if any_value(params, &|v| matches!(v, Value::FeatureSet(_))) {
            lines.push(format!(
                "from arcgis.features import FeatureSet as {FEATURESET_ALIAS}"
            ));
        }
        if needs_builtins(params) {
            lines.push(format!("import builtins as {BUILTINS_ALIAS}"));
        }
        lines
    }

    fn inspect(&self, source: &str) -> Option<Vec<ParamSpec>> {
        Some(inspect_python(source))
    }
}
