//! Scheduled tasks over HTTP (the portal's `community/users/<u>/tasks` resource,
//! with ArcGIS's field names), the scheduler loop that runs them, and what happens
//! when a job ends (its task run settled, its notification sent).
//!
//! Tasks live in `schedule.sqlite3` in the state directory (`nbexec-schedule`), so
//! `nbexec schedule` works on the same tasks with or without a server. The loop
//! wakes at the next fire time (and at least every [`MAX_SLEEP`], to see tasks the
//! command line added), settles the runs whose jobs ended, and submits a job for
//! each fire: an ordinary job with `inputs.taskId` and `inputs.runId`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use nbexec_runner::jobs::{JobStatus, JobStore};
use nbexec_schedule::cron::{CronFields, Dialect};
use nbexec_schedule::scheduler::first_fire;
use nbexec_schedule::task::{EXECUTE_NOTEBOOK, new_id};
use nbexec_schedule::{Fire, ScheduleStore, Scheduler, SystemClock, Task, TaskState};
use serde_json::{Value, json};

use crate::api::{ApiError, Req, answer};
use crate::routes::get_or_post;
use crate::{AppState, Config, auth, queue};
use nbexec_runner::jobs::now_ms;

/// The longest the loop sleeps (it also wakes when a task changes over HTTP).
const MAX_SLEEP: Duration = Duration::from_secs(15);

/// How many of a task's runs its page shows, newest first.
const HTML_RUNS: usize = 20;

/// A live run whose job was never created is settled failed after this long.
const ORPHAN_RUN_AFTER: Duration = Duration::from_secs(120);

/// Wakes the scheduler loop (a task was created or changed, a task's job ended).
fn wake() -> &'static tokio::sync::Notify {
    static WAKE: OnceLock<tokio::sync::Notify> = OnceLock::new();
    WAKE.get_or_init(tokio::sync::Notify::new)
}

fn store(st: &AppState) -> Result<ScheduleStore, ApiError> {
    ScheduleStore::open(&st.config.state_dir).map_err(ApiError::internal)
}

/// `notifyUrl` of a request: absent, or an http(s) URL.
pub(crate) fn notify_url_field(req: &Req) -> Result<Option<String>, ApiError> {
    match req.text("notifyUrl").map(|s| s.trim().to_owned()) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(url) => {
            nbexec_schedule::notify::check_url(&url)
                .map_err(|e| ApiError::bad_request(vec![format!("notifyUrl: {e}")]))?;
            Ok(Some(url))
        }
    }
}

/// A GET of an operation's page in a browser (`f=html`, no field but `f` and
/// `token`): the handler answers with the operation's form instead of running it.
pub(crate) fn form_request(req: &Req) -> bool {
    req.method == axum::http::Method::GET
        && matches!(req.format(), Ok(crate::api::Format::Html))
        && req.params.keys().all(|k| k == "f" || k == "token")
}

/// The item store's notebooks `who` may run, for an operation form's item list.
pub(crate) fn form_items(st: &AppState, who: &auth::Principal) -> Vec<Value> {
    st.items
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| who.may_run(i))
        .map(|i| json!({"id": i.id, "title": i.title}))
        .collect()
}

/// For a page: the title of the item a task or receiver runs (`itemTitle`).
pub(crate) fn add_item_title(st: &AppState, value: &mut Value, item_id: &str) {
    if let Ok(item) = st.items.get(item_id) {
        value["itemTitle"] = Value::String(item.title);
    }
}

/// May the principal act on `user`'s tasks?
fn check_user(who: &auth::Principal, user: &str) -> Result<(), ApiError> {
    if who.is_admin() || who.name() == user {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

/// Task `id` of `user`, or 404.
fn user_task(store: &ScheduleStore, user: &str, id: &str) -> Result<Task, ApiError> {
    match store.get_task(id).map_err(ApiError::internal)? {
        Some(t) if t.user_id == user => Ok(t),
        _ => Err(ApiError::not_found(&format!("Task '{id}' does not exist."))),
    }
}

fn optional_i64(req: &Req, name: &str) -> Result<Option<i64>, ApiError> {
    match req.text(name).map(|s| s.trim().to_owned()) {
        None => Ok(None),
        Some(s) if s.is_empty() || s == "null" => Ok(None),
        Some(s) => s.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(vec![format!(
                "{name}: expected an integer, got {}",
                crate::short(&s)
            )])
        }),
    }
}

/// `parameters`: a JSON object (a string holding one in a form).
fn parameters_field(req: &Req) -> Result<Option<Value>, ApiError> {
    let bad = |what: &str| ApiError::bad_request(vec![format!("parameters: {what}")]);
    match req.params.get("parameters") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(Value::Object(m.clone()))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            Ok(_) => Err(bad("not a JSON object")),
            Err(e) => Err(bad(&format!("not valid JSON: {e}"))),
        },
        Some(_) => Err(bad("not a JSON object")),
    }
}

/// Applies the task fields of a createTask/update request to `task`.
fn apply_fields(
    st: &AppState,
    who: &auth::Principal,
    req: &Req,
    task: &mut Task,
) -> Result<(), ApiError> {
    if let Some(t) = req.text("title") {
        task.title = t;
    }
    if let Some(t) = req.text("type") {
        task.task_type = t;
    }
    if let Some(item) = req.text("itemId").map(|s| s.trim().to_owned()) {
        queue::runnable_item(st, who, &item)?;
        task.item_id = item;
    }
    if let Some(p) = parameters_field(req)? {
        task.parameters = p;
    }
    if let Some(d) = req.text("cronDialect") {
        task.dialect = Dialect::parse(d.trim()).ok_or_else(|| {
            ApiError::bad_request(vec![format!(
                "cronDialect: expected quartz or posix, got {}",
                crate::short(&d)
            )])
        })?;
    }
    if let Some(z) = req.text("timeZone").filter(|z| !z.trim().is_empty()) {
        task.time_zone = z.trim().to_owned();
    }
    let set = |name: &str, slot: &mut String| {
        if let Some(v) = req.text(name) {
            *slot = v.trim().to_owned();
        }
    };
    set("minute", &mut task.cron.minute);
    set("hour", &mut task.cron.hour);
    set("dayOfMonth", &mut task.cron.day_of_month);
    set("month", &mut task.cron.month);
    set("dayOfWeek", &mut task.cron.day_of_week);
    if let Some(s) = req.text("second") {
        let s = s.trim().to_owned();
        task.cron.second = (!s.is_empty()).then_some(s);
    }
    if req.params.contains_key("maxOccurrences") {
        task.max_occurrences = optional_i64(req, "maxOccurrences")?;
    }
    if req.params.contains_key("startDate") {
        task.start_date = optional_i64(req, "startDate")?;
    }
    if req.params.contains_key("endDate") {
        task.end_date = optional_i64(req, "endDate")?;
    }
    if req.params.contains_key("notifyUrl") {
        task.notify_url = notify_url_field(req)?;
    }
    task.validate()
        .map_err(|e| ApiError::bad_request(vec![e.to_string()]))
}

async fn list(State(st): State<AppState>, Path(user): Path<String>, req: Req) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        check_user(&who, &user)?;
        let start = req.number("start")?.unwrap_or(1).max(1) as usize;
        let num = req.number("num")?.unwrap_or(10).clamp(1, 100) as usize;
        let tasks = store(&st)?
            .list_tasks(Some(&user))
            .map_err(ApiError::internal)?;
        let now = now_ms();
        let html = matches!(req.format(), Ok(crate::api::Format::Html));
        let page: Vec<Value> = tasks
            .iter()
            .skip(start - 1)
            .take(num)
            .map(|t| {
                let mut v = t.to_json(now);
                if html {
                    add_item_title(&st, &mut v, &t.item_id);
                }
                v
            })
            .collect();
        let next = if start - 1 + num < tasks.len() {
            (start + num) as i64
        } else {
            -1
        };
        Ok(json!({"total": tasks.len(), "start": start, "num": num, "nextStart": next, "tasks": page}))
    }
    .await;
    answer(&st, &req, "tasks", r)
}

async fn create(State(st): State<AppState>, Path(user): Path<String>, req: Req) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        check_user(&who, &user)?;
        if form_request(&req) {
            return Ok(json!({"operation": "createTask", "items": form_items(&st, &who)}));
        }
        for required in ["itemId", "minute", "hour", "dayOfMonth", "month", "dayOfWeek"] {
            if req.text(required).is_none_or(|v| v.trim().is_empty()) {
                return Err(ApiError::bad_request(vec![format!("{required}: required")]));
            }
        }
        let mut task = Task {
            id: new_id(),
            item_id: String::new(),
            task_type: EXECUTE_NOTEBOOK.into(),
            title: String::new(),
            user_id: user.clone(),
            dialect: Dialect::Quartz,
            cron: CronFields::split("0 0 * * ?").map_err(ApiError::internal)?,
            time_zone: "UTC".into(),
            parameters: json!({"updatePortalItem": false, "saveInjectedParameters": false, "notebookParameters": {}}),
            max_occurrences: None,
            start_date: None,
            end_date: None,
            created: 0,
            updated: 0,
            state: TaskState::Active,
            last_start: None,
            next_fire: None,
            occurrences: 0,
            state_reason: String::new(),
            notify_url: None,
            failures_since: 0,
        };
        apply_fields(&st, &who, &req, &mut task)?;
        if task.title.is_empty() {
            task.title = st
                .items
                .get(&task.item_id)
                .map(|i| i.title)
                .unwrap_or_default();
        }
        let store = store(&st)?;
        let task = Scheduler::new(SystemClock)
            .create(&store, task)
            .map_err(ApiError::internal)?;
        wake().notify_one();
        Ok(json!({"success": true, "taskId": task.id}))
    }
    .await;
    answer(&st, &req, "createTask", r)
}

async fn one(
    State(st): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    req: Req,
) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        check_user(&who, &user)?;
        let store = store(&st)?;
        let task = user_task(&store, &user, &id)?;
        let mut value = task.to_json(now_ms());
        if matches!(req.format(), Ok(crate::api::Format::Html)) {
            add_item_title(&st, &mut value, &task.item_id);
            // The page shows the last runs too (f=json keeps ArcGIS's shape; the
            // runs have their own resource).
            let runs = store.runs(&task.id).map_err(ApiError::internal)?;
            value["runs"] = runs.iter().take(HTML_RUNS).map(|r| r.to_json()).collect();
        }
        Ok(value)
    }
    .await;
    answer(&st, &req, "task", r)
}

async fn update(
    State(st): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    req: Req,
) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        check_user(&who, &user)?;
        let store = store(&st)?;
        let mut task = user_task(&store, &user, &id)?;
        if form_request(&req) {
            return Ok(json!({"operation": "update", "current": task.to_json(now_ms())}));
        }
        apply_fields(&st, &who, &req, &mut task)?;
        if task.state == TaskState::Active {
            // A changed schedule counts from now.
            task.next_fire = task
                .schedule()
                .ok()
                .and_then(|s| first_fire(&task, &s, chrono::Utc::now()));
        }
        store.update_task(&task).map_err(ApiError::internal)?;
        wake().notify_one();
        Ok(json!({"success": true, "taskId": task.id}))
    }
    .await;
    answer(&st, &req, "update", r)
}

/// enable, disable, delete.
async fn change(st: AppState, user: String, id: String, req: Req, what: &'static str) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        check_user(&who, &user)?;
        let store = store(&st)?;
        let task = user_task(&store, &user, &id)?;
        let scheduler = Scheduler::new(SystemClock);
        match what {
            "enable" => {
                scheduler
                    .resume(&store, &task.id)
                    .map_err(ApiError::internal)?;
            }
            "disable" => {
                scheduler
                    .pause(&store, &task.id, TaskState::Disabled)
                    .map_err(ApiError::internal)?;
            }
            _ => {
                store.delete_task(&task.id).map_err(ApiError::internal)?;
            }
        }
        wake().notify_one();
        Ok(json!({"success": true, "taskId": task.id}))
    }
    .await;
    answer(&st, &req, what, r)
}

async fn enable(
    State(st): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    req: Req,
) -> Response {
    change(st, user, id, req, "enable").await
}

async fn disable(
    State(st): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    req: Req,
) -> Response {
    change(st, user, id, req, "disable").await
}

async fn delete(
    State(st): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    req: Req,
) -> Response {
    change(st, user, id, req, "delete").await
}

async fn runs(
    State(st): State<AppState>,
    Path((user, id)): Path<(String, String)>,
    req: Req,
) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        check_user(&who, &user)?;
        let store = store(&st)?;
        let task = user_task(&store, &user, &id)?;
        let runs = store.runs(&task.id).map_err(ApiError::internal)?;
        Ok(json!({"taskId": task.id, "runs": runs.iter().map(|r| r.to_json()).collect::<Vec<_>>()}))
    }
    .await;
    answer(&st, &req, "runs", r)
}

/// The portal tasks routes (every GET also takes POST, as ArcGIS's do).
pub(crate) fn routes() -> Router<AppState> {
    const BASE: &str = "/portal/sharing/rest/community/users/{user}/tasks";
    Router::new()
        .route(BASE, get_or_post(list))
        .route(&format!("{BASE}/createTask"), get_or_post(create))
        .route(&format!("{BASE}/{{id}}"), get_or_post(one))
        .route(&format!("{BASE}/{{id}}/update"), get_or_post(update))
        .route(&format!("{BASE}/{{id}}/enable"), get_or_post(enable))
        .route(&format!("{BASE}/{{id}}/disable"), get_or_post(disable))
        .route(&format!("{BASE}/{{id}}/delete"), get_or_post(delete))
        .route(&format!("{BASE}/{{id}}/runs"), get_or_post(runs))
}

// ---- the scheduler loop ----

/// Starts the loop; it ends when the server shuts down.
pub(crate) fn start_scheduler(st: &AppState) -> tokio::task::JoinHandle<()> {
    let st = st.clone();
    tokio::spawn(async move {
        let mut shutdown = st.queue.shutdown.subscribe();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let notified = wake().notified();
            let s = st.clone();
            let next = tokio::task::spawn_blocking(move || tick(&s))
                .await
                .unwrap_or_else(|e| {
                    eprintln!("nbexec serve: scheduler: {e}");
                    None
                });
            let sleep = next
                .map(|at| Duration::from_millis((at - now_ms()).max(0) as u64))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = notified => {}
                _ = shutdown.changed() => return,
            }
        }
    })
}

/// One pass: settle ended runs, fire what is due, say when to wake.
fn tick(st: &AppState) -> Option<i64> {
    let store = match ScheduleStore::open(&st.config.state_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nbexec serve: scheduler: {e}");
            return None;
        }
    };
    let scheduler = Scheduler::new(SystemClock);
    settle(&st.config, &store, &scheduler);
    let fires = match scheduler.tick(&store) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("nbexec serve: scheduler: {e}");
            Vec::new()
        }
    };
    for fire in fires {
        submit(st, &store, &scheduler, fire);
    }
    scheduler.next_wake(&store).ok().flatten()
}

/// Submits the job of a fire (an ordinary server job with the task's and run's ids).
fn submit(st: &AppState, store: &ScheduleStore, scheduler: &Scheduler<SystemClock>, fire: Fire) {
    let task = &fire.task;
    let result = (|| {
        let item = st.items.get(&task.item_id).map_err(queue::item_error)?;
        let parameters = task
            .notebook_parameters()
            .map_err(|e| ApiError::bad_request(vec![e.to_string()]))?;
        st.queue.submit(queue::JobRequest {
            item_id: task.item_id.clone(),
            parameters,
            update_item: task.update_portal_item(),
            save_injected: task.save_injected_parameters(),
            timeout_minutes: None,
            kernel: None,
            username: task.user_id.clone(),
            base_revision: item.revision,
            task_id: task.id.clone(),
            run_id: fire.run_id.clone(),
            notify_url: task.notify_url.clone(),
        })
    })();
    match result {
        Ok(job_id) => {
            let _ = scheduler.run_started(store, &fire.run_id, &job_id);
        }
        Err(e) => {
            let why = e.body["error"]["details"]
                .as_array()
                .and_then(|d| d.first())
                .and_then(Value::as_str)
                .or_else(|| e.body["error"]["message"].as_str())
                .unwrap_or("unknown error")
                .to_owned();
            eprintln!(
                "nbexec serve: task {}: the run's job could not be submitted: {why}",
                task.id
            );
            let _ = scheduler.run_finished(
                store,
                &fire.run_id,
                false,
                &format!("the job could not be submitted: {why}"),
            );
        }
    }
}

/// Settles the live runs whose jobs have ended (or never existed).
fn settle(config: &Config, store: &ScheduleStore, scheduler: &Scheduler<SystemClock>) {
    let Ok(live) = store.live_runs() else {
        return;
    };
    if live.is_empty() {
        return;
    }
    let Ok(jobs) = JobStore::open(&config.state_dir) else {
        return;
    };
    for run in live {
        match &run.job_id {
            Some(job_id) => match jobs.get(job_id) {
                Ok(Some(job)) if job.status.is_finished() => {
                    // CANCELLED is the message that keeps a cancelled run out of
                    // the failure count.
                    let message = if job.status == JobStatus::Cancelled {
                        nbexec_schedule::scheduler::CANCELLED
                    } else {
                        job.status.as_str()
                    };
                    let _ = scheduler.run_finished(
                        store,
                        &run.id,
                        job.status == JobStatus::Completed,
                        message,
                    );
                }
                Ok(None) => {
                    let _ = scheduler.run_finished(
                        store,
                        &run.id,
                        false,
                        &format!("job {job_id} is gone from the registry"),
                    );
                }
                _ => {}
            },
            None if now_ms() - run.start_time > ORPHAN_RUN_AFTER.as_millis() as i64 => {
                let _ = scheduler.run_finished(
                    store,
                    &run.id,
                    false,
                    "no job was created for this run",
                );
            }
            None => {}
        }
    }
}

/// After a server job ends (however): its notification, and its task run settled.
pub(crate) async fn job_ended(config: &Config, id: &str) {
    let request = std::fs::read(queue::job_dir(&config.state_dir, id).join("request.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| queue::JobRequest::from_json(&v));
    let Some(request) = request else {
        return;
    };
    if let Some(url) = &request.notify_url {
        let target = nbexec_schedule::notify::Target::from_env(
            url,
            nbexec_schedule::notify::DEFAULT_SECRET_ENV,
        );
        nbexec_orchestrate::jobs::notify(&config.state_dir, id, &target).await;
    }
    if !request.task_id.is_empty() {
        let config = Arc::new(config.clone());
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(store) = ScheduleStore::open(&config.state_dir) {
                settle(&config, &store, &Scheduler::new(SystemClock));
            }
        })
        .await;
        wake().notify_one();
    }
}
