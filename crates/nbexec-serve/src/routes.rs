//! The routes of spec §1 and their handlers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::api::{self, ApiError, Req, answer};
use crate::{AppState, Config, Error, Inner, auth};

/// How long a non-streaming request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn registry(st: &AppState) -> Result<nbexec_runner::jobs::JobStore, ApiError> {
    nbexec_runner::jobs::JobStore::open(&st.config.state_dir).map_err(ApiError::internal)
}

async fn root(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        auth::principal(&st, &req).await?;
        Ok(json!({"version": "11.4", "currentVersion": "11.4", "resources": ["notebooks", "system"]}))
    }
    .await;
    answer(&st, &req, "root", r)
}

async fn notebooks(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        auth::principal(&st, &req).await?;
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
        auth::principal(&st, &req).await?;
        Ok(json!({"resources": ["jobs"]}))
    }
    .await;
    answer(&st, &req, "system", r)
}

async fn execute(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        auth::principal(&st, &req).await?;
        Err::<Value, _>(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            501,
            "Unable to complete operation.",
            vec!["executeNotebook is not implemented yet".into()],
        ))
    }
    .await;
    answer(&st, &req, "executeNotebook", r)
}

async fn jobs_list(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        let start = req.number("start")?.unwrap_or(1).max(1) as usize;
        let num = req.number("num")?.unwrap_or(100).clamp(1, 10_000) as usize;
        let store = registry(&st)?;
        let jobs = store.list(true).map_err(ApiError::internal)?;
        let visible: Vec<Value> = jobs
            .iter()
            .filter(|j| who.may_access(j.username.as_deref()))
            .skip(start - 1)
            .take(num)
            .map(|j| j.summary_json())
            .collect();
        Ok(json!({"asyncNotebookJobs": visible}))
    }
    .await;
    answer(&st, &req, "jobs", r)
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
        let who = auth::principal(&st, &req).await?;
        let job = visible_job(&st, &who, &id)?;
        Ok(job.detail_json())
    }
    .await;
    answer(&st, &req, "job", r)
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

fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(root).post(root))
        .route("/admin/", get(root).post(root))
        .route("/admin/notebooks", get(notebooks).post(notebooks))
        .route(
            "/admin/notebooks/executeNotebook",
            get(execute).post(execute),
        )
        .route("/admin/notebooks/jobs", get(jobs_list).post(jobs_list))
        .route(
            "/admin/notebooks/jobs/{id}",
            get(job_detail).post(job_detail),
        )
        .route("/admin/system", get(system).post(system))
        .route("/admin/system/jobs", get(jobs_list).post(jobs_list))
        .route("/admin/system/jobs/{id}", get(job_detail).post(job_detail))
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
    let admin = admin_routes().layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT,
    ));
    let app = if base.is_empty() {
        admin
    } else {
        Router::new().nest(&base, admin)
    };
    let sensitive: Arc<[axum::http::HeaderName]> = Arc::new([
        axum::http::header::AUTHORIZATION,
        axum::http::header::COOKIE,
        axum::http::HeaderName::from_static("x-esri-authorization"),
    ]);
    app.route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::map_response(shape_layer_errors))
        .layer(RequestBodyLimitLayer::new(api::BODY_LIMIT))
        .layer(SetSensitiveRequestHeadersLayer::from_shared(sensitive))
}

pub(crate) async fn serve(config: Config, listening: impl FnOnce(SocketAddr)) -> Result<(), Error> {
    let items = crate::ItemStore::open(&config.items_dir)?;
    for nb in &config.add_items {
        let item = items.add(nb, None, "")?;
        eprintln!("nbexec serve: item {} = {}", item.id, nb.display());
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| Error::Bind {
            addr: config.bind,
            source,
        })?;
    let local_addr = listener.local_addr()?;
    let state = AppState(Arc::new(Inner {
        config,
        items,
        local_addr,
        scheme: "http",
        queue: crate::queue::Queue::default(),
    }));
    let app = router(state.clone());
    listening(local_addr);
    let shutdown = async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        tokio::select! {
            _ = async { if let Some(s) = term.as_mut() { s.recv().await; } else { std::future::pending::<()>().await } } => {}
            _ = async { if let Some(s) = int.as_mut() { s.recv().await; } else { std::future::pending::<()>().await } } => {}
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
