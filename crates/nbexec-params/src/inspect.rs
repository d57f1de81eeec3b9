//! Inspection of a notebook's `parameters` cell (papermill `--help-notebook`,
//! `PythonTranslator.inspect`), done with a small Python scanner instead of
//! papermill's line regex.
//!
//! Like papermill: each assignment `name = default`, `name: annotation = default`
//! gives a parameter; the type is the annotation, else a `# type: T` comment; the
//! help is the trailing comment on the statement's last line; a default that spans
//! lines is flattened (each line stripped, comments dropped, lines joined).
//!
//! Unlike papermill: strings and brackets are understood, so `x = "a=b"`,
//! `d = dict(a=1)` and `a = 1; b = 2` are read correctly (papermill skips any line
//! with two `=`); annotations may be dotted (`datetime.datetime`); chained
//! assignments give each name; assignments inside `def`/`class` bodies are not
//! parameters; an annotation without a value (`x: int`) is a parameter with no
//! default; with neither annotation nor type comment, the type is inferred from the
//! default (`int`, `float`, `str`, `bool`, `NoneType`, `list`, `dict`, `set`,
//! `tuple`, `bytes`, `complex`, `datetime`, `date`) where papermill says `None`;
//! `# type: ignore` is not a type.

use crate::coerce::{PYTHON_KEYWORDS, is_identifier};

/// Where a parameter's type came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypeSource {
    /// `name: T = ...`
    Annotation,
    /// `name = ...  # type: T`
    TypeComment,
    /// From the default's form (`3` → `int`).
    Inferred,
    /// Not known.
    Unknown,
}

impl TypeSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            TypeSource::Annotation => "annotation",
            TypeSource::TypeComment => "type-comment",
            TypeSource::Inferred => "inferred",
            TypeSource::Unknown => "unknown",
        }
    }
}

/// One parameter declared in a `parameters` cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    /// The type's text (`int`, `List[str]`, `datetime.datetime`), if known.
    pub type_name: Option<String>,
    pub type_source: TypeSource,
    /// The default's source text, flattened to one line; `None` for `x: int`.
    pub default: Option<String>,
    /// The trailing comment (after any `type:` part), or empty.
    pub help: String,
    /// The 1-based line of the cell where the statement starts.
    pub line: usize,
}

impl ParamSpec {
    /// papermill's `inferred_type_name`: the type, or `"None"` when unknown.
    pub fn papermill_type_name(&self) -> &str {
        self.type_name.as_deref().unwrap_or("None")
    }

    /// Does the notebook declare this parameter as a date/time: an annotation or
    /// type comment naming `datetime`, `date` or `Timestamp`, or a default that is a
    /// `datetime`/`date` expression?
    pub fn is_datetime(&self) -> bool {
        match &self.type_name {
            Some(t) => t
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| matches!(w, "datetime" | "date" | "Timestamp")),
            None => false,
        }
    }

    /// A JSON object for `inspect --json`: papermill's keys (`name`,
    /// `inferred_type_name`, `default`, `help`) plus `type_source` and `line`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), self.name.clone().into());
        m.insert(
            "inferred_type_name".into(),
            self.papermill_type_name().to_owned().into(),
        );
        m.insert(
            "default".into(),
            match &self.default {
                Some(d) => d.clone().into(),
                None => serde_json::Value::Null,
            },
        );
        m.insert("help".into(), self.help.clone().into());
        m.insert("type_source".into(), self.type_source.as_str().into());
        m.insert("line".into(), self.line.into());
        serde_json::Value::Object(m)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Code,
    Str,
    Comment,
}

/// The cell as characters, each marked code / string / comment with its bracket
/// depth, and the statement spans.
struct Scan {
    chars: Vec<char>,
    kind: Vec<Kind>,
    depth: Vec<u32>,
    statements: Vec<(usize, usize)>,
    /// Index of the character ending each line, ascending.
    line_ends: Vec<usize>,
}

fn is_string_prefix(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "r" | "u" | "b" | "f" | "br" | "rb" | "fr" | "rf"
    )
}

fn scan(src: &str) -> Scan {
    let chars: Vec<char> = src.chars().collect();
    let n = chars.len();
    let mut kind = vec![Kind::Code; n];
    let mut depth = vec![0u32; n];
    let mut statements = Vec::new();
    let mut start = 0;
    let mut level: u32 = 0;
    let mut i = 0;
    while i < n {
        let c = chars[i];
        depth[i] = level;
        match c {
            '#' => {
                while i < n && chars[i] != '\n' && chars[i] != '\r' {
                    kind[i] = Kind::Comment;
                    depth[i] = level;
                    i += 1;
                }
                continue;
            }
            '\'' | '"' => {
                i = scan_string(&chars, i, &mut kind, &mut depth, level);
                continue;
            }
            '\\' if matches!(chars.get(i + 1), Some('\n' | '\r')) => {
                // Line continuation: the newline does not end the statement.
                depth[i + 1] = level;
                i += 2;
                if chars.get(i - 1) == Some(&'\r') && chars.get(i) == Some(&'\n') {
                    depth[i] = level;
                    i += 1;
                }
                continue;
            }
            '(' | '[' | '{' => level += 1,
            ')' | ']' | '}' => {
                level = level.saturating_sub(1);
                depth[i] = level;
            }
            '\n' | '\r' | ';' if level == 0 => {
                statements.push((start, i));
                start = i + 1;
            }
            _ if c.is_alphabetic() || c == '_' => {
                // A word; if it is a string prefix directly followed by a quote, the
                // string starts here.
                let w = i;
                while i < n && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    depth[i] = level;
                    i += 1;
                }
                let word: String = chars[w..i].iter().collect();
                if i < n && matches!(chars[i], '\'' | '"') && is_string_prefix(&word) {
                    for k in &mut kind[w..i] {
                        *k = Kind::Str;
                    }
                    i = scan_string(&chars, i, &mut kind, &mut depth, level);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    statements.push((start, n));
    let line_ends = (0..n)
        .filter(|&k| chars[k] == '\n' || (chars[k] == '\r' && chars.get(k + 1) != Some(&'\n')))
        .collect();
    Scan {
        chars,
        kind,
        depth,
        statements,
        line_ends,
    }
}

/// Marks the string starting at the quote `i`; returns the index after it. A
/// backslash always skips the next character (also in raw strings, as Python's
/// tokenizer does); an unterminated one-line string ends at the line end.
fn scan_string(
    chars: &[char],
    mut i: usize,
    kind: &mut [Kind],
    depth: &mut [u32],
    level: u32,
) -> usize {
    let n = chars.len();
    let q = chars[i];
    let triple = i + 2 < n && chars[i + 1] == q && chars[i + 2] == q;
    let open = if triple { 3 } else { 1 };
    for _ in 0..open {
        kind[i] = Kind::Str;
        depth[i] = level;
        i += 1;
    }
    while i < n {
        kind[i] = Kind::Str;
        depth[i] = level;
        let c = chars[i];
        if c == '\\' && i + 1 < n {
            kind[i + 1] = Kind::Str;
            depth[i + 1] = level;
            i += 2;
            continue;
        }
        if !triple && (c == '\n' || c == '\r') {
            // Leave the newline as code so that it still ends the statement.
            kind[i] = Kind::Code;
            return i;
        }
        if c == q {
            if !triple {
                return i + 1;
            }
            if i + 2 < n && chars[i + 1] == q && chars[i + 2] == q {
                kind[i + 1] = Kind::Str;
                kind[i + 2] = Kind::Str;
                depth[i + 1] = level;
                depth[i + 2] = level;
                return i + 3;
            }
        }
        i += 1;
    }
    n
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

impl Scan {
    fn text(&self, from: usize, to: usize) -> String {
        self.chars[from..to].iter().collect()
    }

    fn is_code(&self, i: usize) -> bool {
        self.kind[i] == Kind::Code
    }

    /// Skips spaces, tabs and backslash continuations.
    fn skip_space(&self, mut i: usize, end: usize) -> usize {
        while i < end {
            let c = self.chars[i];
            if self.is_code(i) && (is_space(c) || (self.depth[i] > 0 && matches!(c, '\n' | '\r'))) {
                i += 1;
            } else if self.is_code(i)
                && c == '\\'
                && matches!(self.chars.get(i + 1), Some('\n' | '\r'))
            {
                i += 2;
            } else {
                break;
            }
        }
        i
    }

    /// The identifier starting at `i` (code only).
    fn word(&self, i: usize, end: usize) -> Option<(String, usize)> {
        let mut j = i;
        while j < end
            && self.is_code(j)
            && (self.chars[j].is_alphanumeric() || self.chars[j] == '_')
        {
            j += 1;
        }
        let word = self.text(i, j);
        is_identifier(&word).then_some((word, j))
    }

    /// Is the code `=` at `i` an assignment (not `==`, `!=`, `<=`, `>=`, `:=`, `+=`…)?
    fn is_assign_eq(&self, i: usize, start: usize, end: usize) -> bool {
        if !(self.is_code(i) && self.chars[i] == '=' && self.depth[i] == 0) {
            return false;
        }
        if i + 1 < end && self.is_code(i + 1) && self.chars[i + 1] == '=' {
            return false;
        }
        if i > start && self.is_code(i - 1) && "=!<>:+-*/%&|^@~".contains(self.chars[i - 1]) {
            return false;
        }
        true
    }

    fn find_assign_eq(&self, from: usize, end: usize) -> Option<usize> {
        (from..end).find(|&i| self.is_assign_eq(i, from, end))
    }

    /// The last code or string character of the span that is not whitespace.
    fn last_code(&self, start: usize, end: usize) -> Option<usize> {
        (start..end).rev().find(|&i| {
            self.kind[i] != Kind::Comment
                && !(is_space(self.chars[i]) || matches!(self.chars[i], '\n' | '\r' | '\\'))
        })
    }

    /// papermill's flattening: strings kept as they are, comments dropped, every
    /// line stripped, lines joined with nothing.
    fn flatten(&self, from: usize, to: usize) -> String {
        let mut out = String::new();
        let mut i = from;
        while i < to {
            let c = self.chars[i];
            match self.kind[i] {
                Kind::Comment => {}
                Kind::Str => out.push(c),
                Kind::Code
                    if matches!(c, '\n' | '\r')
                        || (c == '\\' && matches!(self.chars.get(i + 1), Some('\n' | '\r'))) =>
                {
                    let trimmed = out.trim_end_matches(is_space).len();
                    out.truncate(trimmed);
                    i += 1;
                    while i < to
                        && self.is_code(i)
                        && (is_space(self.chars[i]) || matches!(self.chars[i], '\n' | '\r'))
                    {
                        i += 1;
                    }
                    continue;
                }
                Kind::Code => out.push(c),
            }
            i += 1;
        }
        out.trim().to_owned()
    }

    /// The comment on the line of `last`, after it.
    fn trailing_comment(&self, last: usize, end: usize) -> Option<String> {
        let mut i = last + 1;
        while i < end && !matches!(self.chars[i], '\n' | '\r') {
            if self.kind[i] == Kind::Comment {
                let mut j = i;
                while j < end && self.kind[j] == Kind::Comment {
                    j += 1;
                }
                return Some(self.text(i + 1, j));
            }
            i += 1;
        }
        None
    }

    /// The index of the first character of `i`'s line.
    fn line_start(&self, i: usize) -> usize {
        match self.line_ends.partition_point(|&end| end < i) {
            0 => 0,
            k => self.line_ends[k - 1] + 1,
        }
    }

    /// The 1-based line of character `i` (`\n`, `\r\n` and `\r` end lines).
    fn line_of(&self, i: usize) -> usize {
        1 + self.line_ends.partition_point(|&end| end < i)
    }
}

/// Parses a Python `parameters` cell.
pub fn inspect_python(source: &str) -> Vec<ParamSpec> {
    let scan = scan(source);
    let mut params: Vec<ParamSpec> = Vec::new();
    // The indentation of the `def`/`class` whose body we are in, if any.
    let mut body_of: Option<usize> = None;
    for &(span_start, end) in &scan.statements {
        let start = scan.skip_space(span_start, end);
        if start >= end
            || scan.kind[start] == Kind::Comment
            || matches!(scan.chars[start], '\n' | '\r')
        {
            continue;
        }
        let line_start = scan.line_start(start);
        let indent = start - line_start;
        if let Some(body) = body_of {
            if indent > body {
                continue;
            }
            body_of = None;
        }
        let Some((name, after)) = scan.word(start, end) else {
            continue;
        };
        if PYTHON_KEYWORDS.contains(&name.as_str()) {
            let next = scan.word(scan.skip_space(after, end), end).map(|(w, _)| w);
            if name == "def"
                || name == "class"
                || (name == "async" && next.as_deref() == Some("def"))
            {
                body_of = Some(indent);
            }
            continue;
        }
        let line = scan.line_of(start);
        let last = scan.last_code(start, end);
        let comment = last.and_then(|l| scan.trailing_comment(l, end));
        let value_end = last.map_or(end, |l| l + 1);
        let mut i = scan.skip_space(after, end);
        let (annotation, value_start) = match scan.chars.get(i) {
            Some(':') if i < end && scan.is_code(i) && scan.chars.get(i + 1) != Some(&'=') => {
                match scan.find_assign_eq(i + 1, end) {
                    Some(eq) => (Some(scan.flatten(i + 1, eq)), Some(eq + 1)),
                    None => (Some(scan.flatten(i + 1, value_end.max(i + 1))), None),
                }
            }
            Some('=') if i < end && scan.is_assign_eq(i, start, end) => (None, Some(i + 1)),
            _ => continue,
        };
        let mut targets = vec![name];
        let mut default = None;
        if let Some(mut v) = value_start {
            // Chained assignment: `a = b = 1`.
            loop {
                i = scan.skip_space(v, end);
                let Some(eq) = scan.find_assign_eq(i, value_end) else {
                    break;
                };
                let target = scan.flatten(i, eq);
                if !is_identifier(&target) || PYTHON_KEYWORDS.contains(&target.as_str()) {
                    break;
                }
                targets.push(target);
                v = eq + 1;
            }
            default = Some(scan.flatten(v, value_end.max(v)));
        }
        let (type_comment, help) = parse_comment(comment.as_deref().unwrap_or(""));
        let annotation = annotation
            .map(|a| strip_quotes(&a))
            .filter(|a| !a.is_empty());
        let (type_name, type_source) = if let Some(a) = annotation {
            (Some(a), TypeSource::Annotation)
        } else if let Some(t) = type_comment {
            (Some(t), TypeSource::TypeComment)
        } else if let Some(t) = default.as_deref().and_then(infer_type) {
            (Some(t.to_owned()), TypeSource::Inferred)
        } else {
            (None, TypeSource::Unknown)
        };
        for target in targets {
            params.push(ParamSpec {
                name: target,
                type_name: type_name.clone(),
                type_source,
                default: default.clone(),
                help: help.clone(),
                line,
            });
        }
    }
    params
}

/// papermill's `#\s*(type:\s*(\S*)\s*)?(.*)`: the type comment and the help.
fn parse_comment(comment: &str) -> (Option<String>, String) {
    let text = comment.trim_start();
    if let Some(rest) = text.strip_prefix("type:") {
        let rest = rest.trim_start();
        let split = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let ty = &rest[..split];
        let help = rest[split..].trim().to_owned();
        let is_type = !ty.is_empty() && ty != "ignore" && !ty.starts_with("ignore[");
        return (is_type.then(|| ty.to_owned()), help);
    }
    (None, text.trim().to_owned())
}

fn strip_quotes(annotation: &str) -> String {
    let a = annotation.trim();
    for q in ['"', '\''] {
        if a.len() >= 2 && a.starts_with(q) && a.ends_with(q) {
            return a[1..a.len() - 1].trim().to_owned();
        }
    }
    a.to_owned()
}

/// The type of a default expression, by its form.
fn infer_type(default: &str) -> Option<&'static str> {
    let d = default.trim();
    match d {
        "None" => return Some("NoneType"),
        "True" | "False" => return Some("bool"),
        _ => {}
    }
    let unsigned = d.trim_start_matches(['-', '+']).trim_start();
    if is_int_literal(unsigned) {
        return Some("int");
    }
    if let Some(num) = unsigned.strip_suffix(['j', 'J'])
        && (is_int_literal(num) || is_float_literal(num))
    {
        return Some("complex");
    }
    if is_float_literal(unsigned) {
        return Some("float");
    }
    let first = d.chars().next()?;
    if matches!(first, '\'' | '"') {
        return Some("str");
    }
    let word_end = d
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(d.len());
    let word = &d[..word_end];
    if word_end < d.len()
        && matches!(d.as_bytes()[word_end], b'\'' | b'"')
        && is_string_prefix(word)
    {
        return Some(if word.to_ascii_lowercase().contains('b') {
            "bytes"
        } else {
            "str"
        });
    }
    match first {
        '[' => return Some("list"),
        '{' => {
            return Some(if d == "{}" || top_level_has(d, ':') {
                "dict"
            } else {
                "set"
            });
        }
        '(' if d == "()" || top_level_has(d, ',') => return Some("tuple"),
        _ => {}
    }
    // A call: `callee.path(...)`.
    let path_end = d
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(d.len());
    if d[path_end..].trim_start().starts_with('(') {
        let segments: Vec<&str> = d[..path_end].split('.').collect();
        let last = *segments.last()?;
        if segments.len() == 1 {
            match last {
                "int" | "float" | "str" | "bool" | "list" | "dict" | "set" | "tuple" | "bytes"
                | "complex" | "frozenset" => {
                    return Some(match last {
                        "int" => "int",
                        "float" => "float",
                        "str" => "str",
                        "bool" => "bool",
                        "list" => "list",
                        "dict" => "dict",
                        "set" => "set",
                        "tuple" => "tuple",
                        "bytes" => "bytes",
                        "complex" => "complex",
                        _ => "frozenset",
                    });
                }
                _ => {}
            }
        }
        if last == "date" || segments.iter().rev().skip(1).take(1).any(|s| *s == "date") {
            return Some("date");
        }
        if segments.contains(&"datetime") || matches!(last, "Timestamp" | "to_datetime") {
            return Some("datetime");
        }
    }
    None
}

fn is_digits(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('_')
        && !s.ends_with('_')
        && !s.contains("__")
        && s.chars().all(|c| c.is_ascii_digit() || c == '_')
}

fn is_int_literal(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            let rest = rest.strip_prefix('_').unwrap_or(rest);
            return !rest.is_empty()
                && !rest.ends_with('_')
                && !rest.contains("__")
                && rest.chars().all(|c| c == '_' || c.is_digit(radix));
        }
    }
    is_digits(s)
}

fn is_float_literal(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e.trim_start_matches(['+', '-']))),
        None => (lower.as_str(), None),
    };
    if let Some(e) = exponent
        && !is_digits(e)
    {
        return false;
    }
    match mantissa.split_once('.') {
        Some((a, b)) => {
            (a.is_empty() || is_digits(a))
                && (b.is_empty() || is_digits(b))
                && !(a.is_empty() && b.is_empty())
        }
        None => exponent.is_some() && is_digits(mantissa),
    }
}

/// Does `d` (starting with an opening bracket) contain `c` at bracket depth 1,
/// outside strings?
fn top_level_has(d: &str, c: char) -> bool {
    let s = scan(d);
    (0..s.chars.len()).any(|i| s.chars[i] == c && s.kind[i] == Kind::Code && s.depth[i] == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_types() {
        let cases = [
            ("1", Some("int")),
            ("-1_000", Some("int")),
            ("0x1F", Some("int")),
            ("1.5", Some("float")),
            ("1e3", Some("float")),
            ("-.5", Some("float")),
            ("1j", Some("complex")),
            ("'a'", Some("str")),
            ("rb'a'", Some("bytes")),
            ("f\"{x}\"", Some("str")),
            ("None", Some("NoneType")),
            ("True", Some("bool")),
            ("[1, 2]", Some("list")),
            ("{}", Some("dict")),
            ("{'a': 1}", Some("dict")),
            ("{1, 2}", Some("set")),
            ("(1, 2)", Some("tuple")),
            ("(1)", None),
            ("float('nan')", Some("float")),
            ("datetime.datetime(2020, 1, 1)", Some("datetime")),
            ("datetime(2020, 1, 1)", Some("datetime")),
            ("datetime.now()", Some("datetime")),
            ("datetime.date(2020, 1, 1)", Some("date")),
            ("date.today()", Some("date")),
            ("pd.Timestamp('2020')", Some("datetime")),
            ("x + 1", None),
            ("os.environ['X']", None),
        ];
        for (text, want) in cases {
            assert_eq!(infer_type(text), want, "{text}");
        }
    }

    #[test]
    fn comments() {
        assert_eq!(
            parse_comment(" type:int"),
            (Some("int".into()), String::new())
        );
        assert_eq!(
            parse_comment(" type: int Nice variable a"),
            (Some("int".into()), "Nice variable a".into())
        );
        assert_eq!(parse_comment(" type: ignore"), (None, String::new()));
        assert_eq!(parse_comment("  help me "), (None, "help me".into()));
    }
}
