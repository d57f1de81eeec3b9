//! Translator output compared byte for byte with papermill 2.7's
//! `translate_parameters`, from the files `tests/golden/generate.py` writes.
//!
//! Where nbexec deliberately differs from papermill (R and Julia only), the case is
//! listed in `deviation` with nbexec's output, and the test checks both that the
//! listed cases are exactly the ones the rules predict and that papermill's text
//! differs.

use std::path::PathBuf;

use nbexec_params::{Integer, Value, find_translator};
use serde_json::Value as Json;

fn golden(name: &str) -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The tagged JSON of `generate.py`'s `encode`.
fn decode(json: &Json) -> Value {
    match json {
        Json::Null => Value::None,
        Json::Bool(b) => Value::Bool(*b),
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(items) => Value::List(items.iter().map(decode).collect()),
        Json::Object(m) => {
            if let Some(Json::String(digits)) = m.get("int") {
                Value::Int(Integer::parse(digits).unwrap())
            } else if let Some(Json::String(repr)) = m.get("float") {
                Value::Float(match repr.as_str() {
                    "nan" => f64::NAN,
                    "inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    r => r.parse().unwrap(),
                })
            } else if let Some(Json::Array(entries)) = m.get("dict") {
                Value::Dict(
                    entries
                        .iter()
                        .map(|e| (e[0].as_str().unwrap().to_owned(), decode(&e[1])))
                        .collect(),
                )
            } else {
                panic!("bad case encoding {json}")
            }
        }
        Json::Number(_) => panic!("numbers are tagged in cases.json"),
    }
}

fn cases() -> Vec<(String, Value)> {
    golden("cases.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), decode(&c["value"])))
        .collect()
}

fn kernel_and_language(language: &str) -> (&'static str, &'static str) {
    match language {
        "python" => ("python3", "python"),
        "R" => ("ir", "R"),
        "julia" => ("julia-1.10", "julia"),
        "bash" => ("bash", "bash"),
        other => panic!("unknown language {other}"),
    }
}

fn render(language: &str, params: &[(String, Value)]) -> Result<String, String> {
    let (kernel, lang) = kernel_and_language(language);
    let t = find_translator(Some(kernel), Some(lang)).map_err(|e| e.to_string())?;
    t.render(params, "Parameters").map_err(|e| e.to_string())
}

/// Does the value contain something R/Julia render differently from papermill?
fn deviates(language: &str, value: &Value) -> bool {
    match value {
        Value::Float(f) => !f.is_finite(),
        Value::Str(s) => {
            s.chars().any(|c| ('\u{80}'..='\u{ff}').contains(&c))
                || (language == "julia" && s.contains('$'))
        }
        Value::List(items) => items.iter().any(|v| deviates(language, v)),
        Value::Dict(entries) => entries
            .iter()
            .any(|(k, v)| deviates(language, &Value::Str(k.clone())) || deviates(language, v)),
        _ => false,
    }
}

/// nbexec's output where it deliberately differs from papermill.
fn deviation(language: &str, case: &str) -> Option<&'static str> {
    Some(match (language, case) {
        ("R", "str_latin1") => "# Parameters\np = \"caf\\u00e9 \\u00ff \\u0080 \\u00a0\"\n",
        ("R", "float_nan") => "# Parameters\np = NaN\n",
        ("R", "float_inf") => "# Parameters\np = Inf\n",
        ("R", "float_neg_inf") => "# Parameters\np = -Inf\n",
        ("R", "list_strings") => "# Parameters\np = list(\"q\\\"uote\", \"caf\\u00e9\", \"$x\")\n",
        ("R", "dict_keys_escaped") => {
            "# Parameters\np = list(\"k\\\"ey\" = \"v\", \"\\u00e9\" = \"\\u00fc\", \"\" = 0)\n"
        }
        ("julia", "str_latin1") => "# Parameters\np = \"caf\\u00e9 \\u00ff \\u0080 \\u00a0\"\n",
        ("julia", "str_dollar") => "# Parameters\np = \"cost \\$5 and \\$(whoami) \\${HOME}\"\n",
        ("julia", "str_shell") => "# Parameters\np = \"a;b|c&d `e` \\$f > g\"\n",
        ("julia", "float_nan") => "# Parameters\np = NaN\n",
        ("julia", "float_inf") => "# Parameters\np = Inf\n",
        ("julia", "float_neg_inf") => "# Parameters\np = -Inf\n",
        ("julia", "list_strings") => {
            "# Parameters\np = [\"q\\\"uote\", \"caf\\u00e9\", \"\\$x\"]\n"
        }
        ("julia", "dict_keys_escaped") => {
            "# Parameters\np = Dict(\"k\\\"ey\" => \"v\", \"\\u00e9\" => \"\\u00fc\", \"\" => 0)\n"
        }
        _ => return None,
    })
}

fn expected(entry: &Json) -> Result<&str, ()> {
    match entry.get("source") {
        Some(Json::String(s)) => Ok(s),
        _ => Err(()),
    }
}

fn check_language(language: &str) {
    let pm = golden("papermill.json");
    let lang = &pm["languages"][language];
    let mut compared = 0;
    for (name, value) in cases() {
        let params = vec![("p".to_owned(), value.clone())];
        let ours = render(language, &params);
        let theirs = expected(&lang["cases"][&name]);
        let listed = deviation(language, &name);
        assert_eq!(
            listed.is_some(),
            language != "python" && language != "bash" && deviates(language, &value),
            "{language} {name}: deviation table out of date"
        );
        match (listed, theirs) {
            (Some(ours_expected), Ok(theirs)) => {
                assert_eq!(ours.as_deref(), Ok(ours_expected), "{language} {name}");
                assert_ne!(ours_expected, theirs, "{language} {name}: not a deviation");
            }
            (None, Ok(theirs)) => assert_eq!(ours.as_deref(), Ok(theirs), "{language} {name}"),
            (_, Err(())) => assert!(
                ours.is_err(),
                "{language} {name}: papermill refused, nbexec gave {ours:?}"
            ),
        }
        compared += 1;
    }
    assert!(compared >= 50, "only {compared} cases");

    // Whole tables in one cell (order, one line per parameter), where nothing deviates.
    let all: Vec<(String, Value)> = cases()
        .into_iter()
        .filter(|(_, v)| !deviates(language, v) || language == "python" || language == "bash")
        .collect();
    if language == "python" || language == "bash" {
        match expected(&lang["all"]) {
            Ok(theirs) => assert_eq!(
                render(language, &all).as_deref(),
                Ok(theirs),
                "{language} all"
            ),
            Err(()) => assert!(render(language, &all).is_err(), "{language} all"),
        }
        let scalars: Vec<(String, Value)> = all
            .iter()
            .filter(|(_, v)| !matches!(v, Value::List(_) | Value::Dict(_)))
            .cloned()
            .collect();
        let theirs = expected(&lang["all_scalars"]).unwrap();
        assert_eq!(
            render(language, &scalars).as_deref(),
            Ok(theirs),
            "{language} all_scalars"
        );
    }
    if language == "R" || language == "julia" {
        // One line per parameter: every line whose value does not deviate matches.
        let theirs = expected(&lang["all"]).unwrap();
        let table = cases();
        let ours = render(language, &table).unwrap();
        let (ours_lines, their_lines): (Vec<_>, Vec<_>) =
            (ours.lines().collect(), theirs.lines().collect());
        assert_eq!(ours_lines.len(), their_lines.len());
        assert_eq!(ours_lines[0], their_lines[0]);
        for (i, (_, value)) in table.iter().enumerate() {
            if !deviates(language, value) {
                assert_eq!(
                    ours_lines[i + 1],
                    their_lines[i + 1],
                    "{language} all, line {}",
                    i + 2
                );
            }
        }
    }
    let names: Vec<(String, Value)> = ["_private", "__dunder", "normal"]
        .iter()
        .zip(1..)
        .map(|(n, i)| (n.to_string(), Value::int(i)))
        .collect();
    assert_eq!(
        render(language, &names).as_deref(),
        Ok(expected(&lang["names"]).unwrap()),
        "{language} names"
    );
}

#[test]
fn python_literals_match_papermill_byte_for_byte() {
    check_language("python");
}

#[test]
fn r_literals_match_papermill_except_documented_fixes() {
    check_language("R");
}

#[test]
fn julia_literals_match_papermill_except_documented_fixes() {
    check_language("julia");
}

#[test]
fn bash_literals_match_papermill_byte_for_byte() {
    check_language("bash");
}

#[test]
fn golden_files_come_from_papermill_2_7() {
    assert_eq!(golden("papermill.json")["papermill_version"], "2.7.0");
}
