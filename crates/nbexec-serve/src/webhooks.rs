//! Webhook receivers over HTTP (ArcGIS Notebook Server 11.4+
//! `notebooks/webhookReceivers`) and the inbound `POST /rest/events/webhooks/<id>`.
//!
//! The inbound route takes no token: the signature is its authentication
//! (`nbexec_schedule::webhook`: Base64 HMAC-SHA256 of the raw body with the
//! receiver's secret, checked in constant time). Its body may be at most 1 MiB. A
//! delivery seen before (same delivery id, or same body) is answered 200 and runs
//! nothing. Otherwise the receiver's notebook is run with the receiver's parameters
//! plus `webhook_payload`, and the answer is 202 with the job.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use nbexec_schedule::ScheduleStore;
use nbexec_schedule::webhook::{
    self, DEFAULT_SIGNATURE_HEADERS, MAX_BODY_BYTES, REPLAY_WINDOW, Receiver,
};
use serde_json::{Value, json};

use crate::api::{ApiError, Req, answer};
use crate::routes::get_or_post;
use crate::{AppState, auth, queue};

fn store(st: &AppState) -> Result<ScheduleStore, ApiError> {
    ScheduleStore::open(&st.config.state_dir).map_err(ApiError::internal)
}

/// The inbound URL of receiver `id`.
fn inbound_url(st: &AppState, req: &Req, id: &str) -> String {
    format!(
        "{}{}/rest/events/webhooks/{id}",
        st.origin(req),
        st.config.base_path
    )
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(&format!("Webhook receiver '{id}' does not exist."))
}

/// Receiver `id`, if the principal may see it.
fn visible(store: &ScheduleStore, who: &auth::Principal, id: &str) -> Result<Receiver, ApiError> {
    match store.get_receiver(id).map_err(ApiError::internal)? {
        Some(r) if who.may_access(Some(&r.username)) => Ok(r),
        _ => Err(not_found(id)),
    }
}

/// A random 32-character secret (letters and digits).
fn new_secret() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    // 32 hex digits from two v4 UUIDs (their random bits), mixed case for variety.
    a.chars()
        .zip(b.chars())
        .map(|(x, y)| if y < '8' { x } else { x.to_ascii_uppercase() })
        .collect()
}

/// Applies create/update fields to `r`.
fn apply_fields(
    st: &AppState,
    who: &auth::Principal,
    req: &Req,
    r: &mut Receiver,
) -> Result<(), ApiError> {
    if let Some(n) = req.text("name") {
        r.name = n.trim().to_owned();
    }
    if let Some(item) = req.text("itemId").map(|s| s.trim().to_owned()) {
        queue::runnable_item(st, who, &item)?;
        r.item_id = item;
    }
    if let Some(s) = req.text("secret").filter(|s| !s.is_empty()) {
        r.secret = s;
    }
    if let Some(h) = req.text("signatureHeaders") {
        r.signature_headers = Receiver::parse_headers(&h);
    }
    if let Some(t) = req.text("apiToken") {
        r.api_token = t;
    }
    match req.params.get("parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => r.parameters = Value::Object(m.clone()),
        Some(Value::String(s)) if s.trim().is_empty() => r.parameters = json!({}),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => r.parameters = v,
            _ => {
                return Err(ApiError::bad_request(vec![
                    "parameters: not a JSON object".into(),
                ]));
            }
        },
        Some(_) => {
            return Err(ApiError::bad_request(vec![
                "parameters: not a JSON object".into(),
            ]));
        }
    }
    if req.params.contains_key("disabled") {
        r.disabled = req.flag("disabled", false)?;
    }
    r.validate()
        .map_err(|e| ApiError::bad_request(vec![e.to_string()]))
}

async fn list(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        let all = store(&st)?.list_receivers().map_err(ApiError::internal)?;
        let html = matches!(req.format(), Ok(crate::api::Format::Html));
        let shown: Vec<Value> = all
            .iter()
            .filter(|r| who.may_access(Some(&r.username)))
            .map(|r| {
                let mut v = r.to_json(&inbound_url(&st, &req, &r.id), false);
                if html {
                    crate::tasks::add_item_title(&st, &mut v, &r.item_id);
                }
                v
            })
            .collect();
        Ok(json!({"webhookReceivers": shown}))
    }
    .await;
    answer(&st, &req, "webhookReceivers", r)
}

async fn create(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        if crate::tasks::form_request(&req) {
            return Ok(
                json!({"operation": "create", "items": crate::tasks::form_items(&st, &who)}),
            );
        }
        for required in ["name", "itemId"] {
            if req.text(required).is_none_or(|v| v.trim().is_empty()) {
                return Err(ApiError::bad_request(vec![format!("{required}: required")]));
            }
        }
        let mut receiver = Receiver {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name: String::new(),
            item_id: String::new(),
            secret: new_secret(),
            signature_headers: DEFAULT_SIGNATURE_HEADERS.map(str::to_owned).to_vec(),
            api_token: String::new(),
            parameters: json!({}),
            disabled: false,
            username: who.name().to_owned(),
            created: chrono::Utc::now().timestamp_millis(),
            message: String::new(),
        };
        apply_fields(&st, &who, &req, &mut receiver)?;
        store(&st)?
            .insert_receiver(&receiver)
            .map_err(ApiError::internal)?;
        Ok(json!({"webhookReceiver": receiver.to_json(&inbound_url(&st, &req, &receiver.id), true)}))
    }
    .await;
    answer(&st, &req, "create", r)
}

async fn one(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        let receiver = visible(&store(&st)?, &who, &id)?;
        let mut value = receiver.to_json(&inbound_url(&st, &req, &id), false);
        if matches!(req.format(), Ok(crate::api::Format::Html)) {
            crate::tasks::add_item_title(&st, &mut value, &receiver.item_id);
        }
        Ok(value)
    }
    .await;
    answer(&st, &req, "webhookReceiver", r)
}

async fn update(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        let store = store(&st)?;
        let mut receiver = visible(&store, &who, &id)?;
        if crate::tasks::form_request(&req) {
            // Never the secret (to_json leaves it out).
            return Ok(json!({"operation": "update",
                             "current": receiver.to_json(&inbound_url(&st, &req, &id), false)}));
        }
        apply_fields(&st, &who, &req, &mut receiver)?;
        store
            .update_receiver(&receiver)
            .map_err(ApiError::internal)?;
        Ok(json!({"webhookReceiver": receiver.to_json(&inbound_url(&st, &req, &id), false)}))
    }
    .await;
    answer(&st, &req, "update", r)
}

async fn validate(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        let receiver = visible(&store(&st)?, &who, &id)?;
        receiver
            .validate()
            .map_err(|e| ApiError::bad_request(vec![e.to_string()]))?;
        st.items.get(&receiver.item_id).map_err(queue::item_error)?;
        Ok(json!({"success": "true", "id": id}))
    }
    .await;
    answer(&st, &req, "validate", r)
}

async fn set_disabled(st: AppState, id: String, req: Req, disabled: bool) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        let store = store(&st)?;
        let mut receiver = visible(&store, &who, &id)?;
        receiver.disabled = disabled;
        store
            .update_receiver(&receiver)
            .map_err(ApiError::internal)?;
        Ok(json!({"status": "success"}))
    }
    .await;
    answer(&st, &req, if disabled { "disable" } else { "enable" }, r)
}

async fn enable(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    set_disabled(st, id, req, false).await
}

async fn disable(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    set_disabled(st, id, req, true).await
}

async fn delete(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        let store = store(&st)?;
        let receiver = visible(&store, &who, &id)?;
        store
            .delete_receiver(&receiver.id)
            .map_err(ApiError::internal)?;
        Ok(json!({"status": "success"}))
    }
    .await;
    answer(&st, &req, "delete", r)
}

/// `POST /rest/events/webhooks/<id>`: a signed delivery runs the receiver's notebook.
async fn inbound(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                413,
                "Unable to complete operation.",
                vec![format!(
                    "a webhook body may be at most {} MiB",
                    MAX_BODY_BYTES / (1024 * 1024)
                )],
            )
            .json_response();
        }
    };
    let origin = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("{}://{h}", st.scheme))
        .unwrap_or_else(|| format!("{}://{}", st.scheme, st.local_addr));
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let st2 = st.clone();
    let id2 = id.clone();
    let result = tokio::task::spawn_blocking(move || deliver(&st2, &id2, &headers, &bytes))
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(e)));
    match result {
        Ok((status, mut value)) => {
            if let Some(job_id) = value["jobId"].as_str().map(str::to_owned) {
                value["jobUrl"] = json!(format!(
                    "{origin}{}/admin/notebooks/jobs/{job_id}",
                    st.config.base_path
                ));
            }
            crate::api::json_body(status, &value, false)
        }
        Err(e) => e.json_response(),
    }
}

/// Checks and records a delivery, and submits its job.
fn deliver(
    st: &AppState,
    id: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<(StatusCode, Value), ApiError> {
    let store = store(st)?;
    let receiver = store
        .get_receiver(id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| not_found(id))?;
    if receiver.disabled {
        return Err(ApiError::operation(
            StatusCode::CONFLICT,
            409,
            vec![format!("webhook receiver {id} is disabled")],
        ));
    }
    webhook::verify(
        receiver.secret.as_bytes(),
        &receiver.signature_headers,
        headers,
        body,
    )
    .map_err(|e| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            401,
            "Invalid webhook signature.",
            vec![e.to_string()],
        )
    })?;
    // Replay: any key seen before means this delivery was received already.
    let keys = webhook::delivery_keys(headers, body);
    let mut recorded = Vec::new();
    let mut replay = false;
    for key in &keys {
        if store
            .record_delivery(id, key, REPLAY_WINDOW)
            .map_err(ApiError::internal)?
        {
            recorded.push(key.clone());
        } else {
            replay = true;
        }
    }
    if replay {
        for key in &recorded {
            let _ = store.forget_delivery(id, key);
        }
        return Ok((
            StatusCode::OK,
            json!({"status": "success", "ignored": true,
                   "message": "this delivery was received before; it is ignored"}),
        ));
    }
    let forget = || {
        for key in &recorded {
            let _ = store.forget_delivery(id, key);
        }
    };
    let item = st.items.get(&receiver.item_id).map_err(|e| {
        forget();
        queue::item_error(e)
    })?;
    let request = queue::JobRequest {
        item_id: receiver.item_id.clone(),
        parameters: receiver.run_parameters(body),
        update_item: false,
        save_injected: false,
        timeout_minutes: None,
        kernel: None,
        username: receiver.username.clone(),
        base_revision: item.revision,
        task_id: String::new(),
        run_id: String::new(),
        notify_url: None,
    };
    let job_id = st.queue.submit(request).inspect_err(|_| forget())?;
    let job = nbexec_runner::jobs::JobStore::open(&st.config.state_dir)
        .ok()
        .and_then(|s| s.get(&job_id).ok().flatten())
        .map(|j| j.detail_json())
        .unwrap_or(Value::Null);
    Ok((
        StatusCode::ACCEPTED,
        json!({"jobId": job_id, "status": "success", "job": job}),
    ))
}

/// The receiver routes (under `<base>/admin`) and the inbound route.
pub(crate) fn routes(base: &str) -> Router<AppState> {
    let admin = format!("{base}/admin/notebooks/webhookReceivers");
    Router::new()
        .route(&admin, get_or_post(list))
        .route(&format!("{admin}/create"), get_or_post(create))
        .route(&format!("{admin}/{{id}}"), get_or_post(one))
        .route(&format!("{admin}/{{id}}/update"), get_or_post(update))
        .route(&format!("{admin}/{{id}}/validate"), get_or_post(validate))
        .route(&format!("{admin}/{{id}}/enable"), get_or_post(enable))
        .route(&format!("{admin}/{{id}}/disable"), get_or_post(disable))
        .route(&format!("{admin}/{{id}}/delete"), get_or_post(delete))
        .route(
            &format!("{base}/rest/events/webhooks/{{id}}"),
            post(inbound),
        )
}
