//! The pieces of Python's text behaviour the literals depend on: `repr(float)`,
//! the `unicode_escape` codec, and `str.isspace`.

/// Formats a finite or non-finite float exactly as Python's `repr(float)`:
/// shortest round-trip digits, positional when the decimal exponent is in
/// `-4..16` (`0.0001`, `1000000000000000.0`), else scientific with a signed,
/// at-least-two-digit exponent (`1e-05`, `1e+16`); `nan`, `inf`, `-inf`.
pub fn float_repr(x: f64) -> String {
    // The notebook writer needs the same `repr` for floats in JSON; one
    // implementation serves both.
    nbexec_format::python_float_repr(x)
}

/// Python's `s.encode('unicode_escape').decode()`: `\\`, `\t`, `\n`, `\r`; other
/// C0 controls, DEL and U+0080–U+00FF as `\xNN`; U+0100–U+FFFF as `\uNNNN`; astral
/// as `\UNNNNNNNN`; printable ASCII (including both quotes) verbatim.
pub fn unicode_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            _ => {
                let n = u32::from(c);
                let escaped = if n < 0x100 {
                    format!("\\x{n:02x}")
                } else if n < 0x10000 {
                    format!("\\u{n:04x}")
                } else {
                    format!("\\U{n:08x}")
                };
                out.push_str(&escaped);
            }
        }
    }
}

/// Python's `str.isspace` for one character (what `int()`/`float()`/`strip()` skip):
/// Unicode `White_Space` plus the information separators U+001C–U+001F.
pub fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` with no argument.
pub fn python_strip(s: &str) -> &str {
    s.trim_matches(is_python_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python_examples() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (1.5, "1.5"),
            (-5432.1, "-5432.1"),
            (1e22, "1e+22"),
            (1.25e-7, "1.25e-07"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(*x), *want, "{x:e}");
        }
    }

    #[test]
    fn unicode_escape_matches_python_examples() {
        let mut out = String::new();
        unicode_escape("a\"'\\\t\n\r\0\x7fé€😀 ~", &mut out);
        assert_eq!(out, "a\"'\\\\\\t\\n\\r\\x00\\x7f\\xe9\\u20ac\\U0001f600 ~");
    }
}
