//! What the reader says about input it cannot take, and the odd input it can.

mod common;

use nbexec_format::{FormatError, Warning, read_slice, read_str, read_str_with_warnings};

fn error_of(text: &str) -> FormatError {
    match read_str(text) {
        Ok(_) => panic!("read {text:?} without complaint"),
        Err(e) => e,
    }
}

const MINIMAL: &str = r#"{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#;

#[test]
fn text_that_is_not_json_is_reported_with_line_and_column() {
    let e = error_of("{\n \"cells\": [\n  {\"a\": 1,}\n ]\n}");
    match &e {
        FormatError::Json { line, column, .. } => assert_eq!((*line, *column), (3, 11)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        e.to_string(),
        "not valid JSON at line 3, column 11: trailing comma"
    );
    assert!(matches!(
        error_of(""),
        FormatError::Json {
            line: 1,
            column: 0,
            ..
        }
    ));
}

#[test]
fn bytes_that_are_not_utf8_are_not_json() {
    let e = read_slice(b"{\"cells\": \"\xff\"}").unwrap_err();
    assert!(e.to_string().starts_with("not valid JSON at line 1"), "{e}");
}

#[test]
fn json_that_is_not_an_object_is_refused() {
    for text in ["[1, 2]", "null", "\"notebook\"", "4"] {
        assert_eq!(
            error_of(text).to_string(),
            "top level: expected a JSON object (a notebook)"
        );
    }
}

#[test]
fn an_object_without_nbformat_is_not_a_notebook() {
    assert_eq!(
        error_of(r#"{"cells": []}"#).to_string(),
        "top level: no 'nbformat' key: this is not a Jupyter notebook"
    );
    assert_eq!(
        error_of(r#"{"nbformat": "4", "cells": []}"#).to_string(),
        "nbformat: expected an integer, found a string"
    );
    assert_eq!(
        error_of(r#"{"nbformat": 4, "nbformat_minor": -1, "cells": []}"#).to_string(),
        "nbformat_minor: expected an integer, found a number"
    );
}

#[test]
fn nbformat_2_is_refused_with_how_to_convert_it() {
    // nbformat 3 is upgraded on read (tests/upgrade.rs); older versions are refused.
    let e = error_of(r#"{"nbformat": 2, "nbformat_minor": 0, "worksheets": [], "metadata": {}}"#);
    assert!(matches!(e, FormatError::UnsupportedVersion(_)));
    assert_eq!(
        e.to_string(),
        "nbformat 2 notebooks are not supported; convert it to version 4 first \
         (jupyter nbconvert --to notebook --nbformat 4)"
    );
}

#[test]
fn nbformat_5_is_refused() {
    let e = error_of(r#"{"nbformat": 5, "nbformat_minor": 0, "cells": [], "metadata": {}}"#);
    assert!(matches!(e, FormatError::UnsupportedVersion(_)));
    assert_eq!(
        e.to_string(),
        "nbformat 5.0 is not supported (this version of nbexec reads 4.0 to 4.5)"
    );
}

/// A 4.6 notebook from the future: new cell and output types, new keys everywhere.
const V4_6: &str = r#"{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "future_cell_key": {"b": 1, "a": [true, null]},
   "id": "f00d",
   "metadata": {},
   "outputs": [
    {
     "output_type": "hologram",
     "text": "not split: an unknown output type\nkeeps its strings\n",
     "data": {"text/plain": "unknown outputs' data is not split\neither"}
    },
    {"output_type": "stream", "name": "stdout", "text": ["a\n", "b"], "future_output_key": 1}
   ],
   "source": ["x = 1\n", "y"]
  },
  {"cell_type": "sketch", "id": "beef", "metadata": {}, "source": "line\nline", "strokes": [1.5, 2]}
 ],
 "metadata": {"future_metadata": {}},
 "future_top_key": "kept",
 "nbformat": 4,
 "nbformat_minor": 6
}"#;

#[test]
fn nbformat_4_6_is_read_with_a_warning_and_written_back_losslessly() {
    let read = read_str_with_warnings(V4_6).unwrap();
    assert_eq!(read.warnings, vec![Warning::NewerMinor { minor: 6 }]);
    assert_eq!(
        read.warnings[0].to_string(),
        "notebook is nbformat 4.6, newer than 4.5; reading it as 4.5 and keeping every field"
    );
    let nb = &read.notebook;
    assert_eq!(nb.nbformat(), (4, 6));
    assert_eq!(nb.cells()[1].cell_type(), "sketch");
    assert_eq!(nb.cells()[1].source(), "line\nline");

    let written = nbexec_format::write_string(nb);
    assert_eq!(written, common::python_read_write(V4_6));
    // Written once, it is a fixed point.
    let again = nbexec_format::write_string(&read_str(&written).unwrap());
    assert_eq!(again, written);
    // And it is valid, as Python finds a 4.6 notebook valid: against 4.5, relaxed.
    assert_eq!(nbexec_format::validate(nb), vec![]);
}

#[test]
fn cells_that_are_not_an_array_are_refused() {
    assert_eq!(
        error_of(r#"{"cells": {"0": {}}, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#)
            .to_string(),
        "cells: expected an array, found an object"
    );
    assert_eq!(
        error_of(r#"{"metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#).to_string(),
        "top level: no 'cells' key"
    );
}

#[test]
fn a_cell_that_is_not_an_object_is_refused_naming_its_index() {
    let text = r#"{"cells": [{"cell_type": "raw", "metadata": {}, "source": ""}, {}, "x"],
                  "metadata": {}, "nbformat": 4, "nbformat_minor": 4}"#;
    assert_eq!(
        error_of(text).to_string(),
        "cells[2]: expected an object, found a string"
    );
}

#[test]
fn python_non_finite_floats_are_read_and_written_as_python_does() {
    // json.loads takes NaN and ±Infinity; nbformat writes them, and 1e400 as Infinity.
    let text = r#"{"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "nan": NaN, "inf": Infinity, "ninf": -Infinity, "big": 1e400, "nbig": -1E400,
        "list": [NaN,Infinity,-Infinity], "s": "NaN Infinity -Infinity \" NaN"}}"#;
    let nb = read_str(text).unwrap();
    let md = nb.metadata();
    let text_of = |key: &str| md[key].as_number().map(|n| n.as_str().to_owned());
    assert_eq!(text_of("nan").as_deref(), Some("NaN"));
    assert_eq!(text_of("ninf").as_deref(), Some("-Infinity"));
    assert_eq!(md["s"], "NaN Infinity -Infinity \" NaN");
    let written = nbexec_format::write_string(&nb);
    assert_eq!(written, common::python_read_write(text));
    assert!(written.contains("\"big\": Infinity"));
    // The regression the fuzzer found: 1e400 became Infinity, which could not be re-read.
    assert_eq!(
        nbexec_format::write_string(&read_str(&written).unwrap()),
        written
    );
}

#[test]
fn json_errors_after_a_non_finite_float_point_at_the_original_text() {
    let text = "{\"a\": [NaN, -Infinity, 1,]}";
    match error_of(text) {
        FormatError::Json { line, column, .. } => {
            // serde_json points at the `]` after the trailing comma.
            assert_eq!((line, column), (1, 26), "{}", &text[25..]);
        }
        other => panic!("{other:?}"),
    }
    // Literals where a key goes, or half-written, are still errors.
    for bad in [
        "{NaN: 1}",
        "{\"a\": -NaN}",
        "{\"a\": Infinit}",
        "{\"a\": NaNa}",
        "{\"a\": nan}",
    ] {
        assert!(matches!(error_of(bad), FormatError::Json { .. }), "{bad}");
    }
}

#[test]
fn odd_input_never_panics() {
    let deep_array = "[".repeat(100_000);
    let deep_object = "{\"a\":".repeat(100_000);
    let deep_valid = format!(
        r#"{{"cells": [], "metadata": {{"x": {}1{}}}, "nbformat": 4, "nbformat_minor": 5}}"#,
        "[".repeat(120),
        "]".repeat(120)
    );
    let inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\xef\xbb\xbf{}".to_vec(),
        deep_array.into_bytes(),
        deep_object.into_bytes(),
        deep_valid.into_bytes(),
        b"{\"nbformat\": 18446744073709551616, \"cells\": []}".to_vec(),
        b"{\"nbformat\": 4, \"nbformat_minor\": 99999999999999999999, \"cells\": []}".to_vec(),
        b"{\"nbformat\": 4, \"nbformat_minor\": 5, \"cells\": [{\"outputs\": 5, \"cell_type\": \"code\", \"source\": [1, \"a\"]}]}".to_vec(),
        b"{\"nbformat\": 4, \"cells\": [{\"cell_type\": \"code\", \"outputs\": [1, {\"output_type\": 2, \"data\": []}]}], \"metadata\": []}".to_vec(),
        b"{\"$serde_json::private::Number\": \"1\"}".to_vec(),
        MINIMAL.as_bytes().to_vec(),
    ];
    for input in inputs {
        if let Ok(read) = read_slice(&input) {
            let written = nbexec_format::write_to_vec(&read.notebook);
            let again = nbexec_format::write_to_vec(&read_slice(&written).unwrap().notebook);
            assert_eq!(again, written);
            let _ = nbexec_format::validate(&read.notebook);
        }
    }
}
