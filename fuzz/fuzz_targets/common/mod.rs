//! Shared by the parameter fuzz targets: prepare merged parameters every way the CLI
//! can (each Esri rendering, declared ArcGIS types, notebook datetimes), render them
//! with every translator, and check the Python output against the hard rule of spec
//! §2.1: reading a literal back gives exactly the value (so no string can break out of
//! its quotes, and no literal holds a raw line break).
#![allow(dead_code)]

use nbexec_params::{
    BashTranslator, EsriRendering, GeoJsonOptions, JuliaTranslator, ParamType, Parameters,
    PythonTranslator, RTranslator, Translator, TypeHints, Value, prepare,
};

/// Prepares `params` with several sets of hints and renders whatever prepares.
pub fn exercise(params: &Parameters) {
    for esri in [
        EsriRendering::Esri,
        EsriRendering::GeoJson,
        EsriRendering::ArcGis,
    ] {
        let hints = TypeHints {
            esri,
            ..TypeHints::default()
        };
        if let Ok((prepared, _)) = prepare(params, &hints) {
            render_and_check(&prepared);
        }
    }
    // Every parameter declared with some ArcGIS type (picked from its name), and
    // every parameter as a notebook datetime.
    let declared = params
        .names()
        .map(|name| {
            let pick = name
                .bytes()
                .fold(name.len(), |a, b| a.wrapping_add(usize::from(b)));
            let ty: ParamType = ParamType::NAMES[pick % ParamType::NAMES.len()]
                .parse()
                .expect("the listed names parse");
            (name.to_owned(), ty)
        })
        .collect();
    let hints = TypeHints {
        declared,
        esri: EsriRendering::GeoJson,
        geojson: GeoJsonOptions::with_id_field("id"),
        ..TypeHints::default()
    };
    if let Ok((prepared, _)) = prepare(params, &hints) {
        render_and_check(&prepared);
    }
    let hints = TypeHints {
        notebook_datetimes: params.names().map(str::to_owned).collect(),
        esri: EsriRendering::ArcGis,
        ..TypeHints::default()
    };
    if let Ok((prepared, _)) = prepare(params, &hints) {
        render_and_check(&prepared);
    }
}

/// Renders with every translator (none may panic) and checks the Python cell.
pub fn render_and_check(prepared: &[(String, Value)]) {
    let py = PythonTranslator;
    let cell = py
        .render(prepared, "Parameters")
        .unwrap_or_else(|e| panic!("Python rendering failed for valid names: {e}"));
    let preamble = py.preamble(prepared).len();
    let lines: Vec<&str> = cell.split('\n').collect();
    // "# Parameters", the preamble, one line per parameter, and "" after the last '\n'.
    assert_eq!(
        lines.len(),
        1 + preamble + prepared.len() + 1,
        "a literal spans lines:\n{cell}"
    );
    assert!(!cell.contains('\r'), "raw carriage return in:\n{cell}");
    for ((name, value), line) in prepared.iter().zip(&lines[1 + preamble..]) {
        let literal = py
            .literal_in_cell(name, value, prepared)
            .expect("Python literals never fail");
        assert_eq!(*line, format!("{name} = {literal}"));
        check_python_literal(value, &literal);
    }
    for t in [
        &RTranslator as &dyn Translator,
        &JuliaTranslator,
        &BashTranslator,
    ] {
        let _ = t.render(prepared, "Parameters");
    }
}

/// The hard rule, checked by reading `literal` back as Python's `ast.literal_eval`
/// would (for the forms nbexec writes) and comparing with `value`.
pub fn check_python_literal(value: &Value, literal: &str) {
    if let Some(bad) = literal.chars().find(|c| !(' '..='~').contains(c)) {
        panic!("literal has a raw {bad:?} (only printable ASCII is allowed): {literal}");
    }
    if let Value::Str(_) = value {
        assert!(
            literal.len() >= 2 && literal.starts_with('"') && literal.ends_with('"'),
            "string literal not in quotes: {literal}"
        );
    }
    let mut p = LitParser {
        s: literal.as_bytes(),
        i: 0,
    };
    let read = p
        .value()
        .unwrap_or_else(|e| panic!("literal does not read back ({e}): {literal}"));
    assert!(
        p.i == p.s.len(),
        "trailing text after the literal at byte {}: {literal}",
        p.i
    );
    if let Err(e) = same(value, &read) {
        panic!("literal reads back as a different value ({e}): {literal}\nvalue: {value:?}");
    }
}

/// What a Python literal reads back as.
#[derive(Debug)]
enum Lit {
    None,
    Bool(bool),
    Int(String),
    Float(f64),
    Str(String),
    List(Vec<Lit>),
    Dict(Vec<(String, Lit)>),
    /// The literal's text, `__nbexec_datetime.datetime(...)`.
    DateTime(String),
    FeatureSet(Box<Lit>),
}

fn same(v: &Value, l: &Lit) -> Result<(), String> {
    match (v, l) {
        (Value::None, Lit::None) => Ok(()),
        (Value::Bool(a), Lit::Bool(b)) if a == b => Ok(()),
        (Value::Int(a), Lit::Int(b)) if a.as_str() == b => Ok(()),
        (Value::Float(a), Lit::Float(b))
            if a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) =>
        {
            Ok(())
        }
        (Value::Str(a), Lit::Str(b)) if a == b => Ok(()),
        (Value::List(a), Lit::List(b)) if a.len() == b.len() => {
            a.iter().zip(b).try_for_each(|(a, b)| same(a, b))
        }
        (Value::Dict(a), Lit::Dict(b)) if a.len() == b.len() => {
            for (i, ((ka, va), (kb, vb))) in a.iter().zip(b).enumerate() {
                if ka != kb {
                    return Err(format!("key {ka:?} reads back as {kb:?}"));
                }
                if b[..i].iter().any(|(k, _)| k == kb) {
                    return Err(format!("key {kb:?} repeated: Python keeps only the last"));
                }
                same(va, vb)?;
            }
            Ok(())
        }
        (Value::DateTime(dt), Lit::DateTime(text))
            if dt.python_literal("__nbexec_datetime") == *text =>
        {
            Ok(())
        }
        (Value::FeatureSet(a), Lit::FeatureSet(b)) => same(a, b),
        _ => Err(format!("{} vs {l:?}", v.kind())),
    }
}

struct LitParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl LitParser<'_> {
    fn eat(&mut self, token: &str) -> bool {
        if self.s[self.i..].starts_with(token.as_bytes()) {
            self.i += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), String> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(format!("expected {token:?} at byte {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Lit, String> {
        // Where a parameter named `float` shadows the builtin.
        self.eat("__nbexec_builtins.");
        for (token, lit) in [
            ("None", Lit::None),
            ("True", Lit::Bool(true)),
            ("False", Lit::Bool(false)),
            ("float('nan')", Lit::Float(f64::NAN)),
            ("float('inf')", Lit::Float(f64::INFINITY)),
            ("float('-inf')", Lit::Float(f64::NEG_INFINITY)),
        ] {
            if self.eat(token) {
                return Ok(lit);
            }
        }
        if self.eat("__nbexec_FeatureSet.from_dict(") {
            let inner = self.value()?;
            self.expect(")")?;
            return Ok(Lit::FeatureSet(Box::new(inner)));
        }
        let start = self.i;
        if self.eat("__nbexec_datetime.datetime(") {
            // Up to the matching parenthesis (an offset nests `timezone(timedelta(...))`).
            let mut depth = 1;
            while depth > 0 {
                match self.s.get(self.i) {
                    Some(b'(') => depth += 1,
                    Some(b')') => depth -= 1,
                    Some(_) => {}
                    None => return Err("unclosed datetime".into()),
                }
                self.i += 1;
            }
            let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
            return Ok(Lit::DateTime(text));
        }
        match self.s.get(self.i) {
            Some(b'"') => self.string().map(Lit::Str),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                if !self.eat("]") {
                    loop {
                        items.push(self.value()?);
                        if self.eat("]") {
                            break;
                        }
                        self.expect(", ")?;
                    }
                }
                Ok(Lit::List(items))
            }
            Some(b'{') => {
                self.i += 1;
                let mut entries = Vec::new();
                if !self.eat("}") {
                    loop {
                        let k = self.string()?;
                        self.expect(": ")?;
                        entries.push((k, self.value()?));
                        if self.eat("}") {
                            break;
                        }
                        self.expect(", ")?;
                    }
                }
                Ok(Lit::Dict(entries))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(format!("unexpected text at byte {}", self.i)),
        }
    }

    /// An int (`-?(0|[1-9][0-9]*)`: Python 3 has no leading zeros) or a float repr.
    fn number(&mut self) -> Result<Lit, String> {
        let start = self.i;
        self.eat("-");
        let mut prev = 0u8;
        while let Some(&b) = self.s.get(self.i) {
            let ok = b.is_ascii_digit()
                || b == b'.'
                || b == b'e'
                || ((b == b'+' || b == b'-') && prev == b'e');
            if !ok {
                break;
            }
            prev = b;
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII");
        if text.contains(['.', 'e']) {
            let digits_before_e = text.split('e').next().unwrap_or_default();
            if !digits_before_e.bytes().any(|b| b.is_ascii_digit()) {
                return Err(format!("bad float {text:?}"));
            }
            text.parse::<f64>()
                .map(Lit::Float)
                .map_err(|e| format!("bad float {text:?}: {e}"))
        } else {
            let digits = text.strip_prefix('-').unwrap_or(text);
            if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
                return Err(format!("bad int {text:?}"));
            }
            Ok(Lit::Int(text.to_owned()))
        }
    }

    /// A double-quoted Python string with the escapes `unicode_escape` writes.
    fn string(&mut self) -> Result<String, String> {
        self.expect("\"")?;
        let mut out = String::new();
        loop {
            let Some(&b) = self.s.get(self.i) else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            match b {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err("backslash at the end".into());
                    };
                    self.i += 1;
                    let hex = |p: &mut Self, n: usize| -> Result<char, String> {
                        let digits =
                            p.s.get(p.i..p.i + n)
                                .and_then(|d| std::str::from_utf8(d).ok())
                                .ok_or("short escape")?;
                        p.i += n;
                        u32::from_str_radix(digits, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("bad escape digits {digits:?}"))
                    };
                    out.push(match e {
                        b'\\' => '\\',
                        b'"' => '"',
                        b'\'' => '\'',
                        b't' => '\t',
                        b'n' => '\n',
                        b'r' => '\r',
                        b'x' => hex(self, 2)?,
                        b'u' => hex(self, 4)?,
                        b'U' => hex(self, 8)?,
                        other => return Err(format!("escape \\{} not expected", other as char)),
                    });
                }
                b' '..=b'~' => out.push(b as char),
                other => return Err(format!("raw byte {other:#x} in a string")),
            }
        }
    }
}

/// Standard base64 with padding (for feeding arbitrary bytes to `-b`).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
