//! The routes of spec §1 and their handlers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::{Map, Value, json};

use crate::api::{self, ApiError, Req, answer};
use crate::{AppState, Config, Error, Inner, auth, queue};

/// How long a non-streaming request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Who asks ([`auth::principal`], the one place that decides), remembered on the
/// request for its page.
async fn who(st: &AppState, req: &Req) -> Result<auth::Principal, ApiError> {
    let p = auth::principal(st, req).await?;
    let _ = req.user.set(p.name().to_owned());
    Ok(p)
}

fn registry(st: &AppState) -> Result<nbexec_runner::jobs::JobStore, ApiError> {
    nbexec_runner::jobs::JobStore::open(&st.config.state_dir).map_err(ApiError::internal)
}

async fn root(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        who(&st, &req).await?;
        Ok(json!({"version": "11.4", "currentVersion": "11.4", "resources": ["notebooks", "system"]}))
    }
    .await;
    answer(&st, &req, "root", r)
}

async fn notebooks(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        who(&st, &req).await?;
        let start = req.number("start")?.unwrap_or(1).max(1);
        let num = req.number("num")?.unwrap_or(10).clamp(1, 100);
        Ok(
            json!({"notebooks": [], "total": 0, "start": start, "num": num,
                  "operations": ["executeNotebook"], "resources": ["jobs"]}),
        )
    }
    .await;
    answer(&st, &req, "notebooks", r)
}

async fn system(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        who(&st, &req).await?;
        Ok(json!({"resources": ["jobs"]}))
    }
    .await;
    answer(&st, &req, "system", r)
}

/// The fields executeNotebook knows; others are ignored (as ArcGIS does) and logged.
const EXECUTE_FIELDS: [&str; 9] = [
    "itemId",
    "notebookParameters",
    "updatePortalItem",
    "saveInjectedParameters",
    "executionTimeoutInMinutes",
    "kernelName",
    "notifyUrl",
    "f",
    "token",
];

/// `notebookParameters`: an object (a JSON string of one in a form or query).
fn notebook_parameters(req: &Req) -> Result<Map<String, Value>, ApiError> {
    let bad = |what: String| ApiError::bad_request(vec![format!("notebookParameters: {what}")]);
    match req.params.get("notebookParameters") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(Value::Null) => Ok(Map::new()),
            Ok(_) => Err(bad("not a JSON object".into())),
            Err(e) => Err(bad(format!("not valid JSON: {e}"))),
        },
        Some(_) => Err(bad("not a JSON object".into())),
    }
}

async fn execute(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        let who = who(&st, &req).await?;
        let item_id = req
            .text("itemId")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        if item_id.is_empty() {
            if req.method == axum::http::Method::GET && req.format()? == api::Format::Html {
                // The operation's page: a form (html only).
                // The item store's notebooks the caller may run, offered in the form.
                let items = crate::tasks::form_items(&st, &who);
                return Ok(
                    json!({"operation": "executeNotebook", "parameters": EXECUTE_FIELDS[..7], "items": items}),
                );
            }
            return Err(ApiError::bad_request(vec!["itemId: required".into()]));
        }
        let item = queue::runnable_item(&st, &who, &item_id)?;
        let parameters = notebook_parameters(&req)?;
        let update_item = req.flag("updatePortalItem", true)?;
        let save_injected = req.flag("saveInjectedParameters", false)?;
        let timeout_minutes = match req.params.get("executionTimeoutInMinutes") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(v) => {
                let n = match v {
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    other => other.as_f64(),
                };
                match n {
                    Some(n) if n.is_finite() && n > 0.0 => Some(n),
                    _ => {
                        return Err(ApiError::bad_request(vec![format!(
                            "executionTimeoutInMinutes: expected a positive number, got {}",
                            crate::short(&v.to_string())
                        )]));
                    }
                }
            }
        };
        let kernel = req
            .text("kernelName")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let notify_url = crate::tasks::notify_url_field(&req)?;
        let unknown: Vec<&str> = req
            .params
            .keys()
            .map(String::as_str)
            .filter(|k| !EXECUTE_FIELDS.contains(k))
            .collect();
        if !unknown.is_empty() {
            eprintln!(
                "nbexec serve: executeNotebook: ignoring unknown field(s) {}",
                unknown
                    .iter()
                    .map(|k| crate::short(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let request = queue::JobRequest {
            item_id,
            parameters,
            update_item,
            save_injected,
            timeout_minutes,
            kernel,
            username: who.name().to_owned(),
            base_revision: item.revision,
            task_id: String::new(),
            run_id: String::new(),
            notify_url,
        };
        let q = Arc::clone(&st.queue);
        let id = tokio::task::spawn_blocking(move || q.submit(request))
            .await
            .map_err(ApiError::internal)??;
        Ok(json!({
            "jobId": id,
            "jobUrl": format!("{}/notebooks/jobs/{id}", st.root_url(&req)),
            "status": "success",
        }))
    }
    .await;
    answer(&st, &req, "executeNotebook", r)
}

async fn jobs_list(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        let who = who(&st, &req).await?;
        let start = req.number("start")?.unwrap_or(1).max(1) as usize;
        let num = req.number("num")?.unwrap_or(100).clamp(1, 10_000) as usize;
        let store = registry(&st)?;
        // An administrator sees every job, a user their own (seed 003); the registry
        // pages, so the cost does not grow with the number of jobs kept.
        let owner = (!who.is_admin()).then(|| who.name().to_owned());
        let jobs = store
            .page(owner.as_deref(), start - 1, num)
            .map_err(ApiError::internal)?;
        let mut titles = std::collections::HashMap::new();
        let visible: Vec<Value> = jobs
            .iter()
            .filter(|j| who.may_access(j.username.as_deref()))
            .map(|j| listed(&st, j, &mut titles))
            .collect();
        Ok(json!({"asyncNotebookJobs": visible}))
    }
    .await;
    answer(&st, &req, "jobs", r)
}

/// A job's entry in the list: seed 003's summary, plus the item and the owner (the
/// jobs page shows them; clients ignore fields they do not know).
fn listed(
    st: &AppState,
    job: &nbexec_runner::jobs::Job,
    titles: &mut std::collections::HashMap<String, Option<String>>,
) -> Value {
    let mut v = job.summary_json();
    // Many jobs run one item: its title is read once per page.
    if let Some(id) = job.inputs.get("itemId").and_then(Value::as_str) {
        v["itemId"] = json!(id);
        let title = titles
            .entry(id.to_owned())
            .or_insert_with(|| st.items.get(id).ok().map(|item| item.title));
        if let Some(title) = title {
            v["itemTitle"] = json!(title);
        }
    }
    if let Some(user) = &job.username {
        v["username"] = json!(user);
    }
    v
}

/// Adds the job's `itemId` and, while the item exists, its `itemTitle`.
fn with_item(st: &AppState, job: &nbexec_runner::jobs::Job, v: &mut Value) {
    if let Some(id) = job.inputs.get("itemId").and_then(Value::as_str) {
        v["itemId"] = json!(id);
        if let Ok(item) = st.items.get(id) {
            v["itemTitle"] = json!(item.title);
        }
    }
}

/// The job `id`, if the principal may see it.
fn visible_job(
    st: &AppState,
    who: &auth::Principal,
    id: &str,
) -> Result<nbexec_runner::jobs::Job, ApiError> {
    let store = registry(st)?;
    let job = store
        .get(id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(&format!("Job '{id}' does not exist.")))?;
    if !who.may_access(job.username.as_deref()) {
        return Err(ApiError::forbidden());
    }
    Ok(job)
}

async fn job_detail(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    let r = async {
        let who = who(&st, &req).await?;
        let job = visible_job(&st, &who, &id)?;
        Ok(detail(&st, &req, &job))
    }
    .await;
    answer(&st, &req, "job", r)
}

/// A job's detail, with the URLs of its artifacts for a server job.
fn detail(st: &AppState, req: &Req, job: &nbexec_runner::jobs::Job) -> Value {
    let mut v = job.public_json();
    with_item(st, job, &mut v);
    if job.is_server_job() {
        let url = format!("{}/notebooks/jobs/{}", st.root_url(req), job.id);
        if !v["results"].is_object() {
            v["results"] = json!({});
        }
        if queue::output_path(&st.config.state_dir, &job.id).is_file() {
            v["results"]["outputNotebookUrl"] = json!(format!("{url}/output.ipynb"));
            v["results"]["reportUrl"] = json!(format!("{url}/report.html"));
        }
        v["results"]["logUrl"] = json!(format!("{url}/log"));
        v["results"]["eventsUrl"] = json!(format!("{url}/events"));
        if let Some(item) = job.inputs.get("itemId").and_then(Value::as_str) {
            v["results"]["outputItemId"] = json!(item);
        }
        v["url"] = json!(url);
    }
    v
}

fn cancel_refused(id: &str) -> ApiError {
    ApiError::operation(
        StatusCode::CONFLICT,
        500,
        vec![format!("Unable to cancel job :[{id}]")],
    )
}

async fn job_cancel(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    let r = async {
        let who = who(&st, &req).await?;
        let job = visible_job(&st, &who, &id)?;
        if job.status.is_finished() {
            return Err(cancel_refused(&id));
        }
        if st.queue.cancel_waiting(&id) {
            return Ok(json!({"status": "success"}));
        }
        let store = registry(&st)?;
        if store.request_cancel(&id).map_err(ApiError::internal)? {
            Ok(json!({"status": "success"}))
        } else {
            Err(cancel_refused(&id))
        }
    }
    .await;
    answer(&st, &req, "cancel", r)
}

async fn delete_all(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        let who = who(&st, &req).await?;
        let store = registry(&st)?;
        let jobs = store.list(true).map_err(ApiError::internal)?;
        let mut deleted = 0;
        for job in jobs
            .iter()
            .filter(|j| j.status.is_finished() && who.may_access(j.username.as_deref()))
        {
            if store.delete_finished(&job.id).map_err(ApiError::internal)? {
                deleted += 1;
                if job.is_server_job() {
                    let _ = std::fs::remove_dir_all(queue::job_dir(&st.config.state_dir, &job.id));
                }
                let _ = std::fs::remove_file(nbexec_runner::jobs::log_path(
                    &st.config.state_dir,
                    &job.id,
                ));
            }
        }
        Ok(json!({"status": "success", "deleted": deleted}))
    }
    .await;
    answer(&st, &req, "deleteAll", r)
}

/// A response of `content_type` with `body`.
fn raw(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    let mut resp = Response::new(body.into());
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(content_type),
    );
    resp
}

/// The executed notebook of a server job the principal may see.
async fn job_output(st: &AppState, req: &Req, id: &str) -> Result<Vec<u8>, ApiError> {
    req.format()?;
    let who = who(st, req).await?;
    let job = visible_job(st, &who, id)?;
    let path = queue::output_path(&st.config.state_dir, &job.id);
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::not_found(&format!(
            "Job '{id}' has no output notebook (yet)."
        ))),
        Err(e) => Err(ApiError::internal(e)),
    }
}

async fn artifact_output(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    match job_output(&st, &req, &id).await {
        Ok(bytes) => raw("application/x-ipynb+json", bytes),
        Err(e) => e.json_response(),
    }
}

async fn artifact_report(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    let bytes = match job_output(&st, &req, &id).await {
        Ok(b) => b,
        Err(e) => return e.json_response(),
    };
    let page = tokio::task::spawn_blocking(move || {
        let nb = nbexec_format::read_slice(&bytes)
            .map_err(ApiError::internal)?
            .notebook;
        let opts = nbexec_report::Options {
            fallback_title: Some(format!("job {id}")),
            ..nbexec_report::Options::default()
        };
        Ok::<_, ApiError>(nbexec_report::render_to_string(&nb, &opts))
    })
    .await;
    match page {
        Ok(Ok(html)) => raw("text/html; charset=utf-8", html),
        Ok(Err(e)) => e.json_response(),
        Err(e) => ApiError::internal(e).json_response(),
    }
}

async fn artifact_log(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    let r = async {
        let format = req.format()?;
        let who = who(&st, &req).await?;
        let job = visible_job(&st, &who, &id)?;
        let path = nbexec_runner::jobs::log_path(&st.config.state_dir, &job.id);
        let text = match tokio::fs::read(&path).await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(ApiError::internal(e)),
        };
        Ok((
            format,
            json!({"jobId": job.id, "status": job.status.as_str(), "log": text}),
        ))
    }
    .await;
    match r {
        // Without an explicit f, the log is plain text (what `curl …/log` wants).
        Ok((api::Format::Html, v)) if req.text("f").is_none() => raw(
            "text/plain; charset=utf-8",
            v["log"].as_str().unwrap_or("").to_owned(),
        ),
        Ok((_, v)) => answer(&st, &req, "log", Ok(v)),
        Err(e) => answer(&st, &req, "log", Err(e)),
    }
}

async fn job_events(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let r: Result<_, ApiError> = async {
        req.format()?;
        let who = who(&st, &req).await?;
        // Subscribe before reading the status, so no change falls between.
        let rx = st.queue.subscribe(&id);
        let job = visible_job(&st, &who, &id)?;
        Ok((rx, job))
    }
    .await;
    let (rx, job) = match r {
        Ok(x) => x,
        Err(e) => return e.json_response(),
    };
    let first = Event::default()
        .event("status")
        .data(json!({"jobId": job.id, "status": job.status.as_str()}).to_string());
    let shutdown = st.queue.shutdown.subscribe();
    let live = if job.status.is_finished() { None } else { rx };
    let stream = futures_util::stream::unfold(
        (Some(first), live, shutdown, false),
        |(first, mut rx, mut shutdown, done)| async move {
            if let Some(ev) = first {
                return Some((
                    Ok::<_, std::convert::Infallible>(ev),
                    (None, rx, shutdown, done),
                ));
            }
            if done || *shutdown.borrow() {
                return None;
            }
            let r = rx.as_mut()?;
            let msg = tokio::select! {
                msg = r.recv() => msg,
                _ = shutdown.changed() => return None,
            };
            let (out, finished) = match msg {
                Ok(ev) => {
                    let finished = ev.name == "status"
                        && ev.data["status"]
                            .as_str()
                            .and_then(nbexec_runner::jobs::JobStatus::parse)
                            .is_some_and(|s| s.is_finished());
                    (
                        Event::default().event(ev.name).data(ev.data.to_string()),
                        finished,
                    )
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => (
                    Event::default()
                        .event("lagged")
                        .data(json!({"missed": n}).to_string()),
                    false,
                ),
                Err(_) => return None,
            };
            Some((Ok(out), (None, rx, shutdown, finished)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn healthz() -> Response {
    "ok".into_response()
}

async fn not_found(State(st): State<AppState>, req: Req) -> Response {
    answer(
        &st,
        &req,
        "error",
        Err(ApiError::not_found(
            "Resource does not exist or is inaccessible.",
        )),
    )
}

/// A resource or operation of the REST API: ArcGIS answers GET and POST alike (a form
/// POST carries what a query string would), and so does every route here.
pub(crate) fn get_or_post<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    get(handler.clone()).post(handler)
}

fn admin_routes() -> Router<AppState> {
    let mut router = Router::new()
        .route("/admin", get_or_post(root))
        .route("/admin/", get_or_post(root))
        .route("/admin/notebooks", get_or_post(notebooks))
        .route("/admin/notebooks/executeNotebook", get_or_post(execute))
        .route("/admin/generateToken", get_or_post(auth::generate_token))
        .route("/admin/system", get_or_post(system))
        .route(
            "/admin/notebooks/jobs/{id}/output.ipynb",
            get_or_post(artifact_output),
        )
        .route(
            "/admin/notebooks/jobs/{id}/report.html",
            get_or_post(artifact_report),
        )
        .route("/admin/notebooks/jobs/{id}/log", get_or_post(artifact_log));
    // The jobs resource answers under both of ArcGIS's paths for it.
    for jobs in ["/admin/notebooks/jobs", "/admin/system/jobs"] {
        router = router
            .route(jobs, get_or_post(jobs_list))
            .route(&format!("{jobs}/{{id}}"), get_or_post(job_detail))
            .route(&format!("{jobs}/{{id}}/cancel"), get_or_post(job_cancel))
            .route(&format!("{jobs}/deleteAll"), get_or_post(delete_all));
    }
    router
}

/// Routes that stream (no request timeout).
fn streaming_routes() -> Router<AppState> {
    Router::new().route("/admin/notebooks/jobs/{id}/events", get_or_post(job_events))
}

/// Rewrites the plain-text 413/408 answers of the tower-http layers into the error
/// shape.
async fn shape_layer_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => api::too_large().json_response(),
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            408,
            "Unable to complete operation.",
            vec!["the request took too long".into()],
        )
        .json_response(),
        _ => resp,
    }
}

fn router(state: AppState) -> Router {
    use tower_http::limit::RequestBodyLimitLayer;
    use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
    use tower_http::timeout::TimeoutLayer;

    let base = state.config.base_path.clone();
    let admin = admin_routes()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .merge(streaming_routes());
    let app = if base.is_empty() {
        admin
    } else {
        Router::new().nest(&base, admin)
    };
    let app = if state.config.portal {
        app.merge(crate::portal::routes())
    } else {
        app
    };
    let sensitive: Arc<[axum::http::HeaderName]> = Arc::new([
        axum::http::header::AUTHORIZATION,
        axum::http::header::COOKIE,
        axum::http::HeaderName::from_static("x-esri-authorization"),
    ]);
    let app = app
        .merge(crate::tasks::routes())
        .merge(crate::webhooks::routes(&base));
    app.route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(api::BODY_LIMIT))
        // Outside the limits, so their plain-text answers get the error shape.
        .layer(axum::middleware::map_response(shape_layer_errors))
        .layer(SetSensitiveRequestHeadersLayer::from_shared(sensitive))
}

pub(crate) async fn serve(config: Config, listening: impl FnOnce(SocketAddr)) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    // Listen for the signals first: from here on SIGTERM drains, SIGUSR1 (what
    // `nbexec jobs cancel` sends the owner of a job) looks for cancelled queued jobs.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let early_stop = nbexec_orchestrate::signals::take_pending_exit_code().is_some();
    let items = crate::ItemStore::open(&config.items_dir)?;
    for nb in &config.add_items {
        let item = items.add(nb, None, "")?;
        eprintln!("nbexec serve: item {} = {}", item.id, nb.display());
    }
    nbexec_runner::jobs::JobStore::open(&config.state_dir)
        .map_err(|e| Error::Jobs(e.to_string()))?;
    if config.users.is_none() && !config.bind.ip().is_loopback() {
        return Err(Error::Config(format!(
            "refusing to listen on {}: without --users, nbexec serve binds only to loopback",
            config.bind
        )));
    }
    let tls = match &config.tls {
        Some(source) => Some(crate::tls::load(source).map_err(|e| Error::Config(e.to_string()))?),
        None => None,
    };
    let auth = match &config.users {
        Some(path) => auth::Auth::with_users(path, tls.is_some()),
        None => auth::Auth::open(tls.is_some()),
    }
    .map_err(|e| Error::Config(e.to_string()))?;
    if let Some(tls) = &tls {
        eprintln!("nbexec serve: TLS certificate SHA-256 {}", tls.fingerprint);
    } else if config.users.is_some() && !config.bind.ip().is_loopback() {
        eprintln!(
            "warning: passwords and tokens cross the network in clear text on plain HTTP; \
             use --tls-cert/--tls-key"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| Error::Bind {
            addr: config.bind,
            source,
        })?;
    let local_addr = listener.local_addr()?;
    let queue = Arc::new(queue::Queue::new(config.clone()));
    let requeued = queue.recover()?;
    queue.sweep();
    if requeued > 0 {
        eprintln!("nbexec serve: {requeued} job(s) left queued by a stopped server re-queued");
    }
    let state = AppState(Arc::new(Inner {
        config,
        items,
        local_addr,
        scheme: if tls.is_some() { "https" } else { "http" },
        auth,
        queue,
    }));
    let workers = queue::start_workers(&state);
    let scheduler = crate::tasks::start_scheduler(&state);
    let app = router(state.clone());
    listening(local_addr);
    let q = Arc::clone(&state.queue);
    let cancels = tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            let q = Arc::clone(&q);
            let _ = tokio::task::spawn_blocking(move || q.scan_cancels()).await;
        }
    });
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(early_stop);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        stop_tx.send_replace(true);
    });
    let q = Arc::clone(&state.queue);
    let shutdown = async move {
        let _ = stop_rx.wait_for(|s| *s).await;
        // Live event streams end now, or the connections would keep the server up.
        q.shutdown.send_replace(true);
    };
    // HTTP and HTTPS alike (not axum::serve: it has no request-head timeout, so one
    // half-sent request would hold the graceful shutdown, and the drain, for ever).
    crate::tls::serve(listener, tls.as_ref(), app, shutdown).await?;
    scheduler.abort();
    queue::drain(&state, workers).await;
    cancels.abort();
    Ok(())
}
