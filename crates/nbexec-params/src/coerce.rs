//! papermill's `-p NAME VALUE` type coercion and the parameter-name rule.

use crate::error::NameProblem;
use crate::value::{Integer, Value};

/// Python's hard keywords (3.11+). Soft keywords (`match`, `case`, `type`, `_`) are
/// valid names.
pub const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// Python's `str.isidentifier()`: a Unicode `XID_Start` or `_`, then `XID_Continue`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c == '_' || unicode_ident::is_xid_start(c) => {}
        _ => return false,
    }
    chars.all(unicode_ident::is_xid_continue)
}

/// Is `name` usable as a parameter: an identifier that is not a Python keyword.
pub fn check_name(name: &str) -> Result<(), NameProblem> {
    if !is_identifier(name) {
        Err(NameProblem::NotIdentifier)
    } else if PYTHON_KEYWORDS.contains(&name) {
        Err(NameProblem::Keyword)
    } else {
        Ok(())
    }
}

/// papermill's `_resolve_type` for `-p NAME VALUE`: exactly `True`, `False`, `None`;
/// else what Python's `int(value)` accepts (an int); else what `float(value)` accepts
/// (a float); else the string unchanged.
///
/// `int()` and `float()` rules: surrounding whitespace (Unicode `White_Space`; unlike
/// `str.strip`, `int()` does not skip the separators U+001C–U+001F),
/// an optional sign, ASCII digits with single `_` between digits; for floats also a
/// fraction (`1.`, `.5`), an exponent (`1e3`, `1E-5`), and `nan`, `inf`, `infinity`
/// in any case. Integers keep all their digits (Python 3.11+ refuses `int()` of more
/// than 4300 digits, after which papermill would fall through to `float()` and get
/// `inf`; nbexec keeps the integer). Python also accepts non-ASCII decimal digits
/// (`int('١٢')`); nbexec does not, and keeps such text a string.
pub fn coerce_papermill(text: &str) -> Value {
    match text {
        "True" => return Value::Bool(true),
        "False" => return Value::Bool(false),
        "None" => return Value::None,
        _ => {}
    }
    if let Some(i) = python_int(text) {
        return Value::Int(i);
    }
    if let Some(f) = python_float(text) {
        return Value::Float(f);
    }
    Value::Str(text.to_owned())
}

/// `int(text)` (base 10), or `None` where Python raises `ValueError`.
pub fn python_int(text: &str) -> Option<Integer> {
    let s = text.trim_matches(char::is_whitespace);
    let (negative, body) = split_sign(s);
    let digits = digit_part(body)?;
    if digits.len() != body.len() {
        return None;
    }
    Integer::from_radix(negative, &digits.replace('_', ""), 10)
}

/// `float(text)`, or `None` where Python raises `ValueError`.
pub fn python_float(text: &str) -> Option<f64> {
    let s = text.trim_matches(char::is_whitespace);
    let (negative, body) = split_sign(s);
    let lower = body.to_ascii_lowercase();
    let magnitude = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ => {
            let mut rest = body;
            let int_part = digit_part(rest).unwrap_or("");
            rest = &rest[int_part.len()..];
            if let Some(after) = rest.strip_prefix('.') {
                let frac_part = digit_part(after).unwrap_or("");
                rest = &after[frac_part.len()..];
                if int_part.is_empty() && frac_part.is_empty() {
                    return None;
                }
            } else if int_part.is_empty() {
                return None;
            }
            if let Some(after) = rest.strip_prefix(['e', 'E']) {
                let (_, exp_body) = split_sign(after);
                let exp = digit_part(exp_body)?;
                rest = &exp_body[exp.len()..];
            }
            if !rest.is_empty() {
                return None;
            }
            body.replace('_', "").parse::<f64>().ok()?
        }
    };
    Some(if negative { -magnitude } else { magnitude })
}

fn split_sign(s: &str) -> (bool, &str) {
    if let Some(rest) = s.strip_prefix('-') {
        (true, rest)
    } else if let Some(rest) = s.strip_prefix('+') {
        (false, rest)
    } else {
        (false, s)
    }
}

/// The longest prefix matching `[0-9](_?[0-9])*`, or `None` if it does not start
/// with a digit.
fn digit_part(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if !b.first()?.is_ascii_digit() {
        return None;
    }
    let mut end = 1;
    loop {
        match (b.get(end), b.get(end + 1)) {
            (Some(d), _) if d.is_ascii_digit() => end += 1,
            (Some(b'_'), Some(d)) if d.is_ascii_digit() => end += 2,
            _ => break,
        }
    }
    Some(&s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_parts() {
        assert_eq!(digit_part("1_000x"), Some("1_000"));
        assert_eq!(digit_part("1__0"), Some("1"));
        assert_eq!(digit_part("1_"), Some("1"));
        assert_eq!(digit_part("_1"), None);
    }

    #[test]
    fn names() {
        assert_eq!(check_name("alpha_1"), Ok(()));
        assert_eq!(check_name("é"), Ok(()));
        assert_eq!(check_name("_"), Ok(()));
        assert_eq!(check_name("match"), Ok(()));
        assert_eq!(check_name("x; import os"), Err(NameProblem::NotIdentifier));
        assert_eq!(check_name("1x"), Err(NameProblem::NotIdentifier));
        assert_eq!(check_name(""), Err(NameProblem::NotIdentifier));
        assert_eq!(check_name("class"), Err(NameProblem::Keyword));
        assert_eq!(check_name("None"), Err(NameProblem::Keyword));
    }
}
