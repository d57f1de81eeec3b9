//! Everything that reads user text returns a value or an error for any input: it
//! never panics.

use nbexec_params::{
    GeoJsonOptions, ParameterSources, UtcDateTime, Value, coerce_papermill,
    esri::feature_set_to_geojson, inspect_python,
};
use proptest::prelude::*;

fn pythonish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a",
        "b_1",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\r",
        "=",
        "==",
        ":",
        ";",
        "#",
        "# type: int",
        "'",
        "\"",
        "'''",
        "\"\"\"",
        "\\",
        "\\\n",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ".",
        "1",
        "1.5e3",
        "r",
        "b",
        "f",
        "rb",
        "def ",
        "class ",
        "async ",
        "if ",
        "lambda ",
        "é",
        "𝔘",
        "datetime",
        "x: int",
        "+=",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn inspect_never_panics(src in pythonish()) {
        for p in inspect_python(&src) {
            prop_assert!(!p.name.is_empty());
            prop_assert!(p.line >= 1);
        }
    }

    #[test]
    fn inspect_never_panics_on_any_text(src in any::<String>()) {
        let _ = inspect_python(&src);
    }

    #[test]
    fn coercion_never_panics(text in any::<String>()) {
        let _ = coerce_papermill(&text);
    }

    #[test]
    fn iso_dates_never_panic(text in "[0-9T:+Z .,-]{0,40}") {
        if let Ok(dt) = UtcDateTime::parse_iso8601(&text) {
            prop_assert!((1..=9999).contains(&dt.year()));
        }
    }

    #[test]
    fn yaml_json_base64_never_panic(text in any::<String>()) {
        let mut s = ParameterSources::new();
        s.yaml(text.clone()).json(text.clone()).base64_yaml(text.clone()).file("x.yml", text);
        let _ = s.build();
    }

    #[test]
    fn geojson_conversion_never_panics(json in arbitrary_esri()) {
        let _ = feature_set_to_geojson(&Value::from_json(&json), &GeoJsonOptions::default());
    }
}

/// Esri-shaped JSON with arbitrary, often wrong, geometry members.
fn arbitrary_esri() -> impl Strategy<Value = serde_json::Value> {
    let number = prop_oneof![
        any::<i32>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        Just(serde_json::Value::from("NaN"))
    ];
    let position = prop::collection::vec(number.clone(), 0..6).prop_map(serde_json::Value::from);
    let path = prop::collection::vec(position, 0..6).prop_map(serde_json::Value::from);
    let paths = prop::collection::vec(path.clone(), 0..4).prop_map(serde_json::Value::from);
    let key = prop::sample::select(vec![
        "rings",
        "paths",
        "points",
        "x",
        "y",
        "z",
        "xmin",
        "ymin",
        "xmax",
        "ymax",
        "curveRings",
        "hasZ",
        "hasM",
        "spatialReference",
    ]);
    let member = prop_oneof![
        paths,
        path,
        number,
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::json!({"wkid": 102100}))
    ];
    let geometry = prop::collection::vec((key, member), 0..5).prop_map(|kv| {
        serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    });
    prop::collection::vec(geometry, 0..4).prop_map(|gs| {
        serde_json::json!({
            "geometryType": "esriGeometryPolygon",
            "fields": [],
            "features": gs.into_iter().map(|g| serde_json::json!({"geometry": g, "attributes": {"OBJECTID": 1}})).collect::<Vec<_>>()
        })
    })
}

// Regression tests for what fuzzing and hostile input found (fuzz/README.md).

/// `-y` text, built: the error message, or the parameters' Debug text.
fn build_yaml(text: &str) -> Result<String, String> {
    let mut s = ParameterSources::new();
    s.yaml(text);
    s.build()
        .map(|(p, _)| format!("{p:?}"))
        .map_err(|e| e.to_string())
}

/// Runs `f` on a thread with a 2 MiB stack (a tokio worker's), so that a
/// recursion that grows with the input shows up as a crash of the test.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("thread")
        .join()
        .expect("no panic")
}

#[test]
fn deeply_nested_block_yaml_is_an_error_not_a_stack_overflow() {
    // saphyr-parser's `Parser::load` recursed once per level of a compact block
    // sequence and overflowed the stack (SIGABRT) at ~17,000 levels on an 8 MiB stack.
    for levels in [100_000, 20_000] {
        let text = format!("a:\n{}1\n", "- ".repeat(levels));
        let err = on_small_stack(move || build_yaml(&text)).expect_err("too deep");
        assert!(err.contains("nesting deeper than 128 levels"), "{err}");
    }
    let mut indented = String::new();
    for i in 0..300 {
        indented.push_str(&" ".repeat(i));
        indented.push_str("a:\n");
    }
    let err = on_small_stack(move || build_yaml(&indented)).expect_err("too deep");
    assert!(err.contains("nesting deeper than 128 levels"), "{err}");
    // Flow collections were already limited by the parser; still an error.
    let flow = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(on_small_stack(move || build_yaml(&flow)).is_err());
}

#[test]
fn yaml_nesting_up_to_the_limit_is_accepted() {
    // The top-level mapping is level 1: 127 sequences inside it make 128.
    let ok = format!("a:\n{}1\n", "- ".repeat(127));
    assert!(build_yaml(&ok).is_ok());
    let too_deep = format!("a:\n{}1\n", "- ".repeat(128));
    assert!(build_yaml(&too_deep).is_err());
}

#[test]
fn aliases_cannot_nest_deeper_than_the_limit() {
    // Each anchor holds the previous one 100 levels down: 10 anchors would make a
    // document 1,000 levels deep from 3 KB of text.
    let mut text = format!("a0: &a0 {}1{}\n", "[".repeat(100), "]".repeat(100));
    for i in 1..10 {
        text.push_str(&format!(
            "a{i}: &a{i} {}*a{}{}\n",
            "[".repeat(100),
            i - 1,
            "]".repeat(100)
        ));
    }
    let err = on_small_stack(move || build_yaml(&text)).expect_err("too deep");
    assert!(err.contains("nesting deeper than 128 levels"), "{err}");
}

#[test]
fn aliases_cannot_blow_a_small_document_up() {
    // 124 KB of YAML (one command-line argument) that repeats an alias to a 60 KB
    // string 16,000 times expanded to ~1 GB of values and a 960 MB cell (4.7 GB RSS,
    // 40 s). Now it stops at twice the text plus 16 MiB.
    let text = format!(
        "s: &s {}\nl: [{}]\n",
        "x".repeat(60_000),
        vec!["*s"; 16_000].join(", ")
    );
    let t0 = std::time::Instant::now();
    let err = build_yaml(&text).expect_err("expands too much");
    assert!(err.contains("aliases expand the document beyond"), "{err}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    // Ordinary alias use is unaffected, and aliases still expand.
    let ok = "base: &b {host: h, port: 1}\ndev: *b\nprod: *b\nnames: &n [x, y]\nall: [*n, *n]\n";
    let built = build_yaml(ok).expect("fine");
    assert!(built.matches("\"port\"").count() == 3, "{built}");
}
