//! The pieces of Python's `json` and `str` behaviour that the writer must match:
//! `float.__repr__`, `str.splitlines(keepends=True)` and `json.dumps` string escaping
//! with `ensure_ascii=False`.

/// Formats a float exactly as Python's `repr(float)` does (`1e-05`, `1e+16`,
/// `1000000000000000.0`, `-0.0`, `nan`, `inf`).
///
/// Python picks the shortest digits that round-trip (as Rust's `{:e}` does), then
/// uses positional notation when the decimal exponent is in `-4..16`, else
/// scientific with a signed exponent of at least two digits.
pub fn python_float_repr(x: f64) -> String {
    let mut out = String::new();
    push_python_float_repr(&mut out, x);
    out
}

pub(crate) fn push_python_float_repr(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("nan");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "inf" } else { "-inf" });
        return;
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7", "5e0".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // Python's decpt: the value is 0.DIGITS × 10^decpt.
    let decpt = exp + 1;
    if negative {
        out.push('-');
    }
    if (-3..=16).contains(&decpt) {
        if decpt <= 0 {
            out.push_str("0.");
            for _ in 0..(-decpt) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let decpt = decpt as usize;
            if digits.len() <= decpt {
                out.push_str(&digits);
                for _ in digits.len()..decpt {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..decpt]);
                out.push('.');
                out.push_str(&digits[decpt..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        let e = e.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    }
}

/// Is `c` a line boundary for Python's `str.splitlines`?
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\x0b'
            | '\x0c'
            | '\x1c'
            | '\x1d'
            | '\x1e'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// Splits like Python's `str.splitlines(keepends=True)`: on `\n`, `\r`, `\r\n`, and the
/// other Unicode line boundaries, keeping them; `""` gives no lines.
pub fn splitlines_keepends(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut iter = s.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if !is_line_break(c) {
            continue;
        }
        let mut end = i + c.len_utf8();
        if c == '\r' && bytes.get(end) == Some(&b'\n') {
            iter.next();
            end += 1;
        }
        lines.push(&s[start..end]);
        start = end;
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

/// Does `s` need splitting at all? A fast check that avoids the char walk for the
/// common single-line ASCII case.
pub(crate) fn has_line_break(s: &str) -> bool {
    s.bytes()
        .any(|b| matches!(b, b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1e | 0xc2 | 0xe2))
        && s.chars().any(is_line_break)
}

/// Appends `s` as a JSON string the way `json.dumps(ensure_ascii=False)` writes it.
pub(crate) fn push_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1e16, "1e+16"),
            (1e-5, "1e-05"),
            (1e15, "1000000000000000.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1.5e300, "1.5e+300"),
            (1e22, "1e+22"),
            (5e-324, "5e-324"),
            (0.0001, "0.0001"),
            (0.22025751675887162, "0.22025751675887162"),
            (123.456, "123.456"),
            (1.0, "1.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-2.5e-7, "-2.5e-07"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float_repr(x), want, "repr of {x:e}");
        }
    }

    #[test]
    fn splitlines_matches_python() {
        assert_eq!(splitlines_keepends(""), Vec::<&str>::new());
        assert_eq!(splitlines_keepends("a\nb"), vec!["a\n", "b"]);
        assert_eq!(splitlines_keepends("a\r\nb\r"), vec!["a\r\n", "b\r"]);
        assert_eq!(
            splitlines_keepends("a\rb\x0bc\u{2028}d"),
            vec!["a\r", "b\x0b", "c\u{2028}", "d"]
        );
        assert_eq!(splitlines_keepends("\n\n"), vec!["\n", "\n"]);
        assert!(!has_line_break("plain é text"));
        assert!(has_line_break("x\u{85}y"));
    }

    #[test]
    fn strings_escape_like_json_dumps() {
        let mut out = Vec::new();
        push_json_string(&mut out, "a\"b\\c\n\t\x01\x7fé€😀");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\t\\u0001\x7fé€😀\""
        );
    }
}
