//! Parameters end to end: how values given on the command line reach a real kernel
//! (dates, declared types, names that could shadow the injected cell's imports,
//! parameter files and standard input, Esri FeatureSets).

mod common;

use common::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Runs `cells` as a notebook with `args` after `run IN OUT`; returns the process
/// output and the output notebook (if written).
fn run_cells(
    cells: Vec<serde_json::Value>,
    args: &[&str],
) -> (std::process::Output, Option<serde_json::Value>) {
    let dir = tmp();
    let input = write_nb(dir.path(), "in.ipynb", &notebook(cells));
    let output = dir.path().join("out.ipynb");
    let mut all = vec!["run", input.to_str().unwrap(), output.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run(&all);
    let nb = output.exists().then(|| read_nb(&output));
    (out, nb)
}

#[test]
fn dates_keep_what_was_written_and_compare_with_the_defaults() {
    let (out, nb) = run_cells(
        vec![
            code(
                "import datetime\n\
                 start = datetime.datetime(2024, 1, 1)\n\
                 stamp = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)\n\
                 local = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)\n\
                 epoch = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)\n\
                 day = datetime.date(2024, 1, 1)\n",
                &["parameters"],
            ),
            code(
                "print(start > datetime.datetime(2024, 1, 1), start.isoformat())\n\
                 print(stamp > datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), stamp.isoformat())\n\
                 print(local > stamp, local.isoformat())\n\
                 print(epoch == stamp, epoch.isoformat())\n\
                 print(day > datetime.date(2024, 1, 1), repr(day))\n",
                &[],
            ),
        ],
        &[
            "-p",
            "start",
            "2024-03-01T10:00",
            "-p",
            "stamp",
            "2024-03-01T10:00",
            "-p",
            "local",
            "2024-03-01T10:00:00+02:00",
            "-j",
            r#"{"epoch": 1709287200000}"#,
            "-p",
            "day",
            "2024-03-01",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = nb.unwrap();
    assert_eq!(
        stream_text(cell_with(&nb, "print(start"), "stdout"),
        "True 2024-03-01T10:00:00\n\
         True 2024-03-01T10:00:00+00:00\n\
         False 2024-03-01T10:00:00+02:00\n\
         True 2024-03-01T10:00:00+00:00\n\
         True datetime.date(2024, 3, 1)\n"
    );
    // The metadata keeps what was passed.
    assert_eq!(
        nb["metadata"]["papermill"]["parameters"]["local"],
        "2024-03-01T10:00:00+02:00"
    );
}

#[test]
fn names_that_shadow_the_injected_cells_imports_do_not_break_it() {
    let (out, nb) = run_cells(
        vec![
            code(
                "import datetime as dt\n\
                 datetime = 'label'\n\
                 when = dt.datetime(2024, 1, 1)\n\
                 float = 1.5\n\
                 ratio = 0.5\n",
                &["parameters"],
            ),
            code(
                "import math\nprint(datetime, when.isoformat(), float, math.isnan(ratio))\n",
                &[],
            ),
        ],
        &[
            "-p",
            "datetime",
            "other",
            "-p",
            "when",
            "2024-05-06",
            "-p",
            "float",
            "2.5",
            "-p",
            "ratio",
            "nan",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = nb.unwrap();
    assert_eq!(
        stream_text(cell_with(&nb, "import math"), "stdout"),
        "other 2024-05-06T00:00:00 2.5 True\n"
    );
    // Without a colliding name the cell is papermill's text.
    let (out, nb) = run_cells(
        vec![
            code("ratio = 0.5\n", &["parameters"]),
            code("print(ratio)\n", &[]),
        ],
        &["-p", "ratio", "nan"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = nb.unwrap();
    assert_eq!(
        source(cell_with(&nb, "# Parameters")),
        "# Parameters\nratio = float('nan')\n"
    );
}

#[test]
fn values_that_do_not_fit_the_declared_type_warn_or_fail_with_strict() {
    let cells = || {
        vec![
            code(
                "verbose = False\nn = 3\nratio: float = 0.5\nlabel = None\n",
                &["parameters"],
            ),
            code("print(bool(verbose), n, ratio)\n", &[]),
        ]
    };
    let args = [
        "-y",
        "verbose: no",
        "-p",
        "n",
        "2",
        "-p",
        "ratio",
        "1",
        "-p",
        "label",
        "7",
    ];
    let (out, nb) = run_cells(cells(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(
        warnings,
        [
            "warning: parameter 'verbose' is str \"no\", but the notebook expects bool (from its default False); \
             \"no\" is a boolean only in YAML 1.1 (nbexec reads YAML 1.2): write false in YAML or JSON, False with -p"
        ],
        "{err}"
    );
    assert_eq!(
        stream_text(cell_with(&nb.unwrap(), "print(bool"), "stdout"),
        "True 2 1\n"
    );

    let mut strict = args.to_vec();
    strict.push("--strict");
    let (out, _) = run_cells(cells(), &strict);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: parameter 'verbose' is str \"no\", but the notebook expects bool"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A point FeatureSet of `n` features, as Esri JSON text.
fn point_feature_set(n: usize) -> String {
    let features: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"geometry": {{"x": {}.5, "y": 34.25}}, "attributes": {{"OBJECTID": {i}, "name": "parcel number {i:06}"}}}}"#,
                -117 - (i % 50) as i64
            )
        })
        .collect();
    format!(
        r#"{{"geometryType": "esriGeometryPoint", "spatialReference": {{"wkid": 4326}}, "fields": [{{"name": "OBJECTID", "type": "esriFieldTypeOID"}}], "features": [{}]}}"#,
        features.join(", ")
    )
}

fn feature_set_cells() -> Vec<serde_json::Value> {
    vec![
        code("fs = None\nn = 0\n", &["parameters"]),
        code(
            "print(type(fs).__name__, len(fs['features']) if isinstance(fs, dict) else fs.n, n)\n",
            &[],
        ),
    ]
}

#[test]
fn json_parameters_come_from_a_file_or_standard_input() {
    // Too large for one command-line argument (Linux caps each at 128 KiB).
    let big = format!(r#"{{"fs": {}, "n": 3}}"#, point_feature_set(3000));
    assert!(big.len() > 200_000);
    let dir = tmp();
    let params = dir.path().join("params.json");
    std::fs::write(&params, &big).unwrap();
    let at = format!("@{}", params.display());
    let (out, nb) = run_cells(feature_set_cells(), &["-j", &at]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stream_text(cell_with(&nb.unwrap(), "print(type"), "stdout"),
        "dict 3000 3\n"
    );

    // Standard input, merged in -j order with an inline object.
    let input = write_nb(dir.path(), "in.ipynb", &notebook(feature_set_cells()));
    let output = dir.path().join("out.ipynb");
    let mut child = nbexec()
        .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
        .args(["-j", "-", "-j", r#"{"n": 7}"#])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(big.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stream_text(cell_with(&read_nb(&output), "print(type"), "stdout"),
        "dict 3000 7\n"
    );
}

#[test]
fn json_parameter_sources_that_cannot_work_are_usage_errors() {
    let dir = tmp();
    let input = write_nb(dir.path(), "in.ipynb", &notebook(feature_set_cells()));
    let input = input.to_str().unwrap();
    let output = dir.path().join("out.ipynb");
    let output = output.to_str().unwrap();
    let missing = dir.path().join("missing.json");
    let at_missing = format!("@{}", missing.display());
    for (args, message) in [
        (
            vec!["run", input, output, "-j", &at_missing],
            format!("error: cannot read {}: ", missing.display()),
        ),
        (
            vec!["run", input, output, "-j", "-", "-j", "-"],
            "error: -j - is given more than once: standard input can be read only once".into(),
        ),
        (
            vec!["run", "-", output, "-j", "-"],
            "error: -j - and the input notebook cannot both come from standard input".into(),
        ),
        (
            vec!["run", input, output, "-j", "-", "--detach"],
            "error: -j - cannot be used with --detach: write the JSON to a file and pass -j @FILE"
                .into(),
        ),
    ] {
        let out = nbexec()
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with(&message), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn esri_json_is_validated_in_the_default_rendering_too() {
    for (fs, message) in [
        (
            r#"{"geometryType": "esriGeometryBanana", "features": []}"#,
            "error: parameter \"fs\": geometryType \"esriGeometryBanana\" is not one of \
             esriGeometryPoint, esriGeometryMultipoint, esriGeometryPolyline, \
             esriGeometryPolygon, esriGeometryEnvelope",
        ),
        (
            r#"{"geometryType": "esriGeometryPoint", "fields": [], "features": [{"geometry": {"x": "one", "y": 2}}]}"#,
            "error: parameter \"fs\": feature 0: x is str, not a number",
        ),
    ] {
        for format in ["esri", "arcgis", "geojson"] {
            let json = format!(r#"{{"fs": {fs}}}"#);
            let (out, _) = run_cells(
                feature_set_cells(),
                &["-j", &json, "--featureset-format", format],
            );
            assert_eq!(out.status.code(), Some(2), "{format}: {}", stderr(&out));
            assert_eq!(stderr(&out).trim_end(), message, "{format}");
        }
    }
    // A point in a polygon set is converted (each geometry says what it is), with a
    // warning.
    let json = r#"{"fs": {"geometryType": "esriGeometryPolygon", "fields": [], "features": [{"geometry": {"x": 1, "y": 2}}]}}"#;
    let (out, nb) = run_cells(feature_set_cells(), &["-j", json]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).lines().any(|l| l
            == "warning: parameter 'fs': feature 0: geometry is a point (x/y) but the \
                feature set's geometryType is esriGeometryPolygon"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stream_text(cell_with(&nb.unwrap(), "print(type"), "stdout"),
        "dict 1 0\n"
    );
}

#[test]
fn arcgis_rendering_checks_for_the_package_before_any_cell_runs() {
    let json = format!(r#"{{"fs": {}, "n": 1}}"#, point_feature_set(2));
    let (out, nb) = run_cells(
        feature_set_cells(),
        &["-j", &json, "--featureset-format", "arcgis"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.lines().any(|l| l
            == "error: --featureset-format arcgis needs the \"arcgis\" package, which the kernel \
                cannot import: install it in the kernel's environment, or use \
                --featureset-format esri (an Esri JSON dict) or geojson"),
        "{err}"
    );
    // The notebook is written; no cell ran.
    let nb = nb.expect("output notebook written");
    assert!(
        nb["cells"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["execution_count"].is_null()),
        "{nb}"
    );
    assert_kernel_gone(&nb);

    // With a package of that name on the kernel's path the run goes ahead, and the
    // silent check leaves no trace (the first cell is In [1]).
    let pkg = tmp();
    std::fs::create_dir(pkg.path().join("arcgis")).unwrap();
    std::fs::write(pkg.path().join("arcgis/__init__.py"), "").unwrap();
    std::fs::write(
        pkg.path().join("arcgis/features.py"),
        "class FeatureSet:\n    def __init__(self, d):\n        self.n = len(d['features'])\n\
         \n    @classmethod\n    def from_dict(cls, d):\n        return cls(d)\n",
    )
    .unwrap();
    let dir = tmp();
    let input = write_nb(dir.path(), "in.ipynb", &notebook(feature_set_cells()));
    let output = dir.path().join("out.ipynb");
    let out = nbexec()
        .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
        .args(["-j", &json, "--featureset-format", "arcgis"])
        .env("PYTHONPATH", pkg.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = read_nb(&output);
    assert_eq!(
        stream_text(cell_with(&nb, "print(type"), "stdout"),
        "FeatureSet 2 1\n"
    );
    assert_eq!(nb["cells"][0]["execution_count"], 1);
}
