//! Parameter sources as the command line gives them, turned into an injected cell.

use std::path::PathBuf;

use nbexec_format::Notebook;
use nbexec_params::{EsriRendering, InjectOptions, ParamType, ParameterSources, Parameters};
use serde_json::Value;

use crate::Error;

/// Every way parameters can be given, in the form the command line collects them.
/// They merge in a fixed order whatever order they were given in: `-b`, `-f`, `-y`,
/// `-j`, `-p`, `-r` (later wins; a key keeps its first position).
#[derive(Debug, Clone, Default)]
pub struct ParamSources {
    /// `-b`: base64-encoded YAML.
    pub base64: Vec<String>,
    /// `-f`: JSON (`.json`) or YAML files.
    pub files: Vec<PathBuf>,
    /// `-y`: YAML text.
    pub yaml: Vec<String>,
    /// `-j`: JSON objects (ArcGIS `notebookParameters`); `@PATH` reads the object
    /// from a file and `-` from standard input (for FeatureSets too large for a
    /// command line).
    pub json: Vec<String>,
    /// `-p NAME VALUE`: typed as papermill does.
    pub typed: Vec<(String, String)>,
    /// `-r NAME VALUE`: always strings.
    pub raw: Vec<(String, String)>,
    /// `--secret NAME VALUE`: strings like `-r`, merged last, and redacted in
    /// everything nbexec writes (metadata, the saved injected cell, job records).
    pub secrets: Vec<(String, String)>,
    /// `--param-type NAME=TYPE`.
    pub declared_types: Vec<String>,
    /// `--featureset-format`: esri, geojson or arcgis (empty: esri).
    pub featureset_format: String,
    /// `--strict`: undeclared parameters are an error.
    pub strict: bool,
    /// Extra `{name}` values for the output path only (a batch line's `_index`).
    pub path_vars: Vec<(String, String)>,
    pub inject_input_path: bool,
    pub inject_output_path: bool,
}

/// What injection did.
pub(crate) struct Injection {
    /// The output path with `{name}` filled from the parameters.
    pub output_path: Option<String>,
    pub warnings: Vec<String>,
    /// The merged parameters, as recorded in the notebook (secrets redacted).
    pub parameters: Value,
    /// The injected cell's source with secrets redacted, when there are secrets.
    pub saved_source: Option<String>,
    /// Checks the kernel must pass before the cells run (packages the injected
    /// cell imports).
    pub preflight: Vec<nbexec_runner::Preflight>,
}

/// What nbexec writes in place of a secret's value.
pub const REDACTED: &str = "[REDACTED]";

fn params_error(e: impl std::fmt::Display) -> Error {
    Error::Params(e.to_string())
}

/// `text` with every secret's value replaced by [`REDACTED`] (empty values aside).
pub fn redact(text: &str, secrets: &[(String, String)]) -> String {
    let mut text = text.to_owned();
    for (_, value) in secrets {
        if !value.is_empty() && text.contains(value.as_str()) {
            text = text.replace(value.as_str(), REDACTED);
        }
    }
    text
}

impl crate::Run {
    /// The secret parameters (`--secret` and friends), names and values.
    pub fn secrets(&self) -> &[(String, String)] {
        &self.params.secrets
    }

    /// `text` with the secrets' values replaced by `[REDACTED]`, for anything
    /// printed about this run.
    pub fn redact(&self, text: &str) -> String {
        self.params.redact(text)
    }
}

impl ParamSources {
    /// The secrets' values, for redacting what is saved and printed.
    pub fn secret_values(&self) -> Vec<String> {
        self.secrets
            .iter()
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// `text` with the secrets' values replaced by `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        redact(text, &self.secrets)
    }
}

/// Merges the sources, renders the parameters for the notebook's kernel, and
/// places the injected cell.
pub(crate) fn inject(
    nb: &mut Notebook,
    sources: &ParamSources,
    input_path: &str,
    output_template: Option<&str>,
    kernel: Option<&str>,
    language: Option<&str>,
) -> Result<Injection, Error> {
    // A bad value's message quotes the value: never a secret's.
    inject_inner(nb, sources, input_path, output_template, kernel, language).map_err(|e| match e {
        Error::Params(m) => Error::Params(sources.redact(&m)),
        Error::Usage(m) => Error::Usage(sources.redact(&m)),
        other => other,
    })
}

fn inject_inner(
    nb: &mut Notebook,
    sources: &ParamSources,
    input_path: &str,
    output_template: Option<&str>,
    kernel: Option<&str>,
    language: Option<&str>,
) -> Result<Injection, Error> {
    let mut merged = ParameterSources::new();
    if sources.inject_input_path || sources.inject_output_path {
        // papermill injects these first, so any other source can override them.
        merged.inject_paths(input_path, output_template.unwrap_or(""));
    }
    for b in &sources.base64 {
        merged.base64_yaml(b.clone());
    }
    for path in &sources.files {
        let contents = crate::storage::read_text(path)?;
        merged.file(path.to_string_lossy(), contents);
    }
    for y in &sources.yaml {
        merged.yaml(y.clone());
    }
    let mut stdin_read = false;
    for j in &sources.json {
        merged.json(json_argument(j, input_path, &mut stdin_read)?);
    }
    for (name, value) in &sources.typed {
        merged.param(name.clone(), value.clone());
    }
    for (name, value) in &sources.raw {
        merged.raw(name.clone(), value.clone());
    }
    for (name, value) in &sources.secrets {
        merged.raw(name.clone(), value.clone());
    }
    let (mut params, merge_warnings) = merged.build().map_err(params_error)?;
    if !sources.inject_input_path || !sources.inject_output_path {
        // `inject_paths` adds both; keep only the ones asked for.
        let keep = |name: &str| match name {
            "PAPERMILL_INPUT_PATH" => sources.inject_input_path,
            "PAPERMILL_OUTPUT_PATH" => sources.inject_output_path,
            _ => true,
        };
        params = params
            .iter()
            .filter(|(n, _)| keep(n))
            .map(|(n, v)| (n.to_owned(), v.clone()))
            .collect::<Parameters>();
    }
    let output_path = output_template
        .map(|t| {
            refuse_secrets_in_path(t, sources)?;
            fill_template(t, &params, &sources.path_vars)
        })
        .transpose()?;

    let mut options = InjectOptions::default();
    options.kernel_name = kernel.map(str::to_owned);
    options.language = language.map(str::to_owned);
    options.strict = sources.strict;
    options.declared_types = sources
        .declared_types
        .iter()
        .map(|d| ParamType::parse_declaration(d))
        .collect::<Result<_, _>>()
        .map_err(params_error)?;
    if !sources.featureset_format.is_empty() {
        options.esri = sources
            .featureset_format
            .parse::<EsriRendering>()
            .map_err(Error::Params)?;
    }
    let pristine = (!sources.secrets.is_empty()).then(|| nb.clone());
    let done = nbexec_params::inject(nb, &params, &options).map_err(params_error)?;
    let warnings = merge_warnings
        .iter()
        .chain(done.warnings.iter())
        .map(ToString::to_string)
        .collect();
    let mut recorded = params.to_json();
    let mut saved_source = None;
    if let Some(mut copy) = pristine {
        // Render the cell again with the secrets' values replaced, for what is saved.
        let is_secret = |n: &str| sources.secrets.iter().any(|(s, _)| s == n);
        let redacted: Parameters = params
            .iter()
            .map(|(n, v)| {
                let v = if is_secret(n) {
                    nbexec_params::Value::str(REDACTED)
                } else {
                    v.clone()
                };
                (n.to_owned(), v)
            })
            .collect();
        let again = nbexec_params::inject(&mut copy, &redacted, &options).map_err(params_error)?;
        saved_source = again.source;
        recorded = redacted.to_json();
        if let Some(Value::Object(pm)) = nb.metadata_mut().get_mut("papermill") {
            pm.insert("parameters".into(), recorded.clone());
        }
    }
    let preflight = done.requires.iter().map(|m| package_check(m)).collect();
    Ok(Injection {
        output_path,
        warnings,
        parameters: recorded,
        saved_source,
        preflight,
    })
}

/// A secret in a file name would be seen by anyone who can list the directory, and
/// recorded in the notebook's metadata and the job: refused.
fn refuse_secrets_in_path(template: &str, sources: &ParamSources) -> Result<(), Error> {
    for (name, _) in &sources.secrets {
        if template.contains(&format!("{{{name}}}")) {
            return Err(Error::Usage(format!(
                "output path {template:?} names the secret parameter {{{name}}}: secrets never go into file names; use another parameter"
            )));
        }
    }
    Ok(())
}

/// The text of one `-j` argument: the JSON itself, `@PATH` for a file's contents, or
/// `-` for standard input (once, and not when the notebook comes from there too). A
/// JSON object never starts with `@` or is `-`, so nothing is ambiguous.
fn json_argument(arg: &str, input_path: &str, stdin_read: &mut bool) -> Result<String, Error> {
    if let Some(path) = arg.strip_prefix('@') {
        return crate::storage::read_text(&PathBuf::from(path));
    }
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    if input_path == "-" {
        return Err(Error::Usage(
            "-j - and the input notebook cannot both come from standard input".into(),
        ));
    }
    if std::mem::replace(stdin_read, true) {
        return Err(Error::Usage(
            "-j - is given more than once: standard input can be read only once".into(),
        ));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text).map_err(|source| {
        Error::Read {
            path: PathBuf::from("<stdin> (-j -)"),
            source,
        }
    })?;
    Ok(text)
}

/// A silent check that the kernel can find `package` (without importing it), with
/// what to do instead when it cannot. Only `arcgis` is asked for today (the `arcgis`
/// FeatureSet rendering).
fn package_check(package: &str) -> nbexec_runner::Preflight {
    let code = format!(
        "import importlib.util as __nbexec_importlib_util\n\
         try:\n    if __nbexec_importlib_util.find_spec({package:?}) is None:\n        \
         raise ModuleNotFoundError({package:?})\n\
         finally:\n    del __nbexec_importlib_util\n"
    );
    let failure = format!(
        "--featureset-format {package} needs the {package:?} package, which the kernel cannot import: \
         install it in the kernel's environment, or use --featureset-format esri (an Esri JSON dict) or geojson"
    );
    nbexec_runner::Preflight { code, failure }
}

/// Fills `{name}` in a path from the parameters, as papermill's `str.format` does
/// (`{{` and `}}` stand for braces).
fn fill_template(
    template: &str,
    params: &Parameters,
    vars: &[(String, String)],
) -> Result<String, Error> {
    if !template.contains(['{', '}']) {
        return Ok(template.to_owned());
    }
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => name.push(ch),
                        None => {
                            return Err(Error::Usage(format!(
                                "output path {template:?}: unclosed '{{'"
                            )));
                        }
                    }
                }
                if let Some((_, v)) = vars.iter().find(|(k, _)| *k == name) {
                    out.push_str(v);
                    continue;
                }
                let value = params.get(&name).ok_or_else(|| {
                    Error::Usage(format!("output path {template:?} names {{{name}}}, but no parameter {name} was given"))
                })?;
                out.push_str(&python_str(&value.to_json()));
            }
            '}' => {
                return Err(Error::Usage(format!(
                    "output path {template:?}: single '}}'"
                )));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Python's `str()` of a parameter value, for paths.
fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Number(n) if n.as_str().contains(['.', 'e', 'E']) => n
            .as_f64()
            .map(nbexec_format::python_float_repr)
            .unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}
