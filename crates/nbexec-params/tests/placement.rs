//! Placement of the injected cell (spec §2.3), metadata, name checks and the
//! `--in-place` removal.

use nbexec_format::{Notebook, read_str, write_string};
use nbexec_params::{
    EsriRendering, INJECTED_TAG, InjectOptions, Injected, ParamError, ParamType, ParameterSources,
    Parameters, Placement, Value, Warning, inject, place_injected_cell, remove_injected_parameters,
};
use serde_json::json;

fn code(source: &str, tags: &[&str]) -> serde_json::Value {
    json!({"cell_type": "code", "execution_count": null, "metadata": {"tags": tags},
           "outputs": [], "source": source})
}

fn markdown(source: &str) -> serde_json::Value {
    json!({"cell_type": "markdown", "metadata": {}, "source": source})
}

fn notebook(cells: Vec<serde_json::Value>, minor: u64, kernel: &str, language: &str) -> Notebook {
    let nb = json!({
        "cells": cells,
        "metadata": {"kernelspec": {"name": kernel, "language": language, "display_name": kernel},
                     "language_info": {"name": language}},
        "nbformat": 4, "nbformat_minor": minor
    });
    read_str(&nb.to_string()).unwrap()
}

fn python_nb(cells: Vec<serde_json::Value>) -> Notebook {
    notebook(cells, 5, "python3", "python")
}

fn params(pairs: &[(&str, &str)]) -> Parameters {
    let mut sources = ParameterSources::new();
    for (k, v) in pairs {
        sources.param(*k, *v);
    }
    sources.build().unwrap().0
}

fn run(nb: &mut Notebook, p: &Parameters) -> Injected {
    inject(nb, p, &InjectOptions::default()).unwrap()
}

fn sources(nb: &Notebook) -> Vec<&str> {
    nb.cells().iter().map(|c| c.source()).collect()
}

#[test]
fn injected_cell_goes_right_after_the_first_parameters_cell() {
    let mut nb = python_nb(vec![
        markdown("# Title"),
        code("a = 1\nb = 'x'\n", &["parameters"]),
        code("print(a)", &[]),
        code("a = 2", &["parameters"]),
    ]);
    let done = run(&mut nb, &params(&[("a", "5")]));
    assert_eq!(done.cell, Some((2, Placement::AfterParameters)));
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    assert_eq!(
        sources(&nb),
        [
            "# Title",
            "a = 1\nb = 'x'\n",
            "# Parameters\na = 5\n",
            "print(a)",
            "a = 2"
        ]
    );
}

#[test]
fn injected_cell_replaces_existing_injected_parameters_cell() {
    let mut nb = python_nb(vec![
        code("a = 1", &["parameters"]),
        code("# Parameters\na = 3\n", &[INJECTED_TAG]),
        code("print(a)", &[]),
        code("# Parameters\na = 4\n", &[INJECTED_TAG]),
    ]);
    let old_id = nb.cells()[1].id().unwrap().to_owned();
    let done = run(&mut nb, &params(&[("a", "5")]));
    assert_eq!(done.cell, Some((1, Placement::Replaced)));
    assert_eq!(
        sources(&nb),
        [
            "a = 1",
            "# Parameters\na = 5\n",
            "print(a)",
            "# Parameters\na = 4\n"
        ]
    );
    assert_ne!(
        nb.cells()[1].id(),
        Some(old_id.as_str()),
        "a fresh cell, fresh id"
    );
}

#[test]
fn without_parameters_cell_the_cell_goes_to_the_top_with_a_warning() {
    let mut nb = python_nb(vec![code("print(1)", &[])]);
    let done = run(&mut nb, &params(&[("a", "5")]));
    assert_eq!(done.cell, Some((0, Placement::Top)));
    assert_eq!(sources(&nb), ["# Parameters\na = 5\n", "print(1)"]);
    let texts: Vec<String> = done.warnings.iter().map(ToString::to_string).collect();
    assert!(
        texts.contains(&"notebook has no cell tagged 'parameters'".to_owned()),
        "{texts:?}"
    );
    // No parameters cell: every name is unknown, as papermill warns.
    assert!(
        done.warnings
            .contains(&Warning::UnknownParameter { name: "a".into() })
    );
}

#[test]
fn rerunning_an_output_notebook_replaces_instead_of_duplicating() {
    let mut nb = python_nb(vec![code("a = 1", &["parameters"]), code("print(a)", &[])]);
    run(&mut nb, &params(&[("a", "5")]));
    // What was written out, read back, injected again.
    let mut again = read_str(&write_string(&nb)).unwrap();
    let done = run(&mut again, &params(&[("a", "6")]));
    assert_eq!(done.cell, Some((1, Placement::Replaced)));
    assert_eq!(
        sources(&again),
        ["a = 1", "# Parameters\na = 6\n", "print(a)"]
    );
    assert_eq!(
        again
            .cells()
            .iter()
            .filter(|c| c.has_tag(INJECTED_TAG))
            .count(),
        1
    );
    assert_eq!(again.metadata()["papermill"]["parameters"], json!({"a": 6}));
}

#[test]
fn no_parameters_injects_nothing() {
    let mut nb = python_nb(vec![code("a = 1", &["parameters"])]);
    let before = nb.clone();
    let done = run(&mut nb, &Parameters::new());
    assert_eq!(done, Injected::default());
    assert_eq!(nb, before);
}

#[test]
fn new_cell_is_code_tagged_with_fresh_id_and_no_outputs() {
    let mut nb = python_nb(vec![code("a = 1", &["parameters"])]);
    run(&mut nb, &params(&[("a", "5")]));
    let cell = &nb.cells()[1];
    assert_eq!(cell.cell_type(), "code");
    assert_eq!(cell.tags(), [INJECTED_TAG]);
    assert!(cell.outputs().is_empty());
    assert_eq!(cell.execution_count(), None);
    let id = cell.id().unwrap();
    assert!(
        id.len() == 8
            && id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{id}"
    );
    assert_ne!(Some(id), nb.cells()[0].id());
    assert_eq!(cell.metadata().len(), 1, "only tags: {:?}", cell.metadata());

    // A 4.4 notebook gets no ids.
    let mut old = notebook(vec![code("a = 1", &["parameters"])], 4, "python3", "python");
    run(&mut old, &params(&[("a", "5")]));
    assert_eq!(old.cells()[1].id(), None);
    assert_eq!(old.nbformat(), (4, 4));
}

#[test]
fn report_mode_hides_the_injected_source() {
    let mut nb = python_nb(vec![]);
    let (index, placement) = place_injected_cell(&mut nb, "# Parameters\n", true);
    assert_eq!((index, placement), (0, Placement::Top));
    assert_eq!(
        nb.cells()[0].metadata()["jupyter"],
        json!({"source_hidden": true})
    );
}

#[test]
fn parameters_are_recorded_in_papermill_metadata() {
    let mut nb = python_nb(vec![code("a = 1\nb = 2\nc = 3\nd = 4", &["parameters"])]);
    nb.metadata_mut().insert(
        "papermill".into(),
        json!({"input_path": "in.ipynb", "parameters": {"old": 1}}),
    );
    let mut sources = ParameterSources::new();
    sources
        .json(r#"{"a": 12345678901234567890123, "b": {"k": [1.0, null]}}"#)
        .param("c", "nan")
        .param("d", "-inf");
    let (p, _) = sources.build().unwrap();
    run(&mut nb, &p);
    assert_eq!(
        serde_json::to_string(&nb.metadata()["papermill"]).unwrap(),
        r#"{"input_path":"in.ipynb","parameters":{"a":12345678901234567890123,"b":{"k":[1.0,null]},"c":"NaN","d":"-Infinity"}}"#
    );
    assert!(write_string(&nb).contains("\"a\": 12345678901234567890123"));
}

#[test]
fn remove_injected_parameters_drops_the_cell_and_the_recorded_values() {
    let mut nb = python_nb(vec![
        code("token = ''", &["parameters"]),
        code("print(1)", &[]),
    ]);
    run(&mut nb, &params(&[("token", "s3cr3t")]));
    assert_eq!(nb.cells().len(), 3);
    assert_eq!(remove_injected_parameters(&mut nb), 1);
    assert_eq!(sources(&nb), ["token = ''", "print(1)"]);
    assert_eq!(nb.metadata()["papermill"]["parameters"], json!({}));
    assert!(!write_string(&nb).contains("s3cr3t"));
}

#[test]
fn unknown_names_warn_and_strict_makes_them_an_error() {
    let cells = || {
        vec![code(
            "alpha = 0.1  # learning rate\nratio: float = 2\n",
            &["parameters"],
        )]
    };
    let mut nb = python_nb(cells());
    let p = params(&[
        ("alpha", "1"),
        ("beta", "2"),
        ("ratio", "3"),
        ("gamma", "x"),
    ]);
    let done = run(&mut nb, &p);
    assert_eq!(
        done.warnings,
        vec![
            Warning::UnknownParameter {
                name: "beta".into()
            },
            Warning::UnknownParameter {
                name: "gamma".into()
            }
        ]
    );
    assert_eq!(
        done.warnings[0].to_string(),
        "passed unknown parameter 'beta' (not assigned in the notebook's parameters cell)"
    );

    let mut nb = python_nb(cells());
    let before = nb.clone();
    let mut options = InjectOptions::default();
    options.strict = true;
    let err = inject(&mut nb, &p, &options).unwrap_err();
    assert_eq!(
        err,
        ParamError::UnknownParameters {
            names: vec!["beta".into(), "gamma".into()]
        }
    );
    assert_eq!(
        err.to_string(),
        "unknown parameter(s) 'beta', 'gamma': not assigned in the notebook's parameters cell"
    );
    assert_eq!(nb, before, "nothing changed on error");
    assert!(inject(&mut nb, &params(&[("alpha", "1")]), &options).is_ok());
}

#[test]
fn kernel_name_then_language_picks_the_translator() {
    let mut nb = notebook(vec![code("alpha <- 1", &["parameters"])], 5, "ir", "R");
    let done = run(&mut nb, &params(&[("_alpha", "True"), ("name", "x")]));
    assert_eq!(
        nb.cells()[1].source(),
        "# Parameters\nalpha = TRUE\nname = \"x\"\n"
    );
    assert_eq!(
        done.warnings,
        vec![Warning::NamesNotChecked {
            language: "R".into()
        }]
    );

    let mut nb = notebook(vec![], 5, "julia-1.10", "julia");
    run(&mut nb, &params(&[("n", "None")]));
    assert_eq!(nb.cells()[0].source(), "# Parameters\nn = nothing\n");

    let mut nb = notebook(vec![], 5, "bash", "bash");
    run(&mut nb, &params(&[("n", "a b")]));
    assert_eq!(nb.cells()[0].source(), "# Parameters\nn='a b'\n");

    // -k overrides the notebook's kernel.
    let mut nb = notebook(vec![], 5, "ir", "R");
    let mut options = InjectOptions::default();
    options.kernel_name = Some("python3".into());
    options.language = Some("python".into());
    inject(&mut nb, &params(&[("n", "None")]), &options).unwrap();
    assert_eq!(nb.cells()[0].source(), "# Parameters\nn = None\n");

    let mut nb = notebook(vec![], 5, "scala212", "scala");
    let err = inject(&mut nb, &params(&[("n", "1")]), &InjectOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no parameter translator for kernel 'scala212' or language 'scala' (supported: python, R, julia, bash)"
    );
}

#[test]
fn datetime_default_in_parameters_cell_declares_a_date() {
    let mut nb = python_nb(vec![code(
        "import datetime\nstart = datetime.datetime(2020, 1, 1)  # first day\nend: datetime.date = None\nn = 3\n",
        &["parameters"],
    )]);
    let mut sources = ParameterSources::new();
    sources.json(r#"{"start": 1640908800000, "end": "2022-01-01", "n": 1640908800000}"#);
    let (p, _) = sources.build().unwrap();
    let done = run(&mut nb, &p);
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    assert_eq!(
        nb.cells()[1].source(),
        "# Parameters\nimport datetime as __nbexec_datetime\n\
         start = __nbexec_datetime.datetime(2021, 12, 31, 0, 0, 0, tzinfo=__nbexec_datetime.timezone.utc)\n\
         end = __nbexec_datetime.date(2022, 1, 1)\n\
         n = 1640908800000\n"
    );
    // The metadata keeps what was passed.
    assert_eq!(
        nb.metadata()["papermill"]["parameters"]["start"],
        json!(1640908800000_i64)
    );
}

#[test]
fn declared_types_and_esri_rendering_reach_the_cell() {
    let mut nb = python_nb(vec![code("when = 0\nfs = None", &["parameters"])]);
    let mut sources = ParameterSources::new();
    sources.json(
        r#"{"when": 0, "fs": {"geometryType": "esriGeometryPoint", "fields": [], "features": [{"geometry": {"x": 1, "y": 2}}]}}"#,
    );
    let (p, _) = sources.build().unwrap();
    let mut options = InjectOptions::default();
    options.declared_types = vec![("when".into(), ParamType::Date)];
    options.esri = EsriRendering::GeoJson;
    inject(&mut nb, &p, &options).unwrap();
    assert_eq!(
        nb.cells()[1].source(),
        "# Parameters\nimport datetime as __nbexec_datetime\n\
         when = __nbexec_datetime.datetime(1970, 1, 1, 0, 0, 0, tzinfo=__nbexec_datetime.timezone.utc)\n\
         fs = {\"type\": \"FeatureCollection\", \"features\": [{\"type\": \"Feature\", \"geometry\": \
         {\"type\": \"Point\", \"coordinates\": [1.0, 2.0]}, \"properties\": None}]}\n"
    );
}

#[test]
fn names_are_checked_even_when_built_by_a_program() {
    let mut nb = python_nb(vec![]);
    let mut p = Parameters::new();
    p.insert("x = 1; import os; y", Value::int(1));
    let err = inject(&mut nb, &p, &InjectOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameter name \"x = 1; import os; y\" (from the calling program): not a Python identifier"
    );
    assert!(nb.cells().is_empty());
}

#[test]
fn errors_leave_the_notebook_unchanged() {
    let mut nb = notebook(vec![code("d = 1", &["parameters"])], 5, "bash", "bash");
    let before = nb.clone();
    let mut p = Parameters::new();
    p.insert("d", Value::Dict(vec![("k".into(), Value::int(1))]));
    let err = inject(&mut nb, &p, &InjectOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameter \"d\": a dict cannot be written in bash"
    );
    assert_eq!(nb, before);
}

#[test]
fn values_that_do_not_fit_the_declared_type_warn_or_fail_with_strict() {
    let cell = "verbose = False\nn = 3\nratio: float = 0.5\nlabel: Optional[str] = None\n\
                items = []  # type: List[str]\nanything = None\n";
    let mut sources = ParameterSources::new();
    sources
        .yaml("verbose: no\nanything: [1]")
        .param("n", "2")
        .param("ratio", "1")
        .param("label", "None")
        .raw("items", "a");
    let (p, _) = sources.build().unwrap();
    let mut nb = python_nb(vec![code(cell, &["parameters"])]);
    let done = run(&mut nb, &p);
    let texts: Vec<String> = done.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "parameter 'verbose' is str \"no\", but the notebook expects bool (from its default False); \
             \"no\" is a boolean only in YAML 1.1 (nbexec reads YAML 1.2): write false in YAML or JSON, False with -p",
            "parameter 'items' is str, but the notebook expects list (from its type comment List[str])",
        ]
    );
    // The value is still injected as given.
    assert!(nb.cells()[1].source().contains("verbose = \"no\"\n"));

    let mut options = InjectOptions::default();
    options.strict = true;
    let mut nb = python_nb(vec![code(cell, &["parameters"])]);
    let err = inject(&mut nb, &p, &options).unwrap_err();
    assert!(matches!(err, ParamError::DeclaredType { ref name, .. } if name == "verbose"));
    assert_eq!(nb.cells().len(), 1, "nothing injected on error");

    // A --param-type declaration wins over the notebook's type.
    let mut options = InjectOptions::default();
    options.declared_types = vec![("verbose".into(), ParamType::String)];
    let mut nb = python_nb(vec![code(cell, &["parameters"])]);
    let (p, _) = ParameterSources::new().yaml("verbose: no").build().unwrap();
    assert!(inject(&mut nb, &p, &options).unwrap().warnings.is_empty());
}

#[test]
fn naive_dates_become_utc_only_where_the_default_is_aware() {
    let mut nb = python_nb(vec![code(
        "import datetime\n\
         naive = datetime.datetime(2024, 1, 1)\n\
         aware = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)\n\
         kept = datetime.datetime.now(datetime.timezone.utc)\n",
        &["parameters"],
    )]);
    let (p, _) = ParameterSources::new()
        .param("naive", "2024-03-01T10:00")
        .param("aware", "2024-03-01T10:00")
        .param("kept", "2024-03-01T10:00+05:30")
        .build()
        .unwrap();
    let done = run(&mut nb, &p);
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    assert_eq!(
        nb.cells()[1].source(),
        "# Parameters\nimport datetime as __nbexec_datetime\n\
         naive = __nbexec_datetime.datetime(2024, 3, 1, 10, 0, 0)\n\
         aware = __nbexec_datetime.datetime(2024, 3, 1, 10, 0, 0, tzinfo=__nbexec_datetime.timezone.utc)\n\
         kept = __nbexec_datetime.datetime(2024, 3, 1, 10, 0, 0, \
         tzinfo=__nbexec_datetime.timezone(__nbexec_datetime.timedelta(hours=5, minutes=30)))\n"
    );
}

#[test]
fn imports_are_bound_to_names_no_parameter_can_shadow() {
    let mut nb = python_nb(vec![code(
        "import datetime as dt\ndatetime = 'x'\nwhen = dt.datetime(2024, 1, 1)\nfloat = 1.0\nratio = 0.5\n",
        &["parameters"],
    )]);
    let (p, _) = ParameterSources::new()
        .param("datetime", "y")
        .param("when", "2024-05-06")
        .param("float", "2.5")
        .param("ratio", "-inf")
        .build()
        .unwrap();
    run(&mut nb, &p);
    assert_eq!(
        nb.cells()[1].source(),
        "# Parameters\nimport datetime as __nbexec_datetime\nimport builtins as __nbexec_builtins\n\
         datetime = \"y\"\nwhen = __nbexec_datetime.datetime(2024, 5, 6, 0, 0, 0)\n\
         float = 2.5\nratio = __nbexec_builtins.float('-inf')\n"
    );
    // No parameter named float: papermill's text.
    let mut nb = python_nb(vec![code("ratio = 0.5\n", &["parameters"])]);
    run(&mut nb, &params(&[("ratio", "nan")]));
    assert_eq!(
        nb.cells()[1].source(),
        "# Parameters\nratio = float('nan')\n"
    );
}
