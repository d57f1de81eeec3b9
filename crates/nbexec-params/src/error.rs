//! Errors and warnings. Every error names what a person needs to act on it: the
//! parameter, the source it came from, the feature index, the kernel or language.

use std::fmt;

use crate::prepare::ParamType;

/// Where a parameter (or a parse error) came from, in the order sources are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// `--inject-paths` (`PAPERMILL_INPUT_PATH` / `PAPERMILL_OUTPUT_PATH`).
    Paths,
    /// The n-th `-b BASE64_YAML` (1-based).
    Base64(usize),
    /// A `-f FILE`, by the path the caller gave.
    File(String),
    /// The n-th `-y YAML` (1-based).
    Yaml(usize),
    /// The n-th `-j JSON` (1-based).
    Json(usize),
    /// A `-p NAME VALUE`.
    Param,
    /// A `-r NAME VALUE`.
    Raw,
    /// Built by a program through the library (e.g. [`Parameters::insert`](crate::Parameters::insert)).
    Program,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Paths => f.write_str("--inject-paths"),
            Origin::Base64(n) => write!(f, "-b #{n}"),
            Origin::File(path) => write!(f, "-f {path}"),
            Origin::Yaml(n) => write!(f, "-y #{n}"),
            Origin::Json(n) => write!(f, "-j #{n}"),
            Origin::Param => f.write_str("-p"),
            Origin::Raw => f.write_str("-r"),
            Origin::Program => f.write_str("the calling program"),
        }
    }
}

/// Why a parameter name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameProblem {
    /// Not a Python identifier (`x; import os`, `1x`, `a-b`, empty).
    NotIdentifier,
    /// A Python keyword (`class`, `None`, ...).
    Keyword,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameProblem::NotIdentifier => "not a Python identifier",
            NameProblem::Keyword => "a Python keyword",
        })
    }
}

/// Everything that can go wrong turning parameters into an injected cell.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    #[error("invalid parameter name {name:?} (from {origin}): {problem}")]
    InvalidName {
        name: String,
        origin: Origin,
        problem: NameProblem,
    },
    #[error("cannot decode base64 parameters ({origin}): {message}")]
    Base64 { origin: Origin, message: String },
    #[error("invalid YAML parameters ({origin}): {message}")]
    Yaml { origin: Origin, message: String },
    #[error("invalid JSON parameters ({origin}): {message}")]
    Json { origin: Origin, message: String },
    #[error("parameters from {origin} must be a mapping of names to values, not {found}")]
    NotAMapping { origin: Origin, found: &'static str },
    #[error("unknown parameter(s) {}: not assigned in the notebook's parameters cell", quoted(.names))]
    UnknownParameters { names: Vec<String> },
    #[error(
        "no parameter translator for kernel {} or language {} (supported: python, R, julia, bash)",
        opt(.kernel), opt(.language)
    )]
    NoTranslator {
        kernel: Option<String>,
        language: Option<String>,
    },
    #[error("parameter {name:?}: {what} cannot be written in {language}")]
    Unsupported {
        name: String,
        language: &'static str,
        what: String,
    },
    #[error("parameter {name:?} is declared {declared} but the value is {found}")]
    TypeMismatch {
        name: String,
        declared: ParamType,
        found: &'static str,
    },
    /// A value that does not fit the type the notebook declares, with `--strict`
    /// (the message names the parameter, the value and the type).
    #[error("{message}")]
    DeclaredType { name: String, message: String },
    #[error("parameter {name:?} is declared a date: {problem}")]
    Date { name: String, problem: String },
    #[error("parameter {name:?}: {}{problem}", feature.map(|i| format!("feature {i}: ")).unwrap_or_default())]
    Esri {
        name: String,
        feature: Option<usize>,
        problem: String,
    },
    #[error("invalid parameter type {text:?} (expected NAME=TYPE with TYPE one of {})", ParamType::NAMES.join(", "))]
    InvalidParamType { text: String },
    #[error("parameter inspection is not supported for language {language:?} (only Python)")]
    InspectionUnsupported { language: String },
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt(s: &Option<String>) -> String {
    match s {
        Some(s) => format!("'{s}'"),
        None => "(none)".to_owned(),
    }
}

/// Something worth telling the user that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// A parameter the notebook's `parameters` cell does not assign (papermill:
    /// `Passed unknown parameter`).
    UnknownParameter { name: String },
    /// No cell is tagged `parameters`; the injected cell went to the top.
    NoParametersCell,
    /// Parameter names could not be checked: the language has no inspector.
    NamesNotChecked { language: String },
    /// A `-f` file whose extension is not `.json`, `.yaml` or `.yml`; read as YAML.
    FileExtension { path: String },
    /// GeoJSON output kept coordinates of a reference that is neither WGS84 nor Web
    /// Mercator (RFC 7946 expects WGS84).
    SpatialReferenceKept { name: String, reference: String },
    /// A value that does not fit the type the notebook's `parameters` cell declares
    /// (annotation, type comment or default); the message says what was given and
    /// what was expected.
    DeclaredType { name: String, message: String },
    /// A FeatureSet feature whose geometry is not of the set's `geometryType`.
    GeometryType { name: String, note: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownParameter { name } => write!(
                f,
                "passed unknown parameter '{name}' (not assigned in the notebook's parameters cell)"
            ),
            Warning::NoParametersCell => f.write_str("notebook has no cell tagged 'parameters'"),
            Warning::NamesNotChecked { language } => write!(
                f,
                "parameter names not checked: no parameter inspection for language '{language}'"
            ),
            Warning::FileExtension { path } => write!(
                f,
                "parameters file '{path}' is not .json, .yaml or .yml; reading it as YAML"
            ),
            Warning::SpatialReferenceKept { name, reference } => write!(
                f,
                "parameter '{name}': spatial reference {reference} is not WGS84; GeoJSON coordinates kept as they are"
            ),
            Warning::DeclaredType { message, .. } => f.write_str(message),
            Warning::GeometryType { name, note } => write!(f, "parameter '{name}': {note}"),
        }
    }
}
