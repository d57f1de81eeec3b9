//! Parameter sources and their merge (spec §2): `-b`, `-f`, `-y`, `-j`, `-p`, `-r`,
//! merged in that order whatever order they were given in; later wins, a key keeps
//! the position where it first appeared, merging is shallow.

use base64::Engine as _;

use crate::coerce::{check_name, coerce_papermill};
use crate::error::{Origin, ParamError, Warning};
use crate::value::Value;
use crate::yaml;

/// Merged parameters: names in first-appearance order, each with its last value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parameters {
    entries: Vec<(String, Value)>,
}

impl Parameters {
    /// No parameters.
    pub fn new() -> Parameters {
        Parameters::default()
    }

    /// Sets `name`: a new name goes last, an existing one keeps its place.
    pub fn insert(&mut self, name: impl Into<String>, value: Value) {
        let name = name.into();
        match self.entries.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(name, value)` pairs in merged order.
    pub fn as_slice(&self) -> &[(String, Value)] {
        &self.entries
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The JSON object recorded as `metadata.papermill.parameters` (see
    /// [`Value::to_json`] for NaN and infinity).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.entries
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }
}

impl FromIterator<(String, Value)> for Parameters {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Parameters {
        let mut p = Parameters::new();
        for (k, v) in iter {
            p.insert(k, v);
        }
        p
    }
}

/// How a `-f` file is read, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `.json`: exact JSON types, as `-j`.
    Json,
    /// `.yaml`, `.yml`.
    Yaml,
    /// Anything else: read as YAML (as papermill does) with a warning.
    Other,
}

impl FileFormat {
    /// The format for a path, by its extension (case-insensitive).
    pub fn from_path(path: &str) -> FileFormat {
        let ext = path
            .rsplit_once('.')
            .filter(|(_, ext)| !ext.contains(['/', '\\']))
            .map(|(_, ext)| ext.to_ascii_lowercase());
        match ext.as_deref() {
            Some("json") => FileFormat::Json,
            Some("yaml" | "yml") => FileFormat::Yaml,
            _ => FileFormat::Other,
        }
    }
}

/// The parameter sources of one run, filled by the CLI in any order; [`build`]
/// merges them in the spec's order.
///
/// ```
/// use nbexec_params::{ParameterSources, Value};
/// let mut sources = ParameterSources::new();
/// sources
///     .param("alpha", "0.5")
///     .yaml("alpha: 1\nratio: 2")
///     .json(r#"{"ratio": 3, "label": "x"}"#)
///     .raw("label", "7");
/// let (params, warnings) = sources.build().unwrap();
/// assert!(warnings.is_empty());
/// let names: Vec<_> = params.names().collect();
/// assert_eq!(names, ["alpha", "ratio", "label"]);
/// assert_eq!(params.get("alpha"), Some(&Value::Float(0.5)));
/// assert_eq!(params.get("ratio"), Some(&Value::int(3)));
/// assert_eq!(params.get("label"), Some(&Value::str("7")));
/// ```
///
/// [`build`]: ParameterSources::build
#[derive(Debug, Clone, Default)]
pub struct ParameterSources {
    paths: Option<(String, String)>,
    base64: Vec<String>,
    files: Vec<(String, String)>,
    yaml: Vec<String>,
    json: Vec<String>,
    params: Vec<(String, String)>,
    raw: Vec<(String, String)>,
}

impl ParameterSources {
    pub fn new() -> ParameterSources {
        ParameterSources::default()
    }

    /// `--inject-paths`: `PAPERMILL_INPUT_PATH` and `PAPERMILL_OUTPUT_PATH`, set
    /// before every other source (as papermill does), so they come first.
    pub fn inject_paths(
        &mut self,
        input: impl Into<String>,
        output: impl Into<String>,
    ) -> &mut Self {
        self.paths = Some((input.into(), output.into()));
        self
    }

    /// `-b BASE64_YAML`: base64 of a YAML mapping. Characters outside the base64
    /// alphabet (newlines from `base64`) are ignored, as Python's `b64decode` does.
    pub fn base64_yaml(&mut self, text: impl Into<String>) -> &mut Self {
        self.base64.push(text.into());
        self
    }

    /// `-f FILE`: the caller reads the file; `path` picks the format
    /// ([`FileFormat::from_path`]) and names the file in messages.
    pub fn file(&mut self, path: impl Into<String>, contents: impl Into<String>) -> &mut Self {
        self.files.push((path.into(), contents.into()));
        self
    }

    /// `-y YAML`: a YAML mapping (YAML 1.2; see the [`yaml`](crate::yaml) docs).
    pub fn yaml(&mut self, text: impl Into<String>) -> &mut Self {
        self.yaml.push(text.into());
        self
    }

    /// `-j JSON`: an ArcGIS `notebookParameters` object; exact JSON types, key order
    /// kept.
    pub fn json(&mut self, text: impl Into<String>) -> &mut Self {
        self.json.push(text.into());
        self
    }

    /// `-p NAME VALUE`, with papermill's coercion ([`coerce_papermill`]).
    pub fn param(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// `-r NAME VALUE`: always a string.
    pub fn raw(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.raw.push((name.into(), value.into()));
        self
    }

    /// Parses and merges every source. Errors name the source (and the parameter for
    /// a bad name); warnings are for `-f` files with an unexpected extension.
    pub fn build(&self) -> Result<(Parameters, Vec<Warning>), ParamError> {
        let mut merged = Parameters::new();
        let mut warnings = Vec::new();
        let add = |merged: &mut Parameters, origin: &Origin, name: String, value: Value| {
            check_name(&name).map_err(|problem| ParamError::InvalidName {
                name: name.clone(),
                origin: origin.clone(),
                problem,
            })?;
            merged.insert(name, value);
            Ok::<(), ParamError>(())
        };
        if let Some((input, output)) = &self.paths {
            merged.insert("PAPERMILL_INPUT_PATH", Value::str(input.clone()));
            merged.insert("PAPERMILL_OUTPUT_PATH", Value::str(output.clone()));
        }
        let mut mappings: Vec<(Origin, Option<Value>)> = Vec::new();
        for (i, text) in self.base64.iter().enumerate() {
            let origin = Origin::Base64(i + 1);
            let decoded = decode_base64(text).map_err(|message| ParamError::Base64 {
                origin: origin.clone(),
                message,
            })?;
            let doc = yaml::parse(&decoded).map_err(|message| ParamError::Yaml {
                origin: origin.clone(),
                message,
            })?;
            mappings.push((origin, doc));
        }
        for (path, contents) in &self.files {
            let origin = Origin::File(path.clone());
            let doc = match FileFormat::from_path(path) {
                FileFormat::Json => Some(parse_json(contents, &origin)?),
                format => {
                    if format == FileFormat::Other {
                        warnings.push(Warning::FileExtension { path: path.clone() });
                    }
                    yaml::parse(contents).map_err(|message| ParamError::Yaml {
                        origin: origin.clone(),
                        message,
                    })?
                }
            };
            mappings.push((origin, doc));
        }
        for (i, text) in self.yaml.iter().enumerate() {
            let origin = Origin::Yaml(i + 1);
            let doc = yaml::parse(text).map_err(|message| ParamError::Yaml {
                origin: origin.clone(),
                message,
            })?;
            mappings.push((origin, doc));
        }
        for (i, text) in self.json.iter().enumerate() {
            let origin = Origin::Json(i + 1);
            let doc = parse_json(text, &origin)?;
            mappings.push((origin, Some(doc)));
        }
        for (origin, doc) in mappings {
            match doc {
                None => {}
                Some(Value::Dict(entries)) => {
                    for (name, value) in entries {
                        add(&mut merged, &origin, name, value)?;
                    }
                }
                Some(other) => {
                    return Err(ParamError::NotAMapping {
                        origin,
                        found: other.kind(),
                    });
                }
            }
        }
        for (name, text) in &self.params {
            add(
                &mut merged,
                &Origin::Param,
                name.clone(),
                coerce_papermill(text),
            )?;
        }
        for (name, text) in &self.raw {
            add(
                &mut merged,
                &Origin::Raw,
                name.clone(),
                Value::Str(text.clone()),
            )?;
        }
        Ok((merged, warnings))
    }
}

fn parse_json(text: &str, origin: &Origin) -> Result<Value, ParamError> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|json| Value::from_json(&json))
        .map_err(|e| ParamError::Json {
            origin: origin.clone(),
            message: e.to_string(),
        })
}

fn decode_base64(text: &str) -> Result<String, String> {
    let cleaned: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine
        .decode(cleaned.as_bytes())
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "the decoded text is not UTF-8".to_owned())
}
