//! Validation against the official nbformat v4 JSON schemas.
//!
//! The schemas are Jupyter's own (`schema/nbformat.v4.*.schema.json`, copied unchanged
//! from Python nbformat 5.11.1; BSD 3-Clause licence, Copyright (c) 2001-2015 IPython
//! Development Team, (c) 2015- Jupyter Development Team: see `schema/LICENSE`).
//!
//! They are interpreted by a small JSON Schema draft-04 validator that implements
//! exactly the keywords and regular expressions those files use (a test checks every
//! keyword and pattern in them), with Python's semantics: `re.search`, `$` matching
//! before a final newline, integers that are not floats, `1 == 1.0`. A general
//! JSON Schema crate would bring a regex engine and some sixty crates for that.
//!
//! Messages follow Python nbformat's `better_validation_error`: a cell or output that
//! matches none of the `oneOf` branches is checked against the branch its `cell_type`
//! or `output_type` names, so the message says what is wrong with it.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::model::{Cell, Notebook};
use crate::read::NEWEST_MINOR;

/// One problem found by [`validate`], naming the cell and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationIssue {
    /// Where: the object a key is missing from or unexpected in (`cells[2]`), else the
    /// offending value (`cells[3].outputs[0].execution_count`); `notebook` for the top.
    pub path: String,
    /// What is wrong, naming the key where the path does not (`missing required key
    /// 'source'`).
    pub message: String,
}

impl std::fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Checks the notebook against the nbformat v4 schema of its minor version, and (from
/// 4.5) that cell ids are unique, as Python's `nbformat.validator.isvalid` does.
///
/// Minors above 4.5 are checked as Python checks them: against the 4.5 schema with
/// unknown keys, cell types and output types allowed. An empty result means valid.
///
/// ```
/// let mut nb = nbexec_format::Notebook::new();
/// nb.cells_mut().push(nbexec_format::Cell::new_code("1 + 1"));
/// nb.cells_mut()[0].set_id(Some("a1".into()));
/// assert!(nbexec_format::validate(&nb).is_empty());
///
/// nb.cells_mut()[0].as_map_mut().remove("source");
/// let issues = nbexec_format::validate(&nb);
/// assert_eq!(issues[0].to_string(), "cells[0]: missing required key 'source'");
/// ```
pub fn validate(nb: &Notebook) -> Vec<ValidationIssue> {
    let (_, minor) = nb.nbformat();
    let schema = schemas().for_minor(minor);
    let mut checker = Checker {
        root: schema,
        issues: Vec::new(),
        path: String::new(),
        silent: 0,
        failures: 0,
    };
    checker.check(Inst::Notebook(nb), schema);
    let mut issues = checker.issues;
    // A key can match both `properties` and `patternProperties` and fail both alike.
    let mut seen = std::collections::HashSet::new();
    issues.retain(|i| seen.insert((i.path.clone(), i.message.clone())));
    if nb.has_cell_ids() {
        duplicate_ids(nb.cells(), &mut issues);
    }
    issues
}

/// The Python nbformat check that no schema can express.
fn duplicate_ids(cells: &[Cell], issues: &mut Vec<ValidationIssue>) {
    let mut seen = std::collections::HashMap::with_capacity(cells.len());
    for (index, cell) in cells.iter().enumerate() {
        let Some(id) = cell.as_map().get("id") else {
            continue;
        };
        // Python compares the values, whatever their type.
        match seen.entry(id.to_string()) {
            std::collections::hash_map::Entry::Occupied(first) => {
                issues.push(ValidationIssue {
                    path: format!("cells[{index}].id"),
                    message: format!(
                        "duplicate cell id {} (also cells[{}])",
                        short(id),
                        first.get()
                    ),
                });
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(index);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// The schemas

const SCHEMA_TEXTS: [&str; 6] = [
    include_str!("../schema/nbformat.v4.0.schema.json"),
    include_str!("../schema/nbformat.v4.1.schema.json"),
    include_str!("../schema/nbformat.v4.2.schema.json"),
    include_str!("../schema/nbformat.v4.3.schema.json"),
    include_str!("../schema/nbformat.v4.4.schema.json"),
    include_str!("../schema/nbformat.v4.5.schema.json"),
];

struct Schemas {
    by_minor: Vec<Value>,
    /// The newest schema relaxed as Python relaxes it for notebooks from the future.
    future: Value,
}

impl Schemas {
    fn for_minor(&self, minor: u64) -> &Value {
        match usize::try_from(minor) {
            Ok(m) if m < self.by_minor.len() => &self.by_minor[m],
            _ => &self.future,
        }
    }
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let by_minor: Vec<Value> = SCHEMA_TEXTS
            .iter()
            .map(|text| serde_json::from_str(text).expect("embedded nbformat schema is JSON"))
            .collect();
        debug_assert_eq!(by_minor.len() as u64, NEWEST_MINOR + 1);
        let mut future = by_minor[by_minor.len() - 1].clone();
        relax_for_future_minor(&mut future);
        Schemas { by_minor, future }
    })
}

/// Python nbformat's `_relax_additional_properties` and `_allow_undefined`.
fn relax_for_future_minor(schema: &mut Value) {
    fn relax(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    if key == "additionalProperties" {
                        *value = Value::Bool(true);
                    } else {
                        relax(value);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(relax),
            _ => {}
        }
    }
    relax(schema);
    for (def, extra) in [
        ("cell", "#/definitions/unrecognized_cell"),
        ("output", "#/definitions/unrecognized_output"),
    ] {
        if let Some(Value::Array(branches)) =
            schema.pointer_mut(&format!("/definitions/{def}/oneOf"))
        {
            let mut r = Map::new();
            r.insert("$ref".into(), Value::from(extra));
            branches.push(Value::Object(r));
        }
    }
}

// ---------------------------------------------------------------------------------
// What is checked: JSON values, and the notebook model's own pieces, seen as JSON
// without building a copy of the notebook.

#[derive(Clone, Copy)]
enum Inst<'a> {
    Value(&'a Value),
    /// A cell's raw map.
    Object(&'a Map<String, Value>),
    Notebook(&'a Notebook),
    Cells(&'a [Cell]),
}

/// The JSON type of an instance, with draft-04's split of numbers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Integer,
    /// A float (including Python's `NaN` and `Infinity`).
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    fn with_article(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "a boolean",
            Kind::Integer => "an integer",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }

    /// Does draft-04 `"type": name` accept this kind?
    fn is(self, name: &str) -> bool {
        match name {
            "null" => self == Kind::Null,
            "boolean" => self == Kind::Boolean,
            "integer" => self == Kind::Integer,
            "number" => matches!(self, Kind::Integer | Kind::Number),
            "string" => self == Kind::String,
            "array" => self == Kind::Array,
            "object" => self == Kind::Object,
            // An unknown type name accepts nothing, as in Python's jsonschema.
            _ => false,
        }
    }
}

/// As Python's `json.loads` sees it: an int has no fraction, exponent or special name.
fn is_integer_text(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Boolean,
        Value::Number(n) if is_integer_text(n.as_str()) => Kind::Integer,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

impl<'a> Inst<'a> {
    fn kind(self) -> Kind {
        match self {
            Inst::Value(v) => kind_of(v),
            Inst::Object(_) | Inst::Notebook(_) => Kind::Object,
            Inst::Cells(_) => Kind::Array,
        }
    }

    fn value(self) -> Option<&'a Value> {
        match self {
            Inst::Value(v) => Some(v),
            _ => None,
        }
    }

    fn get(self, key: &str) -> Option<Inst<'a>> {
        match self {
            Inst::Value(Value::Object(map)) | Inst::Object(map) => map.get(key).map(Inst::Value),
            Inst::Notebook(nb) if key == "cells" => Some(Inst::Cells(nb.cells())),
            Inst::Notebook(nb) => nb.top_level().get(key).map(Inst::Value),
            _ => None,
        }
    }

    /// An object's entries, sorted by key (the order they are written in).
    fn entries(self) -> Vec<(&'a str, Inst<'a>)> {
        let mut entries: Vec<(&'a str, Inst<'a>)> = match self {
            Inst::Value(Value::Object(map)) | Inst::Object(map) => map
                .iter()
                .map(|(k, v)| (k.as_str(), Inst::Value(v)))
                .collect(),
            Inst::Notebook(nb) => nb
                .top_level()
                .iter()
                .map(|(k, v)| (k.as_str(), Inst::Value(v)))
                .chain(std::iter::once(("cells", Inst::Cells(nb.cells()))))
                .collect(),
            _ => Vec::new(),
        };
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries
    }

    fn items(self) -> Vec<Inst<'a>> {
        match self {
            Inst::Value(Value::Array(items)) => items.iter().map(Inst::Value).collect(),
            Inst::Cells(cells) => cells.iter().map(|c| Inst::Object(c.as_map())).collect(),
            _ => Vec::new(),
        }
    }

    /// Equal to a schema's `enum` value? (Only plain values can be.)
    fn equals(self, other: &Value) -> bool {
        match self {
            Inst::Value(v) => json_eq(v, other),
            Inst::Object(map) => matches!(other, Value::Object(o) if map_eq(map, o)),
            Inst::Notebook(_) | Inst::Cells(_) => false,
        }
    }

    /// For messages: the kind, and a short rendering of scalars.
    fn describe(self) -> String {
        match self.value() {
            Some(v @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => {
                format!("{} {}", self.kind().with_article(), short(v))
            }
            _ => self.kind().with_article().to_owned(),
        }
    }
}

/// Python's `==` on JSON values: `1 == 1.0`, but `True` is not `1` (jsonschema's rule).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_str() == y.as_str()
                || match (x.as_str().parse::<f64>(), y.as_str().parse::<f64>()) {
                    (Ok(x), Ok(y)) => x == y,
                    _ => false,
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => map_eq(x, y),
        _ => a == b,
    }
}

fn map_eq(x: &Map<String, Value>, y: &Map<String, Value>) -> bool {
    x.len() == y.len()
        && x.iter()
            .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
}

/// A scalar as JSON, cut short for messages.
fn short(v: &Value) -> String {
    const LIMIT: usize = 60;
    let text = match v {
        Value::Array(_) => return "an array".into(),
        Value::Object(_) => return "an object".into(),
        other => other.to_string(),
    };
    if text.chars().count() <= LIMIT {
        return text;
    }
    let mut cut: String = text.chars().take(LIMIT).collect();
    cut.push('…');
    if text.ends_with('"') {
        cut.push('"');
    }
    cut
}

// ---------------------------------------------------------------------------------
// The draft-04 subset

/// The keywords this validator implements; a test checks the schemas use no others.
#[cfg(test)]
const KEYWORDS: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "not",
    "oneOf",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "items",
    "uniqueItems",
    "required",
    "properties",
    "patternProperties",
    "additionalProperties",
];

/// Python's `re.search(pattern, s)` for the patterns the schemas use, or `None` for
/// any other pattern (which then accepts everything; a test keeps this unreachable).
///
/// `.` does not match `\n`, and `$` matches at the end or before a final `\n`.
fn search(pattern: &str, s: &str) -> Option<bool> {
    let before_final_newline = s.strip_suffix('\n').unwrap_or(s);
    Some(match pattern {
        ".*" => true,
        "^.*$" => !before_final_newline.contains('\n'),
        "^.+$" => !before_final_newline.is_empty() && !before_final_newline.contains('\n'),
        // `[^,]` matches newlines too, so a final newline needs no special case.
        "^[^,]+$" => !s.is_empty() && !s.contains(','),
        "^[a-zA-Z0-9-_]+$" => {
            !before_final_newline.is_empty()
                && before_final_newline
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
        "^application/(.*\\+)?json$" => {
            let t = before_final_newline;
            let (prefix, suffix) = ("application/", "json");
            t.len() >= prefix.len() + suffix.len()
                && t.starts_with(prefix)
                && t.ends_with(suffix)
                && {
                    let middle = &t[prefix.len()..t.len() - suffix.len()];
                    middle.is_empty() || middle.strip_suffix('+').is_some_and(|m| !m.contains('\n'))
                }
        }
        _ => return None,
    })
}

/// The schema that accepts everything (an unresolvable `$ref` checks nothing).
static ANYTHING: Value = Value::Bool(true);

struct Checker<'s> {
    /// The whole schema, for `$ref`.
    root: &'s Value,
    issues: Vec<ValidationIssue>,
    /// Where the checker is, as written in messages (`cells[3].outputs[0]`).
    path: String,
    /// Above zero while trying `oneOf` branches: count failures, build no messages.
    silent: usize,
    failures: usize,
}

impl<'s> Checker<'s> {
    fn fail(&mut self, message: impl FnOnce() -> String) {
        self.failures += 1;
        if self.silent == 0 {
            let path = if self.path.is_empty() {
                "notebook".to_owned()
            } else {
                self.path.clone()
            };
            self.issues.push(ValidationIssue {
                path,
                message: message(),
            });
        }
    }

    fn push_key(&mut self, key: &str) -> usize {
        let len = self.path.len();
        let plain = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if plain {
            if len > 0 {
                self.path.push('.');
            }
            self.path.push_str(key);
        } else {
            self.path.push('[');
            self.path.push_str(&Value::from(key).to_string());
            self.path.push(']');
        }
        len
    }

    fn push_index(&mut self, index: usize) -> usize {
        let len = self.path.len();
        self.path.push('[');
        self.path.push_str(&index.to_string());
        self.path.push(']');
        len
    }

    /// Follows `$ref`s (`#/definitions/...`) to the schema they name.
    fn resolve(&self, mut schema: &'s Value) -> &'s Value {
        // A bound, in case a schema refers to itself.
        for _ in 0..32 {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(r) => match r.strip_prefix('#').and_then(|p| self.root.pointer(p)) {
                    Some(target) => schema = target,
                    None => return &ANYTHING,
                },
                None => return schema,
            }
        }
        schema
    }

    /// Does `inst` satisfy `schema`? Reports nothing.
    fn satisfies(&mut self, inst: Inst<'_>, schema: &'s Value) -> bool {
        let before = self.failures;
        self.silent += 1;
        self.check(inst, schema);
        self.silent -= 1;
        self.failures == before
    }

    fn check(&mut self, inst: Inst<'_>, schema: &'s Value) {
        let schema = self.resolve(schema);
        let Value::Object(s) = schema else {
            return;
        };
        if let Some(types) = s.get("type") {
            let kind = inst.kind();
            let ok = match types {
                Value::String(t) => kind.is(t),
                Value::Array(ts) => ts.iter().any(|t| t.as_str().is_some_and(|t| kind.is(t))),
                _ => true,
            };
            if !ok {
                self.fail(|| {
                    format!(
                        "expected {}, found {}",
                        describe_type(types),
                        inst.describe()
                    )
                });
                // Nothing else about a value of the wrong type is worth saying.
                return;
            }
        }
        if let Some(Value::Array(options)) = s.get("enum")
            && !options.iter().any(|o| inst.equals(o))
        {
            self.fail(|| {
                format!(
                    "expected {}, found {}",
                    one_of_values(options),
                    inst.describe()
                )
            });
        }
        if let Some(not) = s.get("not")
            && self.satisfies(inst, not)
        {
            let what = describe(self, not);
            self.fail(|| format!("must not be {what}, found {}", inst.describe()));
        }
        if let Some(Value::Array(branches)) = s.get("oneOf") {
            self.one_of(inst, branches);
        }
        match inst.kind() {
            Kind::String => self.string(inst, s),
            Kind::Integer | Kind::Number => self.number(inst, s),
            Kind::Array => self.array(inst, s),
            Kind::Object => self.object(inst, s),
            Kind::Null | Kind::Boolean => {}
        }
    }

    fn string(&mut self, inst: Inst<'_>, s: &'s Map<String, Value>) {
        let Some(text) = inst.value().and_then(Value::as_str) else {
            return;
        };
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
            && search(pattern, text) == Some(false)
        {
            self.fail(|| format!("{} does not match the pattern {pattern}", inst.describe()));
        }
        let min = s.get("minLength").and_then(Value::as_u64);
        let max = s.get("maxLength").and_then(Value::as_u64);
        if min.is_some() || max.is_some() {
            // Python counts code points.
            let len = text.chars().count() as u64;
            if let Some(min) = min.filter(|m| len < *m) {
                self.fail(|| format!("expected at least {min} character(s), found {len}"));
            }
            if let Some(max) = max.filter(|m| len > *m) {
                self.fail(|| format!("expected at most {max} characters, found {len}"));
            }
        }
    }

    fn number(&mut self, inst: Inst<'_>, s: &'s Map<String, Value>) {
        let Some(Value::Number(n)) = inst.value() else {
            return;
        };
        // Comparisons with NaN are false, so NaN passes both, as in Python.
        let Ok(x) = n.as_str().parse::<f64>() else {
            return;
        };
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && x < min
        {
            self.fail(|| format!("expected at least {}, found {n}", s["minimum"]));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && x > max
        {
            self.fail(|| format!("expected at most {}, found {n}", s["maximum"]));
        }
    }

    fn array(&mut self, inst: Inst<'_>, s: &'s Map<String, Value>) {
        let items_schema = s.get("items");
        let unique = s.get("uniqueItems") == Some(&Value::Bool(true));
        if items_schema.is_none() && !unique {
            return;
        }
        let items = inst.items();
        if let Some(items_schema) = items_schema {
            for (index, item) in items.iter().enumerate() {
                let schema = match items_schema {
                    // Draft-04 tuple form: position by position, the rest unchecked.
                    Value::Array(per_position) => match per_position.get(index) {
                        Some(schema) => schema,
                        None => break,
                    },
                    schema => schema,
                };
                let len = self.push_index(index);
                self.check(*item, schema);
                self.path.truncate(len);
            }
        }
        if unique {
            let values: Vec<&Value> = items.iter().filter_map(|i| i.value()).collect();
            'outer: for (j, b) in values.iter().enumerate() {
                for (i, a) in values[..j].iter().enumerate() {
                    if json_eq(a, b) {
                        self.fail(|| {
                            format!(
                                "items [{i}] and [{j}] are equal ({}); items must be unique",
                                short(a)
                            )
                        });
                        break 'outer;
                    }
                }
            }
        }
    }

    fn object(&mut self, inst: Inst<'_>, s: &'s Map<String, Value>) {
        if let Some(Value::Array(required)) = s.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if inst.get(key).is_none() {
                    self.fail(|| format!("missing required key '{key}'"));
                }
            }
        }
        let properties = s.get("properties").and_then(Value::as_object);
        let patterns = s.get("patternProperties").and_then(Value::as_object);
        let additional = s.get("additionalProperties");
        if properties.is_none() && patterns.is_none() && additional.is_none() {
            return;
        }
        for (key, value) in inst.entries() {
            let mut matched = false;
            if let Some(schema) = properties.and_then(|p| p.get(key)) {
                matched = true;
                let len = self.push_key(key);
                self.check(value, schema);
                self.path.truncate(len);
            }
            for (pattern, schema) in patterns.into_iter().flatten() {
                if search(pattern, key) != Some(false) {
                    matched = true;
                    let len = self.push_key(key);
                    self.check(value, schema);
                    self.path.truncate(len);
                }
            }
            if matched {
                continue;
            }
            match additional {
                Some(Value::Bool(false)) => self.fail(|| {
                    let allowed: Vec<&str> = properties
                        .map(|p| {
                            let mut keys: Vec<&str> = p.keys().map(String::as_str).collect();
                            keys.sort_unstable();
                            keys
                        })
                        .unwrap_or_default();
                    format!("unexpected key '{key}' (allowed: {})", allowed.join(", "))
                }),
                Some(schema @ Value::Object(_)) => {
                    let len = self.push_key(key);
                    self.check(value, schema);
                    self.path.truncate(len);
                }
                _ => {}
            }
        }
    }

    /// `oneOf`: exactly one branch must hold.
    fn one_of(&mut self, inst: Inst<'_>, branches: &'s [Value]) {
        if let Some(disc) = self.discriminator(branches)
            && inst.kind() == Kind::Object
        {
            return self.one_of_by_type(inst, &disc);
        }
        let holding = branches.iter().filter(|b| self.satisfies(inst, b)).count();
        match holding {
            1 => {}
            0 => {
                // When the value's type fits one branch only, that branch's own
                // complaint is the precise one (`source[2]: expected a string`).
                let kind = inst.kind();
                let fitting: Vec<&'s Value> = branches
                    .iter()
                    .filter(|b| type_accepts(self.resolve(b), kind))
                    .collect();
                if let [only] = fitting[..] {
                    self.check(inst, only);
                } else {
                    let options: Vec<String> = branches.iter().map(|b| describe(self, b)).collect();
                    self.fail(|| {
                        format!(
                            "expected {}, found {}",
                            options.join(" or "),
                            inst.describe()
                        )
                    });
                }
            }
            _ => self.fail(|| {
                format!("matches {holding} of the allowed forms; it must match exactly one")
            }),
        }
    }

    /// Branches told apart by one required key with a fixed value (`cell_type`,
    /// `output_type`), and at most one catch-all branch whose value is `not` any
    /// of those.
    fn discriminator(&self, branches: &'s [Value]) -> Option<Discriminator<'s>> {
        let resolved: Vec<&'s Value> = branches.iter().map(|b| self.resolve(b)).collect();
        let first = resolved.first()?.get("properties")?.as_object()?;
        'keys: for key in first.keys() {
            let mut fixed = Vec::new();
            let mut catch_all = None;
            for branch in &resolved {
                let required = branch
                    .get("required")
                    .and_then(Value::as_array)
                    .is_some_and(|r| r.iter().any(|k| k.as_str() == Some(key)));
                let Some(property) = branch.get("properties").and_then(|p| p.get(key)) else {
                    continue 'keys;
                };
                let property = self.resolve(property);
                match property.get("enum").and_then(Value::as_array) {
                    Some(values) if values.len() == 1 && required => {
                        fixed.push((&values[0], *branch))
                    }
                    _ if property.get("not").is_some() && required && catch_all.is_none() => {
                        catch_all = Some(*branch)
                    }
                    _ => continue 'keys,
                }
            }
            return Some(Discriminator {
                key,
                fixed,
                catch_all,
            });
        }
        None
    }

    fn one_of_by_type(&mut self, inst: Inst<'_>, disc: &Discriminator<'s>) {
        let key = disc.key;
        let Some(value) = inst.get(key) else {
            return self.fail(|| format!("missing required key '{key}'"));
        };
        if let Some((_, branch)) = disc.fixed.iter().find(|(v, _)| value.equals(v)) {
            return self.check(inst, branch);
        }
        if let Some(branch) = disc.catch_all {
            return self.check(inst, branch);
        }
        let values: Vec<&Value> = disc.fixed.iter().map(|(v, _)| *v).collect();
        let found = value.value().map_or_else(|| "an object".to_owned(), short);
        self.fail(|| format!("'{key}' is {found}, expected {}", one_of_refs(&values)));
    }
}

struct Discriminator<'s> {
    key: &'s str,
    /// Each branch with the value of the key that selects it.
    fixed: Vec<(&'s Value, &'s Value)>,
    catch_all: Option<&'s Value>,
}

fn type_accepts(schema: &Value, kind: Kind) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => kind.is(t),
        Some(Value::Array(ts)) => ts.iter().any(|t| t.as_str().is_some_and(|t| kind.is(t))),
        _ => true,
    }
}

fn type_name(t: &str) -> String {
    match t {
        "null" => "null".into(),
        "boolean" => "a boolean".into(),
        "integer" => "an integer".into(),
        "number" => "a number".into(),
        "string" => "a string".into(),
        "array" => "an array".into(),
        "object" => "an object".into(),
        other => format!("type '{other}'"),
    }
}

fn describe_type(types: &Value) -> String {
    match types {
        Value::String(t) => type_name(t),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(type_name)
            .collect::<Vec<_>>()
            .join(" or "),
        other => other.to_string(),
    }
}

fn one_of_values(options: &[Value]) -> String {
    let refs: Vec<&Value> = options.iter().collect();
    one_of_refs(&refs)
}

fn one_of_refs(options: &[&Value]) -> String {
    let shown: Vec<String> = options.iter().map(|o| short(o)).collect();
    match shown.as_slice() {
        [only] => only.clone(),
        _ => format!("one of {}", shown.join(", ")),
    }
}

/// What a schema asks for, in words (`an array of strings`).
fn describe(checker: &Checker<'_>, schema: &Value) -> String {
    let schema = checker.resolve(schema);
    if let Some(Value::Array(options)) = schema.get("enum") {
        return one_of_values(options);
    }
    match schema.get("type") {
        Some(Value::String(t)) if t == "array" => match schema.get("items") {
            Some(items) => match checker.resolve(items).get("type") {
                Some(Value::String(t)) => format!("an array of {}s", t),
                _ => "an array".into(),
            },
            None => "an array".into(),
        },
        Some(types) => describe_type(types),
        None => "a value of the allowed form".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a schema the way the validator does, collecting the keywords and the
    /// patterns it meets.
    fn walk<'a>(schema: &'a Value, keywords: &mut Vec<&'a str>, patterns: &mut Vec<&'a str>) {
        let Value::Object(map) = schema else { return };
        for (key, value) in map {
            keywords.push(key);
            match key.as_str() {
                "properties" => {
                    for sub in value.as_object().into_iter().flat_map(|m| m.values()) {
                        walk(sub, keywords, patterns);
                    }
                }
                "definitions" => {
                    for (name, sub) in value.as_object().into_iter().flatten() {
                        // `misc` is a group of definitions, not a schema.
                        match (name.as_str(), sub) {
                            ("misc", Value::Object(group)) => {
                                group.values().for_each(|s| walk(s, keywords, patterns))
                            }
                            _ => walk(sub, keywords, patterns),
                        }
                    }
                }
                "patternProperties" => {
                    for (pattern, sub) in value.as_object().into_iter().flatten() {
                        patterns.push(pattern);
                        walk(sub, keywords, patterns);
                    }
                }
                "pattern" => patterns.extend(value.as_str()),
                "oneOf" => value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .for_each(|s| walk(s, keywords, patterns)),
                "not" | "items" | "additionalProperties" => walk(value, keywords, patterns),
                _ => {}
            }
        }
    }

    #[test]
    fn the_schemas_use_only_implemented_keywords_and_patterns() {
        // Not keywords, or keywords nothing needs: annotations, the schema's own
        // bookkeeping, and misplaced property names in the official files ("item",
        // "source_hidden" and "outputs_hidden" sit where keywords go and do nothing).
        let ignored = [
            "$schema",
            "description",
            "definitions",
            "item",
            "source_hidden",
            "outputs_hidden",
        ];
        for (minor, text) in SCHEMA_TEXTS.iter().enumerate() {
            let schema: Value = serde_json::from_str(text).unwrap();
            let (mut keywords, mut patterns) = (Vec::new(), Vec::new());
            walk(&schema, &mut keywords, &mut patterns);
            for k in keywords {
                let known = KEYWORDS.contains(&k) || ignored.contains(&k);
                assert!(known, "4.{minor}: keyword {k:?} not implemented");
            }
            for p in patterns {
                assert!(
                    search(p, "").is_some(),
                    "4.{minor}: pattern {p:?} not implemented"
                );
            }
        }
    }

    #[test]
    fn every_ref_resolves() {
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                        out.push(r);
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        for schema in schemas().by_minor.iter().chain([&schemas().future]) {
            let mut found = Vec::new();
            refs(schema, &mut found);
            assert!(!found.is_empty());
            for r in found {
                assert!(schema.pointer(&r[1..]).is_some(), "unresolved {r}");
            }
        }
    }

    #[test]
    fn patterns_follow_python_re_search() {
        let cases: &[(&str, &str, bool)] = &[
            ("^.+$", "x", true),
            ("^.+$", "x\n", true),
            ("^.+$", "", false),
            ("^.+$", "\n", false),
            ("^.+$", "a\nb", false),
            ("^.*$", "", true),
            ("^.*$", "a\nb", false),
            ("^[^,]+$", "a\nb", true),
            ("^[^,]+$", "a,b", false),
            ("^[^,]+$", "", false),
            ("^[a-zA-Z0-9-_]+$", "ab-_9Z", true),
            ("^[a-zA-Z0-9-_]+$", "ab\n", true),
            ("^[a-zA-Z0-9-_]+$", "a b", false),
            ("^[a-zA-Z0-9-_]+$", "é", false),
            ("^application/(.*\\+)?json$", "application/json", true),
            ("^application/(.*\\+)?json$", "application/vnd.x+json", true),
            ("^application/(.*\\+)?json$", "application/+json", true),
            ("^application/(.*\\+)?json$", "application/json\n", true),
            ("^application/(.*\\+)?json$", "application/xjson", false),
            ("^application/(.*\\+)?json$", "application/a\n+json", false),
            ("^application/(.*\\+)?json$", "text/json", false),
        ];
        for (pattern, s, want) in cases {
            assert_eq!(search(pattern, s), Some(*want), "{pattern} on {s:?}");
        }
    }
}
