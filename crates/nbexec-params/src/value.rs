//! The parameter value model: JSON/YAML data with Python's distinctions kept
//! (int vs float, key order, integers of any size).

use std::fmt;

use crate::datetime::DateTime;
use crate::pyrepr::float_repr;

/// An integer of any size, held as canonical decimal text (`0`, `-12`, never `-0`
/// or leading zeros). The text is validated on construction, so it can be pasted into
/// any language's source as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Integer(String);

impl Integer {
    /// Parses `[+-]?[0-9]+` (leading zeros allowed, no spaces) into canonical form.
    pub fn parse(text: &str) -> Option<Integer> {
        let (negative, digits) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Integer::from_parts(negative, digits))
    }

    /// Builds from a sign and ASCII digits in `radix` (2..=16); `None` on a bad digit.
    pub fn from_radix(negative: bool, digits: &str, radix: u32) -> Option<Integer> {
        if digits.is_empty() || !(2..=16).contains(&radix) {
            return None;
        }
        if radix == 10 {
            return digits
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| Integer::from_parts(negative, digits));
        }
        // Little-endian limbs in base 10^9: multiply by the radix and add each digit.
        const BASE: u64 = 1_000_000_000;
        let mut limbs: Vec<u64> = vec![0];
        for c in digits.chars() {
            let d = u64::from(c.to_digit(radix)?);
            let mut carry = d;
            for limb in &mut limbs {
                let v = *limb * u64::from(radix) + carry;
                *limb = v % BASE;
                carry = v / BASE;
            }
            while carry > 0 {
                limbs.push(carry % BASE);
                carry /= BASE;
            }
        }
        let mut text = String::new();
        let mut iter = limbs.iter().rev();
        if let Some(top) = iter.next() {
            text.push_str(&top.to_string());
        }
        for limb in iter {
            text.push_str(&format!("{limb:09}"));
        }
        Some(Integer::from_parts(negative, &text))
    }

    fn from_parts(negative: bool, digits: &str) -> Integer {
        let trimmed = digits.trim_start_matches('0');
        if trimmed.is_empty() {
            Integer("0".to_owned())
        } else if negative {
            Integer(format!("-{trimmed}"))
        } else {
            Integer(trimmed.to_owned())
        }
    }

    /// The canonical decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value if it fits an `i64`.
    pub fn to_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    /// Is it negative?
    pub fn is_negative(&self) -> bool {
        self.0.starts_with('-')
    }
}

impl fmt::Display for Integer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<i64> for Integer {
    fn from(n: i64) -> Integer {
        Integer(n.to_string())
    }
}

impl From<u64> for Integer {
    fn from(n: u64) -> Integer {
        Integer(n.to_string())
    }
}

impl From<i128> for Integer {
    fn from(n: i128) -> Integer {
        Integer(n.to_string())
    }
}

/// A parameter value.
///
/// The first seven variants are the JSON/YAML data model with Python's distinctions:
/// for each of them the Python literal that nbexec writes evaluates (with
/// `ast.literal_eval`) to exactly this value. `Dict` keeps its keys in order; its
/// keys are unique when it comes from JSON, YAML or a [`Parameters`](crate::Parameters)
/// merge (a hand-built `Dict` with a repeated key would collapse in Python).
///
/// The last two are what declared ArcGIS types turn values into before rendering.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None` / JSON `null`.
    None,
    Bool(bool),
    Int(Integer),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Dict(Vec<(String, Value)>),
    /// A date and time, naive or with its UTC offset: Python `datetime.datetime`.
    DateTime(DateTime),
    /// An Esri FeatureSet dict rendered as `FeatureSet.from_dict({...})` (ArcGIS API
    /// for Python).
    FeatureSet(Box<Value>),
}

impl Value {
    /// The Python type name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::DateTime(_) => "datetime",
            Value::FeatureSet(_) => "FeatureSet",
        }
    }

    /// An integer value from an `i64`.
    pub fn int(n: i64) -> Value {
        Value::Int(Integer::from(n))
    }

    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// The value of `key` if this is a dict that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The number as an `f64`, for ints and floats.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => i.as_str().parse().ok(),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Converts JSON exactly as Python's `json.loads` would: a number whose text has
    /// `.`, `e` or `E` is a float, any other number an int with all its digits
    /// (serde_json's `arbitrary_precision` keeps them); object key order is kept.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::None,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => number_from_text(&n.to_string()),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::Dict(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Converts to JSON for the notebook metadata (`metadata.papermill.parameters`).
    ///
    /// Ints keep their digits and floats their Python `repr` text (what Python's
    /// `json.dumps` writes). JSON has no NaN or infinity: where Python would write the
    /// invalid tokens `NaN`, `Infinity`, `-Infinity`, these are written as the strings
    /// `"NaN"`, `"Infinity"`, `"-Infinity"`. A date is its ISO-8601 text; a FeatureSet
    /// its dict.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::None => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => json_number(i.as_str()),
            Value::Float(f) if f.is_nan() => serde_json::Value::from("NaN"),
            Value::Float(f) if f.is_infinite() => {
                serde_json::Value::from(if *f > 0.0 { "Infinity" } else { "-Infinity" })
            }
            Value::Float(f) => json_number(&float_repr(*f)),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Dict(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            Value::DateTime(dt) => serde_json::Value::String(dt.to_iso8601()),
            Value::FeatureSet(inner) => inner.to_json(),
        }
    }
}

/// A JSON number from text that is already a valid JSON number.
fn json_number(text: &str) -> serde_json::Value {
    match text.parse::<serde_json::Number>() {
        Ok(n) => serde_json::Value::Number(n),
        // Unreachable for canonical ints and Python float reprs; keep the text anyway.
        Err(_) => serde_json::Value::String(text.to_owned()),
    }
}

/// A JSON number's text as Python's `json` module reads it.
pub(crate) fn number_from_text(text: &str) -> Value {
    if text.contains(['.', 'e', 'E']) {
        // Rust's float parsing is correctly rounded, as Python's is; overflow gives ±inf
        // in both.
        Value::Float(text.parse().unwrap_or(f64::NAN))
    } else {
        match Integer::parse(text) {
            Some(i) => Value::Int(i),
            None => Value::Float(text.parse().unwrap_or(f64::NAN)),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::int(n)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_canonical() {
        assert_eq!(Integer::parse("007").map(|i| i.0), Some("7".into()));
        assert_eq!(Integer::parse("-0").map(|i| i.0), Some("0".into()));
        assert_eq!(Integer::parse("+12").map(|i| i.0), Some("12".into()));
        assert_eq!(Integer::parse("1_0"), None);
        assert_eq!(Integer::parse(""), None);
        assert_eq!(Integer::parse("-"), None);
    }

    #[test]
    fn radix_conversion_keeps_big_values() {
        let i = Integer::from_radix(false, "ffffffffffffffffffffffff", 16).map(|i| i.0);
        assert_eq!(i.as_deref(), Some("79228162514264337593543950335"));
        assert_eq!(
            Integer::from_radix(true, "17", 8).map(|i| i.0),
            Some("-15".into())
        );
        assert_eq!(Integer::from_radix(false, "19", 8), None);
    }

    #[test]
    fn json_numbers_follow_python_json() {
        let v: serde_json::Value =
            serde_json::from_str(r#"[12345678901234567890123, 1.0, 1e3, -0, 1E400]"#).unwrap();
        let Value::List(items) = Value::from_json(&v) else {
            panic!("not a list")
        };
        assert_eq!(
            items[0],
            Value::Int(Integer::parse("12345678901234567890123").unwrap())
        );
        assert_eq!(items[1], Value::Float(1.0));
        assert_eq!(items[2], Value::Float(1000.0));
        assert_eq!(items[3], Value::int(0));
        assert_eq!(items[4], Value::Float(f64::INFINITY));
    }

    #[test]
    fn metadata_json_keeps_digits_and_reprs() {
        let v = Value::List(vec![
            Value::Int(Integer::parse("12345678901234567890123").unwrap()),
            Value::Float(1e-5),
            Value::Float(f64::NAN),
            Value::Float(f64::NEG_INFINITY),
        ]);
        assert_eq!(
            serde_json::to_string(&v.to_json()).unwrap(),
            r#"[12345678901234567890123,1e-05,"NaN","-Infinity"]"#
        );
    }
}
