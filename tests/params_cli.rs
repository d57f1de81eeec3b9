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
                 epoch = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)\n",
                &["parameters"],
            ),
            code(
                "print(start > datetime.datetime(2024, 1, 1), start.isoformat())\n\
                 print(stamp > datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), stamp.isoformat())\n\
                 print(local > stamp, local.isoformat())\n\
                 print(epoch == stamp, epoch.isoformat())\n",
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
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let nb = nb.unwrap();
    assert_eq!(
        stream_text(cell_with(&nb, "print(start"), "stdout"),
        "True 2024-03-01T10:00:00\n\
         True 2024-03-01T10:00:00+00:00\n\
         False 2024-03-01T10:00:00+02:00\n\
         True 2024-03-01T10:00:00+00:00\n"
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
