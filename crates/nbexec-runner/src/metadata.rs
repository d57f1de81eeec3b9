//! The metadata papermill writes, so that its readers (scrapbook, dashboards, CI
//! checks of `metadata.papermill.exception`) keep working, and the error banners.

use chrono::{DateTime, Utc};
use nbexec_format::{Cell, Notebook};
use serde_json::{Map, Value};

pub const ERROR_MARKER_TAG: &str = "papermill-error-cell-tag";
const ERROR_STYLE: &str =
    "style=\"color:red; font-family:Helvetica Neue, Helvetica, Arial, sans-serif; font-size:2em;\"";

/// Papermill's per-cell status values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellStatus {
    Pending,
    Running,
    Completed,
    Failed,
}

impl CellStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CellStatus::Pending => "pending",
            CellStatus::Running => "running",
            CellStatus::Completed => "completed",
            CellStatus::Failed => "failed",
        }
    }
}

/// Papermill's time format: `datetime.now(timezone.utc).isoformat()`.
pub fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
    let micros = (to - from).num_microseconds().unwrap_or(0);
    Value::from(micros as f64 / 1e6)
}

fn papermill_md(cell: &mut Cell) -> &mut Map<String, Value> {
    let md = cell.metadata_mut();
    let slot = md
        .entry("papermill")
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("just made an object")
}

/// Removes the banners of an earlier failed run.
pub fn remove_error_markers(nb: &mut Notebook) {
    nb.cells_mut().retain(|c| !c.has_tag(ERROR_MARKER_TAG));
}

/// Papermill's `notebook_start`: every cell pending, code cells cleared, and (as
/// papermill's loader does) a `tags` list on every cell.
pub fn reset_cells(nb: &mut Notebook) {
    for cell in nb.cells_mut() {
        if cell.is_code() {
            cell.set_execution_count(None);
            cell.outputs_mut().clear();
        }
        cell.metadata_mut()
            .entry("tags")
            .or_insert_with(|| Value::Array(Vec::new()));
        let md = papermill_md(cell);
        md.clear();
        md.insert("exception".into(), Value::Null);
        md.insert("start_time".into(), Value::Null);
        md.insert("end_time".into(), Value::Null);
        md.insert("duration".into(), Value::Null);
        md.insert("status".into(), Value::from(CellStatus::Pending.as_str()));
    }
}

/// The papermill release whose metadata layout nbexec writes, recorded as
/// `metadata.papermill.version` for readers that check it (nbexec's own version is
/// `metadata.nbexec.version`).
pub const PAPERMILL_VERSION: &str = "2.7.0";

/// nbclient's `metadata.execution` timestamps (`record_timing`): cleared when a cell
/// is sent, then `iopub.status.busy`, `iopub.execute_input`, `shell.execute_reply` and
/// `iopub.status.idle` as the kernel's messages about it arrive.
pub fn clear_timing(cell: &mut Cell) {
    cell.metadata_mut()
        .insert("execution".into(), Value::Object(Map::new()));
}

/// Records one timing key, at the message's `header.date` (else now), in nbclient's
/// format: UTC, microseconds, `Z`.
pub fn record_timing(cell: &mut Cell, key: &str, date: Option<&str>) {
    let at = date
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
        .map_or_else(Utc::now, |d| d.with_timezone(&Utc));
    let md = cell.metadata_mut();
    let slot = md
        .entry("execution")
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(times) = slot {
        times.insert(
            key.into(),
            Value::from(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
        );
    }
}

/// The kernel's `language_info` (from its `kernel_info_reply`) replaces the
/// notebook's, as nbclient does; a kernel that gives none leaves it alone.
pub fn set_language_info(nb: &mut Notebook, kernel_info: &Value) {
    if let Some(info @ Value::Object(_)) = kernel_info.get("language_info") {
        nb.metadata_mut()
            .insert("language_info".into(), info.clone());
    }
}

pub fn cell_started(cell: &mut Cell, at: DateTime<Utc>) {
    let md = papermill_md(cell);
    md.insert("start_time".into(), Value::from(iso(at)));
    md.insert("status".into(), Value::from(CellStatus::Running.as_str()));
    md.insert("exception".into(), Value::Bool(false));
}

pub fn cell_finished(cell: &mut Cell, started: DateTime<Utc>, at: DateTime<Utc>, failed: bool) {
    let md = papermill_md(cell);
    md.insert("end_time".into(), Value::from(iso(at)));
    md.insert("duration".into(), seconds(started, at));
    if failed {
        md.insert("exception".into(), Value::Bool(true));
        md.insert("status".into(), Value::from(CellStatus::Failed.as_str()));
    } else {
        md.insert("status".into(), Value::from(CellStatus::Completed.as_str()));
    }
}

/// Marks a cell that is not executed (markdown, raw, empty, `skip-execution`) as done.
pub fn cell_passed(cell: &mut Cell, at: DateTime<Utc>) {
    let md = papermill_md(cell);
    md.insert("start_time".into(), Value::from(iso(at)));
    md.insert("end_time".into(), Value::from(iso(at)));
    md.insert("duration".into(), Value::from(0.0));
    md.insert("exception".into(), Value::Bool(false));
    md.insert("status".into(), Value::from(CellStatus::Completed.as_str()));
}

/// `metadata.papermill` at the start of a run.
pub fn notebook_started(
    nb: &mut Notebook,
    input_path: Option<&str>,
    output_path: Option<&str>,
    at: DateTime<Utc>,
) {
    let md = nb.metadata_mut();
    let slot = md
        .entry("papermill")
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    let pm = slot.as_object_mut().expect("just made an object");
    // Papermill's loader gives these keys to a notebook without papermill metadata;
    // one that has some (from an earlier run) keeps what it has. Parameters nbexec
    // injected may already be there: they alone do not count.
    if pm.keys().all(|k| k == "parameters") {
        pm.entry("default_parameters")
            .or_insert_with(|| Value::Object(Map::new()));
        pm.entry("environment_variables")
            .or_insert_with(|| Value::Object(Map::new()));
        pm.entry("version")
            .or_insert_with(|| Value::from(PAPERMILL_VERSION));
    }
    pm.insert(
        "input_path".into(),
        input_path.map_or(Value::Null, Value::from),
    );
    pm.insert(
        "output_path".into(),
        output_path.map_or(Value::Null, Value::from),
    );
    pm.entry("parameters")
        .or_insert_with(|| Value::Object(Map::new()));
    pm.insert("start_time".into(), Value::from(iso(at)));
    pm.insert("end_time".into(), Value::Null);
    pm.insert("duration".into(), Value::Null);
    pm.insert("exception".into(), Value::Null);
}

pub fn notebook_finished(
    nb: &mut Notebook,
    started: DateTime<Utc>,
    at: DateTime<Utc>,
    failed: bool,
) {
    if let Some(Value::Object(pm)) = nb.metadata_mut().get_mut("papermill") {
        pm.insert("end_time".into(), Value::from(iso(at)));
        pm.insert("duration".into(), seconds(started, at));
        if failed {
            pm.insert("exception".into(), Value::Bool(true));
        }
    }
}

/// Papermill's two banners: one at the top naming `In [N]`, one (the anchor) just
/// before the failing cell. Returns the failing cell's new index.
pub fn insert_error_banners(
    nb: &mut Notebook,
    failed_cell: usize,
    execution_count: Option<u64>,
) -> usize {
    let count = execution_count.map_or_else(|| "None".to_owned(), |c| c.to_string());
    let top = format!(
        "<span {ERROR_STYLE}>An Exception was encountered at '<a href=\"#papermill-error-cell\">In [{count}]</a>'.</span>"
    );
    let anchor = format!(
        "<span id=\"papermill-error-cell\" {ERROR_STYLE}>Execution using papermill encountered an exception here and stopped:</span>"
    );
    let mut anchor_cell = Cell::new_markdown(&anchor);
    anchor_cell.set_tags(&[ERROR_MARKER_TAG]);
    let mut top_cell = Cell::new_markdown(&top);
    top_cell.set_tags(&[ERROR_MARKER_TAG]);
    if let Some(id) = nb.new_cell_id() {
        anchor_cell.set_id(Some(id));
    }
    nb.cells_mut().insert(failed_cell, anchor_cell);
    if let Some(id) = nb.new_cell_id() {
        top_cell.set_id(Some(id));
    }
    nb.cells_mut().insert(0, top_cell);
    failed_cell + 2
}
