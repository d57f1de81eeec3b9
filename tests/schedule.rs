//! `nbexec schedule` (scheduled tasks in the state directory) and, with a server,
//! tasks that fire.

mod common;

use common::{root, schedule_cmd, schedule_json, stderr, stdout};
use serde_json::{Value, json};

fn example() -> String {
    root().join("fixtures/example.ipynb").display().to_string()
}

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

#[test]
fn schedule_add_posix_states_the_default_time_zone_and_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let nb = example();
    let out = schedule_cmd(&state, &["add", &nb, "--cron", "0 6 * * 1-5"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("\"0 6 * * 1-5\" (POSIX cron) in UTC (the default time zone"),
        "{text}"
    );
    assert!(text.contains("next run: "), "{text}");
    assert!(text.contains(" 06:00:00 UTC"), "{text}");
}

#[test]
fn schedule_add_stores_arcgis_fields_parameters_and_the_zone() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let nb = example();
    // Summer and winter in Berlin: 06:00 local is 04:00 and 05:00 UTC.
    let summer = schedule_json(
        &state,
        &[
            "add",
            &nb,
            "--cron",
            "0 6 * * *",
            "--tz",
            "Europe/Berlin",
            "--start",
            "2030-07-01",
            "-p",
            "city",
            "Redlands",
            "-p",
            "n",
            "3",
            "-j",
            r#"{"flag": true}"#,
            "--max-occurrences",
            "4",
            "--title",
            "daily",
        ],
    );
    assert_eq!(summer["nextFireTime"], json!(ms("2030-07-01T04:00:00Z")));
    assert_eq!(summer["startDate"], json!(ms("2030-06-30T22:00:00Z")));
    assert_eq!(summer["timeZone"], "Europe/Berlin");
    assert_eq!(summer["cronDialect"], "posix");
    assert_eq!(
        summer["cronSchedule"],
        json!({"minute":"0","hour":"6","dayOfMonth":"*","month":"*","dayOfWeek":"*"})
    );
    assert_eq!(summer["type"], "ExecuteNotebook");
    assert_eq!(summer["title"], "daily");
    // The notebook went into the item store, where `nbexec serve` runs it from.
    let item = summer["itemId"].as_str().unwrap();
    assert_eq!(item.len(), 32);
    assert_eq!(
        common::item_notebook(&state, item),
        common::read_nb(std::path::Path::new(&nb))
    );
    // A task can name an item already there.
    let again = schedule_json(&state, &["add", item, "--cron", "0 7 * * *"]);
    assert_eq!(again["itemId"], json!(item));
    assert_eq!(summer["maxOccurrences"], 4);
    assert_eq!(summer["taskState"], "active");
    assert_eq!(summer["active"], true);
    assert_eq!(summer["runIntervalSeconds"], 86400);
    // ArcGIS's notebookParameters is a JSON string; -p values are typed.
    let params: Value =
        serde_json::from_str(summer["parameters"]["notebookParameters"].as_str().unwrap()).unwrap();
    assert_eq!(params, json!({"flag": true, "city": "Redlands", "n": 3}));
    assert_eq!(summer["parameters"]["updatePortalItem"], false);
    let winter = schedule_json(
        &state,
        &[
            "add",
            &nb,
            "--quartz",
            "0 6 ? * 2-6",
            "--tz",
            "Europe/Berlin",
            "--start",
            "2030-01-10T12:00",
        ],
    );
    // 2030-01-10 is a Thursday: the next weekday 06:00 is Friday the 11th, 05:00 UTC.
    assert_eq!(winter["nextFireTime"], json!(ms("2030-01-11T05:00:00Z")));
    assert_eq!(winter["cronDialect"], "quartz");
    assert_eq!(winter["cronSchedule"]["dayOfMonth"], "?");
}

#[test]
fn schedule_list_show_pause_resume_rm() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let nb = example();
    let task = schedule_json(&state, &["add", &nb, "--cron", "*/5 * * * *"]);
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    let list = schedule_json(&state, &["list"]);
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(list["tasks"][0]["id"], json!(id));
    assert_eq!(list["nextStart"], -1);
    // A unique prefix names the task.
    let shown = schedule_json(&state, &["show", &id[..6]]);
    assert_eq!(shown["id"], json!(id));
    assert_eq!(shown["runs"], json!([]));
    let paused = schedule_json(&state, &["pause", &id]);
    assert_eq!(paused["taskState"], "paused");
    assert_eq!(paused["active"], false);
    assert_eq!(paused["nextFireTime"], Value::Null);
    let text = stdout(&schedule_cmd(&state, &["list"]));
    assert!(text.contains(&id) && text.contains("paused"), "{text}");
    let resumed = schedule_json(&state, &["resume", &id]);
    assert_eq!(resumed["taskState"], "active");
    assert!(resumed["nextFireTime"].as_i64().unwrap() > chrono::Utc::now().timestamp_millis());
    let gone = schedule_json(&state, &["rm", &id]);
    assert_eq!(gone, json!({"success": true, "id": id}));
    assert_eq!(schedule_json(&state, &["list"])["tasks"], json!([]));
    let out = schedule_cmd(&state, &["show", &id]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).trim(), format!("error: no such task {id}"));
}

#[test]
fn schedule_add_refuses_bad_input_with_one_line_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let nb = example();
    let cases: &[(&[&str], &str)] = &[
        (&["add", &nb, "--cron", "0 6 ? * 1"], "`?` is Quartz syntax"),
        (
            &["add", &nb, "--cron", "0 6 * *"],
            "has 4 fields; expected 5",
        ),
        (
            &["add", &nb, "--cron", "0 25 * * *"],
            "cron expression \"0 25 * * *\"",
        ),
        (&["add", &nb, "--cron", "0 0 30 2 *"], "never fires"),
        (
            &["add", &nb, "--quartz", "0 6 ? * 9"],
            "cron expression \"0 6 ? * 9\"",
        ),
        (
            &["add", &nb, "--cron", "0 6 * * *", "--tz", "Mars/Olympus"],
            "unknown time zone \"Mars/Olympus\"",
        ),
        (
            &["add", "missing.ipynb", "--cron", "0 6 * * *"],
            "missing.ipynb: no such notebook",
        ),
        (
            &[
                "add",
                &nb,
                "--cron",
                "0 6 * * *",
                "--start",
                "2030-02-01",
                "--end",
                "2030-01-01",
            ],
            "must be after startDate",
        ),
        (
            &["add", &nb, "--cron", "0 6 * * *", "--start", "soon"],
            "--start \"soon\": expected RFC 3339",
        ),
        (
            &["add", &nb, "--cron", "0 6 * * *", "--max-occurrences", "0"],
            "maxOccurrences must be at least 1",
        ),
        (
            &["add", &nb, "--cron", "0 6 * * *", "-j", "[1]"],
            "must be a mapping",
        ),
        (
            &["add", &nb, "--cron", "0 6 * * *", "--notify-url", "ftp://x"],
            "expected an http:// or https:// URL",
        ),
    ];
    for (args, needle) in cases {
        let out = schedule_cmd(&state, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    assert_eq!(schedule_json(&state, &["list"])["tasks"], json!([]));
    // No item was added for a task that was refused.
    let items: Vec<_> = std::fs::read_dir(state.join("items"))
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).collect())
        .unwrap_or_default();
    assert!(items.is_empty(), "{items:?}");
}
