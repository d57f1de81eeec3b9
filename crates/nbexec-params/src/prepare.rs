//! From merged values to what is rendered: declared ArcGIS types (spec §2.2) are
//! checked and converted (dates to `datetime`, feature sets to the chosen rendering).

use std::fmt;
use std::str::FromStr;

use crate::datetime::UtcDateTime;
use crate::error::{ParamError, Warning};
use crate::esri::{self, GeoJsonOptions};
use crate::sources::Parameters;
use crate::value::Value;

/// An ArcGIS notebook task parameter type, declared with `--param-type NAME=TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParamType {
    /// `string`: a string.
    String,
    /// `long`: an integer.
    Long,
    /// `double`: a number (an integer is accepted as is).
    Double,
    /// `boolean`.
    Boolean,
    /// `date`: epoch milliseconds (UTC) or ISO-8601, injected as a Python
    /// `datetime.datetime` in UTC.
    Date,
    /// `linear-unit`: `{"distance": 345.678, "units": "esriMiles"}`, injected as a dict.
    LinearUnit,
    /// `feature-set`: Esri FeatureSet JSON.
    FeatureSet,
    /// `record-set`: a FeatureSet without geometry.
    RecordSet,
}

impl ParamType {
    /// Accepted spellings, for messages.
    pub const NAMES: &'static [&'static str] = &[
        "string",
        "long",
        "double",
        "boolean",
        "date",
        "linear-unit",
        "feature-set",
        "record-set",
    ];

    /// Parses `NAME=TYPE` (the `--param-type` argument).
    pub fn parse_declaration(text: &str) -> Result<(String, ParamType), ParamError> {
        let invalid = || ParamError::InvalidParamType {
            text: text.to_owned(),
        };
        let (name, ty) = text.split_once('=').ok_or_else(invalid)?;
        let ty = ty.parse().map_err(|_| invalid())?;
        if name.is_empty() {
            return Err(invalid());
        }
        Ok((name.to_owned(), ty))
    }
}

impl FromStr for ParamType {
    type Err = ParamError;

    /// Case-insensitive; `-`, `_` and nothing between words are all accepted, as are
    /// the ArcGIS names (`GPString`, `GPLong`, `GPDouble`, `GPBoolean`, `GPDate`,
    /// `GPLinearUnit`, `GPFeatureRecordSetLayer`, `GPRecordSet`).
    fn from_str(s: &str) -> Result<ParamType, ParamError> {
        let key: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .collect::<String>()
            .to_ascii_lowercase();
        let key = key.strip_prefix("gp").unwrap_or(&key);
        Ok(match key {
            "string" | "str" => ParamType::String,
            "long" | "int" | "integer" => ParamType::Long,
            "double" | "float" => ParamType::Double,
            "boolean" | "bool" => ParamType::Boolean,
            "date" | "datetime" => ParamType::Date,
            "linearunit" => ParamType::LinearUnit,
            "featureset" | "featurerecordsetlayer" => ParamType::FeatureSet,
            "recordset" => ParamType::RecordSet,
            _ => {
                return Err(ParamError::InvalidParamType { text: s.to_owned() });
            }
        })
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamType::String => "string",
            ParamType::Long => "long",
            ParamType::Double => "double",
            ParamType::Boolean => "boolean",
            ParamType::Date => "date",
            ParamType::LinearUnit => "linear-unit",
            ParamType::FeatureSet => "feature-set",
            ParamType::RecordSet => "record-set",
        })
    }
}

/// How Esri FeatureSets / RecordSets are written into the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EsriRendering {
    /// The Esri JSON as a dict literal (`true`/`false`/`null` → `True`/`False`/`None`).
    #[default]
    Esri,
    /// An RFC 7946 GeoJSON FeatureCollection dict.
    GeoJson,
    /// `FeatureSet.from_dict({...})`, with `from arcgis.features import FeatureSet`.
    ArcGis,
}

impl FromStr for EsriRendering {
    type Err = String;

    fn from_str(s: &str) -> Result<EsriRendering, String> {
        match s.to_ascii_lowercase().as_str() {
            "esri" | "json" => Ok(EsriRendering::Esri),
            "geojson" => Ok(EsriRendering::GeoJson),
            "arcgis" => Ok(EsriRendering::ArcGis),
            _ => Err(format!(
                "unknown feature set rendering {s:?} (expected esri, geojson or arcgis)"
            )),
        }
    }
}

/// What is known about the parameters' types before rendering.
#[derive(Debug, Clone, Default)]
pub struct TypeHints {
    /// `--param-type NAME=TYPE` declarations; they win over everything else.
    pub declared: Vec<(String, ParamType)>,
    /// Names the notebook's `parameters` cell declares as a datetime (see
    /// [`ParamSpec::is_datetime`](crate::ParamSpec::is_datetime)).
    pub notebook_datetimes: Vec<String>,
    /// How feature sets are rendered.
    pub esri: EsriRendering,
    /// Options for [`EsriRendering::GeoJson`].
    pub geojson: GeoJsonOptions,
}

impl TypeHints {
    fn declared(&self, name: &str) -> Option<ParamType> {
        self.declared
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, t)| *t)
    }
}

/// What [`prepare`] gives: the values to render, in order, and warnings.
pub type Prepared = (Vec<(String, Value)>, Vec<Warning>);

/// Applies declared types and the Esri rendering to every parameter, in order.
pub fn prepare(params: &Parameters, hints: &TypeHints) -> Result<Prepared, ParamError> {
    let mut out = Vec::with_capacity(params.len());
    let mut warnings = Vec::new();
    for (name, value) in params.iter() {
        let declared = hints.declared(name).or_else(|| {
            hints
                .notebook_datetimes
                .iter()
                .any(|n| n == name)
                .then_some(ParamType::Date)
        });
        let prepared = prepare_one(name, value, declared, hints, &mut warnings)?;
        out.push((name.to_owned(), prepared));
    }
    Ok((out, warnings))
}

fn prepare_one(
    name: &str,
    value: &Value,
    declared: Option<ParamType>,
    hints: &TypeHints,
    warnings: &mut Vec<Warning>,
) -> Result<Value, ParamError> {
    let mismatch = |declared| ParamError::TypeMismatch {
        name: name.to_owned(),
        declared,
        found: value.kind(),
    };
    match declared {
        None if esri::looks_like_feature_set(value) => {
            render_feature_set(name, value, hints, warnings)
        }
        None => Ok(value.clone()),
        // `None` is how a caller passes "no value" for any type.
        Some(_) if *value == Value::None => Ok(Value::None),
        Some(ParamType::String) => match value {
            Value::Str(_) => Ok(value.clone()),
            _ => Err(mismatch(ParamType::String)),
        },
        Some(ParamType::Long) => match value {
            Value::Int(_) => Ok(value.clone()),
            _ => Err(mismatch(ParamType::Long)),
        },
        Some(ParamType::Double) => match value {
            Value::Int(_) | Value::Float(_) => Ok(value.clone()),
            _ => Err(mismatch(ParamType::Double)),
        },
        Some(ParamType::Boolean) => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => Err(mismatch(ParamType::Boolean)),
        },
        Some(ParamType::Date) => to_datetime(name, value).map(Value::DateTime),
        Some(ParamType::LinearUnit) => match value {
            Value::Dict(_) => Ok(value.clone()),
            _ => Err(mismatch(ParamType::LinearUnit)),
        },
        Some(t @ (ParamType::FeatureSet | ParamType::RecordSet)) => match value {
            Value::Dict(_) if matches!(value.get("features"), Some(Value::List(_))) => {
                render_feature_set(name, value, hints, warnings)
            }
            Value::Dict(_) => Err(ParamError::Esri {
                name: name.to_owned(),
                feature: None,
                problem: format!("declared {t} but has no \"features\" array"),
            }),
            _ => Err(mismatch(t)),
        },
    }
}

fn render_feature_set(
    name: &str,
    value: &Value,
    hints: &TypeHints,
    warnings: &mut Vec<Warning>,
) -> Result<Value, ParamError> {
    match hints.esri {
        EsriRendering::Esri => Ok(value.clone()),
        EsriRendering::ArcGis => Ok(Value::FeatureSet(Box::new(value.clone()))),
        EsriRendering::GeoJson => {
            let (fc, refs) = esri::feature_set_to_geojson(value, &hints.geojson).map_err(|e| {
                ParamError::Esri {
                    name: name.to_owned(),
                    feature: e.feature,
                    problem: e.problem,
                }
            })?;
            for reference in refs {
                warnings.push(Warning::SpatialReferenceKept {
                    name: name.to_owned(),
                    reference,
                });
            }
            Ok(esri::geojson_to_value(&fc))
        }
    }
}

/// An epoch-milliseconds number or an ISO-8601 string as a UTC datetime.
fn to_datetime(name: &str, value: &Value) -> Result<UtcDateTime, ParamError> {
    let err = |problem: String| ParamError::Date {
        name: name.to_owned(),
        problem,
    };
    let out_of_range = || {
        err(format!(
            "{} ms since the epoch is outside years 1-9999",
            value_text(value)
        ))
    };
    match value {
        Value::Int(i) => {
            let ms = i.to_i64().ok_or_else(out_of_range)?;
            UtcDateTime::from_epoch_millis(ms).ok_or_else(out_of_range)
        }
        Value::Float(f) if f.is_finite() => {
            let micros = (f * 1000.0).round();
            if micros.abs() > 1e18 {
                return Err(out_of_range());
            }
            UtcDateTime::from_epoch_micros(micros as i128).ok_or_else(out_of_range)
        }
        Value::Str(s) => UtcDateTime::parse_iso8601(s).map_err(err),
        Value::DateTime(dt) => Ok(*dt),
        other => Err(err(format!(
            "expected epoch milliseconds or an ISO-8601 string, found {}",
            other.kind()
        ))),
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => crate::pyrepr::float_repr(*f),
        other => other.kind().to_owned(),
    }
}
