//! Values checked against the types a notebook's `parameters` cell declares (an
//! annotation, a type comment, or the default's form), so that `-y 'verbose: no'`
//! against `verbose = False` does not silently inject a truthy string.

use crate::inspect::{ParamSpec, TypeSource};
use crate::pyrepr::float_repr;
use crate::value::Value;

/// What a declared type accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Bool,
    Int,
    /// An int is accepted too (Python's numeric tower; papermill users pass `1`).
    Float,
    Str,
    List,
    Dict,
}

impl Expected {
    fn name(self) -> &'static str {
        match self {
            Expected::Bool => "bool",
            Expected::Int => "int",
            Expected::Float => "float",
            Expected::Str => "str",
            Expected::List => "list",
            Expected::Dict => "dict",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (_, Value::None)
                | (Expected::Bool, Value::Bool(_))
                | (Expected::Int, Value::Int(_))
                | (Expected::Float, Value::Int(_) | Value::Float(_))
                | (Expected::Str, Value::Str(_))
                | (Expected::List, Value::List(_))
                | (Expected::Dict, Value::Dict(_) | Value::FeatureSet(_))
        )
    }
}

/// The simple type a declared type's text names, if nbexec can check it:
/// `bool`, `int`, `float`, `str`, `list`/`List[...]`/`tuple`, `dict`/`Dict[...]`,
/// each also as `Optional[T]`, `T | None` or with a `typing.` prefix. Anything else
/// (unions, classes, `NoneType`) is not checked.
fn expected(type_name: &str) -> Option<Expected> {
    let mut t = type_name.trim();
    if let Some(inner) = t
        .strip_prefix("typing.")
        .unwrap_or(t)
        .strip_prefix("Optional[")
        .and_then(|s| s.strip_suffix(']'))
    {
        t = inner.trim();
    }
    let parts: Vec<&str> = t.split('|').map(str::trim).collect();
    let t = match parts.as_slice() {
        [one] => *one,
        [a, "None"] | ["None", a] => *a,
        _ => return None,
    };
    let t = t.strip_prefix("typing.").unwrap_or(t);
    let base = t.split('[').next().unwrap_or(t).trim();
    Some(match base {
        "bool" => Expected::Bool,
        "int" => Expected::Int,
        "float" => Expected::Float,
        "str" => Expected::Str,
        "list" | "List" | "tuple" | "Tuple" | "Sequence" => Expected::List,
        "dict" | "Dict" | "Mapping" => Expected::Dict,
        _ => return None,
    })
}

/// YAML 1.1 booleans that YAML 1.2 (and `-p`) read as strings, with the value
/// they meant.
fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// A short description of a value for messages: `int 3`, `list`. A string's text
/// is shown only when it is a YAML 1.1 boolean word (`str "no"`): strings may be
/// secrets (`--secret`), and warnings go to logs.
fn describe(value: &Value) -> String {
    match value {
        Value::Str(s) if yaml11_bool(s).is_some() => format!("str {s:?}"),
        Value::Int(i) if i.as_str().len() <= 40 => format!("int {i}"),
        Value::Float(f) => format!("float {}", float_repr(*f)),
        Value::Bool(b) => format!("bool {}", if *b { "True" } else { "False" }),
        other => other.kind().to_owned(),
    }
}

/// Why `value` does not fit what `spec` declares, as one line of text; `None` when it
/// fits or the declared type is not one nbexec checks.
pub(crate) fn mismatch(spec: &ParamSpec, value: &Value) -> Option<String> {
    if matches!(spec.type_source, TypeSource::Unknown) || spec.is_datetime() {
        return None;
    }
    let expected = expected(spec.type_name.as_deref()?)?;
    if expected.accepts(value) {
        return None;
    }
    let (how, detail) = match spec.type_source {
        TypeSource::Annotation => ("annotation", spec.type_name.as_deref()),
        TypeSource::TypeComment => ("type comment", spec.type_name.as_deref()),
        _ => ("default", spec.default.as_deref()),
    };
    let mut text = format!(
        "parameter '{}' is {}, but the notebook expects {} (from its {how}",
        spec.name,
        describe(value),
        expected.name(),
    );
    if let Some(detail) = detail.filter(|d| d.chars().count() <= 40) {
        text.push_str(&format!(" {detail}"));
    }
    text.push(')');
    if let (Expected::Bool, Value::Str(s)) = (expected, value)
        && let Some(meant) = yaml11_bool(s)
    {
        text.push_str(&format!(
            "; {s:?} is a boolean only in YAML 1.1 (nbexec reads YAML 1.2): write {} in YAML or JSON, {} with -p",
            if meant { "true" } else { "false" },
            if meant { "True" } else { "False" },
        ));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_type_texts() {
        assert_eq!(expected("bool"), Some(Expected::Bool));
        assert_eq!(expected("Optional[int]"), Some(Expected::Int));
        assert_eq!(expected("typing.Optional[float]"), Some(Expected::Float));
        assert_eq!(expected("str | None"), Some(Expected::Str));
        assert_eq!(expected("List[str]"), Some(Expected::List));
        assert_eq!(expected("dict[str, int]"), Some(Expected::Dict));
        assert_eq!(expected("int | str"), None);
        assert_eq!(expected("Union[int, str]"), None);
        assert_eq!(expected("NoneType"), None);
        assert_eq!(expected("pd.DataFrame"), None);
    }
}
