//! Notebook parameters for nbexec: it merges the parameter sources of a run
//! (`-b`, `-f`, `-y`, `-j`, `-p`, `-r`) into ordered values that keep integers of
//! any size, turns them into source code for the notebook's kernel language
//! (byte-for-byte papermill 2.7 for Python, whose literals `ast.literal_eval` reads
//! back exactly), converts ArcGIS task types (dates, Esri FeatureSets as Esri JSON,
//! GeoJSON or `arcgis` objects), places the injected cell by papermill's rules, and
//! inspects a notebook's `parameters` cell.
//!
//! It is pure: values in, source text and cell edits out. It must never read or
//! write files, start processes, look at the environment or the clock, or talk to a
//! kernel; callers hand it text and notebooks.
//!
//! The usual path, for the CLI and the runner:
//!
//! ```
//! use nbexec_params::{InjectOptions, ParameterSources, inject};
//!
//! let mut nb = nbexec_format::read_str(r#"{"cells": [], "metadata": {"kernelspec":
//!   {"name": "python3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}"#)
//!     .unwrap();
//! let mut sources = ParameterSources::new();
//! sources.yaml("region: north").param("year", "2024");
//! let (params, _warnings) = sources.build().unwrap();
//! let done = inject(&mut nb, &params, &InjectOptions::default()).unwrap();
//! assert_eq!(
//!     nb.cells()[0].source(),
//!     "# Parameters\nregion = \"north\"\nyear = 2024\n"
//! );
//! // No `parameters` cell: the cell went to the top, with a warning.
//! assert_eq!(done.warnings.last().unwrap().to_string(), "notebook has no cell tagged 'parameters'");
//! ```

mod coerce;
mod datetime;
mod error;
pub mod esri;
mod inject;
mod inspect;
mod prepare;
mod pyrepr;
mod sources;
mod translate;
mod typecheck;
mod value;
pub mod yaml;

pub use coerce::{
    PYTHON_KEYWORDS, check_name, coerce_papermill, is_identifier, python_float, python_int,
};
pub use datetime::{DateTime, UtcDateTime};
pub use error::{NameProblem, Origin, ParamError, Warning};
pub use esri::{EsriError, GeoJsonOptions};
pub use inject::{
    INJECTED_TAG, InjectOptions, Injected, Inspection, PARAMETERS_TAG, Placement, find_tagged_cell,
    inject, inspect_notebook, place_injected_cell, record_parameters, remove_injected_parameters,
};
pub use inspect::{ParamSpec, TypeSource, inspect_python};
pub use prepare::{EsriRendering, ParamType, Prepared, TypeHints, prepare};
pub use pyrepr::{float_repr, unicode_escape};
pub use sources::{FileFormat, ParameterSources, Parameters};
pub use translate::bash_shlex_quote;
pub use translate::{
    BashTranslator, JuliaTranslator, PythonTranslator, RTranslator, Translator, find_translator,
};
pub use value::{Integer, Value};
