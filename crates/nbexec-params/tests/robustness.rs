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
