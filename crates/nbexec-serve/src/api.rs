//! The request and response plumbing every resource shares: parameters from the
//! query, a form or a JSON body; the `f` format; the two ArcGIS error shapes.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::AppState;

/// The largest request body accepted (a FeatureSet parameter can be large).
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The response format (`f`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
    Pjson,
}

/// An error answer: an HTTP status and an ArcGIS-shaped body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiError {
    /// `{"error":{"code","message","details"}}` (portal and services style: auth,
    /// not found, bad input).
    pub fn new(status: StatusCode, code: u16, message: &str, details: Vec<String>) -> ApiError {
        ApiError {
            status,
            body: json!({"error": {"code": code, "message": message, "details": details}}),
        }
    }

    /// A 400 "Unable to complete operation." with the problems in `details`.
    pub fn bad_request(details: Vec<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            400,
            "Unable to complete operation.",
            details,
        )
    }

    pub fn not_found(message: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, 404, message, Vec::new())
    }

    pub fn forbidden() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            403,
            "You do not have permissions to access this resource or perform this operation.",
            Vec::new(),
        )
    }

    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            500,
            "Unable to complete operation.",
            vec![detail.to_string()],
        )
    }

    /// `{"status":"error","messages":[…],"code":…}` (admin-operation style: an
    /// operation that could not be done, e.g. cancelling a finished job).
    pub fn operation(status: StatusCode, code: u16, messages: Vec<String>) -> ApiError {
        ApiError {
            status,
            body: json!({"status": "error", "messages": messages, "code": code}),
        }
    }

    /// The response, always JSON (for an unusable `f`, or before one is known).
    pub fn json_response(&self) -> Response {
        json_body(self.status, &self.body, false)
    }
}

/// A JSON answer (pretty for `f=pjson`) with the JSON content type.
pub(crate) fn json_body(status: StatusCode, value: &Value, pretty: bool) -> Response {
    let text = if pretty {
        serde_json::to_string_pretty(value).unwrap_or_default()
    } else {
        value.to_string()
    };
    let mut resp = (status, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// A request's parameters and what the handlers need of the request itself.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    /// Query parameters, then form or JSON body fields (the body wins). Form and
    /// query values are strings; a JSON body keeps its types.
    pub params: Map<String, Value>,
    /// The signed-in user's name, once the handler has asked who it is (for pages).
    pub user: std::sync::OnceLock<String>,
}

impl Req {
    /// A parameter as text (a JSON string's content, any other JSON value as JSON).
    pub fn text(&self, name: &str) -> Option<String> {
        self.params.get(name).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
    }

    /// `f`: html (the ArcGIS default), json or pjson; anything else is an error.
    pub fn format(&self) -> Result<Format, ApiError> {
        match self.text("f").as_deref().map(str::trim) {
            None | Some("") => Ok(Format::Html),
            Some(f) if f.eq_ignore_ascii_case("html") => Ok(Format::Html),
            Some(f) if f.eq_ignore_ascii_case("json") => Ok(Format::Json),
            Some(f) if f.eq_ignore_ascii_case("pjson") => Ok(Format::Pjson),
            Some(f) => Err(ApiError::bad_request(vec![format!(
                "f: unsupported format '{f}' (html, json or pjson)"
            )])),
        }
    }

    /// A boolean parameter (`true`/`false`, any case; a JSON boolean).
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(default),
            Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
            Some(other) => Err(ApiError::bad_request(vec![format!(
                "{name}: expected true or false, got {}",
                crate::short(&other.to_string())
            )])),
        }
    }

    /// A non-negative integer parameter.
    pub fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let bad = |v: &str| {
            ApiError::bad_request(vec![format!(
                "{name}: expected a non-negative integer, got {}",
                crate::short(v)
            )])
        };
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad(s)),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| bad(&n.to_string())),
            Some(other) => Err(bad(&other.to_string())),
        }
    }

    /// The host the client used (Host header), for absolute URLs.
    pub fn host(&self) -> Option<String> {
        self.headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
            .map(str::to_owned)
    }
}

fn parse_urlencoded(bytes: &[u8], into: &mut Map<String, Value>) -> Result<(), ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|e| ApiError::bad_request(vec![format!("cannot parse the parameters: {e}")]))?;
    for (k, v) in pairs {
        into.insert(k, Value::String(v));
    }
    Ok(())
}

impl FromRequest<AppState> for Req {
    type Rejection = Response;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let mut params = Map::new();
        if let Some(q) = parts.uri.query() {
            parse_urlencoded(q.as_bytes(), &mut params).map_err(|e| e.json_response())?;
        }
        let bytes = axum::body::to_bytes(Body::new(body), BODY_LIMIT)
            .await
            .map_err(|_| too_large().json_response())?;
        if !bytes.is_empty() {
            let ctype = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            if ctype.starts_with("application/json") {
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Object(m)) => params.extend(m),
                    Ok(_) => {
                        return Err(ApiError::bad_request(vec![
                            "the JSON body must be an object of parameters".into(),
                        ])
                        .json_response());
                    }
                    Err(e) => {
                        return Err(ApiError::bad_request(vec![format!(
                            "the body is not valid JSON: {e}"
                        )])
                        .json_response());
                    }
                }
            } else if ctype.is_empty() || ctype.starts_with("application/x-www-form-urlencoded") {
                parse_urlencoded(&bytes, &mut params).map_err(|e| e.json_response())?;
            } else {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    415,
                    "Unable to complete operation.",
                    vec![format!(
                        "unsupported content type '{ctype}' (a form or a JSON object)"
                    )],
                )
                .json_response());
            }
        }
        Ok(Req {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            params,
            user: std::sync::OnceLock::new(),
        })
    }
}

/// 413 in the error shape.
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        413,
        "Unable to complete operation.",
        vec![format!(
            "the request body is larger than {} MiB",
            BODY_LIMIT / (1024 * 1024)
        )],
    )
}

/// Answers a request: the resource's value (or the error) as `f` asks.
pub fn answer(
    state: &AppState,
    req: &Req,
    kind: &str,
    result: Result<Value, ApiError>,
) -> Response {
    let format = match req.format() {
        Ok(f) => f,
        Err(e) => return e.json_response(),
    };
    let (status, kind, value) = match result {
        Ok(v) => (StatusCode::OK, kind, v),
        Err(e) => (e.status, "error", e.body),
    };
    match format {
        Format::Json => json_body(status, &value, false),
        Format::Pjson => json_body(status, &value, true),
        Format::Html => {
            let ctx = crate::html::Ctx {
                root_url: state.root_url(req),
                path: req.uri.path().to_owned(),
                user: req.user.get().cloned().unwrap_or_default(),
                token: req.text("token").filter(|t| !t.trim().is_empty()),
            };
            let page = crate::html::render(kind, &value, &ctx);
            let mut resp = (status, page).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            // The pages' policy as a header too: only there does `frame-ancestors`
            // (no framing of the Cancel and Execute forms) take effect.
            resp.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(crate::html::csp()),
            );
            resp
        }
    }
}
