//! ArcGIS types (spec §2.2): Esri FeatureSets to GeoJSON against the samples in
//! `fixtures/esri-samples` (a copy of `shared/data/esri-samples`), the three
//! renderings, dates and malformed input.

use std::path::PathBuf;

use nbexec_params::esri::{
    feature_set_to_geojson, geojson_to_value, geometry_to_geojson, looks_like_feature_set,
};
use nbexec_params::{
    EsriRendering, GeoJsonOptions, ParamError, ParamType, ParameterSources, Parameters,
    PythonTranslator, Translator, TypeHints, Value, Warning, prepare,
};
use serde_json::{Value as Json, json};

fn samples_dir() -> PathBuf {
    // A committed copy of shared/data/esri-samples (public test data; sources in
    // its README), so the tests do not depend on where the checkout sits.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/esri-samples")
}

fn sample_text(name: &str) -> String {
    let path = samples_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sample(name: &str) -> Value {
    Value::from_json(&serde_json::from_str(&sample_text(name)).unwrap())
}

/// Structural JSON equality with numbers compared as `f64` (`102` == `102.0`).
fn same_json(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn to_json<T: serde::Serialize>(t: &T) -> Json {
    serde_json::to_value(t).unwrap()
}

fn coords(geometry: &Json) -> &Json {
    &geometry["coordinates"]
}

#[test]
fn every_terraformer_expected_geojson_is_reproduced() {
    let mut checked = 0;
    for entry in std::fs::read_dir(samples_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".expected.geojson") else {
            continue;
        };
        let input = sample(&format!("{stem}.json"));
        let expected: Json = serde_json::from_str(&sample_text(&name)).unwrap();
        let ours = if looks_like_feature_set(&input) || input.get("features").is_some() {
            // The terraformer test for this sample passes idAttribute = 'prop0'.
            let options = if stem.contains("featureset-mixed") {
                GeoJsonOptions::with_id_field("prop0")
            } else {
                GeoJsonOptions::default()
            };
            let (fc, kept) = feature_set_to_geojson(&input, &options).unwrap();
            assert!(kept.is_empty());
            to_json(&fc)
        } else {
            let (g, kept) = geometry_to_geojson(&input).unwrap();
            assert!(kept.is_empty());
            to_json(&g.unwrap())
        };
        assert!(
            same_json(&ours, &expected),
            "{name}\nours:     {ours}\nexpected: {expected}"
        );
        checked += 1;
    }
    assert_eq!(checked, 4, "expected four *.expected.geojson samples");
}

#[test]
fn point_feature_set_keeps_attributes_and_takes_id_from_object_id_field() {
    let (fc, _) =
        feature_set_to_geojson(&sample("gdal-esripoint.json"), &GeoJsonOptions::default()).unwrap();
    let fc = to_json(&fc);
    let f = &fc["features"][0];
    assert!(same_json(
        &f["geometry"],
        &json!({"type": "Point", "coordinates": [2.0, 49.0]})
    ));
    assert_eq!(f["id"], json!(1));
    assert_eq!(f["properties"]["fooDate"], json!(1640908800000_i64));
    assert_eq!(f["properties"]["fooInt"], json!(1234567890));
    assert_eq!(f["properties"]["fooString"], json!("56"));
}

#[test]
fn zm_multipoint_keeps_z_and_drops_m() {
    let (fc, _) = feature_set_to_geojson(
        &sample("gdal-esrizmmultipoint.json"),
        &GeoJsonOptions::default(),
    )
    .unwrap();
    let g = &to_json(&fc)["features"][0]["geometry"];
    assert_eq!(g["type"], "MultiPoint");
    assert!(same_json(coords(g), &json!([[2, 49, 1], [3, 50, 2]])));
}

#[test]
fn has_m_only_third_ordinate_is_m_and_dropped() {
    let (fc, _) = feature_set_to_geojson(
        &sample("gdal-esrihasmnozmultipoint.json"),
        &GeoJsonOptions::default(),
    )
    .unwrap();
    let g = &to_json(&fc)["features"][0]["geometry"];
    assert!(same_json(coords(g), &json!([[2, 49], [3, 50]])));
}

#[test]
fn three_ordinates_without_flags_are_z() {
    let input = sample("gdal-esrijsonstartingwithfeaturesgeometry.json");
    assert!(
        looks_like_feature_set(&input),
        "features before geometryType is still a FeatureSet"
    );
    let (fc, _) = feature_set_to_geojson(&input, &GeoJsonOptions::default()).unwrap();
    let g = &to_json(&fc)["features"][0]["geometry"];
    assert_eq!(g["type"], "Polygon");
    // The clockwise Esri outer ring comes out counter-clockwise, Z kept.
    assert!(same_json(
        coords(g),
        &json!([[[2, 49, 1], [3, 49, 4], [3, 50, 3], [2, 50, 2], [2, 49, 1]]])
    ));
}

#[test]
fn nested_clockwise_ring_is_a_hole_and_outside_ring_its_own_polygon() {
    // Ring 1 is clockwise but lies inside ring 0: a hole (GDAL reads it so too);
    // ring 2 is counter-clockwise (a hole by winding) outside every outer ring:
    // terraformer makes it an outer ring of its own.
    let (fc, _) =
        feature_set_to_geojson(&sample("gdal-esripolygon.json"), &GeoJsonOptions::default())
            .unwrap();
    let g = &to_json(&fc)["features"][0]["geometry"];
    assert_eq!(g["type"], "MultiPolygon");
    let want = json!([
        [
            [[2, 49], [3, 49], [3, 50], [2, 50], [2, 49]],
            [
                [2.1, 49.1],
                [2.1, 49.9],
                [2.9, 49.9],
                [2.9, 49.1],
                [2.1, 49.1]
            ]
        ],
        [[[-2, 49], [-2, 50], [-3, 50], [-3, 49], [-2, 49]]]
    ]);
    assert!(same_json(coords(g), &want), "{}", coords(g));
}

fn signed_area(ring: &[Json]) -> f64 {
    ring.windows(2)
        .map(|w| {
            let (a, b) = (&w[0], &w[1]);
            (b[0].as_f64().unwrap() - a[0].as_f64().unwrap())
                * (b[1].as_f64().unwrap() + a[1].as_f64().unwrap())
        })
        .sum()
}

#[test]
fn service_response_is_a_feature_set_only_by_declaration() {
    let input = sample("gdal-GetLatLon.json");
    assert!(
        !looks_like_feature_set(&input),
        "no fields/geometryType: not recognised by shape"
    );
    let params: Parameters = [("plss".to_owned(), input.clone())].into_iter().collect();
    let hints = TypeHints {
        esri: EsriRendering::GeoJson,
        ..TypeHints::default()
    };
    let (plain, _) = prepare(&params, &hints).unwrap();
    assert_eq!(plain[0].1, input, "undeclared: injected as is");

    let hints = TypeHints {
        declared: vec![("plss".into(), ParamType::FeatureSet)],
        esri: EsriRendering::GeoJson,
        ..TypeHints::default()
    };
    let (prepared, warnings) = prepare(&params, &hints).unwrap();
    assert!(
        warnings.is_empty(),
        "wkid 4326 needs no warning: {warnings:?}"
    );
    let fc = prepared[0].1.to_json();
    assert_eq!(fc["type"], "FeatureCollection");
    let g = &fc["features"][0]["geometry"];
    assert_eq!(g["type"], "Polygon");
    let ring = coords(g)[0].as_array().unwrap();
    assert_eq!(ring.len(), 27);
    assert_eq!(ring.first(), ring.last());
    assert!(signed_area(ring) < 0.0, "outer ring counter-clockwise");
    assert_eq!(
        fc["features"][0]["properties"]["landdescription"],
        "WA330160N0260E0SN070"
    );
}

#[test]
fn web_mercator_is_converted_to_wgs84() {
    let r = 6_378_137.0_f64;
    let y45 = r
        * (std::f64::consts::FRAC_PI_4 + 45f64.to_radians() / 2.0)
            .tan()
            .ln();
    let fs = Value::from_json(&json!({
        "geometryType": "esriGeometryPoint",
        "spatialReference": {"wkid": 102100, "latestWkid": 3857},
        "fields": [],
        "features": [
            {"geometry": {"x": 0, "y": 0}, "attributes": {"OBJECTID": 7}},
            {"geometry": {"x": r * std::f64::consts::FRAC_PI_2, "y": y45}},
            {"geometry": {"paths": [[[-r * std::f64::consts::FRAC_PI_4, -y45], [0.0, 0.0]]]}}
        ]
    }));
    let (fc, kept) = feature_set_to_geojson(&fs, &GeoJsonOptions::default()).unwrap();
    assert!(kept.is_empty());
    let fc = to_json(&fc);
    let close = |v: &Json, want: &[f64]| {
        let got: Vec<f64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-9, "{got:?} vs {want:?}");
        }
    };
    close(coords(&fc["features"][0]["geometry"]), &[0.0, 0.0]);
    assert_eq!(fc["features"][0]["id"], json!(7));
    close(coords(&fc["features"][1]["geometry"]), &[90.0, 45.0]);
    let line = coords(&fc["features"][2]["geometry"]);
    close(&line[0], &[-45.0, -45.0]);
    close(&line[1], &[0.0, 0.0]);
}

#[test]
fn other_spatial_references_are_kept_with_a_warning() {
    let fs = Value::from_json(&json!({
        "geometryType": "esriGeometryPoint",
        "spatialReference": {"wkid": 2230},
        "fields": [],
        "features": [{"geometry": {"x": 6300000.5, "y": 1850000.25}}]
    }));
    let params: Parameters = [("site".to_owned(), fs)].into_iter().collect();
    let hints = TypeHints {
        esri: EsriRendering::GeoJson,
        ..TypeHints::default()
    };
    let (prepared, warnings) = prepare(&params, &hints).unwrap();
    assert_eq!(
        warnings,
        vec![Warning::SpatialReferenceKept {
            name: "site".into(),
            reference: "wkid 2230".into()
        }]
    );
    let g = &prepared[0].1.to_json()["features"][0]["geometry"];
    assert!(same_json(coords(g), &json!([6300000.5, 1850000.25])));
}

#[test]
fn envelope_is_a_counter_clockwise_polygon() {
    let (g, _) = geometry_to_geojson(&Value::from_json(
        &json!({"xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4}),
    ))
    .unwrap();
    assert!(same_json(
        coords(&to_json(&g.unwrap())),
        &json!([[[3, 4], [1, 4], [1, 2], [3, 2], [3, 4]]])
    ));
    // One axis inverted: terraformer's corner order would be clockwise; reversed.
    let (g, _) = geometry_to_geojson(&Value::from_json(
        &json!({"xmin": 3, "ymin": 2, "xmax": 1, "ymax": 4}),
    ))
    .unwrap();
    assert!(same_json(
        coords(&to_json(&g.unwrap())),
        &json!([[[1, 4], [1, 2], [3, 2], [3, 4], [1, 4]]])
    ));
}

#[test]
fn unclosed_rings_are_closed() {
    let (g, _) = geometry_to_geojson(&Value::from_json(
        &json!({"rings": [[[0, 0], [0, 1], [1, 1], [1, 0]]]}),
    ))
    .unwrap();
    assert!(same_json(
        coords(&to_json(&g.unwrap())),
        &json!([[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]])
    ));
}

#[test]
fn record_set_features_have_null_geometry() {
    let rs = Value::from_json(&json!({
        "fields": [{"name": "FID", "type": "esriFieldTypeOID"}, {"name": "name", "type": "esriFieldTypeString"}],
        "features": [{"attributes": {"FID": 3, "name": "a"}}, {"attributes": {"FID": null, "name": "b"}}]
    }));
    let (fc, _) = feature_set_to_geojson(&rs, &GeoJsonOptions::default()).unwrap();
    let fc = to_json(&fc);
    assert_eq!(fc["features"][0]["geometry"], Json::Null);
    assert_eq!(fc["features"][0]["id"], json!(3));
    assert!(
        fc["features"][1].get("id").is_none(),
        "a null id attribute gives no id"
    );
}

fn geojson_error(fs: Json) -> ParamError {
    let params: Parameters = [("fs".to_owned(), Value::from_json(&fs))]
        .into_iter()
        .collect();
    let hints = TypeHints {
        esri: EsriRendering::GeoJson,
        ..TypeHints::default()
    };
    prepare(&params, &hints).unwrap_err()
}

#[test]
fn curves_are_an_error_naming_parameter_and_feature() {
    let err = geojson_error(json!({
        "geometryType": "esriGeometryPolygon", "fields": [],
        "features": [
            {"geometry": {"rings": [[[0, 0], [0, 1], [1, 1], [0, 0]]]}},
            {"geometry": {"curveRings": [[[0, 0], {"c": [[2, 2], [1, 3]]}, [0, 0]]]}}
        ]
    }));
    assert!(
        matches!(&err, ParamError::Esri { name, feature: Some(1), .. } if name == "fs"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("\"fs\"") && text.contains("feature 1") && text.contains("curve"),
        "{text}"
    );

    let err = geojson_error(json!({
        "geometryType": "esriGeometryPolyline", "fields": [],
        "features": [{"geometry": {"paths": [[[0, 0], {"a": [[1, 1], [0, 1], 0, 1]}]]}}]
    }));
    assert!(
        err.to_string()
            .contains("feature 0: paths: a curve segment"),
        "{err}"
    );
}

#[test]
fn wrong_coordinate_arity_is_an_error() {
    let err = geojson_error(json!({
        "geometryType": "esriGeometryMultipoint", "hasZ": true, "fields": [],
        "features": [{"geometry": {"points": [[1, 2, 3]]}}, {"geometry": {"points": [[1, 2]]}}]
    }));
    assert_eq!(
        err.to_string(),
        "parameter \"fs\": feature 1: points: position has 2 ordinates but hasZ needs 3"
    );
    let err = geojson_error(json!({
        "geometryType": "esriGeometryPolygon", "fields": [],
        "features": [{"geometry": {"rings": [[[1, 2, 3, 4, 5]]]}}]
    }));
    assert!(
        err.to_string()
            .contains("feature 0: rings: position has 5 ordinates"),
        "{err}"
    );
}

#[test]
fn missing_rings_and_bad_shapes_are_errors() {
    let err = geojson_error(json!({
        "geometryType": "esriGeometryPolygon", "fields": [],
        "features": [{"geometry": {"ring": [[[0, 0]]]}}]
    }));
    assert_eq!(
        err.to_string(),
        "parameter \"fs\": feature 0: geometry has no x/y, points, paths, rings or xmin/ymin/xmax/ymax"
    );
    let err = geojson_error(json!({
        "geometryType": "esriGeometryPolygon", "fields": [],
        "features": [{"geometry": {"rings": {"0": 1}}}]
    }));
    assert!(
        err.to_string()
            .contains("feature 0: rings is dict, not an array"),
        "{err}"
    );
    let err =
        geojson_error(json!({"geometryType": "esriGeometryPoint", "fields": [], "features": [5]}));
    assert!(
        err.to_string().contains("feature 0: is int, not an object"),
        "{err}"
    );
    let err = geojson_error(json!({
        "geometryType": "esriGeometryPoint", "fields": [],
        "features": [{"geometry": {"x": "east", "y": 1}}]
    }));
    assert!(err.to_string().contains("x is str, not a number"), "{err}");
}

#[test]
fn empty_geometries_are_null() {
    let (fc, _) = feature_set_to_geojson(
        &Value::from_json(
            &json!({"geometryType": "esriGeometryPoint", "fields": [], "features": [
                {"geometry": {"x": null}}, {"geometry": null}, {"geometry": {}}
            ]}),
        ),
        &GeoJsonOptions::default(),
    )
    .unwrap();
    let fc = to_json(&fc);
    for i in 0..3 {
        assert_eq!(fc["features"][i]["geometry"], Json::Null);
    }
}

#[test]
fn esri_rendering_is_the_json_as_a_python_dict() {
    let fs = json!({"geometryType": "esriGeometryPoint", "fields": [], "hasZ": false,
        "features": [{"geometry": {"x": 1.5, "y": 2}, "attributes": {"ok": true, "note": null}}]});
    let params: Parameters = [("fs".to_owned(), Value::from_json(&fs))]
        .into_iter()
        .collect();
    let (prepared, _) = prepare(&params, &TypeHints::default()).unwrap();
    let cell = PythonTranslator.render(&prepared, "Parameters").unwrap();
    assert_eq!(
        cell,
        "# Parameters\nfs = {\"geometryType\": \"esriGeometryPoint\", \"fields\": [], \"hasZ\": False, \
         \"features\": [{\"geometry\": {\"x\": 1.5, \"y\": 2}, \"attributes\": {\"ok\": True, \"note\": None}}]}\n"
    );
}

#[test]
fn arcgis_rendering_builds_a_feature_set_with_its_import() {
    let fs = json!({"geometryType": "esriGeometryPoint", "fields": [], "features": []});
    let params: Parameters = [
        ("n".to_owned(), Value::int(1)),
        ("fs".to_owned(), Value::from_json(&fs)),
    ]
    .into_iter()
    .collect();
    let hints = TypeHints {
        esri: EsriRendering::ArcGis,
        ..TypeHints::default()
    };
    let (prepared, _) = prepare(&params, &hints).unwrap();
    let cell = PythonTranslator.render(&prepared, "Parameters").unwrap();
    assert_eq!(
        cell,
        "# Parameters\nfrom arcgis.features import FeatureSet as __nbexec_FeatureSet\nn = 1\n\
         fs = __nbexec_FeatureSet.from_dict({\"geometryType\": \"esriGeometryPoint\", \"fields\": [], \"features\": []})\n"
    );
    // Not expressible in R: a clear error naming the parameter.
    let err = nbexec_params::RTranslator
        .render(&prepared, "Parameters")
        .unwrap_err();
    assert!(err.to_string().contains("\"fs\""), "{err}");
}

#[test]
fn geojson_rendering_is_a_feature_collection_dict() {
    let fs = sample("terraformer-featureset-mixed.json");
    let params: Parameters = [("fs".to_owned(), fs)].into_iter().collect();
    let hints = TypeHints {
        esri: EsriRendering::GeoJson,
        ..TypeHints::default()
    };
    let (prepared, _) = prepare(&params, &hints).unwrap();
    let cell = PythonTranslator.render(&prepared, "Parameters").unwrap();
    assert!(cell.starts_with("# Parameters\nfs = {"), "{cell}");
    assert!(cell.contains("\"type\": \"FeatureCollection\""), "{cell}");
    assert!(cell.contains("\"coordinates\": [102.0, 0.5]"), "{cell}");
    // Without the prop0 id attribute, ids come from OBJECTID, then FID.
    let fc = prepared[0].1.to_json();
    assert_eq!(fc["features"][0]["id"], json!(0));
    assert_eq!(fc["features"][1]["id"], json!(1));
    assert_eq!(fc["features"][2]["id"], json!(2));
    assert_eq!(
        geojson_to_value(&json!({"a": 1})),
        Value::Dict(vec![("a".into(), Value::int(1))])
    );
}

#[test]
fn linear_unit_is_a_dict_as_is() {
    let lu = json!({"distance": 345.678, "units": "esriMiles"});
    let params: Parameters = [("buffer".to_owned(), Value::from_json(&lu))]
        .into_iter()
        .collect();
    let hints = TypeHints {
        declared: vec![("buffer".into(), ParamType::LinearUnit)],
        ..TypeHints::default()
    };
    let (prepared, _) = prepare(&params, &hints).unwrap();
    assert_eq!(
        PythonTranslator.render(&prepared, "Parameters").unwrap(),
        "# Parameters\nbuffer = {\"distance\": 345.678, \"units\": \"esriMiles\"}\n"
    );
}

#[test]
fn trailing_commas_are_not_json() {
    let mut sources = ParameterSources::new();
    sources.json(format!(
        "{{\"fs\": {}}}",
        sample_text("gdal-esrizpoint-trailing-commas.json")
    ));
    let err = sources.build().unwrap_err();
    assert!(matches!(err, ParamError::Json { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("invalid JSON parameters (-j #1): "),
        "{err}"
    );
}

fn date_cell(
    value: Value,
    declared: Option<ParamType>,
    notebook_datetime: bool,
) -> Result<String, ParamError> {
    let params: Parameters = [("when".to_owned(), value)].into_iter().collect();
    let hints = TypeHints {
        declared: declared
            .map(|t| ("when".to_owned(), t))
            .into_iter()
            .collect(),
        notebook_datetimes: if notebook_datetime {
            vec!["when".into()]
        } else {
            vec![]
        },
        ..TypeHints::default()
    };
    let (prepared, _) = prepare(&params, &hints)?;
    PythonTranslator.render(&prepared, "Parameters")
}

#[test]
fn dates_become_datetimes_when_declared() {
    let want = "# Parameters\nimport datetime as __nbexec_datetime\nwhen = __nbexec_datetime.datetime(2021, 12, 31, 0, 0, 0, tzinfo=__nbexec_datetime.timezone.utc)\n";
    assert_eq!(
        date_cell(Value::int(1_640_908_800_000), Some(ParamType::Date), false).unwrap(),
        want
    );
    assert_eq!(
        date_cell(Value::int(1_640_908_800_000), None, true).unwrap(),
        want
    );
    // An offset is kept as written, not converted to UTC.
    assert_eq!(
        date_cell(Value::str("2021-12-31T01:00:00+01:00"), None, true).unwrap(),
        "# Parameters\nimport datetime as __nbexec_datetime\nwhen = __nbexec_datetime.datetime(2021, 12, 31, 1, 0, 0, \
         tzinfo=__nbexec_datetime.timezone(__nbexec_datetime.timedelta(hours=1)))\n"
    );
    // No offset: naive, as papermill users' defaults usually are.
    assert_eq!(
        date_cell(Value::str("2021-12-31T01:00"), None, true).unwrap(),
        "# Parameters\nimport datetime as __nbexec_datetime\nwhen = __nbexec_datetime.datetime(2021, 12, 31, 1, 0, 0)\n"
    );
    assert_eq!(
        date_cell(Value::int(1_640_908_800_123), Some(ParamType::Date), false).unwrap(),
        "# Parameters\nimport datetime as __nbexec_datetime\nwhen = __nbexec_datetime.datetime(2021, 12, 31, 0, 0, 0, 123000, tzinfo=__nbexec_datetime.timezone.utc)\n"
    );
    // Not declared: the integer as is.
    assert_eq!(
        date_cell(Value::int(1_640_908_800_000), None, false).unwrap(),
        "# Parameters\nwhen = 1640908800000\n"
    );
    let err = date_cell(Value::str("tomorrow"), Some(ParamType::Date), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameter \"when\" is declared a date: \"tomorrow\" is not an ISO-8601 date"
    );
    let err = date_cell(Value::Bool(true), None, true).unwrap_err();
    assert!(err.to_string().contains("found bool"), "{err}");
    let err = date_cell(Value::int(i64::MAX), Some(ParamType::Date), false).unwrap_err();
    assert!(err.to_string().contains("outside years 1-9999"), "{err}");
}

#[test]
fn declared_scalar_types_are_checked() {
    let err = date_cell(Value::str("5"), Some(ParamType::Long), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parameter \"when\" is declared long but the value is str"
    );
    assert!(date_cell(Value::int(5), Some(ParamType::Double), false).is_ok());
    assert_eq!(
        "gpfeaturerecordsetlayer".parse::<ParamType>().unwrap(),
        ParamType::FeatureSet
    );
    assert_eq!(
        ParamType::parse_declaration("start=date").unwrap(),
        ("start".to_owned(), ParamType::Date)
    );
    assert!(ParamType::parse_declaration("start").is_err());
    assert!(ParamType::parse_declaration("start=datum").is_err());
}

/// A regular `n`-gon ring around (`x`, `y`), clockwise (an Esri outer ring) or not.
fn ngon(x: f64, y: f64, r: f64, n: usize, clockwise: bool) -> Json {
    let mut ring: Vec<Json> = (0..n)
        .map(|i| {
            let a = i as f64 / n as f64 * std::f64::consts::TAU;
            json!([x + r * a.cos(), y + r * a.sin()])
        })
        .collect();
    if clockwise {
        ring.reverse();
    }
    ring.push(ring[0].clone());
    Json::Array(ring)
}

fn polygon_feature_set(rings: Vec<Json>) -> Value {
    Value::from_json(&json!({
        "geometryType": "esriGeometryPolygon",
        "fields": [],
        "features": [{"geometry": {"rings": rings}}]
    }))
}

#[test]
fn a_detailed_outer_ring_with_many_holes_converts_quickly() {
    // Found while fuzzing: every hole was tested against every segment of every
    // outer ring. A 100,000-vertex outer ring with 1,000 lakes took ~17 s (release
    // build); ring and segment boxes make it milliseconds.
    let mut rings = vec![ngon(0.0, 0.0, 1e6, 100_000, true)];
    rings.extend((0..1000).map(|i| ngon(f64::from(i) * 30.0 - 15_000.0, 0.0, 10.0, 10, false)));
    rings.extend((0..1000).map(|i| ngon(f64::from(i) * 3.0 + 2e6, 0.0, 1.0, 3, true)));
    let t0 = std::time::Instant::now();
    let (fc, _) =
        feature_set_to_geojson(&polygon_feature_set(rings), &GeoJsonOptions::default()).unwrap();
    let took = t0.elapsed();
    let g = &to_json(&fc)["features"][0]["geometry"];
    assert_eq!(g["type"], "MultiPolygon");
    let polygons = coords(g).as_array().unwrap();
    assert_eq!(polygons.len(), 1001, "the big ring and 1,000 islands");
    let with_holes = polygons
        .iter()
        .find(|p| p.as_array().unwrap().len() > 1)
        .unwrap();
    assert_eq!(
        with_holes.as_array().unwrap().len(),
        1001,
        "1 outer + 1,000 holes"
    );
    // Generous for an unoptimised build on a busy machine; it used to take minutes.
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
}

#[test]
fn thousands_of_nested_rings_are_an_error_not_a_hang() {
    // 10,000 concentric clockwise triangles (1.3 MB of JSON): every ring had to be
    // tested against every other with no way to skip any, ~100 s (release build).
    // Such input now stops at a work limit, counted in steps (not timed: a busy machine
    // must not fail this), with an error naming the feature and the limit.
    let rings = (0..10_000)
        .map(|i| ngon(0.0, 0.0, 1.0 + f64::from(i), 3, true))
        .collect();
    let err = feature_set_to_geojson(&polygon_feature_set(rings), &GeoJsonOptions::default())
        .unwrap_err();
    assert_eq!(err.feature, Some(0));
    assert!(err.problem.contains("too many overlapping rings"), "{err}");
    assert!(
        err.problem
            .contains("(10000 rings, 40000 positions; the limit is 200000000 steps"),
        "{err}"
    );
    // A few hundred nested rings are still sorted out (alternately outer and hole).
    let rings = (0..300)
        .map(|i| ngon(0.0, 0.0, 1.0 + f64::from(i), 3, true))
        .collect();
    let (fc, _) =
        feature_set_to_geojson(&polygon_feature_set(rings), &GeoJsonOptions::default()).unwrap();
    let g = &to_json(&fc)["features"][0]["geometry"];
    assert_eq!(coords(g).as_array().unwrap().len(), 150);
}

#[test]
fn feature_sets_are_validated_whatever_the_rendering() {
    use nbexec_params::{InjectOptions, inject};
    let nb_text = r#"{"cells": [], "metadata": {"kernelspec": {"name": "python3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}"#;
    let cases = [
        (
            json!({"geometryType": "esriGeometryBanana", "features": []}),
            "parameter \"fs\": geometryType \"esriGeometryBanana\" is not one of esriGeometryPoint, \
             esriGeometryMultipoint, esriGeometryPolyline, esriGeometryPolygon, esriGeometryEnvelope",
        ),
        (
            json!({"geometryType": "esriGeometryPoint", "fields": [], "features": [{"geometry": {"x": 1}}]}),
            "parameter \"fs\": feature 0: y is None, not a number",
        ),
        (
            json!({"geometryType": "esriGeometryPolyline", "hasZ": true, "fields": [], "features": [
                {"geometry": {"paths": [[[0, 0], [1, 1]]]}}]}),
            "parameter \"fs\": feature 0: paths: position has 2 ordinates but hasZ needs 3",
        ),
        (
            json!({"fields": [], "features": [{"attributes": [1]}]}),
            "parameter \"fs\": feature 0: attributes is list, not an object",
        ),
    ];
    for rendering in [
        EsriRendering::Esri,
        EsriRendering::ArcGis,
        EsriRendering::GeoJson,
    ] {
        for (fs, want) in &cases {
            let mut nb = nbexec_format::read_str(nb_text).unwrap();
            let params: Parameters = [("fs".to_owned(), Value::from_json(fs))]
                .into_iter()
                .collect();
            let mut options = InjectOptions::default();
            options.esri = rendering;
            let err = inject(&mut nb, &params, &options).unwrap_err();
            assert_eq!(err.to_string(), *want, "{rendering:?}");
        }
    }
    // A geometry of another type than the set's warns (terraformer converts it).
    let mixed = json!({"geometryType": "esriGeometryPolygon", "features": [
        {"geometry": {"rings": [[[0, 0], [0, 1], [1, 1], [0, 0]]]}},
        {"geometry": {"x": 1, "y": 2}}, {"geometry": {"x": 3, "y": 4}}]});
    for rendering in [
        EsriRendering::Esri,
        EsriRendering::ArcGis,
        EsriRendering::GeoJson,
    ] {
        let mut nb = nbexec_format::read_str(nb_text).unwrap();
        let params: Parameters = [("fs".to_owned(), Value::from_json(&mixed))]
            .into_iter()
            .collect();
        let mut options = InjectOptions::default();
        options.esri = rendering;
        let done = inject(&mut nb, &params, &options).unwrap();
        let texts: Vec<String> = done.warnings.iter().map(ToString::to_string).collect();
        assert!(
            texts.iter().any(|t| t
                == "parameter 'fs': feature 1: geometry is a point (x/y) but the feature set's \
                    geometryType is esriGeometryPolygon (2 features differ)"),
            "{rendering:?}: {texts:?}"
        );
    }
    // Curves are valid Esri JSON: passed on as they are where not converted.
    let curved = json!({"geometryType": "esriGeometryPolygon", "fields": [], "features": [
        {"geometry": {"curveRings": [[[0, 0], {"a": [[0, 0], [1, 1], 0, 1]}]]}}]});
    let params: Parameters = [("fs".to_owned(), Value::from_json(&curved))]
        .into_iter()
        .collect();
    let mut nb = nbexec_format::read_str(nb_text).unwrap();
    assert!(inject(&mut nb, &params, &InjectOptions::default()).is_ok());
    // Every sample FeatureSet that is JSON (one has trailing commas) passes.
    let mut checked = 0;
    for entry in std::fs::read_dir(samples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json")
            && let Ok(json) = serde_json::from_str::<Json>(&std::fs::read_to_string(&path).unwrap())
        {
            let v = Value::from_json(&json);
            if looks_like_feature_set(&v) {
                checked += 1;
                nbexec_params::esri::validate_feature_set(&v)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
    assert!(checked >= 5, "{checked} samples checked");
}
