//! Runs the cells of a notebook, in order, through a [`KernelSession`], and records
//! outputs and papermill metadata as the kernel reports them.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use nbexec_format::Notebook;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::events::RunEvent;
use crate::metadata::{self, CellStatus};
use crate::outputs::{self, DisplayIds, Widgets};
use crate::session::{KernelSession, SessionEvent};
use crate::{CancelReason, CellError, Outcome};

/// Tags that change how a cell is run.
pub const SKIP_TAG: &str = "skip-execution";
pub const RAISES_TAG: &str = "raises-exception";

/// How cells are executed.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub execution_timeout: Option<Duration>,
    pub total_timeout: Option<Duration>,
    pub allow_errors: bool,
    /// How many execute requests may be in flight at once (1 = strictly one after
    /// another). The kernel queues them; `stop_on_error` aborts the rest on an error.
    pub pipeline: usize,
    /// How long to wait for the kernel to report an interrupted cell.
    pub interrupt_grace: Duration,
    pub autosave: Option<Duration>,
    /// The most output bytes (stream text and display data) kept per cell; later
    /// output is dropped and a note says how much. Errors are always kept. This is
    /// what bounds nbexec's memory for a cell that prints without end.
    pub max_output_bytes: Option<usize>,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            execution_timeout: None,
            total_timeout: None,
            allow_errors: false,
            pipeline: 1,
            interrupt_grace: Duration::from_secs(3),
            autosave: Some(Duration::from_secs(10)),
            max_output_bytes: Some(DEFAULT_MAX_OUTPUT_BYTES),
        }
    }
}

/// 64 MiB of output per cell by default.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 << 20;

/// Roughly how many bytes an output message adds to the notebook.
fn content_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(content_size).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + content_size(v)).sum(),
        _ => 8,
    }
}

/// The bytes an output message counts against the per-cell limit.
fn output_size(msg_type: &str, content: &Value) -> usize {
    match msg_type {
        "stream" => content
            .get("text")
            .and_then(Value::as_str)
            .map_or(0, str::len),
        _ => content.get("data").map_or(0, content_size),
    }
}

/// Is this cell sent to the kernel? (nbclient skips empty sources.)
pub fn is_executable(cell: &nbexec_format::Cell) -> bool {
    cell.is_code() && !cell.source().trim().is_empty() && !cell.has_tag(SKIP_TAG)
}

struct InFlight {
    cell: usize,
    /// Not sent to the kernel (markdown, raw, empty, `skip-execution`): it only
    /// waits its turn so that metadata is written in notebook order.
    pass: bool,
    /// When the kernel began running it (its `execute_input`, or failing that its
    /// first output). Not `status: busy`: the kernel also reports busy for requests
    /// it then aborts after an earlier error.
    started: Option<(DateTime<Utc>, Instant)>,
    /// When the kernel said busy for it: the fallback start of the timeout clock.
    busy_at: Option<Instant>,
    /// Output bytes kept so far, and dropped past the limit.
    output_bytes: usize,
    dropped_bytes: usize,
    reply: Option<Value>,
    idle: bool,
    clear_pending: bool,
}

/// A checkpoint writer, called on the autosave timer.
pub type Saver<'a> = &'a mut (dyn FnMut(&Notebook) + Send);

/// Executes every cell of `nb` (already reset and injected) and returns how it ended.
/// Metadata is updated as it goes (widget state at the end, whatever the outcome);
/// banners are the caller's business.
pub async fn execute_cells<K: KernelSession>(
    nb: &mut Notebook,
    kernel: &mut K,
    config: &ExecConfig,
    cancel: &mut watch::Receiver<Option<CancelReason>>,
    events: &mut (dyn FnMut(&RunEvent) + Send),
    save: Saver<'_>,
) -> Outcome {
    let mut widgets = Widgets::default();
    let outcome = run_cells(nb, kernel, config, cancel, events, save, &mut widgets).await;
    widgets.save(nb.metadata_mut());
    outcome
}

async fn run_cells<K: KernelSession>(
    nb: &mut Notebook,
    kernel: &mut K,
    config: &ExecConfig,
    cancel: &mut watch::Receiver<Option<CancelReason>>,
    events: &mut (dyn FnMut(&RunEvent) + Send),
    save: Saver<'_>,
    widgets: &mut Widgets,
) -> Outcome {
    let order: Vec<usize> = (0..nb.cells().len()).collect();
    let total = nb.cells().iter().filter(|c| is_executable(c)).count();
    let run_start = Instant::now();
    let total_deadline = config.total_timeout.map(|t| run_start + t);
    let mut next_save = config.autosave.map(|every| Instant::now() + every);
    let window = config.pipeline.max(1);

    let mut by_msg: HashMap<String, usize> = HashMap::new();
    let mut flights: VecDeque<InFlight> = VecDeque::new();
    let mut displays = DisplayIds::default();
    let mut next_send = 0; // index into `order` of the next cell to consider sending
    let mut executed = 0;
    // Once every sender is gone, `changed()` returns at once forever: stop polling it.
    let mut cancel_open = true;

    loop {
        // Pass over non-executable cells at the front, and send up to the window.
        while next_send < order.len() && flights.len() < window {
            let index = order[next_send];
            let cell = &nb.cells()[index];
            if !is_executable(cell) {
                if flights.is_empty() {
                    metadata::cell_passed(&mut nb.cells_mut()[index], Utc::now());
                } else {
                    flights.push_back(InFlight {
                        cell: index,
                        pass: true,
                        started: None,
                        busy_at: None,
                        output_bytes: 0,
                        dropped_bytes: 0,
                        reply: None,
                        idle: true,
                        clear_pending: false,
                    });
                }
                next_send += 1;
                continue;
            }
            let stop_on_error = !(config.allow_errors || cell.has_tag(RAISES_TAG));
            let source = cell.source().to_owned();
            metadata::clear_timing(&mut nb.cells_mut()[index]);
            match kernel.execute(&source, stop_on_error).await {
                Ok(msg_id) => {
                    by_msg.insert(msg_id, index);
                    flights.push_back(InFlight {
                        cell: index,
                        pass: false,
                        started: None,
                        busy_at: None,
                        output_bytes: 0,
                        dropped_bytes: 0,
                        reply: None,
                        idle: false,
                        clear_pending: false,
                    });
                    next_send += 1;
                }
                Err(detail) => {
                    return Outcome::KernelDied {
                        cell: Some(index),
                        detail,
                    };
                }
            }
        }
        let Some(front) = flights.front() else {
            return Outcome::Completed;
        };
        let front_cell = front.cell;

        // The earliest deadline: this cell's timeout, the run's, or the autosave.
        let cell_deadline = match (
            config.execution_timeout,
            front.started.map(|s| s.1).or(front.busy_at),
        ) {
            (Some(t), Some(at)) => Some(at + t),
            _ => None,
        };
        let deadline = [cell_deadline, total_deadline, next_save]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };

        tokio::select! {
            biased;
            changed = cancel.changed(), if cancel_open => {
                if changed.is_err() {
                    cancel_open = false;
                    continue;
                }
                let reason = *cancel.borrow();
                if let Some(reason) = reason {
                    let detail = format!("execution was cancelled ({})", reason.describe());
                    return stop_running(nb, kernel, config, &mut flights, &by_msg, &mut displays, widgets, events, "ExecutionCancelled", detail,
                        Outcome::Cancelled { cell: Some(front_cell), reason }).await;
                }
            }
            event = kernel.recv() => {
                match event {
                    SessionEvent::Died { detail } => {
                        // With requests pipelined, the cell that was running is the
                        // last one the kernel started, or the first without a reply,
                        // whichever comes later: the ones before it had finished (the
                        // kernel moved on), though their last messages may have been
                        // lost with the process.
                        let last_started = flights.iter().rposition(|f| !f.pass && f.started.is_some()).unwrap_or(0);
                        let first_unreplied = flights.iter().position(|f| !f.pass && f.reply.is_none()).unwrap_or(0);
                        let running = last_started.max(first_unreplied);
                        for _ in 0..running {
                            let Some(mut flight) = flights.pop_front() else { break };
                            if flight.pass {
                                metadata::cell_passed(&mut nb.cells_mut()[flight.cell], Utc::now());
                                continue;
                            }
                            flight.reply.get_or_insert(Value::Null);
                            if let Some(outcome) = finish_cell(nb, flight, config, events) {
                                return outcome;
                            }
                        }
                        let Some(flight) = flights.front() else { return Outcome::KernelDied { cell: None, detail } };
                        let dead_cell = flight.cell;
                        let at = Utc::now();
                        let started = flight.started.map_or(at, |s| s.0);
                        let cell = &mut nb.cells_mut()[dead_cell];
                        note_dropped(cell, flight, config.max_output_bytes);
                        cell.outputs_mut().push(error_output("DeadKernelError", &format!("Kernel died while executing this cell: {detail}")));
                        metadata::cell_finished(cell, started, at, true);
                        events(&RunEvent::CellFinished { index: dead_cell, status: CellStatus::Failed });
                        return Outcome::KernelDied { cell: Some(dead_cell), detail };
                    }
                    SessionEvent::Iopub { parent, msg_type, content, date } => {
                        let Some(parent) = parent else { continue };
                        let Some(&index) = by_msg.get(&parent) else { continue };
                        let Some(flight) = flights.iter_mut().find(|f| f.cell == index) else { continue };
                        let msg = Msg { parent: &parent, msg_type: &msg_type, content: &content, date: date.as_deref() };
                        handle_iopub(nb, flight, &mut displays, widgets, events, &msg, &mut executed, total, config.max_output_bytes);
                    }
                    SessionEvent::Unreadable { shell, parent, msg_type, detail } => {
                        unreadable(nb, &mut flights, &by_msg, shell, parent.as_deref(), msg_type.as_deref(), &detail);
                    }
                    SessionEvent::Reply { parent, msg_type, content, date } => {
                        if msg_type != "execute_reply" { continue }
                        let Some(parent) = parent else { continue };
                        let Some(&index) = by_msg.get(&parent) else { continue };
                        if let Some(flight) = flights.iter_mut().find(|f| f.cell == index) {
                            metadata::record_timing(&mut nb.cells_mut()[index], "shell.execute_reply", date.as_deref());
                            flight.reply = Some(content);
                        }
                    }
                }
                // Finish every cell at the front that has both its reply and its idle.
                while flights.front().is_some_and(|f| f.pass || (f.reply.is_some() && f.idle)) {
                    let flight = flights.pop_front().expect("checked above");
                    if flight.pass {
                        metadata::cell_passed(&mut nb.cells_mut()[flight.cell], Utc::now());
                        continue;
                    }
                    if let Some(outcome) = finish_cell(nb, flight, config, events) {
                        return outcome;
                    }
                }
            }
            () = sleep => {
                let now = Instant::now();
                if cell_deadline.is_some_and(|d| now >= d) {
                    let secs = config.execution_timeout.map_or(0, |t| t.as_secs());
                    let detail = format!("A cell timed out while it was being executed, after {secs} seconds.");
                    return stop_running(nb, kernel, config, &mut flights, &by_msg, &mut displays, widgets, events, "CellTimeoutError", detail.clone(),
                        Outcome::Timeout { cell: Some(front_cell), detail }).await;
                }
                if total_deadline.is_some_and(|d| now >= d) {
                    let mins = config.total_timeout.map_or(0, |t| t.as_secs() / 60);
                    let detail = format!("The notebook did not finish within its time limit of {mins} minute(s).");
                    return stop_running(nb, kernel, config, &mut flights, &by_msg, &mut displays, widgets, events, "NotebookTimeoutError", detail.clone(),
                        Outcome::Timeout { cell: Some(front_cell), detail }).await;
                }
                if next_save.is_some_and(|d| now >= d) {
                    save(nb);
                    next_save = config.autosave.map(|every| Instant::now() + every);
                }
            }
        }
    }
}

/// A message from the kernel that could not be read must not leave its cell
/// waiting for ever: an unreadable reply fails the cell, an unreadable status
/// after `busy` counts as its idle. The cell says what happened. Without a
/// readable parent, a reply goes to the first request without one (the kernel
/// replies in order) and anything else to the first cell not yet idle.
fn unreadable(
    nb: &mut Notebook,
    flights: &mut VecDeque<InFlight>,
    by_msg: &HashMap<String, usize>,
    shell: bool,
    parent: Option<&str>,
    msg_type: Option<&str>,
    detail: &str,
) {
    let flight = match parent {
        // A readable parent that is not one of our cells: not our business.
        Some(p) => by_msg
            .get(p)
            .and_then(|&index| flights.iter_mut().find(|f| f.cell == index)),
        None if shell => flights.iter_mut().find(|f| !f.pass && f.reply.is_none()),
        None => flights.iter_mut().find(|f| !f.pass && !f.idle),
    };
    let Some(flight) = flight else { return };
    let outputs = nb.cells_mut()[flight.cell].outputs_mut();
    let what = msg_type.unwrap_or("message");
    if shell {
        if !matches!(msg_type, None | Some("execute_reply")) || flight.reply.is_some() {
            return;
        }
        let evalue = format!("the kernel's {what} for this cell could not be read ({detail})");
        outputs.push(error_output("UnreadableReply", &evalue));
        flight.reply = Some(serde_json::json!({
            "status": "error", "ename": "UnreadableReply", "evalue": evalue, "traceback": [],
        }));
        return;
    }
    let mut text = format!(
        "[nbexec] the kernel sent a {what} for this cell that could not be read ({detail})"
    );
    if matches!(msg_type, None | Some("status")) {
        if flight.busy_at.is_some() || flight.reply.is_some() {
            flight.idle = true;
            text.push_str("; taken as the end of the cell");
        } else {
            flight.busy_at = Some(Instant::now());
        }
    }
    text.push('\n');
    outputs.push(serde_json::json!({"output_type": "stream", "name": "stderr", "text": text}));
}

/// Says, in the cell, how much output was dropped past the limit.
fn note_dropped(cell: &mut nbexec_format::Cell, flight: &InFlight, limit: Option<usize>) {
    if flight.dropped_bytes == 0 {
        return;
    }
    let mib = limit.unwrap_or(0) as f64 / (1024.0 * 1024.0);
    cell.outputs_mut().push(serde_json::json!({
        "output_type": "stream",
        "name": "stderr",
        "text": format!(
            "[nbexec] this cell's output reached the limit of {mib:.0} MiB; {} more bytes were not recorded (--max-output-mb)\n",
            flight.dropped_bytes
        ),
    }));
}

fn error_output(ename: &str, evalue: &str) -> Value {
    serde_json::json!({
        "output_type": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": [format!("{ename}: {evalue}")],
    })
}

/// An IOPub message about one of our requests.
struct Msg<'a> {
    /// The msg_id of the execute request it belongs to.
    parent: &'a str,
    msg_type: &'a str,
    content: &'a Value,
    /// Its `header.date`.
    date: Option<&'a str>,
}

#[allow(clippy::too_many_arguments)]
fn handle_iopub(
    nb: &mut Notebook,
    flight: &mut InFlight,
    displays: &mut DisplayIds,
    widgets: &mut Widgets,
    events: &mut (dyn FnMut(&RunEvent) + Send),
    msg: &Msg<'_>,
    executed: &mut usize,
    total: usize,
    limit: Option<usize>,
) {
    let (msg_type, content) = (msg.msg_type, msg.content);
    let index = flight.cell;
    if let Some(id) = outputs::display_id(content)
        && matches!(
            msg_type,
            "execute_result" | "display_data" | "update_display_data"
        )
        && let Some(Value::Object(new)) = outputs::output_from_msg("display_data", content)
    {
        for &(c, o) in displays.places(id) {
            if let Some(Value::Object(out)) = nb
                .cells_mut()
                .get_mut(c)
                .and_then(|cell| cell.outputs_mut().get_mut(o))
            {
                out.insert(
                    "data".into(),
                    new.get("data").cloned().unwrap_or(Value::Null),
                );
                out.insert(
                    "metadata".into(),
                    new.get("metadata").cloned().unwrap_or(Value::Null),
                );
            }
        }
    }
    let cell = &mut nb.cells_mut()[index];
    if let Some(count) = content.get("execution_count").and_then(Value::as_u64) {
        cell.set_execution_count(Some(count));
    }
    if flight.started.is_none()
        && matches!(
            msg_type,
            "execute_input"
                | "stream"
                | "display_data"
                | "execute_result"
                | "error"
                | "clear_output"
        )
    {
        let at = Utc::now();
        flight.started = Some((at, Instant::now()));
        metadata::cell_started(cell, at);
        *executed += 1;
        events(&RunEvent::CellStarted {
            index,
            number: *executed,
            total,
        });
    }
    // Output an Output widget captures goes to the widget, not the cell.
    let capturing = matches!(
        msg_type,
        "clear_output" | "stream" | "display_data" | "execute_result" | "error"
    )
    .then(|| widgets.capturing(msg.parent))
    .flatten();
    if let Some(comm_id) = capturing {
        if msg_type == "clear_output" {
            let wait = content.get("wait").and_then(Value::as_bool) == Some(true);
            widgets.clear_output(&comm_id, wait);
        } else {
            // Captured output counts against the cell's limit like its own.
            if msg_type != "error" {
                let size = output_size(msg_type, content);
                if limit.is_some_and(|max| flight.output_bytes + size > max) {
                    flight.dropped_bytes += size;
                    return;
                }
                flight.output_bytes += size;
            }
            widgets.output(&comm_id, msg_type, content);
        }
        return;
    }
    match msg_type {
        "status" => match content.get("execution_state").and_then(Value::as_str) {
            Some("busy") => {
                flight.busy_at = flight.busy_at.or(Some(Instant::now()));
                metadata::record_timing(cell, "iopub.status.busy", msg.date);
            }
            Some("idle") => {
                flight.idle = true;
                metadata::record_timing(cell, "iopub.status.idle", msg.date);
            }
            _ => {}
        },
        "execute_input" => metadata::record_timing(cell, "iopub.execute_input", msg.date),
        "comm_open" | "comm_msg" => widgets.handle_comm(msg_type, content),
        "clear_output" => {
            if content
                .get("wait")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                flight.clear_pending = true;
            } else {
                cell.outputs_mut().clear();
                displays.clear_cell(index);
            }
        }
        "stream" | "display_data" | "execute_result" | "error" => {
            if flight.clear_pending {
                cell.outputs_mut().clear();
                displays.clear_cell(index);
                flight.clear_pending = false;
                flight.output_bytes = 0;
            }
            if msg_type != "error" {
                let size = output_size(msg_type, content);
                if limit.is_some_and(|max| flight.output_bytes + size > max) {
                    flight.dropped_bytes += size;
                    return;
                }
                flight.output_bytes += size;
            }
            if msg_type == "stream" {
                let name = content
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("stdout");
                let text = content.get("text").and_then(Value::as_str).unwrap_or("");
                events(&RunEvent::Stream { index, name, text });
                if outputs::merge_stream(cell.outputs_mut(), name, text) {
                    return;
                }
            }
            if let Some(out) = outputs::output_from_msg(msg_type, content) {
                let outs = cell.outputs_mut();
                if let Some(id) = outputs::display_id(content) {
                    displays.record(id, index, outs.len());
                }
                outs.push(out);
                if let Some(out) = outs.last() {
                    events(&RunEvent::Output { index, output: out });
                }
            }
        }
        _ => {}
    }
}

/// Records a finished cell; returns the run's outcome if the run stops here.
fn finish_cell(
    nb: &mut Notebook,
    flight: InFlight,
    config: &ExecConfig,
    events: &mut (dyn FnMut(&RunEvent) + Send),
) -> Option<Outcome> {
    let at = Utc::now();
    let index = flight.cell;
    let reply = flight.reply.clone().unwrap_or(Value::Null);
    let cell = &mut nb.cells_mut()[index];
    note_dropped(cell, &flight, config.max_output_bytes);
    if let Some(count) = reply.get("execution_count").and_then(Value::as_u64) {
        cell.set_execution_count(Some(count));
    }
    let started = flight.started.map_or(at, |s| s.0);
    let status = reply.get("status").and_then(Value::as_str).unwrap_or("ok");
    if status == "ok" {
        metadata::cell_finished(cell, started, at, false);
        events(&RunEvent::CellFinished {
            index,
            status: CellStatus::Completed,
        });
        return None;
    }
    let text = |k: &str| {
        reply
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (ename, evalue) = (text("ename"), text("evalue"));
    if ename == "SystemExit" && (evalue.is_empty() || evalue == "0" || evalue == "None") {
        metadata::cell_finished(cell, started, at, false);
        events(&RunEvent::CellFinished {
            index,
            status: CellStatus::Completed,
        });
        return Some(Outcome::Exited { cell: index });
    }
    if config.allow_errors || cell.has_tag(RAISES_TAG) {
        metadata::cell_finished(cell, started, at, false);
        events(&RunEvent::CellFinished {
            index,
            status: CellStatus::Completed,
        });
        return None;
    }
    metadata::cell_finished(cell, started, at, true);
    events(&RunEvent::CellFinished {
        index,
        status: CellStatus::Failed,
    });
    let traceback = match reply.get("traceback") {
        Some(Value::Array(lines)) => lines
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Some(Outcome::CellFailed(CellError {
        cell_index: index,
        output_index: index,
        execution_count: cell.execution_count(),
        ename: if status == "aborted" && ename.is_empty() {
            "ExecutionAborted".into()
        } else {
            ename
        },
        evalue,
        traceback,
    }))
}

/// Interrupts the running cell, lets the kernel report it for a moment, records the
/// cell as failed with an error output saying why, and returns `outcome`.
#[allow(clippy::too_many_arguments)]
async fn stop_running<K: KernelSession>(
    nb: &mut Notebook,
    kernel: &mut K,
    config: &ExecConfig,
    flights: &mut VecDeque<InFlight>,
    by_msg: &HashMap<String, usize>,
    displays: &mut DisplayIds,
    widgets: &mut Widgets,
    events: &mut (dyn FnMut(&RunEvent) + Send),
    ename: &str,
    detail: String,
    outcome: Outcome,
) -> Outcome {
    let Some(front_cell) = flights.front().map(|f| f.cell) else {
        return outcome;
    };
    kernel.interrupt().await;
    // Collect what the kernel says about the interrupted cell (its KeyboardInterrupt
    // traceback), briefly: the kernel may be wedged, and then we stop regardless.
    let grace = tokio::time::sleep(config.interrupt_grace);
    tokio::pin!(grace);
    let mut dummy = 0;
    loop {
        let done = flights.front().is_some_and(|f| f.reply.is_some() && f.idle);
        if done {
            break;
        }
        tokio::select! {
            () = &mut grace => break,
            event = kernel.recv() => match event {
                SessionEvent::Died { .. } => break,
                SessionEvent::Iopub { parent: Some(parent), msg_type, content, date } => {
                    if by_msg.get(&parent) == Some(&front_cell)
                        && let Some(flight) = flights.front_mut() {
                            let msg = Msg { parent: &parent, msg_type: &msg_type, content: &content, date: date.as_deref() };
                            handle_iopub(nb, flight, displays, widgets, events, &msg, &mut dummy, 0, config.max_output_bytes);
                        }
                }
                SessionEvent::Reply { parent: Some(parent), content, date, .. } => {
                    if by_msg.get(&parent) == Some(&front_cell)
                        && let Some(flight) = flights.front_mut() {
                            metadata::record_timing(&mut nb.cells_mut()[front_cell], "shell.execute_reply", date.as_deref());
                            flight.reply = Some(content);
                        }
                }
                _ => {}
            }
        }
    }
    let at = Utc::now();
    let started = flights.front().and_then(|f| f.started).map_or(at, |s| s.0);
    let cell = &mut nb.cells_mut()[front_cell];
    if let Some(flight) = flights.front() {
        note_dropped(cell, flight, config.max_output_bytes);
    }
    cell.outputs_mut().push(error_output(ename, &detail));
    metadata::cell_finished(cell, started, at, true);
    events(&RunEvent::CellFinished {
        index: front_cell,
        status: CellStatus::Failed,
    });
    outcome
}
