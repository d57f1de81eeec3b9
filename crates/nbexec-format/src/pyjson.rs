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

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Does any byte of `w` fall below `n` (`n` ≤ 128)? Exact, with no false positives.
#[inline]
fn any_below(w: u64, n: u8) -> bool {
    w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH != 0
}

/// Does any byte of `w` equal `b`?
#[inline]
fn any_equal(w: u64, b: u8) -> bool {
    let x = w ^ (ONES * u64::from(b));
    x.wrapping_sub(ONES) & !x & HIGH != 0
}

/// The 8 bytes at `i` as a word, if there are 8.
#[inline]
fn word_at(bytes: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(i..i + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// The end (just past the break) of the line starting at `from`, if the line has a
/// break: Python's `str.splitlines` boundaries are `\n`, `\r`, `\r\n`, `\x0b`, `\x0c`,
/// `\x1c`–`\x1e`, U+0085, U+2028 and U+2029.
///
/// `bytes` is UTF-8, so 0xC2 and 0xE2 are always the first byte of a character.
fn line_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        // Skip 8 bytes at a time: a break is a control byte, or a character that
        // starts with 0xC2 (U+0085) or 0xE2 (U+2028, U+2029).
        if let Some(w) = word_at(bytes, i)
            && !any_below(w, 0x20)
            && !any_equal(w, 0xc2)
            && !any_equal(w, 0xe2)
        {
            i += 8;
            continue;
        }
        match bytes[i] {
            b'\n' | 0x0b | 0x0c | 0x1c..=0x1e => return Some(i + 1),
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => return Some(i + 2),
            b'\r' => return Some(i + 1),
            0xc2 if bytes.get(i + 1) == Some(&0x85) => return Some(i + 2),
            0xe2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                return Some(i + 3);
            }
            _ => i += 1,
        }
    }
    None
}

/// The lines of `s` as Python's `str.splitlines(keepends=True)` gives them.
pub(crate) fn lines(s: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= s.len() {
            return None;
        }
        let end = line_end(s.as_bytes(), start).unwrap_or(s.len());
        let line = &s[start..end];
        start = end;
        Some(line)
    })
}

/// Splits like Python's `str.splitlines(keepends=True)`: on `\n`, `\r`, `\r\n`, and the
/// other Unicode line boundaries, keeping them; `""` gives no lines.
pub fn splitlines_keepends(s: &str) -> Vec<&str> {
    lines(s).collect()
}

/// Does `w` hold a byte that `json.dumps` escapes (a control, `"` or `\\`)?
#[inline]
fn needs_escape(w: u64) -> bool {
    any_below(w, 0x20) || any_equal(w, b'"') || any_equal(w, b'\\')
}

/// Appends the escape of a byte that needs one, as `json.dumps` writes it.
#[inline]
fn push_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        }
    }
}

/// Appends `s` as a JSON string the way `json.dumps(ensure_ascii=False)` writes it.
pub(crate) fn push_json_string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Most text needs no escape: skip 8 bytes at a time.
        if let Some(w) = word_at(bytes, i)
            && !needs_escape(w)
        {
            i += 8;
            continue;
        }
        let b = bytes[i];
        if b >= 0x20 && b != b'"' && b != b'\\' {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        push_escape(out, b);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends, as a JSON string, the line of `s` that starts at `from` (with its break,
/// as `str.splitlines(keepends=True)` cuts it); returns where the next line starts.
///
/// The same as [`lines`] then [`push_json_string`], in one pass over the text.
pub(crate) fn push_json_line(out: &mut Vec<u8>, s: &str, from: usize) -> usize {
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut start = from;
    let mut i = from;
    let end = loop {
        if i >= bytes.len() {
            break bytes.len();
        }
        if let Some(w) = word_at(bytes, i)
            && !needs_escape(w)
            && !any_equal(w, 0xc2)
            && !any_equal(w, 0xe2)
        {
            i += 8;
            continue;
        }
        let b = bytes[i];
        match b {
            // U+0085, U+2028, U+2029: breaks that are written as they are.
            0xc2 if bytes.get(i + 1) == Some(&0x85) => break i + 2,
            0xe2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                break i + 3;
            }
            b'"' | b'\\' | 0x00..=0x1f => {}
            _ => {
                i += 1;
                continue;
            }
        }
        out.extend_from_slice(&bytes[start..i]);
        push_escape(out, b);
        i += 1;
        start = i;
        match b {
            b'\n' | 0x0b | 0x0c | 0x1c..=0x1e => break i,
            b'\r' => {
                if bytes.get(i) == Some(&b'\n') {
                    push_escape(out, b'\n');
                    i += 1;
                    start = i;
                }
                break i;
            }
            _ => {}
        }
    };
    out.extend_from_slice(&bytes[start..end]);
    out.push(b'"');
    end
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
        assert_eq!(splitlines_keepends("plain é text"), vec!["plain é text"]);
        assert_eq!(splitlines_keepends("x\u{85}y"), vec!["x\u{85}", "y"]);
        // Breaks at every offset within and across the 8-byte words.
        for pad in 0..20 {
            let a = "a".repeat(pad);
            for brk in [
                "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\u{85}", "\u{2028}",
                "\u{2029}",
            ] {
                let s = format!("{a}é{brk}{a}{brk}");
                let want = vec![format!("{a}é{brk}"), format!("{a}{brk}")];
                assert_eq!(splitlines_keepends(&s), want, "{s:?}");
            }
            // Characters that look like breaks but are not: U+0080..U+0084, U+2027, U+202A.
            let s = format!("{a}\u{80}\u{84}\u{2027}\u{202a}\u{c5}\x1f\x1b{a}");
            assert_eq!(splitlines_keepends(&s), vec![s.as_str()]);
        }
    }

    #[test]
    fn writing_a_line_at_a_time_is_splitting_then_escaping() {
        let parts = [
            "a", "bcdefgh", "\n", "\r", "\r\n", "\t", "\"", "\\", "\x0b", "\x0c", "\x1c", "\x1e",
            "\x1f", "\x01", "é", "\u{85}", "\u{80}", "\u{2028}", "\u{2029}", "\u{2027}", "€", "😀",
        ];
        // Every string of up to three parts, after every amount of padding.
        let mut cases = Vec::new();
        for a in parts {
            for b in parts {
                for c in parts {
                    cases.push(format!("{a}{b}{c}"));
                }
            }
        }
        for pad in 0..9 {
            for case in &cases {
                let s = format!("{}{case}{}", "p".repeat(pad), "q".repeat(pad % 3));
                let (mut fused, mut split) = (Vec::new(), Vec::new());
                let mut from = 0;
                while from < s.len() {
                    from = push_json_line(&mut fused, &s, from);
                }
                for line in splitlines_keepends(&s) {
                    push_json_string(&mut split, line);
                }
                assert_eq!(fused, split, "{s:?}");
            }
        }
    }

    #[test]
    fn escaping_is_the_same_at_every_offset() {
        for pad in 0..20 {
            let a = "x".repeat(pad);
            let mut out = Vec::new();
            push_json_string(&mut out, &format!("{a}\"{a}\\\x01\x1f\x7f€{a}\n"));
            let want = format!("\"{a}\\\"{a}\\\\\\u0001\\u001f\x7f€{a}\\n\"");
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
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
