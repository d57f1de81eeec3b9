//! Esri JSON FeatureSets / RecordSets and their RFC 7946 GeoJSON rendering.
//!
//! The ring rules are those of `@terraformer/arcgis` `arcgisToGeoJSON` (whose test
//! outputs are the `*.expected.geojson` samples): rings are closed; rings with fewer
//! than four positions are dropped; clockwise rings are outer rings and come out
//! counter-clockwise, the others are holes and come out clockwise; each hole goes to
//! the last outer ring that contains it, else to the last one it intersects, else it
//! becomes an outer ring of its own; one outer ring is a Polygon, any other number a
//! MultiPolygon. One addition: a clockwise ring that lies inside another clockwise
//! ring (an odd number of them) is taken as a hole drawn with the wrong winding, as
//! GDAL's containment-based reader does.

use geojson::{
    Feature, FeatureCollection, Geometry, GeometryValue, JsonObject, Position, feature::Id,
};

use crate::value::Value;

/// A malformed FeatureSet: which feature (0-based, when known) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", feature.map(|i| format!("feature {i}: ")).unwrap_or_default())]
#[non_exhaustive]
pub struct EsriError {
    pub feature: Option<usize>,
    pub problem: String,
}

/// Options for the GeoJSON rendering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GeoJsonOptions {
    /// The attribute to take feature ids from before `objectIdFieldName`, `OBJECTID`
    /// and `FID` (terraformer's `idAttribute`).
    pub id_field: Option<String>,
}

impl GeoJsonOptions {
    /// Options with an explicit id attribute.
    pub fn with_id_field(field: impl Into<String>) -> GeoJsonOptions {
        GeoJsonOptions {
            id_field: Some(field.into()),
        }
    }
}

/// Is this value an Esri FeatureSet / RecordSet by its shape: an object with a
/// `features` array and a `fields` or `geometryType` member?
pub fn looks_like_feature_set(value: &Value) -> bool {
    matches!(value.get("features"), Some(Value::List(_)))
        && (value.get("fields").is_some() || value.get("geometryType").is_some())
}

const EARTH_RADIUS: f64 = 6_378_137.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reference {
    Wgs84,
    WebMercator,
}

/// The coordinate context of a geometry: its spatial reference and `hasZ`/`hasM`.
#[derive(Debug, Clone, Copy)]
struct Context<'a> {
    has_z: Option<bool>,
    has_m: Option<bool>,
    spatial_reference: Option<&'a Value>,
    feature: Option<usize>,
}

impl<'a> Context<'a> {
    fn of(value: &'a Value, feature: Option<usize>) -> Context<'a> {
        let flag = |key| match value.get(key) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        };
        Context {
            has_z: flag("hasZ"),
            has_m: flag("hasM"),
            spatial_reference: value.get("spatialReference").filter(|v| **v != Value::None),
            feature,
        }
    }

    /// `inner` (a geometry) over `self` (its feature set).
    fn overlay(self, inner: Context<'a>) -> Context<'a> {
        Context {
            has_z: inner.has_z.or(self.has_z),
            has_m: inner.has_m.or(self.has_m),
            spatial_reference: inner.spatial_reference.or(self.spatial_reference),
            feature: inner.feature.or(self.feature),
        }
    }

    fn err(&self, problem: impl Into<String>) -> EsriError {
        EsriError {
            feature: self.feature,
            problem: problem.into(),
        }
    }

    /// WGS84, Web Mercator, or (Err) a description of another reference.
    fn reference(&self) -> Result<Reference, String> {
        let Some(sr) = self.spatial_reference else {
            return Ok(Reference::Wgs84);
        };
        let ids: Vec<i64> = ["wkid", "latestWkid"]
            .iter()
            .filter_map(|k| sr.get(k).and_then(|v| v.as_f64()))
            .map(|f| f as i64)
            .collect();
        if ids.contains(&4326) {
            Ok(Reference::Wgs84)
        } else if ids
            .iter()
            .any(|id| matches!(id, 102100 | 102113 | 3857 | 3785 | 900913))
        {
            Ok(Reference::WebMercator)
        } else if let Some(id) = ids.first() {
            Err(format!("wkid {id}"))
        } else if sr.get("wkt").is_some() {
            Err("given as WKT".to_owned())
        } else {
            Ok(Reference::Wgs84)
        }
    }
}

/// The Esri geometry types a FeatureSet's `geometryType` may name.
pub const GEOMETRY_TYPES: &[&str] = &[
    "esriGeometryPoint",
    "esriGeometryMultipoint",
    "esriGeometryPolyline",
    "esriGeometryPolygon",
    "esriGeometryEnvelope",
];

/// The kind of one geometry, by its members: `None` for an empty one (only
/// `spatialReference`/`hasZ`/`hasM`), else the `geometryType` it belongs to.
fn geometry_kind(g: &Value) -> Option<&'static str> {
    if g.get("rings").is_some() || g.get("curveRings").is_some() {
        Some("esriGeometryPolygon")
    } else if g.get("paths").is_some() || g.get("curvePaths").is_some() {
        Some("esriGeometryPolyline")
    } else if g.get("points").is_some() {
        Some("esriGeometryMultipoint")
    } else if g.get("x").is_some() {
        Some("esriGeometryPoint")
    } else if ["xmin", "ymin", "xmax", "ymax"]
        .iter()
        .any(|k| g.get(k).is_some())
    {
        Some("esriGeometryEnvelope")
    } else {
        None
    }
}

/// How a geometry kind is described in messages.
fn kind_text(kind: &str) -> &'static str {
    match kind {
        "esriGeometryPolygon" => "a polygon (rings)",
        "esriGeometryPolyline" => "a polyline (paths)",
        "esriGeometryMultipoint" => "a multipoint (points)",
        "esriGeometryPoint" => "a point (x/y)",
        _ => "an envelope (xmin/ymin/xmax/ymax)",
    }
}

/// Checks an Esri FeatureSet (or RecordSet) whatever it is rendered as: a
/// `features` array of objects; `geometryType`, when given, one of
/// [`GEOMETRY_TYPES`]; each geometry an object (or null) whose coordinates are
/// numbers with as many ordinates as `hasZ`/`hasM` say; attributes an object (or
/// null). The messages are those of the GeoJSON rendering. Curves (`curveRings`,
/// `curvePaths`) are valid Esri JSON and only their type is looked at here.
///
/// A geometry of another type than `geometryType` (a point in a polygon set) is not
/// an error, since each feature's geometry says what it is and the GeoJSON rendering
/// converts it (as terraformer does), but it is rarely meant: `Ok` carries a note
/// on the first such feature, for a warning.
pub fn validate_feature_set(feature_set: &Value) -> Result<Option<String>, EsriError> {
    let top_err = |problem: String| EsriError {
        feature: None,
        problem,
    };
    let Some(Value::List(features)) = feature_set.get("features") else {
        return Err(top_err("no \"features\" array".to_owned()));
    };
    let declared = match feature_set.get("geometryType") {
        None | Some(Value::None) => None,
        // GDAL and others also write `esriGeometryMultiPoint`: any case is accepted.
        Some(Value::Str(t)) if GEOMETRY_TYPES.iter().any(|g| g.eq_ignore_ascii_case(t)) => {
            GEOMETRY_TYPES
                .iter()
                .find(|g| g.eq_ignore_ascii_case(t))
                .copied()
        }
        Some(Value::Str(t)) => {
            return Err(top_err(format!(
                "geometryType {t:?} is not one of {}",
                GEOMETRY_TYPES.join(", ")
            )));
        }
        Some(other) => {
            return Err(top_err(format!(
                "geometryType is {}, not a string",
                other.kind()
            )));
        }
    };
    let outer = Context::of(feature_set, None);
    let mut mismatch: Option<(usize, &str, usize)> = None;
    for (index, feature) in features.iter().enumerate() {
        let ctx = Context {
            feature: Some(index),
            ..outer
        };
        if !matches!(feature, Value::Dict(_)) {
            return Err(ctx.err(format!("is {}, not an object", feature.kind())));
        }
        match feature.get("geometry") {
            None | Some(Value::None) => {}
            Some(g @ Value::Dict(_)) => {
                let kind = geometry_kind(g);
                if let (Some(kind), Some(declared)) = (kind, declared)
                    && kind != declared
                {
                    match &mut mismatch {
                        None => mismatch = Some((index, kind, 1)),
                        Some((_, _, count)) => *count += 1,
                    }
                }
                let curved = g.get("curveRings").is_some() || g.get("curvePaths").is_some();
                if !curved {
                    let gctx = ctx.overlay(Context::of(g, Some(index)));
                    check_coordinates(g, &gctx)?;
                }
            }
            Some(other) => {
                return Err(ctx.err(format!("geometry is {}, not an object", other.kind())));
            }
        }
        match feature.get("attributes") {
            None | Some(Value::None) | Some(Value::Dict(_)) => {}
            Some(other) => {
                return Err(ctx.err(format!("attributes is {}, not an object", other.kind())));
            }
        }
    }
    Ok(mismatch.map(|(index, kind, count)| {
        let mut note = format!(
            "feature {index}: geometry is {} but the feature set's geometryType is {}",
            kind_text(kind),
            declared.unwrap_or_default()
        );
        if count > 1 {
            note.push_str(&format!(" ({count} features differ)"));
        }
        note
    }))
}

/// Reads a geometry's coordinates as the GeoJSON rendering does (same messages),
/// without sorting rings or projecting.
fn check_coordinates(g: &Value, ctx: &Context<'_>) -> Result<(), EsriError> {
    let conv = Converter {
        ctx,
        reference: Reference::Wgs84,
    };
    if let Some(rings) = g.get("rings") {
        conv.path_list(rings, "rings")?;
    } else if let Some(paths) = g.get("paths") {
        conv.path_list(paths, "paths")?;
    } else if let Some(points) = g.get("points") {
        conv.path(points, "points")?;
    } else if let Some(x) = g.get("x") {
        conv.point(g, x)?;
    } else if geometry_kind(g).is_some() {
        conv.envelope(g)?;
    }
    Ok(())
}

/// Converts an Esri FeatureSet (or RecordSet) to a GeoJSON FeatureCollection.
/// Also returns the descriptions of spatial references that were kept as they are
/// (neither WGS84 nor Web Mercator), for a warning.
pub fn feature_set_to_geojson(
    feature_set: &Value,
    options: &GeoJsonOptions,
) -> Result<(FeatureCollection, Vec<String>), EsriError> {
    let top_err = |problem: &str| EsriError {
        feature: None,
        problem: problem.to_owned(),
    };
    let Some(Value::List(features)) = feature_set.get("features") else {
        return Err(top_err("no \"features\" array"));
    };
    validate_feature_set(feature_set)?;
    let outer = Context::of(feature_set, None);
    let mut id_fields: Vec<&str> = Vec::new();
    if let Some(field) = &options.id_field {
        id_fields.push(field);
    }
    if let Some(Value::Str(field)) = feature_set.get("objectIdFieldName") {
        id_fields.push(field);
    }
    id_fields.extend(["OBJECTID", "FID"]);
    let mut kept = Vec::new();
    let mut work = RingWork::new();
    let mut out = Vec::with_capacity(features.len());
    for (index, feature) in features.iter().enumerate() {
        let ctx = Context {
            feature: Some(index),
            ..outer
        };
        if !matches!(feature, Value::Dict(_)) {
            return Err(ctx.err(format!("is {}, not an object", feature.kind())));
        }
        let geometry = match feature.get("geometry") {
            None | Some(Value::None) => None,
            Some(g @ Value::Dict(_)) => {
                let gctx = ctx.overlay(Context::of(g, Some(index)));
                convert_geometry(g, &gctx, &mut kept, &mut work)?
            }
            Some(other) => {
                return Err(ctx.err(format!("geometry is {}, not an object", other.kind())));
            }
        };
        let (properties, id) = match feature.get("attributes") {
            None | Some(Value::None) => (None, None),
            Some(Value::Dict(attrs)) => {
                let id = id_fields.iter().find_map(|field| {
                    attrs
                        .iter()
                        .find(|(k, _)| k == field)
                        .and_then(|(_, v)| feature_id(v))
                });
                let props: JsonObject = attrs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect();
                (Some(props), id)
            }
            Some(other) => {
                return Err(ctx.err(format!("attributes is {}, not an object", other.kind())));
            }
        };
        out.push(Feature {
            bbox: None,
            geometry,
            id,
            properties,
            foreign_members: None,
        });
    }
    Ok((FeatureCollection::new(out), kept))
}

/// Converts one Esri geometry (point, multipoint, polyline, polygon, envelope) using
/// its own `spatialReference`/`hasZ`/`hasM`. `None` for an empty geometry.
pub fn geometry_to_geojson(geometry: &Value) -> Result<(Option<Geometry>, Vec<String>), EsriError> {
    let mut kept = Vec::new();
    let ctx = Context::of(geometry, None);
    let g = convert_geometry(geometry, &ctx, &mut kept, &mut RingWork::new())?;
    Ok((g, kept))
}

/// A GeoJSON object as a parameter value (a dict of the RFC 7946 members).
pub fn geojson_to_value<T: serde::Serialize>(geojson: &T) -> Value {
    match serde_json::to_value(geojson) {
        Ok(json) => Value::from_json(&json),
        // Serializing these types to a JSON value cannot fail; keep a visible value.
        Err(e) => Value::Str(format!("GeoJSON serialization failed: {e}")),
    }
}

fn feature_id(v: &Value) -> Option<Id> {
    match v {
        Value::Str(s) => Some(Id::String(s.clone())),
        Value::Int(_) | Value::Float(_) => match v.to_json() {
            serde_json::Value::Number(n) => Some(Id::Number(n)),
            _ => None,
        },
        _ => None,
    }
}

fn convert_geometry(
    g: &Value,
    ctx: &Context<'_>,
    kept: &mut Vec<String>,
    work: &mut RingWork,
) -> Result<Option<Geometry>, EsriError> {
    for curve in ["curveRings", "curvePaths"] {
        if g.get(curve).is_some() {
            return Err(ctx.err(format!("{curve}: curves cannot be written as GeoJSON")));
        }
    }
    let reference = match ctx.reference() {
        Ok(r) => r,
        Err(description) => {
            if !kept.contains(&description) {
                kept.push(description);
            }
            Reference::Wgs84
        }
    };
    let conv = Converter { ctx, reference };
    let value = if let Some(rings) = g.get("rings") {
        let rings = conv.path_list(rings, "rings")?;
        let (count, positions) = (rings.len(), rings.iter().map(Vec::len).sum::<usize>());
        Some(rings_to_polygon(rings, work).map_err(|TooComplex| {
            ctx.err(format!(
                "rings: too many overlapping rings to sort into outer rings and holes \
                 ({count} rings, {positions} positions; the limit is {RING_WORK_LIMIT} steps \
                 per feature set)"
            ))
        })?)
    } else if let Some(paths) = g.get("paths") {
        let mut paths = conv.path_list(paths, "paths")?;
        Some(if paths.len() == 1 {
            GeometryValue::LineString {
                coordinates: paths.remove(0),
            }
        } else {
            GeometryValue::MultiLineString { coordinates: paths }
        })
    } else if let Some(points) = g.get("points") {
        Some(GeometryValue::MultiPoint {
            coordinates: conv.path(points, "points")?,
        })
    } else if let Some(x) = g.get("x") {
        conv.point(g, x)?
    } else if ["xmin", "ymin", "xmax", "ymax"]
        .iter()
        .any(|k| g.get(k).is_some())
    {
        Some(conv.envelope(g)?)
    } else {
        let Value::Dict(entries) = g else {
            return Err(ctx.err("geometry is not an object"));
        };
        if entries
            .iter()
            .all(|(k, _)| matches!(k.as_str(), "spatialReference" | "hasZ" | "hasM"))
        {
            None
        } else {
            return Err(ctx.err("geometry has no x/y, points, paths, rings or xmin/ymin/xmax/ymax"));
        }
    };
    Ok(value.map(Geometry::new))
}

struct Converter<'a, 'b> {
    ctx: &'b Context<'a>,
    reference: Reference,
}

impl Converter<'_, '_> {
    fn number(&self, v: &Value, what: &str) -> Result<f64, EsriError> {
        v.as_f64().ok_or_else(|| {
            self.ctx
                .err(format!("{what} is {}, not a number", v.kind()))
        })
    }

    fn project(&self, x: f64, y: f64) -> (f64, f64) {
        match self.reference {
            Reference::Wgs84 => (x, y),
            Reference::WebMercator => {
                let lon = (x / EARTH_RADIUS).to_degrees();
                let lon = lon - ((lon + 180.0) / 360.0).floor() * 360.0;
                let lat = (std::f64::consts::FRAC_PI_2 - 2.0 * (-y / EARTH_RADIUS).exp().atan())
                    .to_degrees();
                (lon, lat)
            }
        }
    }

    /// One `[x, y(, z)(, m)]` array, with M dropped.
    fn position(&self, v: &Value, what: &str) -> Result<Position, EsriError> {
        let Value::List(ords) = v else {
            if matches!(v, Value::Dict(_)) {
                return Err(self.ctx.err(format!(
                    "{what}: a curve segment cannot be written as GeoJSON"
                )));
            }
            return Err(self
                .ctx
                .err(format!("{what}: position is {}, not an array", v.kind())));
        };
        let has_z = self.ctx.has_z.unwrap_or(false);
        let has_m = self.ctx.has_m.unwrap_or(false);
        let flags = match (has_z, has_m) {
            (true, true) => "hasZ and hasM",
            (true, false) => "hasZ",
            (false, true) => "hasM",
            (false, false) => "no hasZ/hasM",
        };
        let with_z = match (has_z, has_m, ords.len()) {
            (true, true, 4) | (true, false, 3) => true,
            (false, true, 3) => false,
            (false, false, 2) => false,
            // Without flags a third ordinate is Z and a fourth M (as GDAL reads them).
            (false, false, 3 | 4) => true,
            (_, _, n) => {
                let want = 2 + usize::from(has_z) + usize::from(has_m);
                let want = if has_z || has_m {
                    want.to_string()
                } else {
                    "2 to 4".to_owned()
                };
                return Err(self.ctx.err(format!(
                    "{what}: position has {n} ordinates but {flags} needs {want}"
                )));
            }
        };
        let x = self.number(&ords[0], &format!("{what}: x"))?;
        let y = self.number(&ords[1], &format!("{what}: y"))?;
        let (x, y) = self.project(x, y);
        if with_z {
            let z = self.number(&ords[2], &format!("{what}: z"))?;
            Ok(Position::from([x, y, z]))
        } else {
            Ok(Position::from([x, y]))
        }
    }

    fn path(&self, v: &Value, what: &str) -> Result<Vec<Position>, EsriError> {
        match v {
            Value::List(items) => items.iter().map(|p| self.position(p, what)).collect(),
            other => Err(self
                .ctx
                .err(format!("{what} is {}, not an array", other.kind()))),
        }
    }

    fn path_list(&self, v: &Value, what: &str) -> Result<Vec<Vec<Position>>, EsriError> {
        match v {
            Value::List(items) => items.iter().map(|p| self.path(p, what)).collect(),
            other => Err(self
                .ctx
                .err(format!("{what} is {}, not an array", other.kind()))),
        }
    }

    fn point(&self, g: &Value, x: &Value) -> Result<Option<GeometryValue>, EsriError> {
        // `"x": null` or `"x": "NaN"` is Esri's empty point.
        if matches!(x, Value::None) || matches!(x, Value::Str(s) if s == "NaN") {
            return Ok(None);
        }
        let x = self.number(x, "x")?;
        let y = self.number(g.get("y").unwrap_or(&Value::None), "y")?;
        let (x, y) = self.project(x, y);
        let coordinates = match g.get("z") {
            Some(z @ (Value::Int(_) | Value::Float(_))) => {
                Position::from([x, y, self.number(z, "z")?])
            }
            _ => Position::from([x, y]),
        };
        Ok(Some(GeometryValue::Point { coordinates }))
    }

    fn envelope(&self, g: &Value) -> Result<GeometryValue, EsriError> {
        let get = |k: &str| self.number(g.get(k).unwrap_or(&Value::None), k);
        let (xmin, ymin, xmax, ymax) = (get("xmin")?, get("ymin")?, get("xmax")?, get("ymax")?);
        let corner = |x, y| {
            let (x, y) = self.project(x, y);
            Position::from([x, y])
        };
        let mut ring = vec![
            corner(xmax, ymax),
            corner(xmin, ymax),
            corner(xmin, ymin),
            corner(xmax, ymin),
            corner(xmax, ymax),
        ];
        // terraformer's corner order is counter-clockwise unless exactly one axis is
        // inverted; RFC 7946 wants outer rings counter-clockwise.
        if is_clockwise(&ring) && !is_degenerate(&ring) {
            ring.reverse();
        }
        Ok(GeometryValue::Polygon {
            coordinates: vec![ring],
        })
    }
}

fn is_degenerate(ring: &[Position]) -> bool {
    ring_area_sum(ring) == 0.0
}

fn ring_area_sum(ring: &[Position]) -> f64 {
    ring.windows(2)
        .map(|w| (w[1][0] - w[0][0]) * (w[1][1] + w[0][1]))
        .sum()
}

/// terraformer's `ringIsClockwise` (a zero-area ring counts as clockwise).
fn is_clockwise(ring: &[Position]) -> bool {
    ring_area_sum(ring) >= 0.0
}

fn close_ring(mut ring: Vec<Position>) -> Vec<Position> {
    if let (Some(first), Some(last)) = (ring.first(), ring.last())
        && first != last
    {
        let first = first.clone();
        ring.push(first);
    }
    ring
}

fn reversed(mut ring: Vec<Position>) -> Vec<Position> {
    ring.reverse();
    ring
}

fn segments_intersect(a1: &Position, a2: &Position, b1: &Position, b2: &Position) -> bool {
    let ua_t = (b2[0] - b1[0]) * (a1[1] - b1[1]) - (b2[1] - b1[1]) * (a1[0] - b1[0]);
    let ub_t = (a2[0] - a1[0]) * (a1[1] - b1[1]) - (a2[1] - a1[1]) * (a1[0] - b1[0]);
    let u_b = (b2[1] - b1[1]) * (a2[0] - a1[0]) - (b2[0] - b1[0]) * (a2[1] - a1[1]);
    if u_b != 0.0 {
        let ua = ua_t / u_b;
        let ub = ub_t / u_b;
        return (0.0..=1.0).contains(&ua) && (0.0..=1.0).contains(&ub);
    }
    false
}

/// Steps (box, segment and edge tests) allowed for sorting the rings of one feature
/// set's polygons into outer rings and holes. Matching is quadratic in the rings of a
/// polygon (each outer ring is tested against every other), but boxes make a test of
/// rings that do not overlap one step: 10,000 separate outer rings use half the limit
/// (under a second), a ring of 100,000 positions with 1,000 holes a few percent.
/// Beyond ~14,000 outer rings in one polygon, or with thousands of nested or identical
/// rings (hostile input, which took minutes to hours), it is an error.
const RING_WORK_LIMIT: u64 = 200_000_000;

/// Segments per box of a ring's index.
const CHUNK: usize = 16;

/// The ring work budget ran out.
struct TooComplex;

struct RingWork {
    left: u64,
}

impl RingWork {
    fn new() -> RingWork {
        RingWork {
            left: RING_WORK_LIMIT,
        }
    }

    fn spend(&mut self, steps: usize) -> Result<(), TooComplex> {
        let steps = u64::try_from(steps).unwrap_or(u64::MAX);
        self.left = self.left.checked_sub(steps).ok_or(TooComplex)?;
        Ok(())
    }
}

/// An axis-aligned bounding box. NaN ordinates are left out: a segment with one
/// never intersects anything or crosses a ray in the tests below.
#[derive(Debug, Clone, Copy)]
struct BBox {
    min: [f64; 2],
    max: [f64; 2],
}

impl BBox {
    const EMPTY: BBox = BBox {
        min: [f64::INFINITY, f64::INFINITY],
        max: [f64::NEG_INFINITY, f64::NEG_INFINITY],
    };

    fn of<'a>(points: impl IntoIterator<Item = &'a Position>) -> BBox {
        let mut b = BBox::EMPTY;
        for p in points {
            for axis in 0..2 {
                b.min[axis] = b.min[axis].min(p[axis]);
                b.max[axis] = b.max[axis].max(p[axis]);
            }
        }
        b
    }

    fn overlaps(&self, o: &BBox) -> bool {
        (0..2).all(|axis| self.min[axis] <= o.max[axis] && o.min[axis] <= self.max[axis])
    }

    fn spans_y(&self, y: f64) -> bool {
        self.min[1] <= y && y <= self.max[1]
    }

    fn contains(&self, p: &Position) -> bool {
        (0..2).all(|axis| self.min[axis] <= p[axis] && p[axis] <= self.max[axis])
    }
}

/// A closed ring with its bounding box and the boxes of each run of [`CHUNK`]
/// segments (segment `k` joins points `k` and `k + 1`), so that the tests below skip
/// the parts of a long ring that are nowhere near what they test against.
struct Ring {
    points: Vec<Position>,
    bbox: BBox,
    chunks: Vec<BBox>,
}

impl Ring {
    fn new(points: Vec<Position>) -> Ring {
        let segments = points.len().saturating_sub(1);
        let chunks = (0..segments.div_ceil(CHUNK))
            .map(|c| BBox::of(&points[c * CHUNK..((c + 1) * CHUNK + 1).min(points.len())]))
            .collect();
        Ring {
            bbox: BBox::of(&points),
            points,
            chunks,
        }
    }

    fn reversed(self) -> Ring {
        Ring::new(reversed(self.points))
    }

    /// The points of chunk `c`'s segments.
    fn chunk_points(&self, c: usize) -> &[Position] {
        &self.points[c * CHUNK..((c + 1) * CHUNK + 1).min(self.points.len())]
    }
}

/// Does any segment of `a` intersect any segment of `b`? (terraformer's
/// `arrayIntersectsArray`, with boxes to skip segments that cannot meet.)
fn rings_intersect(a: &Ring, b: &Ring, work: &mut RingWork) -> Result<bool, TooComplex> {
    work.spend(1)?;
    if !a.bbox.overlaps(&b.bbox) {
        return Ok(false);
    }
    work.spend(a.chunks.len())?;
    for (ca, abox) in a.chunks.iter().enumerate() {
        if !abox.overlaps(&b.bbox) {
            continue;
        }
        work.spend(CHUNK)?;
        for sa in a.chunk_points(ca).windows(2) {
            let sbox = BBox::of(sa);
            if !sbox.overlaps(&b.bbox) {
                continue;
            }
            work.spend(b.chunks.len())?;
            for (cb, bbox) in b.chunks.iter().enumerate() {
                if !bbox.overlaps(&sbox) {
                    continue;
                }
                work.spend(CHUNK)?;
                if b.chunk_points(cb)
                    .windows(2)
                    .any(|sb| segments_intersect(&sa[0], &sa[1], &sb[0], &sb[1]))
                {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// Even-odd test of `p` against the ring (terraformer's `coordinatesContainPoint`).
/// A point outside the ring's box is outside the ring; otherwise only edges whose
/// chunk spans `p`'s y can cross the ray, so only those are tested.
fn ring_contains_point(ring: &Ring, p: &Position, work: &mut RingWork) -> Result<bool, TooComplex> {
    // Edge from `cj` to `ci`, exactly as terraformer writes the test.
    let crosses = |ci: &Position, cj: &Position| {
        ((ci[1] <= p[1] && p[1] < cj[1]) || (cj[1] <= p[1] && p[1] < ci[1]))
            && p[0] < (cj[0] - ci[0]) * (p[1] - ci[1]) / (cj[1] - ci[1]) + ci[0]
    };
    let mut contains = false;
    let n = ring.points.len();
    if n == 0 {
        return Ok(false);
    }
    work.spend(1)?;
    if !ring.bbox.contains(p) {
        return Ok(false);
    }
    work.spend(ring.chunks.len())?;
    for (c, bbox) in ring.chunks.iter().enumerate() {
        if !bbox.spans_y(p[1]) {
            continue;
        }
        work.spend(CHUNK)?;
        for edge in ring.chunk_points(c).windows(2) {
            if crosses(&edge[1], &edge[0]) {
                contains = !contains;
            }
        }
    }
    // The closing edge, from the last point back to the first.
    if crosses(&ring.points[0], &ring.points[n - 1]) {
        contains = !contains;
    }
    Ok(contains)
}

fn ring_contains_ring(outer: &Ring, inner: &Ring, work: &mut RingWork) -> Result<bool, TooComplex> {
    let Some(first) = inner.points.first() else {
        return Ok(false);
    };
    Ok(ring_contains_point(outer, first, work)? && !rings_intersect(outer, inner, work)?)
}

fn rings_to_polygon(
    rings: Vec<Vec<Position>>,
    work: &mut RingWork,
) -> Result<GeometryValue, TooComplex> {
    // (original index, ring as it will be written)
    let mut outers: Vec<(usize, Ring)> = Vec::new();
    let mut holes: Vec<(usize, Ring)> = Vec::new();
    for (index, ring) in rings.into_iter().enumerate() {
        let ring = close_ring(ring);
        if ring.len() < 4 {
            continue;
        }
        if is_clockwise(&ring) {
            outers.push((index, Ring::new(reversed(ring))));
        } else {
            holes.push((index, Ring::new(reversed(ring))));
        }
    }
    // A clockwise ring nested in an odd number of other clockwise rings is a hole.
    let mut nested = Vec::with_capacity(outers.len());
    for (i, (_, ring)) in outers.iter().enumerate() {
        let mut count = 0usize;
        for (j, (_, other)) in outers.iter().enumerate() {
            if j != i && ring_contains_ring(other, ring, work)? {
                count += 1;
            }
        }
        nested.push(count % 2 == 1);
    }
    if nested.iter().any(|n| *n) {
        let mut kept = Vec::new();
        for ((index, ring), is_hole) in outers.into_iter().zip(nested) {
            if is_hole {
                holes.push((index, ring.reversed()));
            } else {
                kept.push((index, ring));
            }
        }
        outers = kept;
        holes.sort_by_key(|(index, _)| *index);
    }
    // Each polygon: its outer ring and its holes.
    let mut polygons: Vec<(Ring, Vec<Vec<Position>>)> = outers
        .into_iter()
        .map(|(_, ring)| (ring, Vec::new()))
        .collect();
    let mut uncontained = Vec::new();
    while let Some((_, hole)) = holes.pop() {
        let mut found = None;
        for (i, (outer, _)) in polygons.iter().enumerate().rev() {
            if ring_contains_ring(outer, &hole, work)? {
                found = Some(i);
                break;
            }
        }
        match found {
            Some(i) => polygons[i].1.push(hole.points),
            None => uncontained.push(hole),
        }
    }
    while let Some(hole) = uncontained.pop() {
        let mut found = None;
        for (i, (outer, _)) in polygons.iter().enumerate().rev() {
            if rings_intersect(outer, &hole, work)? {
                found = Some(i);
                break;
            }
        }
        match found {
            Some(i) => polygons[i].1.push(hole.points),
            None => polygons.push((hole.reversed(), Vec::new())),
        }
    }
    let mut polygons: Vec<Vec<Vec<Position>>> = polygons
        .into_iter()
        .map(|(outer, holes)| std::iter::once(outer.points).chain(holes).collect())
        .collect();
    Ok(if polygons.len() == 1 {
        GeometryValue::Polygon {
            coordinates: polygons.remove(0),
        }
    } else {
        GeometryValue::MultiPolygon {
            coordinates: polygons,
        }
    })
}
