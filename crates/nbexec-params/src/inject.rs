//! Placing the injected cell (spec §2.3), recording the parameters in the notebook
//! metadata, removing the cell again, and inspecting the `parameters` cell (§2.4).

use nbexec_format::{Cell, Notebook};
use serde_json::Value as Json;

use crate::error::{ParamError, Warning};
use crate::esri::{self, GeoJsonOptions};
use crate::inspect::ParamSpec;
use crate::prepare::{EsriRendering, ParamType, TypeHints, prepare};
use crate::sources::Parameters;
use crate::translate::{Translator, find_translator};
use crate::typecheck;
use crate::value::Value;

/// Does a `parameters` cell default make an aware datetime (`tzinfo=`, `timezone`,
/// `tz=`, `ZoneInfo`, `pytz`)? `datetime.utcnow()` is naive and does not count.
fn default_is_aware(spec: &ParamSpec) -> bool {
    spec.default.as_deref().is_some_and(|d| {
        ["tzinfo", "timezone", "tz=", "ZoneInfo", "pytz"]
            .iter()
            .any(|k| d.contains(k))
    })
}

/// Does the `parameters` cell declare a calendar date (`datetime.date`, `date`,
/// `Optional[date]`), not a datetime?
fn is_date_type(spec: &ParamSpec) -> bool {
    spec.type_name.as_deref().is_some_and(|t| {
        let t = t.trim();
        let t = t
            .strip_prefix("Optional[")
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(t)
            .trim();
        let t = t.strip_suffix("| None").unwrap_or(t).trim();
        t == "date" || t.ends_with(".date")
    })
}

/// The tag of the cell that declares the notebook's parameters and their defaults.
pub const PARAMETERS_TAG: &str = "parameters";
/// The tag of the cell nbexec (and papermill) injects.
pub const INJECTED_TAG: &str = "injected-parameters";

/// Which placement rule applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// Rule 1: the first cell tagged `injected-parameters` was replaced.
    Replaced,
    /// Rule 2: inserted right after the first cell tagged `parameters`.
    AfterParameters,
    /// Rule 3: no `parameters` cell; inserted at index 0 (a warning).
    Top,
}

/// The index of the first cell carrying `tag`.
pub fn find_tagged_cell(nb: &Notebook, tag: &str) -> Option<usize> {
    nb.cells().iter().position(|c| c.has_tag(tag))
}

/// Puts a new injected-parameters code cell with `source` into the notebook by the
/// first rule that matches (replace the first `injected-parameters` cell; else
/// insert after the first `parameters` cell; else insert at the top). The cell has
/// `metadata.tags = ["injected-parameters"]`, a fresh id on nbformat 4.5+, no
/// outputs, and with `report_mode` `metadata.jupyter.source_hidden = true`.
/// Returns its index and the rule used.
pub fn place_injected_cell(
    nb: &mut Notebook,
    source: &str,
    report_mode: bool,
) -> (usize, Placement) {
    let (index, placement) = if let Some(i) = find_tagged_cell(nb, INJECTED_TAG) {
        nb.cells_mut().remove(i);
        (i, Placement::Replaced)
    } else if let Some(i) = find_tagged_cell(nb, PARAMETERS_TAG) {
        (i + 1, Placement::AfterParameters)
    } else {
        (0, Placement::Top)
    };
    let mut cell = Cell::new_code(source);
    cell.set_tags(&[INJECTED_TAG]);
    if report_mode {
        let md = cell.metadata_mut();
        let jupyter = md
            .entry("jupyter")
            .or_insert_with(|| Json::Object(Default::default()));
        if !jupyter.is_object() {
            *jupyter = Json::Object(Default::default());
        }
        if let Json::Object(j) = jupyter {
            j.insert("source_hidden".into(), Json::Bool(true));
        }
    }
    let id = nb.new_cell_id();
    cell.set_id(id);
    nb.cells_mut().insert(index, cell);
    (index, placement)
}

/// The notebook's `metadata.papermill` object, created (or replacing a non-object).
fn papermill_metadata(nb: &mut Notebook) -> &mut serde_json::Map<String, Json> {
    let slot = nb
        .metadata_mut()
        .entry("papermill")
        .or_insert_with(|| Json::Object(Default::default()));
    if !slot.is_object() {
        *slot = Json::Object(Default::default());
    }
    match slot {
        Json::Object(m) => m,
        _ => unreachable!("slot was just made an object"),
    }
}

/// Records the parameters as `metadata.papermill.parameters` (other keys of
/// `metadata.papermill` are kept). See [`Value::to_json`](crate::Value::to_json) for
/// how NaN and infinities are written.
pub fn record_parameters(nb: &mut Notebook, params: &Parameters) {
    papermill_metadata(nb).insert("parameters".into(), params.to_json());
}

/// Removes every `injected-parameters` cell and empties
/// `metadata.papermill.parameters`, so that parameter values (secrets) are not
/// saved: for `--in-place` / ArcGIS `updatePortalItem` without
/// `--save-injected-parameters`. Returns how many cells were removed.
pub fn remove_injected_parameters(nb: &mut Notebook) -> usize {
    let before = nb.cells().len();
    nb.cells_mut().retain(|c| !c.has_tag(INJECTED_TAG));
    let removed = before - nb.cells().len();
    if let Some(Json::Object(pm)) = nb.metadata_mut().get_mut("papermill")
        && pm.contains_key("parameters")
    {
        pm.insert("parameters".into(), Json::Object(Default::default()));
    }
    removed
}

/// The inspected `parameters` cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The index of the first cell tagged `parameters`.
    pub cell_index: usize,
    /// Its assignments, in order.
    pub parameters: Vec<ParamSpec>,
}

impl Inspection {
    /// Is `name` assigned in the cell?
    pub fn declares(&self, name: &str) -> bool {
        self.parameters.iter().any(|p| p.name == name)
    }

    /// The names the cell declares as dates/times.
    pub fn datetime_names(&self) -> Vec<String> {
        self.parameters
            .iter()
            .filter(|p| p.is_datetime())
            .map(|p| p.name.clone())
            .collect()
    }
}

/// Inspects the first `parameters` cell (`nbexec inspect`). `Ok(None)` when there
/// is no such cell; an error when no translator fits the kernel/language or the
/// language cannot be inspected (only Python can). `kernel_name`/`language`
/// override the notebook's own.
pub fn inspect_notebook(
    nb: &Notebook,
    kernel_name: Option<&str>,
    language: Option<&str>,
) -> Result<Option<Inspection>, ParamError> {
    let kernel_name = kernel_name.or(nb.kernelspec_name());
    let language = language.or(nb.language());
    let translator = find_translator(kernel_name, language)?;
    let Some(index) = find_tagged_cell(nb, PARAMETERS_TAG) else {
        return Ok(None);
    };
    inspect_cell(nb, index, translator).map(Some)
}

fn inspect_cell(
    nb: &Notebook,
    index: usize,
    translator: &dyn Translator,
) -> Result<Inspection, ParamError> {
    let source = nb.cells()[index].source();
    match translator.inspect(source) {
        Some(parameters) => Ok(Inspection {
            cell_index: index,
            parameters,
        }),
        None => Err(ParamError::InspectionUnsupported {
            language: translator.language().to_owned(),
        }),
    }
}

/// Options for [`inject`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InjectOptions {
    /// `-k`: the kernel name, instead of `metadata.kernelspec.name`.
    pub kernel_name: Option<String>,
    /// The language, instead of the notebook's.
    pub language: Option<String>,
    /// The comment on the cell's first line (papermill: `Parameters`).
    pub comment: String,
    /// `--strict`: unknown parameter names, and values that do not fit the type the
    /// `parameters` cell declares, are an error, not a warning.
    pub strict: bool,
    /// `--report-mode`: hide the injected cell's source.
    pub report_mode: bool,
    /// `--param-type NAME=TYPE` declarations.
    pub declared_types: Vec<(String, ParamType)>,
    /// How FeatureSets / RecordSets are rendered.
    pub esri: EsriRendering,
    /// Options for the GeoJSON rendering.
    pub geojson: GeoJsonOptions,
}

impl Default for InjectOptions {
    fn default() -> InjectOptions {
        InjectOptions {
            kernel_name: None,
            language: None,
            comment: "Parameters".to_owned(),
            strict: false,
            report_mode: false,
            declared_types: Vec::new(),
            esri: EsriRendering::default(),
            geojson: GeoJsonOptions::default(),
        }
    }
}

/// What [`inject`] did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Injected {
    /// Where the cell went (`None`: no parameters, nothing injected).
    pub cell: Option<(usize, Placement)>,
    /// The injected source.
    pub source: Option<String>,
    /// Warnings, in the order they arose.
    pub warnings: Vec<Warning>,
    /// Packages outside the standard library that the injected cell imports
    /// (`arcgis` for the `arcgis` FeatureSet rendering), for the caller to check on
    /// the kernel before running anything.
    pub requires: Vec<String>,
}

/// Injects `params` into the notebook: picks the translator (kernel name, then
/// language), checks the names against the `parameters` cell (unknown names warn,
/// or fail with `strict`), applies declared types (dates, feature sets), renders the
/// cell, places it (spec §2.3) and records the parameters in
/// `metadata.papermill.parameters`. With no parameters nothing is changed.
///
/// ```
/// use nbexec_params::{InjectOptions, ParameterSources, inject};
/// let mut nb = nbexec_format::read_str(r#"{"cells": [{"cell_type": "code",
///   "metadata": {"tags": ["parameters"]}, "source": "alpha = 0.1\n", "outputs": [],
///   "execution_count": null}], "metadata": {"kernelspec": {"name": "python3",
///   "language": "python"}}, "nbformat": 4, "nbformat_minor": 4}"#).unwrap();
/// let (params, _) = ParameterSources::new().param("alpha", "0.5").build().unwrap();
/// let done = inject(&mut nb, &params, &InjectOptions::default()).unwrap();
/// assert!(done.warnings.is_empty());
/// assert_eq!(nb.cells()[1].source(), "# Parameters\nalpha = 0.5\n");
/// ```
pub fn inject(
    nb: &mut Notebook,
    params: &Parameters,
    options: &InjectOptions,
) -> Result<Injected, ParamError> {
    if params.is_empty() {
        return Ok(Injected::default());
    }
    let kernel_name = options.kernel_name.as_deref().or(nb.kernelspec_name());
    let language = options.language.as_deref().or(nb.language());
    let translator = find_translator(kernel_name, language)?;
    let mut warnings = Vec::new();

    let inspection = match find_tagged_cell(nb, PARAMETERS_TAG) {
        None => Some(None),
        Some(index) => match inspect_cell(nb, index, translator) {
            Ok(inspection) => Some(Some(inspection)),
            Err(_) => {
                warnings.push(Warning::NamesNotChecked {
                    language: translator.language().to_owned(),
                });
                None
            }
        },
    };
    let mut notebook_datetimes = Vec::new();
    let mut specs: &[ParamSpec] = &[];
    if let Some(inspection) = &inspection {
        let unknown: Vec<String> = params
            .names()
            .filter(|n| !inspection.as_ref().is_some_and(|i| i.declares(n)))
            .map(str::to_owned)
            .collect();
        if !unknown.is_empty() && options.strict {
            return Err(ParamError::UnknownParameters { names: unknown });
        }
        warnings.extend(
            unknown
                .into_iter()
                .map(|name| Warning::UnknownParameter { name }),
        );
        if let Some(i) = inspection {
            notebook_datetimes = i.datetime_names();
            specs = &i.parameters;
        }
    }

    let hints = TypeHints {
        declared: options.declared_types.clone(),
        notebook_datetimes,
        esri: options.esri,
        geojson: options.geojson.clone(),
    };
    // The Esri JSON is checked whatever it is rendered as (the `esri` and
    // `arcgis` renderings pass it on as it is), with the GeoJSON rendering's
    // messages.
    for (name, value) in params.iter() {
        let is_feature_set = match hints.declared.iter().rev().find(|(n, _)| n == name) {
            Some((_, t)) => matches!(t, ParamType::FeatureSet | ParamType::RecordSet),
            None => esri::looks_like_feature_set(value),
        };
        if is_feature_set && matches!(value.get("features"), Some(Value::List(_))) {
            let note = esri::validate_feature_set(value).map_err(|e| ParamError::Esri {
                name: name.to_owned(),
                feature: e.feature,
                problem: e.problem,
            })?;
            if let Some(note) = note {
                warnings.push(Warning::GeometryType {
                    name: name.to_owned(),
                    note,
                });
            }
        }
    }
    let (mut values, prepare_warnings) = prepare(params, &hints)?;
    warnings.extend(prepare_warnings);
    for (name, value) in &mut values {
        let Some(spec) = specs.iter().rev().find(|s| s.name == *name) else {
            continue;
        };
        if options.declared_types.iter().any(|(n, _)| n == name) {
            // `--param-type` wins over the notebook and is checked by `prepare`.
            continue;
        }
        if let Value::DateTime(dt) = value
            && is_date_type(spec)
            && matches!(params.get(name), Some(Value::Str(s)) if s.len() == 10)
        {
            // A date given for a `datetime.date` default: inject a date, which
            // compares with the default (a datetime would raise TypeError).
            *dt = dt.to_date();
        }
        if let Value::DateTime(dt) = value
            && dt.is_naive()
            && !dt.is_date_only()
            && default_is_aware(spec)
        {
            // The notebook compares with an aware default: take the naive time as UTC.
            *dt = dt.to_utc().ok_or_else(|| ParamError::Date {
                name: name.clone(),
                problem: format!("{dt} is outside years 1-9999 in UTC"),
            })?;
        }
        if let Some(message) = typecheck::mismatch(spec, value) {
            if options.strict {
                return Err(ParamError::DeclaredType {
                    name: name.clone(),
                    message,
                });
            }
            warnings.push(Warning::DeclaredType {
                name: name.clone(),
                message,
            });
        }
    }
    let source = translator.render(&values, &options.comment)?;
    let requires = if values
        .iter()
        .any(|(_, v)| matches!(v, Value::FeatureSet(_)))
    {
        vec!["arcgis".to_owned()]
    } else {
        Vec::new()
    };

    let (index, placement) = place_injected_cell(nb, &source, options.report_mode);
    if placement == Placement::Top {
        warnings.push(Warning::NoParametersCell);
    }
    record_parameters(nb, params);
    Ok(Injected {
        cell: Some((index, placement)),
        source: Some(source),
        warnings,
        requires,
    })
}
