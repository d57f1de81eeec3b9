//! The `f=html` view of every resource: the "nbexec Notebook Server Administrator
//! Directory", plain server-rendered pages in the manner of ArcGIS's (spec serve.md §5).
//!
//! A handler hands its resource as the same `serde_json::Value` that `f=json` prints;
//! [`render`] turns it into a view model (rows of already formatted cells, links) and
//! one of the templates in `templates/` into the page. The templates escape everything
//! they print (minijinja's HTML auto-escaping, on for `.html` names); only the two static
//! assets, the style sheet and the live-page script, go in raw, and the page's
//! Content-Security-Policy admits exactly those two by hash ([`CSP`]): no external asset,
//! no other script, no inline style attribute.
//!
//! No page needs JavaScript: operations are HTML forms that POST, and a page with a live
//! job refreshes itself from a `<noscript>` meta refresh. With JavaScript, `live.js`
//! follows the job's Server-Sent Events and swaps in a freshly rendered `<main>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use base64::Engine as _;
use minijinja::Environment;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The header every page carries.
pub const TITLE: &str = "nbexec Notebook Server Administrator Directory";

const CSS: &str = include_str!("../templates/style.css");
const SCRIPT: &str = include_str!("../templates/live.js");

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("resource.html", include_str!("../templates/resource.html")),
    ("jobs.html", include_str!("../templates/jobs.html")),
    ("job.html", include_str!("../templates/job.html")),
    (
        "operation.html",
        include_str!("../templates/operation.html"),
    ),
    ("error.html", include_str!("../templates/error.html")),
    ("tasks.html", include_str!("../templates/tasks.html")),
    ("task.html", include_str!("../templates/task.html")),
    (
        "receivers.html",
        include_str!("../templates/receivers.html"),
    ),
    ("receiver.html", include_str!("../templates/receiver.html")),
];

/// What a page shows, from the handler's `kind` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A directory resource (`root`, `notebooks`, `system`): its properties,
    /// "Supported Operations" and "Child Resources".
    Resource,
    /// A jobs list (`{"asyncNotebookJobs": […]}` or `{"notebookJobs": […]}`).
    Jobs,
    /// One job's detail.
    Job,
    /// An operation (`executeNotebook`, `cancel`, `deleteAll`, named by the last path
    /// segment): its form, and the result above it when the value holds one (an empty
    /// object or `null` means "just the form").
    Operation,
    /// An error answer in either ArcGIS shape.
    Error,
    /// A user's scheduled tasks (`{"tasks": […]}`).
    Tasks,
    /// One task, with its last runs (`runs`).
    Task,
    /// The webhook receivers (`{"webhookReceivers": […]}`).
    Receivers,
    /// One webhook receiver.
    Receiver,
}

impl Kind {
    fn of(name: &str) -> Kind {
        match name {
            "jobs" => Kind::Jobs,
            "job" => Kind::Job,
            "executeNotebook" | "cancel" | "deleteAll" | "createTask" | "create" | "update"
            | "enable" | "disable" | "delete" => Kind::Operation,
            "error" => Kind::Error,
            "tasks" => Kind::Tasks,
            "task" => Kind::Task,
            "webhookReceivers" => Kind::Receivers,
            "webhookReceiver" => Kind::Receiver,
            _ => Kind::Resource,
        }
    }
}

/// What a page needs besides the resource.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The absolute URL of the `/admin` root (with the base path).
    pub root_url: String,
    /// The request's path (for the breadcrumb).
    pub path: String,
    /// The signed-in user's name (`""`: anonymous).
    pub user: String,
    /// The `token` the request carried in its query or form, if any: the pages carry it
    /// on in their links, forms and live requests, so a browser can move around a
    /// server with users (the ArcGIS HTML directory does the same with its token).
    pub token: Option<String>,
}

/// Where the page is, as the view models need it.
#[derive(Debug, Clone)]
struct Place<'a> {
    /// URL path of the admin root: `/admin`, or `/<base-path>/admin`.
    root: &'a str,
    /// URL path of this resource (no query string).
    path: &'a str,
    /// A token to carry on in links and forms (the HTML directory's session token).
    token: Option<&'a str>,
    /// The signed-in user, if any.
    user: &'a str,
    /// Now, in epoch milliseconds (the running time of live jobs).
    now_ms: i64,
}

/// A rendered page.
#[derive(Debug, Clone, PartialEq)]
struct Page {
    body: String,
    /// Where a browser goes next: after a successful cancel, back to the job (the body
    /// carries a meta refresh and a link there).
    redirect: Option<String>,
}

/// The page of resource `kind` (`root`, `notebooks`, `system`, `executeNotebook`,
/// `jobs`, `job`, `cancel`, `deleteAll`, `tasks`, `task`, `createTask`,
/// `webhookReceivers`, `webhookReceiver`, `create`, `update`, `enable`, `disable`,
/// `delete`, `error`) showing `value`, the resource as `f=json` would print it (for
/// tasks and receivers, with the extras their handlers add for a page).
pub fn render(kind: &str, value: &Value, ctx: &Ctx) -> String {
    let place = Place {
        root: url_path(&ctx.root_url),
        path: &ctx.path,
        token: ctx.token.as_deref(),
        user: &ctx.user,
        now_ms: chrono::Utc::now().timestamp_millis(),
    };
    render_page(Kind::of(kind), value, &place).body
}

/// The path of an absolute URL (`http://host:port/admin` → `/admin`); a path stays.
fn url_path(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    }
}

/// The Content-Security-Policy of every page, for the response header: the page's own
/// style sheet and script by hash, requests (the event stream, the page itself) and
/// forms to this origin only, nothing else.
pub fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| format!("{}; frame-ancestors 'none'", csp_meta()))
}

/// The same policy without `frame-ancestors` (ignored, with a console warning, in a
/// `<meta>` element), as the pages carry it themselves.
fn csp_meta() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'",
            sha256_source(SCRIPT),
            sha256_source(CSS)
        )
    })
}

fn sha256_source(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("the built-in templates parse (unit-tested)");
        }
        env
    })
}

fn render_page(kind: Kind, value: &Value, ctx: &Place) -> Page {
    let v = View { ctx };
    // An error answer is an error page whatever was asked for.
    // An error answer is an error page whatever was asked for, but an operation that
    // failed shows why above its form again (a bad parameter, a job already finished).
    let kind = if find_op(ctx.path).is_some() && is_error(value) {
        Kind::Operation
    } else if is_error(value) {
        Kind::Error
    } else {
        kind
    };
    let (template, mut model, redirect) = match kind {
        Kind::Resource => ("resource.html", v.resource(value), None),
        Kind::Jobs => ("jobs.html", v.jobs(value), None),
        Kind::Job => ("job.html", v.job(value), None),
        Kind::Operation => {
            let (model, redirect) = v.operation(value);
            ("operation.html", model, redirect)
        }
        Kind::Error => ("error.html", v.error(value), None),
        Kind::Tasks => ("tasks.html", v.tasks(value), None),
        Kind::Task => ("task.html", v.task(value), None),
        Kind::Receivers => ("receivers.html", v.receivers(value), None),
        Kind::Receiver => ("receiver.html", v.receiver(value), None),
    };
    let live = model.get("live").and_then(Value::as_bool).unwrap_or(false);
    let fields = model.as_object_mut().expect("view models are objects");
    fields.insert("home".into(), v.href(ctx.root).into());
    fields.insert("json_href".into(), v.href_f(ctx.path, "pjson").into());
    fields.insert("crumbs".into(), v.crumbs());
    fields.insert("live".into(), live.into());
    fields.insert("user".into(), ctx.user.into());
    if let Some(to) = &redirect {
        fields.insert("refresh_to".into(), to.clone().into());
    }
    if !fields.contains_key("title") {
        let title = ctx.path.rsplit('/').next().unwrap_or("admin").to_owned();
        fields.insert("title".into(), title.into());
    }
    let mut context = to_template_context(&model);
    // The three trusted constants go in raw (the style sheet and script must stay
    // byte-exact for their hashes).
    context.insert(
        "csp".into(),
        minijinja::Value::from_safe_string(csp_meta().into()),
    );
    context.insert("css".into(), minijinja::Value::from_safe_string(CSS.into()));
    context.insert(
        "script".into(),
        minijinja::Value::from_safe_string(SCRIPT.into()),
    );
    let body = env()
        .get_template(template)
        .and_then(|t| t.render(minijinja::Value::from(context)))
        .unwrap_or_else(|e| fallback_page(&e.to_string()));
    Page { body, redirect }
}

/// A page that needs no template (a template failed: a bug, but still a page).
fn fallback_page(message: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{TITLE}</title></head><body><h1>{TITLE}</h1><p>The page could not be rendered: {}</p></body></html>",
        nbexec_report::escaped(message)
    )
}

fn is_error(value: &Value) -> bool {
    value.get("error").is_some_and(Value::is_object)
        || value.get("status").and_then(Value::as_str) == Some("error")
}

fn is_live(status: &str) -> bool {
    matches!(status, "SUBMITTED" | "EXECUTING" | "CANCELLING")
}

/// The view model (a JSON object) as a template context.
fn to_template_context(model: &Value) -> BTreeMap<String, minijinja::Value> {
    match model {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), convert(v))).collect(),
        _ => BTreeMap::new(),
    }
}

/// serde_json → minijinja, numbers by value (serde_json's `arbitrary_precision` would
/// hand a serializer a private map instead).
fn convert(v: &Value) -> minijinja::Value {
    match v {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                minijinja::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                minijinja::Value::from(u)
            } else {
                minijinja::Value::from(n.to_string())
            }
        }
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(items) => items.iter().map(convert).collect(),
        Value::Object(m) => minijinja::Value::from(
            m.iter()
                .map(|(k, v)| (k.clone(), convert(v)))
                .collect::<BTreeMap<String, minijinja::Value>>(),
        ),
    }
}

/// Percent-encodes one path segment or query value (everything but RFC 3986's
/// unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `path/segment`, the segment encoded.
fn join(path: &str, segment: &str) -> String {
    format!("{}/{}", path.trim_end_matches('/'), encode(segment))
}

/// Epoch milliseconds as `2026-11-30 07:20:01 UTC`.
fn when(ms: i64) -> Option<(String, String)> {
    let t = chrono::DateTime::from_timestamp_millis(ms)?;
    Some((
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    ))
}

/// A duration in milliseconds, in words a person reads at a glance.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 60_000 {
        return format!("{:.1} s", ms as f64 / 1000.0);
    }
    let s = ms / 1000;
    if s < 3600 {
        return format!("{} min {:02} s", s / 60, s % 60);
    }
    format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Keys whose numbers are epoch milliseconds.
fn is_time_key(key: &str) -> bool {
    matches!(
        key,
        "startTime"
            | "endTime"
            | "dateCreated"
            | "submitted"
            | "created"
            | "modified"
            | "expires"
            | "dateLastActivity"
            | "revision"
            | "updated"
            | "lastStart"
            | "nextFireTime"
            | "startDate"
            | "endDate"
            | "scheduledTime"
    )
}

// ---- cells -------------------------------------------------------------------------

fn cell_text(text: impl Into<String>) -> Value {
    json!({"kind": "text", "text": text.into()})
}

fn cell_empty(text: &str) -> Value {
    json!({"kind": "empty", "text": text})
}

fn cell_link(href: String, text: &str) -> Value {
    json!({"kind": "link", "href": href, "text": text})
}

fn cell_time(ms: Option<i64>) -> Value {
    match ms.filter(|&m| m > 0).and_then(|m| when(m).map(|w| (m, w))) {
        Some((raw, (text, iso))) => {
            json!({"kind": "time", "text": text, "iso": iso, "raw": raw.to_string()})
        }
        None => cell_empty("—"),
    }
}

/// [`cell_time`] without the zone, for a column whose heading names it.
fn cell_time_short(ms: Option<i64>) -> Value {
    let mut c = cell_time(ms);
    if let Some(t) = c["text"].as_str().and_then(|t| t.strip_suffix(" UTC")) {
        c["text"] = json!(t);
    }
    c
}

fn cell_status(status: &str, events: Option<String>) -> Value {
    json!({"kind": "status", "text": status, "events": events})
}

/// Any JSON value as a table cell: scalars as text, times as dates, lists of scalars
/// joined, anything nested as indented JSON.
fn cell(key: &str, v: &Value) -> Value {
    match v {
        // The URLs the server adds to a job (`url`, `outputNotebookUrl`, …); only
        // http(s) ones, so no other scheme ever becomes a link.
        Value::String(u)
            if (key == "url" || key.ends_with("Url"))
                && (u.starts_with("http://") || u.starts_with("https://")) =>
        {
            cell_link(u.clone(), u)
        }
        Value::Null => cell_empty("null"),
        Value::String(s) if s.is_empty() => cell_empty("(empty)"),
        // A log, a traceback: its lines kept.
        Value::String(s) if s.contains('\n') => json!({"kind": "pre", "text": s}),
        Value::Number(_) if is_time_key(key) => match int(Some(v)) {
            Some(ms) if ms > 0 => cell_time(Some(ms)),
            _ => cell_text(text_of(v)),
        },
        Value::Array(items) if items.is_empty() => cell_empty("none"),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            cell_text(items.iter().map(text_of).collect::<Vec<_>>().join(", "))
        }
        Value::Object(m) if m.is_empty() => cell_empty("{}"),
        Value::Array(_) | Value::Object(_) => json!({
            "kind": "pre",
            "text": serde_json::to_string_pretty(v).unwrap_or_default(),
        }),
        other => cell_text(text_of(other)),
    }
}

fn row(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

fn rows_of(map: &Map<String, Value>, skip: &[&str]) -> Vec<Value> {
    map.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| row(k, cell(k, v)))
        .collect()
}

fn names(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

// ---- operations --------------------------------------------------------------------

struct Field {
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    help: &'static str,
    placeholder: &'static str,
    default: &'static str,
    options: &'static [&'static str],
    required: bool,
}

const FIELD: Field = Field {
    name: "",
    label: "",
    kind: "text",
    help: "",
    placeholder: "",
    default: "",
    options: &[],
    required: false,
};

struct Operation {
    name: &'static str,
    /// A part of the path the operation lives under (`""`: anywhere): `update`,
    /// `enable`, … are both a task's and a webhook receiver's.
    under: &'static str,
    description: &'static str,
    submit: &'static str,
    fields: &'static [Field],
}

const OPERATIONS: &[Operation] = &[
    Operation {
        name: "executeNotebook",
        under: "",
        description: "Runs a notebook of the item store, all cells in order, as a job. Parameters are injected as a new cell after the cell tagged \"parameters\" (or first).",
        submit: "Execute Notebook",
        fields: &[
            Field {
                name: "itemId",
                label: "Item ID",
                help: "The notebook's item id: 32 hexadecimal characters (nbexec items list).",
                required: true,
                ..FIELD
            },
            Field {
                name: "notebookParameters",
                label: "Notebook Parameters",
                kind: "textarea",
                help: "Optional, a JSON object: strings, numbers, booleans, dates (epoch milliseconds), linear units, feature sets and record sets.",
                placeholder: "{\"myLongVariable\": 100, \"myStringVariable\": \"text\"}",
                ..FIELD
            },
            Field {
                name: "updatePortalItem",
                label: "Update Portal Item",
                kind: "select",
                help: "Replace the item's notebook by the executed one.",
                default: "true",
                options: &["true", "false"],
                ..FIELD
            },
            Field {
                name: "saveInjectedParameters",
                label: "Save Injected Parameters",
                kind: "select",
                help: "Keep the injected parameters cell in the notebook saved to the item.",
                default: "false",
                options: &["false", "true"],
                ..FIELD
            },
            Field {
                name: "executionTimeoutInMinutes",
                label: "Execution Timeout In Minutes",
                kind: "number",
                help: "Optional: stop the run after this many minutes.",
                ..FIELD
            },
            Field {
                name: "kernelName",
                label: "Kernel Name",
                help: "Optional (nbexec): the kernel to run on instead of the notebook's own.",
                ..FIELD
            },
        ],
    },
    Operation {
        name: "cancel",
        under: "/jobs/",
        description: "Cancels the job: a queued job never runs; a running one is interrupted and its notebook saved as far as it got.",
        submit: "Cancel Job",
        fields: &[],
    },
    Operation {
        name: "deleteAll",
        under: "/jobs",
        description: "Deletes the finished jobs (the jobs you own; an administrator's, all).",
        submit: "Delete All",
        fields: &[],
    },
    Operation {
        name: "createTask",
        under: "/tasks/",
        description: "Schedules a notebook: each time the schedule fires, the item's notebook runs as a job with the task's parameters. The schedule is a cron expression in fields, in the task's time zone.",
        submit: "Create Task",
        fields: TASK_FIELDS,
    },
    Operation {
        name: "update",
        under: "/tasks/",
        description: "Changes the task: the fields given replace the task's (a changed schedule counts from now).",
        submit: "Update Task",
        fields: TASK_FIELDS,
    },
    Operation {
        name: "enable",
        under: "/tasks/",
        description: "Resumes the task: it fires again from its next scheduled time.",
        submit: "Enable",
        fields: &[],
    },
    Operation {
        name: "disable",
        under: "/tasks/",
        description: "Pauses the task: it fires no more until enabled (a run under way finishes).",
        submit: "Disable",
        fields: &[],
    },
    Operation {
        name: "delete",
        under: "/tasks/",
        description: "Deletes the task and its runs (their jobs stay).",
        submit: "Delete Task",
        fields: &[],
    },
    Operation {
        name: "create",
        under: "/webhookReceivers/",
        description: "Creates a webhook receiver: a signed POST to its URL runs the item's notebook with the receiver's parameters plus webhook_payload.",
        submit: "Create Receiver",
        fields: RECEIVER_FIELDS,
    },
    Operation {
        name: "update",
        under: "/webhookReceivers/",
        description: "Changes the receiver: the fields given replace the receiver's (an empty secret keeps the current one).",
        submit: "Update Receiver",
        fields: RECEIVER_FIELDS,
    },
    Operation {
        name: "enable",
        under: "/webhookReceivers/",
        description: "Enables the receiver: signed deliveries run its notebook again.",
        submit: "Enable",
        fields: &[],
    },
    Operation {
        name: "disable",
        under: "/webhookReceivers/",
        description: "Disables the receiver: deliveries are refused until it is enabled.",
        submit: "Disable",
        fields: &[],
    },
    Operation {
        name: "delete",
        under: "/webhookReceivers/",
        description: "Deletes the receiver.",
        submit: "Delete Receiver",
        fields: &[],
    },
];

/// The operation a path names (its last segment, under its resource).
fn find_op(path: &str) -> Option<&'static Operation> {
    let (parent, name) = path.rsplit_once('/')?;
    let parent = format!("{parent}/");
    OPERATIONS
        .iter()
        .find(|o| o.name == name && parent.contains(o.under))
}

const TASK_FIELDS: &[Field] = &[
    Field {
        name: "title",
        label: "Title",
        help: "Optional: the item's title when empty.",
        ..FIELD
    },
    Field {
        name: "itemId",
        label: "Item ID",
        help: "The notebook's item id: 32 hexadecimal characters (nbexec items list).",
        required: true,
        ..FIELD
    },
    Field {
        name: "second",
        label: "Second",
        help: "Optional (nbexec): a seconds field, e.g. */30; empty fires on the minute.",
        ..FIELD
    },
    Field {
        name: "minute",
        label: "Minute",
        placeholder: "0",
        required: true,
        ..FIELD
    },
    Field {
        name: "hour",
        label: "Hour",
        placeholder: "*",
        required: true,
        ..FIELD
    },
    Field {
        name: "dayOfMonth",
        label: "Day Of Month",
        placeholder: "*",
        required: true,
        ..FIELD
    },
    Field {
        name: "month",
        label: "Month",
        placeholder: "*",
        required: true,
        ..FIELD
    },
    Field {
        name: "dayOfWeek",
        label: "Day Of Week",
        help: "Quartz: ? when the day of month is given (and the other way round).",
        placeholder: "?",
        required: true,
        ..FIELD
    },
    Field {
        name: "timeZone",
        label: "Time Zone",
        help: "An IANA name (Europe/Berlin); UTC when empty.",
        placeholder: "UTC",
        ..FIELD
    },
    Field {
        name: "cronDialect",
        label: "Cron Dialect",
        kind: "select",
        default: "quartz",
        options: &["quartz", "posix"],
        ..FIELD
    },
    Field {
        name: "maxOccurrences",
        label: "Max Occurrences",
        kind: "number",
        help: "Optional: the task completes after this many runs.",
        ..FIELD
    },
    Field {
        name: "startDate",
        label: "Start Date",
        kind: "number",
        help: "Optional: epoch milliseconds before which the task does not fire.",
        ..FIELD
    },
    Field {
        name: "endDate",
        label: "End Date",
        kind: "number",
        help: "Optional: epoch milliseconds after which the task completes.",
        ..FIELD
    },
    Field {
        name: "parameters",
        label: "Parameters",
        kind: "textarea",
        help: "Optional, a JSON object: notebookParameters (an object or a JSON string), updatePortalItem, saveInjectedParameters.",
        placeholder: "{\"notebookParameters\": {\"x\": 1}, \"updatePortalItem\": false}",
        ..FIELD
    },
    Field {
        name: "notifyUrl",
        label: "Notify URL",
        help: "Optional: each run's final job is POSTed here (http or https).",
        ..FIELD
    },
];

const RECEIVER_FIELDS: &[Field] = &[
    Field {
        name: "name",
        label: "Name",
        required: true,
        ..FIELD
    },
    Field {
        name: "itemId",
        label: "Item ID",
        help: "The notebook's item id: 32 hexadecimal characters (nbexec items list).",
        required: true,
        ..FIELD
    },
    Field {
        name: "secret",
        label: "Secret",
        kind: "password",
        help: "Optional: the signing secret; empty generates one (on create, shown once in the JSON answer) or keeps the current one. Never shown on these pages.",
        ..FIELD
    },
    Field {
        name: "signatureHeaders",
        label: "Signature Headers",
        help: "Optional: the headers that may carry the signature, comma-separated.",
        ..FIELD
    },
    Field {
        name: "parameters",
        label: "Parameters",
        kind: "textarea",
        help: "Optional, a JSON object: the notebook parameters of every run (webhook_payload is added).",
        placeholder: "{\"x\": 1}",
        ..FIELD
    },
];

const FORMATS: &[&str] = &["html", "json", "pjson"];

/// Builds the view models; `ctx` says where the page lives.
struct View<'a, 'b> {
    ctx: &'a Place<'b>,
}

impl View<'_, '_> {
    /// `path`, with the token carried on.
    fn href(&self, path: &str) -> String {
        match self.ctx.token {
            Some(t) => format!("{path}?token={}", encode(t)),
            None => path.to_owned(),
        }
    }

    fn href_f(&self, path: &str, f: &str) -> String {
        match self.ctx.token {
            Some(t) => format!("{path}?f={f}&token={}", encode(t)),
            None => format!("{path}?f={f}"),
        }
    }

    fn hidden(&self, f: bool) -> Value {
        let mut h = Vec::new();
        if f {
            h.push(json!({"name": "f", "value": "html"}));
        }
        if let Some(t) = self.ctx.token {
            h.push(json!({"name": "token", "value": t}));
        }
        Value::Array(h)
    }

    /// Home > notebooks > jobs > j…: one crumb per segment below the root.
    fn crumbs(&self) -> Value {
        let root = self.ctx.root.trim_end_matches('/');
        let mut crumbs = vec![json!({"label": "Home", "href": self.href(root)})];
        // The portal's tasks (`<base>/portal/sharing/rest/community/users/<u>/tasks`)
        // live beside the admin root: one crumb for the user's tasks, then their own.
        let base = root.strip_suffix("/admin").unwrap_or(root);
        let users = format!("{base}/portal/sharing/rest/community/users/");
        if let Some(rest) = self.ctx.path.strip_prefix(&users)
            && let Some((user, tail)) = rest.split_once("/tasks")
            && !user.contains('/')
            && (tail.is_empty() || tail.starts_with('/'))
        {
            let mut at = format!("{users}{user}/tasks");
            crumbs.push(
                json!({"label": format!("tasks of {}", decode(user)), "href": self.href(&at)}),
            );
            for seg in tail.split('/').filter(|s| !s.is_empty()) {
                at.push('/');
                at.push_str(seg);
                crumbs.push(json!({"label": decode(seg), "href": self.href(&at)}));
            }
        } else if let Some(rest) = self.ctx.path.strip_prefix(root) {
            let mut at = root.to_owned();
            for seg in rest.split('/').filter(|s| !s.is_empty()) {
                at.push('/');
                at.push_str(seg);
                crumbs.push(json!({"label": decode(seg), "href": self.href(&at)}));
            }
        }
        Value::Array(crumbs)
    }

    fn links(&self, names: &[String]) -> Value {
        names
            .iter()
            .map(|n| json!({"label": n, "href": self.href(&join(self.ctx.path, n))}))
            .collect()
    }

    fn job_path(&self, id: &str) -> String {
        join(
            &format!("{}/notebooks/jobs", self.ctx.root.trim_end_matches('/')),
            id,
        )
    }

    fn resource(&self, value: &Value) -> Value {
        let empty = Map::new();
        let map = value.as_object().unwrap_or(&empty);
        let name = self.ctx.path.rsplit('/').next().unwrap_or_default();
        let description = match name {
            "admin" => {
                "The root of nbexec's Notebook Server administration: notebooks and their jobs."
            }
            "notebooks" => {
                "Notebooks open on this server (nbexec runs them as jobs, so none stays open), the executeNotebook operation and the jobs."
            }
            "system" => "System resources: the jobs (the 10.x location).",
            _ => "",
        };
        json!({
            "title": decode(name),
            "heading": decode(name),
            "description": description,
            "rows": rows_of(map, &["resources", "operations"]),
            "operations": self.links(&names(map.get("operations"))),
            "children": self.links(&names(map.get("resources"))),
        })
    }

    fn jobs(&self, value: &Value) -> Value {
        let empty = Map::new();
        let map = value.as_object().unwrap_or(&empty);
        let list = map
            .get("asyncNotebookJobs")
            .or_else(|| map.get("notebookJobs"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut live = false;
        let jobs: Vec<Value> = list.iter().map(|j| self.job_row(j, &mut live)).collect();
        let mut operations = names(map.get("operations"));
        if operations.is_empty() && self.ctx.path.ends_with("/system/jobs") {
            operations.push("deleteAll".into());
        }
        let (prev_href, next_href) = self.pager(map);
        json!({
            "title": "jobs",
            "heading": "Jobs",
            "rows": rows_of(map, &["asyncNotebookJobs", "notebookJobs", "operations", "resources", "nextStart"]),
            "jobs": jobs,
            "live": live,
            // Buttons, not links: a GET of an operation runs it (ArcGIS accepts GET
            // everywhere), and `deleteAll` deletes.
            "operations": operations
                .iter()
                .map(|n| json!({"label": n, "action": join(self.ctx.path, n)}))
                .collect::<Vec<_>>(),
            "hidden": self.hidden(true),
            "prev_href": prev_href,
            "next_href": next_href,
        })
    }

    /// Newer/older page links from `start`/`num`/`total`/`nextStart` when present.
    fn pager(&self, map: &Map<String, Value>) -> (Option<String>, Option<String>) {
        let (Some(start), Some(num)) = (int(map.get("start")), int(map.get("num"))) else {
            return (None, None);
        };
        let num = num.max(1);
        let page = |s: i64| {
            let mut q = format!("{}?start={s}&num={num}", self.ctx.path);
            if let Some(t) = self.ctx.token {
                let _ = write!(q, "&token={}", encode(t));
            }
            q
        };
        let prev = (start > 1).then(|| page((start - num).max(1)));
        let next = match (int(map.get("nextStart")), int(map.get("total"))) {
            (Some(n), _) if n > start => Some(page(n)),
            (None, Some(total)) if start - 1 + num < total => Some(page(start + num)),
            _ => None,
        };
        (prev, next)
    }

    fn job_row(&self, j: &Value, live: &mut bool) -> Value {
        let id = j
            .get("jobId")
            .or_else(|| j.get("id"))
            .map(text_of)
            .unwrap_or_default();
        let status = j.get("status").map(text_of).unwrap_or_default();
        let path = self.job_path(&id);
        let events = is_live(&status).then(|| self.href(&join(&path, "events")));
        *live |= events.is_some();
        let start = int(j.get("startTime")).filter(|&s| s > 0);
        let end = int(j.get("endTime")).filter(|&e| e > 0);
        json!({
            "id": id,
            "href": self.href(&path),
            "status": cell_status(&status, events),
            "item": item_cell(j),
            "owner": owner_cell(j),
            "start": cell_time_short(start),
            "end": cell_time_short(end),
            "duration": self.duration_cell(start, end, &status),
        })
    }

    fn duration_cell(&self, start: Option<i64>, end: Option<i64>, status: &str) -> Value {
        match (start, end) {
            (Some(s), Some(e)) => cell_text(duration(e - s)),
            (Some(s), None) if is_live(status) => {
                cell_text(format!("{} so far", duration(self.ctx.now_ms - s)))
            }
            _ => cell_empty("—"),
        }
    }

    fn job(&self, value: &Value) -> Value {
        let empty = Map::new();
        let map = value.as_object().unwrap_or(&empty);
        let id = map
            .get("jobId")
            .or_else(|| map.get("id"))
            .map(text_of)
            .unwrap_or_default();
        let status = map.get("status").map(text_of).unwrap_or_default();
        let live = is_live(&status);
        let path = self.job_path(&id);
        let start = int(map.get("startTime")).filter(|&s| s > 0);
        let end = int(map.get("endTime")).filter(|&e| e > 0);
        let mut rows = vec![
            row("Job ID", cell_text(&id)),
            row(
                "Status",
                cell_status(&status, live.then(|| self.href(&join(&path, "events")))),
            ),
        ];
        if let Some(t) = map.get("type").or_else(|| map.get("name")) {
            rows.push(row("Type", cell("type", t)));
        }
        rows.push(row("Item", item_cell(value)));
        rows.push(row("Owner", owner_cell(value)));
        rows.push(row("Created", cell_time(int(map.get("dateCreated")))));
        rows.push(row("Started", cell_time(start)));
        rows.push(row("Ended", cell_time(end)));
        rows.push(row("Duration", self.duration_cell(start, end, &status)));
        if live {
            // Filled in by live.js from the job's `cell` events.
            rows.push(json!({"key": "Progress", "value": cell_empty("—"), "field": "progress"}));
        }
        const SHOWN: &[&str] = &[
            "jobId",
            "id",
            "status",
            "type",
            "name",
            "itemId",
            "itemTitle",
            "owner",
            "username",
            "dateCreated",
            "startTime",
            "endTime",
            "inputs",
            "messages",
            "results",
        ];
        rows.extend(rows_of(map, SHOWN));
        let inputs = map
            .get("inputs")
            .and_then(Value::as_object)
            .map(|m| rows_of(m, &[]))
            .unwrap_or_default();
        let messages: Vec<String> = map
            .get("messages")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(text_of).collect())
            .unwrap_or_default();
        let empty_results = Map::new();
        let results_map = map
            .get("results")
            .and_then(Value::as_object)
            .unwrap_or(&empty_results);
        let results = rows_of(results_map, &[]);
        let written = results_map.contains_key("outputNotebookUrl");
        let pending = match (written, live) {
            (true, _) => None,
            (false, true) => Some("(when the run ends)"),
            (false, false) => Some("(none was written)"),
        };
        let artifacts = json!([
            {"label": "Log", "href": self.href(&join(&path, "log")), "note": live.then_some("(live)")},
            {"label": "Output notebook", "href": self.href(&join(&path, "output.ipynb")), "note": pending},
            {"label": "HTML report", "href": self.href(&join(&path, "report.html")), "note": pending},
        ]);
        json!({
            "title": format!("Job {id}"),
            "id": id,
            "live": live,
            "rows": rows,
            "inputs": inputs,
            "messages": messages,
            "results": results,
            "artifacts": artifacts,
            "cancel_action": join(&path, "cancel"),
            // The cancel operation is the form's button, not a link: a GET of
            // `…/cancel` runs it (ArcGIS accepts GET everywhere), and a link can be
            // followed by accident or by a prefetch.
            "hidden": self.hidden(true),
        })
    }

    fn operation(&self, value: &Value) -> (Value, Option<String>) {
        let name = self.ctx.path.rsplit('/').next().unwrap_or_default();
        let op = find_op(self.ctx.path);
        let empty = Map::new();
        let map = value.as_object().unwrap_or(&empty);
        // The parent resource: the job for `…/<id>/cancel`, the list for `deleteAll`.
        let parent = self
            .ctx
            .path
            .rsplit_once('/')
            .map(|(p, _)| p.to_owned())
            .unwrap_or_default();
        let failed = is_error(value);
        // A result to show above the form, or just the form (the handler's description
        // of the operation: `{"operation", "parameters", "items"}`).
        let answered = failed
            || ["status", "jobId", "success", "taskId", "webhookReceiver"]
                .iter()
                .any(|k| map.contains_key(*k));
        // A task's or receiver's operation: back to it, or to the list after a delete.
        let thing = op.is_some_and(|o| o.under == "/tasks/" || o.under == "/webhookReceivers/");
        let grandparent = parent
            .rsplit_once('/')
            .map(|(p, _)| p.to_owned())
            .unwrap_or_default();
        let mut next = None;
        let mut redirect = None;
        if answered && !failed {
            if let Some(job) = map.get("jobId").map(text_of) {
                next = Some(
                    json!({"label": format!("Go to job {job}"), "href": self.href(&self.job_path(&job))}),
                );
            } else if name == "cancel" {
                let to = self.href(&parent);
                redirect = Some(to.clone());
                next = Some(json!({"label": "Back to the job", "href": to}));
            } else if name == "createTask" {
                let id = map.get("taskId").map(text_of).unwrap_or_default();
                let to = self.href(&join(&parent, &id));
                redirect = Some(to.clone());
                next = Some(json!({"label": format!("Go to task {id}"), "href": to}));
            } else if name == "create" && thing {
                let id = value
                    .pointer("/webhookReceiver/id")
                    .map(text_of)
                    .unwrap_or_default();
                next = Some(
                    json!({"label": format!("Go to receiver {id}"), "href": self.href(&join(&parent, &id))}),
                );
            } else if name == "delete" && thing {
                let to = self.href(&grandparent);
                redirect = Some(to.clone());
                next = Some(json!({"label": "Back to the list", "href": to}));
            } else if thing {
                let to = self.href(&parent);
                redirect = Some(to.clone());
                next = Some(json!({"label": "Back", "href": to}));
            } else {
                next = Some(json!({"label": "Back", "href": self.href(&parent)}));
            }
        } else if failed && name == "cancel" {
            next = Some(json!({"label": "Back to the job", "href": self.href(&parent)}));
        } else if failed && thing && !name.starts_with("create") {
            next = Some(json!({"label": "Back", "href": self.href(&parent)}));
        }
        let (result, messages) = if failed {
            let mut rows = Vec::new();
            let mut messages = names(map.get("messages"));
            if let Some(e) = map.get("error").and_then(Value::as_object) {
                rows.extend(rows_of(e, &["details"]));
                messages.extend(
                    e.get("details")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(text_of),
                );
            } else {
                rows.extend(rows_of(map, &["messages"]));
            }
            (rows, messages)
        } else if let Some(r) = map.get("webhookReceiver").and_then(Value::as_object) {
            // Never the secret, though the JSON answer of create carries it.
            (rows_of(r, &["secret", "apiToken"]), Vec::new())
        } else if answered {
            (rows_of(map, &[]), Vec::new())
        } else {
            (Vec::new(), Vec::new())
        };
        let fields: Vec<Value> = op
            .map(|o| o.fields)
            .unwrap_or_default()
            .iter()
            .map(|f| {
                // An update form starts from the current values (the handler's
                // `current`; a receiver's never holds its secret).
                let value = map
                    .get("current")
                    .and_then(|c| {
                        c.get(f.name)
                            .or_else(|| c.pointer(&format!("/cronSchedule/{}", f.name)))
                    })
                    .filter(|_| f.name != "secret")
                    .filter(|v| !v.is_null())
                    .map(|v| match v {
                        Value::Object(_) => v.to_string(),
                        other => text_of(other),
                    })
                    .unwrap_or_else(|| f.default.to_owned());
                json!({
                    "name": f.name,
                    "label": f.label,
                    "kind": f.kind,
                    "help": f.help,
                    "placeholder": f.placeholder,
                    "value": value,
                    "options": f.options,
                    "required": f.required && name != "update",
                    "list": if f.name == "itemId" { items_list(map) } else { Value::Null },
                })
            })
            .chain(std::iter::once(json!({
                "name": "f",
                "label": "Format",
                "kind": "select",
                "help": "",
                "placeholder": "",
                "value": "html",
                "options": FORMATS,
                "required": false,
                "list": null,
            })))
            .collect();
        let model = json!({
            "title": decode(name),
            "heading": decode(name),
            "description": op.map(|o| o.description).unwrap_or_default(),
            "result": result,
            "result_title": if failed { "Error" } else { "Result" },
            "failed": failed,
            "messages": messages,
            "next": next,
            "action": self.ctx.path,
            "hidden": self.hidden(false),
            "fields": fields,
            "submit": op.map(|o| o.submit).unwrap_or("Submit"),
        });
        (model, redirect)
    }

    /// A task's row in the list.
    fn task_row(&self, t: &Value) -> Value {
        let id = t.get("id").map(text_of).unwrap_or_default();
        let href = join(self.ctx.path, &id);
        let title = t.get("title").map(text_of).filter(|s| !s.is_empty());
        json!({
            "id": id,
            "href": self.href(&href),
            "title": title.unwrap_or_else(|| id.clone()),
            "item": own_item_cell(t),
            "schedule": schedule_text(t),
            "zone": t.get("timeZone").map(text_of).unwrap_or_default(),
            "state": cell_status(&task_state(t), None),
            "last": cell_time_short(int(t.get("lastStart"))),
            "next": cell_time_short(int(t.get("nextFireTime"))),
            "links": [
                {"label": "Runs", "href": self.href(&join(&href, "runs"))},
                {"label": "JSON", "href": self.href_f(&href, "pjson")},
            ],
        })
    }

    fn tasks(&self, value: &Value) -> Value {
        let empty = Map::new();
        let map = value.as_object().unwrap_or(&empty);
        let tasks: Vec<Value> = map
            .get("tasks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|t| self.task_row(t))
            .collect();
        let (prev_href, next_href) = self.pager(map);
        json!({
            "title": "tasks",
            "heading": "Scheduled Tasks",
            "rows": rows_of(map, &["tasks", "nextStart", "start", "num"]),
            "tasks": tasks,
            "prev_href": prev_href,
            "next_href": next_href,
            "operations": self.links(&["createTask".to_owned()]),
        })
    }

    /// POST-form buttons of a task's or receiver's page: enable or disable (which one
    /// the state says), update (a GET of its form), delete.
    fn buttons(&self, path: &str, active: bool, extra: &[&str]) -> Value {
        let mut b = Vec::new();
        let post = |name: &str, label: &str, danger: bool| json!({"id": name, "label": label, "method": "post", "action": join(path, name), "danger": danger});
        if active {
            b.push(post("disable", "Disable", false));
        } else {
            b.push(post("enable", "Enable", false));
        }
        b.push(json!({"id": "update", "label": "Update…", "method": "get", "action": join(path, "update"), "danger": false}));
        for e in extra {
            b.push(post(e, e, false));
        }
        b.push(post("delete", "Delete", true));
        Value::Array(b)
    }

    fn task(&self, value: &Value) -> Value {
        let empty = Map::new();
        let map = value.as_object().unwrap_or(&empty);
        let id = map.get("id").map(text_of).unwrap_or_default();
        let title = map.get("title").map(text_of).unwrap_or_default();
        let state = task_state(value);
        let mut rows = vec![
            row("Title", cell_text(&title)),
            row("Task ID", cell_text(&id)),
            row("State", cell_status(&state, None)),
        ];
        if let Some(r) = map
            .get("stateReason")
            .map(text_of)
            .filter(|r| !r.is_empty())
        {
            rows.push(row("State Reason", cell_text(r)));
        }
        rows.push(row("Item", own_item_cell(value)));
        rows.push(row(
            "Owner",
            owner_cell(&json!({"owner": map.get("userId")})),
        ));
        rows.push(row("Schedule", cell_text(schedule_text(value))));
        rows.push(row(
            "Time Zone",
            cell("timeZone", map.get("timeZone").unwrap_or(&Value::Null)),
        ));
        rows.push(row("Last Start", cell_time(int(map.get("lastStart")))));
        rows.push(row("Next Fire", cell_time(int(map.get("nextFireTime")))));
        let max = map
            .get("maxOccurrences")
            .filter(|v| !v.is_null())
            .map(text_of);
        let occ = map.get("occurrences").map(text_of).unwrap_or_default();
        rows.push(row(
            "Occurrences",
            cell_text(match max {
                Some(m) => format!("{occ} of {m}"),
                None => occ,
            }),
        ));
        const SHOWN: &[&str] = &[
            "id",
            "title",
            "taskState",
            "active",
            "stateReason",
            "itemId",
            "itemTitle",
            "userId",
            "cronSchedule",
            "timeZone",
            "lastStart",
            "nextFireTime",
            "maxOccurrences",
            "occurrences",
            "runs",
        ];
        rows.extend(rows_of(map, SHOWN));
        let runs: Vec<Value> = map
            .get("runs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                let job = r.get("jobId").map(text_of).filter(|j| !j.is_empty());
                json!({
                    "id": r.get("runId").map(text_of).unwrap_or_default(),
                    "status": cell_status(&r.get("status").map(text_of).unwrap_or_default(), None),
                    "scheduled": cell_time_short(int(r.get("scheduledTime"))),
                    "start": cell_time_short(int(r.get("startTime"))),
                    "end": cell_time_short(int(r.get("endTime"))),
                    "job": match job {
                        Some(j) => cell_link(self.href(&self.job_path(&j)), &j),
                        None => cell_empty("—"),
                    },
                    "message": match r.get("message").map(text_of).filter(|m| !m.is_empty()) {
                        Some(m) => cell_text(m),
                        None => cell_empty("—"),
                    },
                })
            })
            .collect();
        let shown = if title.is_empty() {
            id.clone()
        } else {
            title.clone()
        };
        json!({
            "title": format!("Task {shown}"),
            "heading": shown,
            "rows": rows,
            "runs": runs,
            "buttons": self.buttons(self.ctx.path, state == "active", &[]),
            "hidden": self.hidden(true),
            "children": self.links(&["runs".to_owned()]),
        })
    }

    fn receivers(&self, value: &Value) -> Value {
        let list: Vec<Value> = value
            .get("webhookReceivers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                let id = r.get("id").map(text_of).unwrap_or_default();
                let name = r.get("name").map(text_of).filter(|s| !s.is_empty());
                json!({
                    "id": id,
                    "href": self.href(&join(self.ctx.path, &id)),
                    "name": name.unwrap_or_else(|| id.clone()),
                    "item": own_item_cell(r),
                    "owner": owner_cell(&json!({"owner": r.get("username")})),
                    "state": cell_status(receiver_state(r), None),
                    "created": cell_time_short(int(r.get("created"))),
                    "url": r.get("url").map(text_of).unwrap_or_default(),
                })
            })
            .collect();
        json!({
            "title": "webhookReceivers",
            "heading": "Webhook Receivers",
            "receivers": list,
            "operations": self.links(&["create".to_owned()]),
        })
    }

    fn receiver(&self, value: &Value) -> Value {
        let empty = Map::new();
        let map = value.as_object().unwrap_or(&empty);
        let id = map.get("id").map(text_of).unwrap_or_default();
        let name = map.get("name").map(text_of).unwrap_or_default();
        let state = receiver_state(value);
        let mut rows = vec![
            row("Name", cell_text(&name)),
            row("Receiver ID", cell_text(&id)),
            row("State", cell_status(state, None)),
            row("Item", own_item_cell(value)),
            row("Owner", owner_cell(&json!({"owner": map.get("username")}))),
        ];
        // Never the secret (nor an API token), whatever the handler passed.
        rows.extend(rows_of(
            map,
            &[
                "id", "name", "disabled", "itemId", "username", "secret", "apiToken",
            ],
        ));
        let shown = if name.is_empty() { id.clone() } else { name };
        json!({
            "title": format!("Webhook Receiver {shown}"),
            "heading": shown,
            "rows": rows,
            "buttons": self.buttons(self.ctx.path, state == "enabled", &["validate"]),
            "hidden": self.hidden(true),
        })
    }

    fn error(&self, value: &Value) -> Value {
        let (code, message, details) = match value.get("error").and_then(Value::as_object) {
            Some(e) => (
                e.get("code").map(text_of).unwrap_or_default(),
                e.get("message").map(text_of).unwrap_or_default(),
                e.get("details")
                    .and_then(Value::as_array)
                    .map(|d| d.iter().map(text_of).collect::<Vec<_>>())
                    .unwrap_or_default(),
            ),
            None => (
                value.get("code").map(text_of).unwrap_or_default(),
                "Unable to complete operation.".to_owned(),
                names(value.get("messages")),
            ),
        };
        let parent = self
            .ctx
            .path
            .rsplit_once('/')
            .map(|(p, _)| p.to_owned())
            .filter(|p| p.starts_with(self.ctx.root.trim_end_matches('/')));
        json!({
            "title": "Error",
            "code": code,
            "message": message,
            "details": details,
            "back": parent.map(|p| json!({"label": "Back", "href": self.href(&p)})),
        })
    }
}

/// The item of a task or receiver: `itemTitle` (which the pages' handlers add) and
/// `itemId`, never the thing's own `title`.
fn own_item_cell(t: &Value) -> Value {
    item_cell(&json!({"itemId": t.get("itemId"), "itemTitle": t.get("itemTitle")}))
}

/// A task's state: `taskState`, else from `active`.
fn task_state(t: &Value) -> String {
    match t.get("taskState").map(text_of).filter(|s| !s.is_empty()) {
        Some(s) => s,
        None if t.get("active").and_then(Value::as_bool) == Some(true) => "active".into(),
        None => "paused".into(),
    }
}

fn receiver_state(r: &Value) -> &'static str {
    if r.get("disabled").and_then(Value::as_bool) == Some(true) {
        "disabled"
    } else {
        "enabled"
    }
}

/// A task's cron fields in order (`second` first when it has one), as one line.
fn schedule_text(t: &Value) -> String {
    let c = t.get("cronSchedule");
    [
        "second",
        "minute",
        "hour",
        "dayOfMonth",
        "month",
        "dayOfWeek",
    ]
    .iter()
    .filter_map(|k| c.and_then(|c| c.get(*k)).map(text_of))
    .collect::<Vec<_>>()
    .join(" ")
}

/// The item a job ran: its title when known, else its id.
fn item_cell(j: &Value) -> Value {
    let id = j
        .get("itemId")
        .or_else(|| j.pointer("/inputs/itemId"))
        .map(text_of)
        .filter(|s| !s.is_empty());
    let title = j
        .get("itemTitle")
        .or_else(|| j.get("title"))
        .map(text_of)
        .filter(|s| !s.is_empty());
    match (title, id) {
        (Some(t), Some(id)) => json!({"kind": "text", "text": format!("{t} ({id})")}),
        (Some(t), None) => cell_text(t),
        (None, Some(id)) => json!({"kind": "text", "text": id}),
        (None, None) => cell_empty("—"),
    }
}

/// Who owns a job: the user, "anonymous" for a job of a server without users (an empty
/// name), "—" for a job from the command line (no name at all).
fn owner_cell(j: &Value) -> Value {
    match j.get("owner").or_else(|| j.get("username")).map(text_of) {
        Some(name) if !name.is_empty() => cell_text(name),
        Some(_) => cell_empty("anonymous"),
        None => cell_empty("—"),
    }
}

/// A datalist of the item store for the itemId field, when the handler includes one
/// (`"items": [{"id", "title"}]`).
fn items_list(map: &Map<String, Value>) -> Value {
    match map.get("items").and_then(Value::as_array) {
        Some(items) => items
            .iter()
            .map(|i| {
                json!({
                    "value": i.get("id").map(text_of).unwrap_or_default(),
                    "label": i.get("title").map(text_of).unwrap_or_default(),
                })
            })
            .collect(),
        None => Value::Null,
    }
}

/// Percent-decoding of a path segment for display (invalid sequences kept as they are).
fn decode(seg: &str) -> String {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_487_200_000; // 2025-11-30 07:20:00 UTC

    fn ctx(path: &str) -> Place<'_> {
        Place {
            root: "/admin",
            path,
            token: None,
            user: "",
            now_ms: NOW,
        }
    }

    fn page(kind: Kind, value: Value, path: &str) -> String {
        norm(&render_page(kind, &value, &ctx(path)).body)
    }

    /// minijinja also escapes `/` and `'`, which a double-quoted attribute does not need;
    /// undone so that expectations read plainly (this cannot make a `<` or a `"`).
    fn norm(html: &str) -> String {
        html.replace("&#x2f;", "/").replace("&#x27;", "'")
    }

    /// Every `<tag` in `html` (lower-cased names).
    fn tags(html: &str, name: &str) -> usize {
        html.matches(&format!("<{name}")).count()
    }

    fn between<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
        let a = html.find(open).expect(open) + open.len();
        let b = a + html[a..].find(close).expect(close);
        &html[a..b]
    }

    fn running_job() -> Value {
        json!({
            "jobId": "j0123456789abcdef",
            "name": "executeNotebook",
            "type": "executeNotebook",
            "status": "EXECUTING",
            "dateCreated": NOW - 5000,
            "startTime": NOW - 4000,
            "endTime": 0,
            "owner": "joe",
            "itemId": "d9c20adc5f95476590be87f1e6eb1dba",
            "itemTitle": "Daily load",
            "inputs": {
                "itemId": "d9c20adc5f95476590be87f1e6eb1dba",
                "updatePortalItem": true,
                "saveInjectedParameters": false,
                "notebookParameters": {"x": 1, "password": "[REDACTED]"},
            },
            "messages": ["queued", "started on kernel python3"],
            "results": {},
        })
    }

    #[test]
    fn every_template_parses_and_renders() {
        for (name, _) in TEMPLATES {
            env().get_template(name).expect(name);
        }
        for (kind, path) in [
            (Kind::Resource, "/admin"),
            (Kind::Jobs, "/admin/notebooks/jobs"),
            (Kind::Job, "/admin/notebooks/jobs/j1"),
            (Kind::Operation, "/admin/notebooks/executeNotebook"),
            (Kind::Error, "/admin/notebooks/jobs/j1"),
            (Kind::Tasks, "/portal/sharing/rest/community/users/u/tasks"),
            (
                Kind::Task,
                "/portal/sharing/rest/community/users/u/tasks/t1",
            ),
            (Kind::Receivers, "/admin/notebooks/webhookReceivers"),
            (Kind::Receiver, "/admin/notebooks/webhookReceivers/w1"),
        ] {
            let body = page(kind, json!({}), path);
            assert!(body.starts_with("<!DOCTYPE html>"), "{kind:?}: {body}");
            assert!(!body.contains("could not be rendered"), "{kind:?}: {body}");
            assert!(body.contains(&format!("<h1><a href=\"/admin\">{TITLE}</a></h1>")));
        }
    }

    #[test]
    fn the_root_has_its_properties_operations_and_children() {
        let body = page(
            Kind::Resource,
            json!({"version": "11.4", "currentVersion": "11.4", "resources": ["notebooks", "system"]}),
            "/admin",
        );
        assert!(
            body.contains("<th scope=\"row\">currentVersion</th><td>11.4</td>"),
            "{body}"
        );
        assert!(body.contains("<h3>Child Resources:</h3>"));
        assert!(body.contains("<a href=\"/admin/notebooks\">notebooks</a>"));
        assert!(body.contains("<a href=\"/admin/system\">system</a>"));
        assert!(!body.contains("Supported Operations"), "the root has none");
        assert!(body.contains("<a href=\"/admin?f=pjson\">JSON</a>"));
        // Nothing is live: no script, no refresh.
        assert_eq!(tags(&body, "script"), 0);
        assert!(!body.contains("http-equiv=\"refresh\""));

        let body = page(
            Kind::Resource,
            json!({"notebooks": [], "total": 0, "start": 1, "num": 10, "operations": ["executeNotebook"], "resources": ["jobs"]}),
            "/admin/notebooks",
        );
        assert!(body.contains("<h3>Supported Operations:</h3>"));
        assert!(body.contains("<a href=\"/admin/notebooks/executeNotebook\">executeNotebook</a>"));
        assert!(body.contains("<a href=\"/admin/notebooks/jobs\">jobs</a>"));
        assert!(
            body.contains("<span class=\"none\">none</span>"),
            "empty list: {body}"
        );
        // Breadcrumb: Home > notebooks, the current one not a link.
        let crumbs = between(&body, "<nav class=\"crumbs\"", "</nav>");
        assert_eq!(
            crumbs,
            " aria-label=\"Breadcrumb\"><a href=\"/admin\">Home</a> &gt; <span aria-current=\"page\">notebooks</span>"
        );
    }

    #[test]
    fn a_hostile_title_and_parameters_are_text() {
        let mut job = running_job();
        job["itemTitle"] = json!("<script>alert(1)</script>");
        job["owner"] = json!("\"><img src=x onerror=alert(2)>");
        job["inputs"]["notebookParameters"] = json!({"s": "</pre><script>alert(3)</script>"});
        job["messages"] = json!(["<b>bold</b> & 'quoted'"]);
        for (kind, value, path) in [
            (
                Kind::Job,
                job.clone(),
                "/admin/notebooks/jobs/j0123456789abcdef",
            ),
            (
                Kind::Jobs,
                json!({"asyncNotebookJobs": [job.clone()]}),
                "/admin/notebooks/jobs",
            ),
        ] {
            let body = page(kind, value, path);
            assert!(
                body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
                "{body}"
            );
            assert!(!body.contains("<script>alert"), "{body}");
            assert!(!body.contains("<img"), "{body}");
            assert!(!body.contains("<b>"), "{body}");
            // The one script element is the page's own, admitted by its hash.
            assert_eq!(tags(&body, "script"), 1, "{body}");
            assert_eq!(between(&body, "<script>", "</script>"), SCRIPT);
        }
        // A hostile job id stays inside its attribute and its path segment.
        let body = page(
            Kind::Jobs,
            json!({"asyncNotebookJobs": [{"jobId": "\"/><script>x</script>", "status": "COMPLETED"}]}),
            "/admin/notebooks/jobs",
        );
        assert!(
            body.contains("href=\"/admin/notebooks/jobs/%22%2F%3E%3Cscript%3Ex%3C%2Fscript%3E\""),
            "{body}"
        );
        assert_eq!(tags(&body, "script"), 0, "{body}");
    }

    #[test]
    fn the_policy_admits_exactly_the_inline_style_and_script() {
        let body = page(
            Kind::Job,
            running_job(),
            "/admin/notebooks/jobs/j0123456789abcdef",
        );
        let style = between(&body, "<style>", "</style>");
        let script = between(&body, "<script>", "</script>");
        assert_eq!(style, CSS);
        let meta = between(
            &body,
            "http-equiv=\"Content-Security-Policy\" content=\"",
            "\"",
        );
        assert_eq!(meta, csp_meta());
        assert!(meta.contains(&format!("style-src '{}'", sha256_source(style))));
        assert!(meta.contains(&format!("script-src '{}'", sha256_source(script))));
        assert!(meta.starts_with("default-src 'none';"));
        assert!(!meta.contains("unsafe"));
        assert!(csp().ends_with("; frame-ancestors 'none'"));
        // No inline style attributes or event handlers: the policy would block them.
        assert!(!body.contains(" style=\""));
        assert!(!body.contains(" onclick=") && !body.contains(" onload="));
        // No external asset of any kind.
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{body}"
        );
    }

    #[test]
    fn the_jobs_page_lists_and_links_each_job_and_follows_live_ones() {
        let value = json!({"asyncNotebookJobs": [
            running_job(),
            {"jobId": "jdone", "name": "executeNotebook", "status": "COMPLETED",
             "startTime": NOW - 65_000, "endTime": NOW - 1_000,
             "inputs": {"itemId": "d9c20adc5f95476590be87f1e6eb1dba"}, "username": "ann"},
        ]});
        let body = page(Kind::Jobs, value, "/admin/notebooks/jobs");
        for h in [
            "Job ID",
            "Status",
            "Item",
            "Owner",
            "Start (UTC)",
            "End (UTC)",
            "Duration",
        ] {
            assert!(body.contains(&format!("<th scope=\"col\">{h}</th>")), "{h}");
        }
        assert!(
            body.contains(
                "<a href=\"/admin/notebooks/jobs/j0123456789abcdef\">j0123456789abcdef</a>"
            )
        );
        assert!(body.contains("<a href=\"/admin/notebooks/jobs/jdone\">jdone</a>"));
        assert!(body.contains(
            "<span class=\"status status-executing\" data-field=\"status\" data-events=\"/admin/notebooks/jobs/j0123456789abcdef/events\">EXECUTING</span>"
        ), "{body}");
        assert!(body.contains(
            "<span class=\"status status-completed\" data-field=\"status\">COMPLETED</span>"
        ));
        assert!(body.contains("Daily load (d9c20adc5f95476590be87f1e6eb1dba)"));
        assert!(body.contains("<td>ann</td>") && body.contains("<td>joe</td>"));
        assert!(body.contains("1 min 04 s"), "{body}");
        assert!(body.contains("4.0 s so far"), "{body}");
        assert!(body.contains(">2025-11-30 07:19:56</time>"), "{body}");
        // Live: followed by script, refreshed without it.
        assert!(body.contains("<main data-live>"));
        assert!(body.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"));
        assert_eq!(tags(&body, "script"), 1);

        let done = page(
            Kind::Jobs,
            json!({"asyncNotebookJobs": [{"jobId": "jdone", "status": "FAILED", "startTime": 1, "endTime": 2}]}),
            "/admin/notebooks/jobs",
        );
        assert!(done.contains("<main>") && !done.contains("refresh"));
        assert_eq!(tags(&done, "script"), 0);
        let none = page(
            Kind::Jobs,
            json!({"asyncNotebookJobs": []}),
            "/admin/notebooks/jobs",
        );
        assert!(none.contains("No jobs."));
    }

    #[test]
    fn the_jobs_page_pages_and_offers_delete_all_under_system() {
        let body = page(
            Kind::Jobs,
            json!({"asyncNotebookJobs": [], "start": 11, "num": 10, "total": 35}),
            "/admin/system/jobs",
        );
        assert!(
            body.contains("<a href=\"/admin/system/jobs?start=1&amp;num=10\">&larr; Newer</a>"),
            "{body}"
        );
        assert!(
            body.contains("<a href=\"/admin/system/jobs?start=21&amp;num=10\">Older &rarr;</a>")
        );
        let form = between(&body, "<form class=\"op inline\"", "</form>");
        assert!(
            form.starts_with(" method=\"post\" action=\"/admin/system/jobs/deleteAll\">"),
            "{form}"
        );
        assert!(form.contains("<input type=\"hidden\" name=\"f\" value=\"html\">"));
        assert!(form.contains("<button type=\"submit\">deleteAll</button>"));
        assert!(
            !body.contains("href=\"/admin/system/jobs/deleteAll\""),
            "not a link"
        );
    }

    #[test]
    fn a_job_page_has_inputs_messages_artifacts_and_a_cancel_form() {
        let body = page(
            Kind::Job,
            running_job(),
            "/admin/notebooks/jobs/j0123456789abcdef",
        );
        assert!(body.contains("<h2>Job <span class=\"mono\">j0123456789abcdef</span></h2>"));
        assert!(body.contains(
            "data-events=\"/admin/notebooks/jobs/j0123456789abcdef/events\">EXECUTING</span>"
        ));
        assert!(
            body.contains("<th scope=\"row\">updatePortalItem</th><td>true</td>"),
            "{body}"
        );
        assert!(
            body.contains("&quot;password&quot;: &quot;[REDACTED]&quot;"),
            "{body}"
        );
        assert!(body.contains("<li>started on kernel python3</li>"));
        for (label, file) in [
            ("Log", "log"),
            ("Output notebook", "output.ipynb"),
            ("HTML report", "report.html"),
        ] {
            assert!(
                body.contains(&format!(
                    "<a href=\"/admin/notebooks/jobs/j0123456789abcdef/{file}\">{label}</a>"
                )),
                "{label}: {body}"
            );
        }
        assert!(
            body.contains(
                "<th scope=\"row\">Progress</th><td data-field=\"progress\"><span class=\"none\">—</span></td>"
            ),
            "{body}"
        );
        let form = between(&body, "<form", "</form>");
        assert!(
            form.contains(
                "method=\"post\" action=\"/admin/notebooks/jobs/j0123456789abcdef/cancel\""
            )
        );
        assert!(form.contains("<input type=\"hidden\" name=\"f\" value=\"html\">"));
        assert!(
            form.contains("<button type=\"submit\" class=\"danger\" id=\"cancel\">Cancel</button>")
        );

        let mut done = running_job();
        done["status"] = json!("COMPLETED");
        done["endTime"] = json!(NOW);
        done["results"] = json!({"exitCode": 0,
            "outputNotebookUrl": "http://127.0.0.1:1/admin/notebooks/jobs/j0123456789abcdef/output.ipynb",
            "logUrl": "javascript:alert(1)"});
        let body = page(Kind::Job, done, "/admin/notebooks/jobs/j0123456789abcdef");
        assert!(
            !body.contains("<form"),
            "a finished job cannot be cancelled"
        );
        assert!(!body.contains("data-events") && tags(&body, "script") == 0);
        assert!(!body.contains("Progress"), "{body}");
        assert!(
            body.contains("<th scope=\"row\">exitCode</th><td>0</td>"),
            "{body}"
        );
        assert!(body.contains("<td><a href=\"http://127.0.0.1:1/admin/notebooks/jobs/j0123456789abcdef/output.ipynb\">"), "{body}");
        assert!(
            body.contains("<td>javascript:alert(1)</td>"),
            "only http(s) URLs are links: {body}"
        );
        assert!(!body.contains("(when the run ends)") && !body.contains("(none was written)"));
        assert!(
            body.contains("<th scope=\"row\">Duration</th><td>4.0 s</td>"),
            "{body}"
        );
    }

    #[test]
    fn execute_notebook_is_a_form_that_works_without_script() {
        let body = page(
            Kind::Operation,
            json!({}),
            "/admin/notebooks/executeNotebook",
        );
        let form = between(&body, "<form class=\"op\"", "</form>");
        assert!(form.starts_with(" method=\"post\" action=\"/admin/notebooks/executeNotebook\">"));
        assert!(
            form.contains(
                "<input type=\"text\" id=\"f-itemId\" name=\"itemId\" value=\"\" required>"
            ),
            "{form}"
        );
        assert!(form.contains("<textarea id=\"f-notebookParameters\" name=\"notebookParameters\""));
        assert!(form.contains("<option value=\"true\" selected>true</option>"));
        assert!(
            form.contains("name=\"saveInjectedParameters\">\n<option value=\"false\" selected>")
        );
        assert!(form.contains("<input type=\"number\" id=\"f-executionTimeoutInMinutes\""));
        assert!(form.contains("name=\"kernelName\""));
        assert!(form.contains("<select id=\"f-f\" name=\"f\">\n<option value=\"html\" selected>html</option>\n<option value=\"json\">json</option>\n<option value=\"pjson\">pjson</option>"), "{form}");
        assert!(form.contains("<button type=\"submit\">Execute Notebook</button>"));
        assert_eq!(tags(&body, "script"), 0);

        // The answer: a link to the job.
        let body = page(
            Kind::Operation,
            json!({"jobId": "jabc", "jobUrl": "http://127.0.0.1:1/admin/notebooks/jobs/jabc", "status": "success"}),
            "/admin/notebooks/executeNotebook",
        );
        assert!(
            body.contains("<a href=\"/admin/notebooks/jobs/jabc\">Go to job jabc</a>"),
            "{body}"
        );
        // Items offered when the handler lists them.
        let body = page(
            Kind::Operation,
            json!({"operation": "executeNotebook", "parameters": ["itemId", "notebookParameters"],
                   "items": [{"id": "d9c20adc5f95476590be87f1e6eb1dba", "title": "<i>Daily</i>"}]}),
            "/admin/notebooks/executeNotebook",
        );
        assert!(body.contains("<option value=\"d9c20adc5f95476590be87f1e6eb1dba\">&lt;i&gt;Daily&lt;/i&gt;</option>"), "{body}");
        assert!(
            !body.contains("id=\"result\""),
            "the description is not a result: {body}"
        );
    }

    #[test]
    fn a_successful_cancel_goes_back_to_the_job_and_a_failed_one_says_why() {
        let path = "/admin/notebooks/jobs/jabc/cancel";
        let mut p = render_page(Kind::Operation, &json!({"status": "success"}), &ctx(path));
        p.body = norm(&p.body);
        assert_eq!(p.redirect.as_deref(), Some("/admin/notebooks/jobs/jabc"));
        assert!(
            p.body.contains(
                "<meta http-equiv=\"refresh\" content=\"0; url=/admin/notebooks/jobs/jabc\">"
            ),
            "{}",
            p.body
        );
        let mut p = render_page(
            Kind::Operation,
            &json!({"status": "error", "messages": ["Unable to cancel job :[jabc]"], "code": 500}),
            &ctx(path),
        );
        p.body = norm(&p.body);
        assert_eq!(p.redirect, None);
        assert!(
            p.body.contains("<li>Unable to cancel job :[jabc]</li>"),
            "{}",
            p.body
        );
        assert!(
            p.body
                .contains("<a href=\"/admin/notebooks/jobs/jabc\">Back to the job</a>")
        );
        assert!(p.body.contains("<section class=\"result error\""));
    }

    #[test]
    fn a_failed_operation_shows_why_above_its_form() {
        let body = page(
            Kind::Error,
            json!({"error": {"code": 400, "message": "Unable to complete operation.",
                             "details": ["notebookParameters: not a JSON object"]}}),
            "/admin/notebooks/executeNotebook",
        );
        assert!(
            body.contains("<section class=\"result error\" id=\"result\">"),
            "{body}"
        );
        assert!(body.contains("<li>notebookParameters: not a JSON object</li>"));
        assert!(body.contains("<button type=\"submit\">Execute Notebook</button>"));
    }

    #[test]
    fn errors_in_both_shapes_are_pages() {
        let body = page(
            Kind::Job,
            json!({"error": {"code": 404, "message": "Job <x> not found", "details": ["jobId: j<1>"]}}),
            "/admin/notebooks/jobs/j1",
        );
        assert!(
            body.contains("<p><strong>404</strong> Job &lt;x&gt; not found</p>"),
            "{body}"
        );
        assert!(body.contains("<li>jobId: j&lt;1&gt;</li>"));
        assert!(body.contains("<a href=\"/admin/notebooks/jobs\">Back</a>"));
    }

    #[test]
    fn a_token_is_carried_in_links_and_forms() {
        let c = Place {
            root: "/base/admin",
            path: "/base/admin/notebooks/jobs/j1",
            token: Some("t&k=n"),
            user: "",
            now_ms: NOW,
        };
        let body = norm(&render_page(Kind::Job, &running_job(), &c).body);
        assert!(
            body.contains("<a href=\"/base/admin?token=t%26k%3Dn\">Home</a>"),
            "{body}"
        );
        assert!(body.contains("<input type=\"hidden\" name=\"token\" value=\"t&amp;k=n\">"));
        assert!(
            body.contains(
                "data-events=\"/base/admin/notebooks/jobs/j0123456789abcdef/events?token=t%26k%3Dn\""
            ),
            "the live stream too: {body}"
        );
        assert!(
            body.contains("href=\"/base/admin/notebooks/jobs/j1?f=pjson&amp;token=t%26k%3Dn\"")
        );
    }

    #[test]
    fn the_handlers_seam_takes_kind_names_and_the_absolute_root() {
        let c = Ctx {
            root_url: "http://127.0.0.1:8080/arcgis/admin".into(),
            path: "/arcgis/admin/notebooks/jobs".into(),
            user: "ann<".into(),
            token: None,
        };
        let body = norm(&render("jobs", &json!({"asyncNotebookJobs": []}), &c));
        assert!(body.contains("<h1><a href=\"/arcgis/admin\">"), "{body}");
        assert!(body.contains("<h2>Jobs</h2>"));
        assert!(body.contains("Signed in as ann&lt;"), "{body}");
        let body = norm(&render(
            "cancel",
            &json!({}),
            &Ctx {
                path: "/arcgis/admin/notebooks/jobs/j1/cancel".into(),
                ..c.clone()
            },
        ));
        assert!(
            body.contains("<button type=\"submit\">Cancel Job</button>"),
            "{body}"
        );
        assert_eq!(url_path("https://h/admin"), "/admin");
        assert_eq!(url_path("https://h"), "/");
        assert_eq!(url_path("/admin"), "/admin");
    }

    #[test]
    fn multi_line_text_keeps_its_lines() {
        let body = page(
            Kind::Resource,
            json!({"jobId": "j1", "log": "line one\n<line two>\n"}),
            "/admin/notebooks/jobs/j1/log",
        );
        assert!(
            body.contains("<td><pre>line one\n&lt;line two&gt;\n</pre></td>"),
            "{body}"
        );
    }

    const TASKS: &str = "/portal/sharing/rest/community/users/alice/tasks";

    fn a_task(title: &str) -> Value {
        json!({
            "id": "t0123456789abcdef0123456789abcdef",
            "itemId": "d9c20adc5f95476590be87f1e6eb1dba",
            "type": "ExecuteNotebook",
            "title": title,
            "userId": "alice",
            "cronSchedule": {"second": "*/2", "minute": "*", "hour": "*", "dayOfMonth": "*",
                             "month": "*", "dayOfWeek": "?"},
            "lastStart": NOW - 2000,
            "maxOccurrences": null,
            "parameters": {"notebookParameters": "{\"x\": 1}", "updatePortalItem": false},
            "created": NOW - 60_000,
            "updated": NOW - 60_000,
            "startDate": null,
            "endDate": null,
            "active": true,
            "taskState": "active",
            "timeZone": "Europe/Berlin",
            "cronDialect": "quartz",
            "nextFireTime": NOW + 2000,
            "occurrences": 3,
            "stateReason": "",
            "notifyUrl": null,
        })
    }

    #[test]
    fn the_tasks_page_lists_title_item_schedule_state_and_times() {
        let hostile = "<script>alert('t')</script> & \"q\"";
        let mut paused = a_task("Nightly");
        paused["id"] = json!("tpaused");
        paused["taskState"] = json!("paused");
        paused["active"] = json!(false);
        paused["nextFireTime"] = Value::Null;
        let body = page(
            Kind::of("tasks"),
            json!({"total": 2, "start": 1, "num": 10, "nextStart": -1,
                   "tasks": [a_task(hostile), paused]}),
            TASKS,
        );
        for h in [
            "Title",
            "Item",
            "Schedule",
            "Time Zone",
            "State",
            "Last Start (UTC)",
            "Next Fire (UTC)",
            "Links",
        ] {
            assert!(body.contains(&format!("<th scope=\"col\">{h}</th>")), "{h}");
        }
        let href = format!("{TASKS}/t0123456789abcdef0123456789abcdef");
        assert!(
            body.contains(&format!(
                "<td><a href=\"{href}\">&lt;script&gt;alert('t')&lt;/script&gt; &amp; &quot;q&quot;</a></td>"
            )),
            "{body}"
        );
        assert_eq!(tags(&body, "script"), 0, "{body}");
        assert!(
            body.contains("<td class=\"mono\">*/2 * * * * ?</td>"),
            "{body}"
        );
        assert!(body.contains("<td>Europe/Berlin</td>"));
        assert!(
            body.contains(
                "<span class=\"status status-active\" data-field=\"status\">active</span>"
            )
        );
        assert!(
            body.contains(
                "<span class=\"status status-paused\" data-field=\"status\">paused</span>"
            )
        );
        assert!(body.contains(">2025-11-30 07:19:58</time>"), "{body}");
        assert!(body.contains(">2025-11-30 07:20:02</time>"), "{body}");
        assert!(body.contains(&format!("<a href=\"{href}/runs\">Runs</a>")));
        assert!(body.contains(&format!("<a href=\"{TASKS}/createTask\">createTask</a>")));
        // The breadcrumb: Home > tasks of alice.
        let crumbs = between(&body, "<nav class=\"crumbs\"", "</nav>");
        assert_eq!(
            crumbs,
            " aria-label=\"Breadcrumb\"><a href=\"/admin\">Home</a> &gt; <span aria-current=\"page\">tasks of alice</span>"
        );
        let none = page(Kind::Tasks, json!({"tasks": []}), TASKS);
        assert!(none.contains("No tasks."));
    }

    #[test]
    fn a_task_page_has_its_runs_and_post_buttons() {
        let mut t = a_task("<img src=x onerror=alert(1)>");
        t["runs"] = json!([
            {"runId": "r2", "taskId": t["id"], "status": "executing", "scheduledTime": NOW,
             "jobId": "jrun2", "startTime": NOW, "endTime": null, "message": ""},
            {"runId": "r1", "taskId": t["id"], "status": "failed", "scheduledTime": NOW - 2000,
             "jobId": null, "startTime": NOW - 2000, "endTime": NOW - 1000,
             "message": "<b>the job could not be submitted</b>"},
        ]);
        let path = format!("{TASKS}/t0123456789abcdef0123456789abcdef");
        let body = page(Kind::Task, t.clone(), &path);
        assert!(!body.contains("<img") && !body.contains("<b>"), "{body}");
        assert!(
            body.contains("<h2>Task &lt;img src=x onerror=alert(1)&gt;</h2>"),
            "{body}"
        );
        assert!(body.contains("<th scope=\"row\">Schedule</th><td>*/2 * * * * ?</td>"));
        assert!(body.contains("<th scope=\"row\">Time Zone</th><td>Europe/Berlin</td>"));
        assert!(
            body.contains("<th scope=\"row\">Occurrences</th><td>3</td>"),
            "{body}"
        );
        assert!(
            body.contains("<th scope=\"row\">Owner</th><td>alice</td>"),
            "{body}"
        );
        // The item is the notebook's, not the task's title.
        assert!(
            body.contains("<th scope=\"row\">Item</th><td>d9c20adc5f95476590be87f1e6eb1dba</td>"),
            "{body}"
        );
        t["itemTitle"] = json!("Daily <load>");
        let titled = page(Kind::Task, t.clone(), &path);
        assert!(titled.contains(
            "<th scope=\"row\">Item</th><td>Daily &lt;load&gt; (d9c20adc5f95476590be87f1e6eb1dba)</td>"
        ), "{titled}");
        // The runs, newest first, the job linked.
        let runs = between(&body, "<table class=\"jobs\" id=\"runs\">", "</table>");
        assert!(runs.find("jrun2").unwrap() < runs.find("failed").unwrap());
        assert!(
            runs.contains("<a href=\"/admin/notebooks/jobs/jrun2\">jrun2</a>"),
            "{runs}"
        );
        assert!(runs.contains("status-executing"));
        assert!(runs.contains("&lt;b&gt;the job could not be submitted&lt;/b&gt;"));
        // Buttons are POST forms with f=html (Update opens its form).
        let ops = between(&body, "<section class=\"buttons\">", "</section>");
        assert!(
            ops.contains(&format!(
                "<form class=\"op inline\" method=\"post\" action=\"{path}/disable\">"
            )),
            "{ops}"
        );
        assert!(ops.contains("<button type=\"submit\" id=\"disable\">Disable</button>"));
        assert!(ops.contains(&format!("method=\"get\" action=\"{path}/update\">")));
        assert!(ops.contains(&format!("method=\"post\" action=\"{path}/delete\">")));
        assert!(
            ops.contains("<button type=\"submit\" id=\"delete\" class=\"danger\">Delete</button>")
        );
        assert!(ops.contains("<input type=\"hidden\" name=\"f\" value=\"html\">"));
        assert!(!ops.contains("id=\"enable\""));
        let crumbs = between(&body, "<nav class=\"crumbs\"", "</nav>");
        assert!(crumbs.contains(&format!("<a href=\"{TASKS}\">tasks of alice</a> &gt; <span aria-current=\"page\">t0123456789abcdef0123456789abcdef</span>")), "{crumbs}");
        // Paused: Enable instead of Disable; no runs yet.
        t["taskState"] = json!("paused");
        t["runs"] = json!([]);
        let body = page(Kind::Task, t, &path);
        assert!(body.contains("<button type=\"submit\" id=\"enable\">Enable</button>"));
        assert!(!body.contains("id=\"disable\""));
        assert!(body.contains("No runs yet."));
    }

    #[test]
    fn create_task_is_a_form_and_its_answer_leads_to_the_task() {
        let path = format!("{TASKS}/createTask");
        let body = page(
            Kind::Operation,
            json!({"operation": "createTask",
                   "items": [{"id": "d9c20adc5f95476590be87f1e6eb1dba", "title": "<i>Daily</i>"}]}),
            &path,
        );
        let form = between(&body, "<form class=\"op\"", "</form>");
        assert!(
            form.starts_with(&format!(" method=\"post\" action=\"{path}\">")),
            "{form}"
        );
        for f in [
            "title",
            "itemId",
            "second",
            "minute",
            "hour",
            "dayOfMonth",
            "month",
            "dayOfWeek",
            "timeZone",
            "maxOccurrences",
            "startDate",
            "endDate",
            "notifyUrl",
        ] {
            assert!(form.contains(&format!("name=\"{f}\"")), "{f}: {form}");
        }
        assert!(form.contains("<input type=\"text\" id=\"f-minute\" name=\"minute\" value=\"\" placeholder=\"0\" required>"), "{form}");
        assert!(form.contains("<textarea id=\"f-parameters\" name=\"parameters\""));
        assert!(form.contains("<option value=\"quartz\" selected>quartz</option>"));
        assert!(form.contains(
            "<select id=\"f-f\" name=\"f\">\n<option value=\"html\" selected>html</option>"
        ));
        assert!(form.contains("<button type=\"submit\">Create Task</button>"));
        assert!(body.contains("&lt;i&gt;Daily&lt;/i&gt;"));
        assert!(!body.contains("id=\"result\""));

        let p = render_page(
            Kind::Operation,
            &json!({"success": true, "taskId": "tnew"}),
            &ctx(&path),
        );
        assert_eq!(p.redirect, Some(format!("{TASKS}/tnew")));
        let p = render_page(
            Kind::Operation,
            &json!({"success": true, "taskId": "tnew"}),
            &ctx(&format!("{TASKS}/tnew/delete")),
        );
        assert_eq!(p.redirect.as_deref(), Some(TASKS), "a deleted task's list");
        let p = render_page(
            Kind::Operation,
            &json!({"success": true, "taskId": "tnew"}),
            &ctx(&format!("{TASKS}/tnew/disable")),
        );
        assert_eq!(p.redirect, Some(format!("{TASKS}/tnew")));
        // A refused create says why above the form again.
        let body = page(
            Kind::Error,
            json!({"error": {"code": 400, "message": "Unable to complete operation.",
                             "details": ["minute: required"]}}),
            &path,
        );
        assert!(body.contains("<li>minute: required</li>"), "{body}");
        assert!(body.contains("<button type=\"submit\">Create Task</button>"));
        // Update starts from the task's current values, nothing required.
        let body = page(
            Kind::Operation,
            json!({"operation": "update", "current": a_task("<Nightly>")}),
            &format!("{TASKS}/t1/update"),
        );
        assert!(
            body.contains("name=\"title\" value=\"&lt;Nightly&gt;\">"),
            "{body}"
        );
        assert!(body.contains("name=\"second\" value=\"*/2\">"), "{body}");
        assert!(body.contains("<button type=\"submit\">Update Task</button>"));
        assert!(!body.contains(" required"), "{body}");
    }

    #[test]
    fn receiver_pages_never_show_the_secret() {
        const SECRET: &str = "s3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tXY";
        let base = "/admin/notebooks/webhookReceivers";
        let r = json!({"id": "w1", "name": "<b>GitHub</b>", "itemId": "d9c20adc5f95476590be87f1e6eb1dba",
                       "signatureHeaders": "x-hub-signature-256", "apiToken": "", "parameters": "{}",
                       "disabled": false, "username": "ann", "url": "http://127.0.0.1:1/rest/events/webhooks/w1",
                       "message": "", "created": NOW, "secret": SECRET});
        let list = page(
            Kind::Receivers,
            json!({"webhookReceivers": [r.clone()]}),
            base,
        );
        let one = page(Kind::Receiver, r.clone(), &format!("{base}/w1"));
        let created = page(
            Kind::Operation,
            json!({"webhookReceiver": r.clone()}),
            &format!("{base}/create"),
        );
        let update = page(
            Kind::Operation,
            json!({"operation": "update", "current": r.clone()}),
            &format!("{base}/w1/update"),
        );
        for body in [&list, &one, &created, &update] {
            assert!(!body.contains(SECRET), "{body}");
            assert!(!body.contains("<b>"), "{body}");
            assert!(body.contains("&lt;b&gt;GitHub&lt;/b&gt;"), "{body}");
        }
        assert!(
            list.contains(&format!(
                "<td><a href=\"{base}/w1\">&lt;b&gt;GitHub&lt;/b&gt;</a></td>"
            )),
            "{list}"
        );
        assert!(list.contains("status-enabled"));
        assert!(list.contains(&format!("<a href=\"{base}/create\">create</a>")));
        assert!(one.contains("<button type=\"submit\" id=\"disable\">Disable</button>"));
        assert!(one.contains(&format!("method=\"post\" action=\"{base}/w1/delete\">")));
        assert!(
            created.contains(&format!("<a href=\"{base}/w1\">Go to receiver w1</a>")),
            "{created}"
        );
        assert!(
            update.contains("<input type=\"password\" id=\"f-secret\" name=\"secret\" value=\"\">"),
            "{update}"
        );
        let mut off = r;
        off["disabled"] = json!(true);
        let one = page(Kind::Receiver, off, &format!("{base}/w1"));
        assert!(one.contains("<button type=\"submit\" id=\"enable\">Enable</button>"));
        assert!(one.contains("status-disabled"));
        let p = render_page(
            Kind::Operation,
            &json!({"status": "success"}),
            &ctx(&format!("{base}/w1/enable")),
        );
        assert_eq!(
            p.redirect.as_deref(),
            Some("/admin/notebooks/webhookReceivers/w1")
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(0), "0.0 s");
        assert_eq!(duration(3_456), "3.5 s");
        assert_eq!(duration(125_000), "2 min 05 s");
        assert_eq!(duration(3_725_000), "1 h 02 min");
        assert_eq!(duration(-5), "0.0 s");
        assert_eq!(decode("a%20b%zz%4"), "a b%zz%4");
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
