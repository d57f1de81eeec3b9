//! Shared set-up for the nbexec-schedule tests.
#![allow(dead_code)]

use nbexec_schedule::{CronFields, Dialect, ScheduleStore, Task, TaskState};
use serde_json::json;

/// A store in a fresh private state directory (kept alive by the TempDir).
pub fn store() -> (tempfile::TempDir, ScheduleStore) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = ScheduleStore::open(&state).unwrap();
    (dir, store)
}

/// An ExecuteNotebook task on `expr` (Quartz) in UTC, not yet stored.
pub fn task(expr: &str) -> Task {
    Task {
        id: nbexec_schedule::task::new_id(),
        item_id: "nb.ipynb".into(),
        task_type: "ExecuteNotebook".into(),
        title: "t".into(),
        user_id: "alice".into(),
        dialect: Dialect::Quartz,
        cron: CronFields::split(expr).unwrap(),
        time_zone: "UTC".into(),
        parameters: json!({"notebookParameters": {"x": 1}, "saveInjectedParameters": false}),
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
    }
}

/// Epoch ms of an RFC 3339 instant.
pub fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}
