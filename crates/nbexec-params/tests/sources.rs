//! Parameter sources (spec §2): `-p` coercion against Python's own `int()`/`float()`,
//! merge order and key position, name validation, YAML 1.2, JSON, files, base64.

use std::io::Write;
use std::process::{Command, Stdio};

use nbexec_params::{
    Integer, NameProblem, Origin, ParamError, ParameterSources, Parameters, Value, Warning,
    coerce_papermill,
};

fn build(f: impl FnOnce(&mut ParameterSources)) -> Result<(Parameters, Vec<Warning>), ParamError> {
    let mut sources = ParameterSources::new();
    f(&mut sources);
    sources.build()
}

fn int(text: &str) -> Value {
    Value::Int(Integer::parse(text).unwrap())
}

/// papermill's `_resolve_type`, run by Python itself, for each input; answers
/// `b:True`, `n:`, `i:<digits>`, `f:<ieee bits hex>` or `s:<utf-8 hex>`.
fn python_resolve_type(inputs: &[&str]) -> Vec<String> {
    const SCRIPT: &str = r#"
import json, struct, sys
sys.set_int_max_str_digits(0)
def resolve(value):  # papermill/cli.py _resolve_type
    if value == "True": return True
    if value == "False": return False
    if value == "None": return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value
for s in json.load(sys.stdin):
    v = resolve(s)
    if v is None: print("n:")
    elif type(v) is bool: print("b:" + str(v))
    elif type(v) is int: print("i:" + str(v))
    elif type(v) is float: print("f:" + ("nan" if v != v else struct.pack(">d", v).hex()))
    else: print("s:" + v.encode("utf-8").hex())
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed as the int()/float() oracle");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(inputs).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn encode(v: &Value) -> String {
    match v {
        Value::None => "n:".into(),
        Value::Bool(b) => format!("b:{}", if *b { "True" } else { "False" }),
        Value::Int(i) => format!("i:{i}"),
        Value::Float(f) if f.is_nan() => "f:nan".into(),
        Value::Float(f) => format!("f:{:016x}", f.to_bits()),
        Value::Str(s) => format!(
            "s:{}",
            s.bytes().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn p_coercion_matches_python_int_and_float() {
    let inputs = [
        "True",
        "False",
        "None",
        "true",
        "none",
        " True",
        "True ",
        "1",
        "-1",
        "+1",
        "0",
        "-0",
        "007",
        " 42 ",
        "\t7\n",
        "\u{a0}8\u{2003}",
        "\u{1c}5\u{1f}",
        "\u{3000}9",
        "1_000",
        "1__000",
        "_1",
        "1_",
        "+_1",
        "1 000",
        "0x10",
        "0o7",
        "0b1",
        "1.5",
        "1.",
        ".5",
        "-.5",
        "+1.5e3",
        "1e3",
        "1E-3",
        "1e+3",
        "1_0.5",
        "1._5",
        "1_.5",
        "1e1_0",
        "1e_1",
        "1.e5",
        ".e5",
        "e5",
        "1e",
        "1e+",
        "nan",
        "NaN",
        "-nan",
        "+NAN",
        "inf",
        "-inf",
        "Infinity",
        "-Infinity",
        "iNfInItY",
        "infinit",
        "in f",
        "nan1",
        ".",
        "-",
        "+",
        "",
        " ",
        "abc",
        "1.2.3",
        "12345678901234567890123",
        "-98765432109876543210",
        "0.0",
        "-0.0",
        "1e400",
        "-1e400",
        "5e-324",
        "2e-324",
        "1e-400",
        "0.1",
        "123456789012345678901234567890.5",
        "1\n2",
        "١٢٣",
        "\u{ff11}\u{ff12}",
        "١.٥",
        "x; import os",
    ];
    let python = python_resolve_type(&inputs);
    assert_eq!(python.len(), inputs.len());
    // Python also reads non-ASCII decimal digits; nbexec keeps those strings (spec:
    // ASCII digits).
    let non_ascii_digits = ["١٢٣", "\u{ff11}\u{ff12}", "١.٥"];
    for (input, theirs) in inputs.iter().zip(&python) {
        let ours = encode(&coerce_papermill(input));
        if non_ascii_digits.contains(input) {
            assert_eq!(ours, encode(&Value::str(*input)), "{input:?}");
            assert_ne!(&ours, theirs, "{input:?}");
        } else {
            assert_eq!(&ours, theirs, "{input:?}");
        }
    }
}

#[test]
fn p_coercion_table() {
    let cases: &[(&str, Value)] = &[
        ("True", Value::Bool(true)),
        ("False", Value::Bool(false)),
        ("None", Value::None),
        ("true", Value::str("true")),
        (" 42 ", Value::int(42)),
        ("1_000", Value::int(1000)),
        ("1__000", Value::str("1__000")),
        ("007", Value::int(7)),
        ("1.", Value::Float(1.0)),
        (".5", Value::Float(0.5)),
        ("1e3", Value::Float(1000.0)),
        ("-0.0", Value::Float(-0.0)),
        ("inf", Value::Float(f64::INFINITY)),
        ("-Infinity", Value::Float(f64::NEG_INFINITY)),
        ("0x10", Value::str("0x10")),
        ("12345678901234567890123", int("12345678901234567890123")),
    ];
    for (input, want) in cases {
        let got = coerce_papermill(input);
        match (want, &got) {
            (Value::Float(w), Value::Float(g)) => assert_eq!(w.to_bits(), g.to_bits(), "{input:?}"),
            _ => assert_eq!(&got, want, "{input:?}"),
        }
    }
    assert!(matches!(coerce_papermill("nan"), Value::Float(f) if f.is_nan()));
    // More digits than Python 3.11's int() takes: still an int with every digit.
    let huge = "9".repeat(5000);
    assert_eq!(coerce_papermill(&huge), int(&huge));
}

#[test]
fn r_is_always_a_string() {
    let (p, _) = build(|s| {
        s.raw("a", "1").raw("b", "True").raw("c", "None");
    })
    .unwrap();
    assert_eq!(p.get("a"), Some(&Value::str("1")));
    assert_eq!(p.get("b"), Some(&Value::str("True")));
    assert_eq!(p.get("c"), Some(&Value::str("None")));
}

#[test]
fn sources_merge_in_fixed_order_later_wins_first_position_kept() {
    let (p, warnings) = build(|s| {
        // Given out of order on purpose: the merge order is -b -f -y -j -p -r.
        s.raw("a", "from -r")
            .param("d", "4")
            .json(r#"{"b": "from -j", "c": 3}"#)
            .yaml("a: from -y\nb: from -y\nd: 1")
            .file("p.yaml", "e: from -f\na: from -f")
            .base64_yaml("Zjogb25l"); // "f: one"
    })
    .unwrap();
    assert!(warnings.is_empty());
    let names: Vec<&str> = p.names().collect();
    assert_eq!(names, ["f", "e", "a", "b", "d", "c"]);
    assert_eq!(p.get("a"), Some(&Value::str("from -r")));
    assert_eq!(p.get("b"), Some(&Value::str("from -j")));
    assert_eq!(p.get("c"), Some(&Value::int(3)));
    assert_eq!(p.get("d"), Some(&Value::int(4)));
    assert_eq!(p.get("e"), Some(&Value::str("from -f")));
    assert_eq!(p.get("f"), Some(&Value::str("one")));
}

#[test]
fn merging_is_shallow() {
    let (p, _) = build(|s| {
        s.yaml("d: {x: 1, y: 2}").json(r#"{"d": {"y": 3}}"#);
    })
    .unwrap();
    assert_eq!(
        p.get("d"),
        Some(&Value::Dict(vec![("y".into(), Value::int(3))]))
    );
}

#[test]
fn repeated_sources_apply_in_the_order_given() {
    let (p, _) = build(|s| {
        s.yaml("a: 1")
            .yaml("a: 2\nb: 1")
            .param("b", "x")
            .param("b", "y");
    })
    .unwrap();
    assert_eq!(p.get("a"), Some(&Value::int(2)));
    assert_eq!(p.get("b"), Some(&Value::str("y")));
}

#[test]
fn inject_paths_come_first() {
    let (p, _) = build(|s| {
        s.param("x", "1").inject_paths("in.ipynb", "out.ipynb");
    })
    .unwrap();
    let names: Vec<&str> = p.names().collect();
    assert_eq!(
        names,
        ["PAPERMILL_INPUT_PATH", "PAPERMILL_OUTPUT_PATH", "x"]
    );
}

#[test]
fn names_must_be_identifiers_that_are_not_keywords() {
    let err = build(|s| {
        s.param("x; import os", "1");
    })
    .unwrap_err();
    assert_eq!(
        err,
        ParamError::InvalidName {
            name: "x; import os".into(),
            origin: Origin::Param,
            problem: NameProblem::NotIdentifier
        }
    );
    assert_eq!(
        err.to_string(),
        "invalid parameter name \"x; import os\" (from -p): not a Python identifier"
    );
    let err = build(|s| {
        s.yaml("ok: 1\nclass: 2");
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid parameter name \"class\" (from -y #1): a Python keyword"
    );
    for bad in ["1abc", "a-b", "", "a b", "a.b", "None", "lambda", "x\n"] {
        assert!(
            build(|s| {
                s.raw(bad, "v");
            })
            .is_err(),
            "{bad:?}"
        );
    }
    let err = build(|s| {
        s.json(r#"{"ok": 1, "import": 2}"#);
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            ParamError::InvalidName {
                origin: Origin::Json(1),
                ..
            }
        ),
        "{err:?}"
    );
    for good in ["_", "_x", "x1", "café", "match", "type", "Δt"] {
        assert!(
            build(|s| {
                s.raw(good, "v");
            })
            .is_ok(),
            "{good:?}"
        );
    }
}

#[test]
fn yaml_is_yaml_1_2() {
    let (p, _) = build(|s| {
        s.yaml(
            "on_off: yes\nno_: no\noctal: 010\nexplicit_octal: 0o10\nhex: 0x1F\nbinary: 0b101\n\
             underscore: 1_000\nsexagesimal: 1:30\nsci: 1e3\nbig: 12345678901234567890123\n\
             null_: ~\nquoted: '123'\nday: 2021-12-31\nnested: {a: [1, 2.5, true, null]}\n",
        );
    })
    .unwrap();
    let want = [
        ("on_off", Value::str("yes")),
        ("no_", Value::str("no")),
        ("octal", Value::int(10)),
        ("explicit_octal", Value::int(8)),
        ("hex", Value::int(31)),
        ("binary", Value::str("0b101")),
        ("underscore", Value::str("1_000")),
        ("sexagesimal", Value::str("1:30")),
        ("sci", Value::Float(1000.0)),
        ("big", int("12345678901234567890123")),
        ("null_", Value::None),
        ("quoted", Value::str("123")),
        ("day", Value::str("2021-12-31")),
        (
            "nested",
            Value::Dict(vec![(
                "a".into(),
                Value::List(vec![
                    Value::int(1),
                    Value::Float(2.5),
                    Value::Bool(true),
                    Value::None,
                ]),
            )]),
        ),
    ];
    let names: Vec<&str> = p.names().collect();
    assert_eq!(names, want.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    for (name, value) in want {
        assert_eq!(p.get(name), Some(&value), "{name}");
    }
}

#[test]
fn yaml_errors_name_their_source() {
    let err = build(|s| {
        s.yaml("a: 1").yaml("[1, 2]");
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameters from -y #2 must be a mapping of names to values, not list"
    );
    let err = build(|s| {
        s.yaml("a: [1,");
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid YAML parameters (-y #1): "),
        "{err}"
    );
    let err = build(|s| {
        s.file("conf.yml", "a: 1\na: 2");
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("(-f conf.yml)") && err.to_string().contains("duplicate"),
        "{err}"
    );
    // Empty YAML (and a lone null) are no parameters, as in papermill.
    assert!(
        build(|s| {
            s.yaml("").yaml("~\n").yaml("# only a comment\n");
        })
        .unwrap()
        .0
        .is_empty()
    );
}

#[test]
fn json_keeps_exact_types_and_key_order() {
    let (p, _) = build(|s| {
        s.json(r#"{"z": 1.0, "a": 12345678901234567890123, "m": {"y": 1e2, "b": -0, "s": "\u00e9"}, "t": true}"#);
    })
    .unwrap();
    let names: Vec<&str> = p.names().collect();
    assert_eq!(names, ["z", "a", "m", "t"]);
    assert_eq!(p.get("z"), Some(&Value::Float(1.0)));
    assert_eq!(p.get("a"), Some(&int("12345678901234567890123")));
    assert_eq!(
        p.get("m"),
        Some(&Value::Dict(vec![
            ("y".into(), Value::Float(100.0)),
            ("b".into(), Value::int(0)),
            ("s".into(), Value::str("é")),
        ]))
    );
    let err = build(|s| {
        s.json("[1]");
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            ParamError::NotAMapping {
                origin: Origin::Json(1),
                found: "list"
            }
        ),
        "{err:?}"
    );
}

#[test]
fn files_are_read_by_extension() {
    let (p, warnings) = build(|s| {
        s.file(
            "a.JSON",
            r#"{"x": 1.0, "big": 123456789012345678901234567890}"#,
        )
        .file("b.yml", "y: yes")
        .file("c.yaml", "z: 0o17")
        .file("params.txt", "w: 1");
    })
    .unwrap();
    assert_eq!(p.get("x"), Some(&Value::Float(1.0)));
    assert_eq!(p.get("big"), Some(&int("123456789012345678901234567890")));
    assert_eq!(p.get("y"), Some(&Value::str("yes")));
    assert_eq!(p.get("z"), Some(&Value::int(15)));
    assert_eq!(p.get("w"), Some(&Value::int(1)));
    assert_eq!(
        warnings,
        vec![Warning::FileExtension {
            path: "params.txt".into()
        }]
    );
    let err = build(|s| {
        s.file("bad.json", "{'x': 1}");
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid JSON parameters (-f bad.json): "),
        "{err}"
    );
}

#[test]
fn base64_yaml_decodes_like_python_b64decode() {
    // `printf 'a: 1\nb: [x, y]\n' | base64 -w 20`: wrapped lines are fine.
    let (p, _) = build(|s| {
        s.base64_yaml("YTogMQpiOiBbeCwgeV0K\n");
    })
    .unwrap();
    assert_eq!(p.get("a"), Some(&Value::int(1)));
    assert_eq!(
        p.get("b"),
        Some(&Value::List(vec![Value::str("x"), Value::str("y")]))
    );
    let (p, _) = build(|s| {
        s.base64_yaml("YTog\nMQo=");
    })
    .unwrap();
    assert_eq!(p.get("a"), Some(&Value::int(1)));
    let err = build(|s| {
        s.base64_yaml("YTogMQpi=Oi");
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot decode base64 parameters (-b #1): "),
        "{err}"
    );
    let err = build(|s| {
        s.base64_yaml("/w==");
    })
    .unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
}

#[test]
fn deeply_nested_yaml_is_an_error_not_a_crash() {
    let deep = format!("a: {}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let result = build(|s| {
        s.yaml(deep);
    });
    assert!(result.is_err());
}
