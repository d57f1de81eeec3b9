//! bash, byte-for-byte as papermill 2.7's `BashTranslator`.

use super::{Translator, hash_comment};
use crate::error::ParamError;
use crate::pyrepr::float_repr;
use crate::value::Value;

/// bash: `name=value`, strings quoted with Python's `shlex.quote`, `None` empty,
/// lists as arrays `(a b)`; dicts cannot be written (an error naming the parameter).
/// Names must be ASCII (bash variable names).
#[derive(Debug, Clone, Copy, Default)]
pub struct BashTranslator;

/// Python's `shlex.quote`.
pub fn shlex_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".to_owned();
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if s.chars().all(safe) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

impl BashTranslator {
    fn write(&self, name: &str, value: &Value, out: &mut String) -> Result<(), ParamError> {
        match value {
            Value::None => {}
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Int(i) => out.push_str(i.as_str()),
            Value::Float(f) => out.push_str(&float_repr(*f)),
            Value::Str(s) => out.push_str(&shlex_quote(s)),
            Value::List(items) => {
                out.push('(');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    self.write(name, item, out)?;
                }
                out.push(')');
            }
            Value::DateTime(dt) => out.push_str(&shlex_quote(&dt.to_iso8601())),
            Value::Dict(_) | Value::FeatureSet(_) => {
                return Err(ParamError::Unsupported {
                    name: name.to_owned(),
                    language: "bash",
                    what: "a dict".to_owned(),
                });
            }
        }
        Ok(())
    }
}

impl Translator for BashTranslator {
    fn language(&self) -> &'static str {
        "bash"
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
        if !name.is_ascii() {
            return Err(ParamError::Unsupported {
                name: name.to_owned(),
                language: "bash",
                what: "a non-ASCII name".to_owned(),
            });
        }
        Ok(format!("{name}={literal}"))
    }
}
