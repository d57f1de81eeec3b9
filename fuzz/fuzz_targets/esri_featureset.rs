//! Esri FeatureSet JSON from arbitrary bytes: the GeoJSON conversion and the three
//! renderings (esri, geojson, arcgis) must never panic or hang, the GeoJSON must have
//! closed rings of at least four positions, and every Python literal must read back as
//! exactly its value (spec §2.1, §2.2).
#![no_main]

mod common;

use geojson::{FeatureCollection, Geometry, GeometryValue, Position};
use libfuzzer_sys::fuzz_target;
use nbexec_params::esri::{
    feature_set_to_geojson, geojson_to_value, geometry_to_geojson, looks_like_feature_set,
};
use nbexec_params::{
    EsriRendering, GeoJsonOptions, ParamType, Parameters, TypeHints, Value, prepare,
};

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let value = Value::from_json(&json);
    let _ = looks_like_feature_set(&value);
    for options in [
        GeoJsonOptions::default(),
        GeoJsonOptions::with_id_field("id"),
    ] {
        if let Ok((fc, _)) = feature_set_to_geojson(&value, &options) {
            check_collection(&fc);
            let _ = geojson_to_value(&fc);
        }
    }
    if let Ok((Some(g), _)) = geometry_to_geojson(&value) {
        check_geometry(&g);
        let _ = geojson_to_value(&g);
    }
    // As a parameter: recognised by shape (undeclared), and declared as a feature set
    // and a record set, in each rendering.
    let mut params = Parameters::new();
    params.insert("fs", value);
    common::exercise(&params);
    for ty in [ParamType::FeatureSet, ParamType::RecordSet] {
        for esri in [
            EsriRendering::Esri,
            EsriRendering::GeoJson,
            EsriRendering::ArcGis,
        ] {
            let hints = TypeHints {
                declared: vec![("fs".to_owned(), ty)],
                esri,
                ..TypeHints::default()
            };
            if let Ok((prepared, _)) = prepare(&params, &hints) {
                common::render_and_check(&prepared);
            }
        }
    }
});

fn check_collection(fc: &FeatureCollection) {
    for f in &fc.features {
        if let Some(g) = &f.geometry {
            check_geometry(g);
        }
    }
}

fn check_geometry(g: &Geometry) {
    match &g.value {
        GeometryValue::Polygon { coordinates } => check_polygon(coordinates),
        GeometryValue::MultiPolygon { coordinates } => {
            coordinates.iter().for_each(|p| check_polygon(p))
        }
        _ => {}
    }
}

fn check_polygon(rings: &[Vec<Position>]) {
    assert!(!rings.is_empty(), "a polygon without rings");
    for ring in rings {
        assert!(ring.len() >= 4, "a ring of {} positions", ring.len());
        assert!(ring.first() == ring.last(), "an open ring: {ring:?}");
    }
}
