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
        (
            &["add", &nb, "--cron", "0 6 * * *", "--notify-url", "http://"],
            "no host",
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

// ---- with a server ----

use common::{
    HookServer, Server, add_item, code, job_output_text, notebook, python_hmac_hex, write_nb,
};
use std::time::Duration;

const TASKS: &str = "/portal/sharing/rest/community/users/alice/tasks";

/// A notebook whose parameter `x` is printed.
fn printing_nb(dir: &std::path::Path) -> std::path::PathBuf {
    write_nb(
        dir,
        "printing.ipynb",
        &notebook(vec![
            code("x = 1", &["parameters"]),
            code("print('x is', x)", &[]),
        ]),
    )
}

/// Polls (bounded) the task's runs until `pred` holds; returns them.
fn wait_runs(
    srv: &Server,
    task: &str,
    within: Duration,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let a = srv.get_at(&format!("{TASKS}/{task}/runs?f=json"));
        assert_eq!(a.status, 200, "{}", a.body);
        let runs = a.json()["runs"].as_array().unwrap().clone();
        if pred(&runs) {
            return runs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "runs after {within:?}: {runs:?}\n{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn serve_runs_a_task_firing_every_few_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let item = add_item(&state, &printing_nb(dir.path()));
    let hook = HookServer::start(vec![]);
    let srv = Server::start(&state, &[]);
    // ArcGIS's createTask form, every 3 seconds (nbexec's `second` field), twice.
    let a = srv.post_form_at(
        &format!("{TASKS}/createTask"),
        &[
            ("itemId", item.as_str()),
            ("title", "every three seconds"),
            ("type", "ExecuteNotebook"),
            ("second", "*/3"),
            ("minute", "*"),
            ("hour", "*"),
            ("dayOfMonth", "*"),
            ("month", "*"),
            ("dayOfWeek", "?"),
            ("maxOccurrences", "2"),
            (
                "parameters",
                r#"{"notebookParameters": "{\"x\": 42}", "updatePortalItem": false}"#,
            ),
            ("notifyUrl", hook.url.as_str()),
            ("f", "json"),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let created = a.json();
    assert_eq!(created["success"], true, "{created}");
    let task = created["taskId"].as_str().unwrap().to_owned();
    let runs = wait_runs(&srv, &task, Duration::from_secs(90), |runs| {
        runs.iter().filter(|r| r["status"] == "succeeded").count() == 2
    });
    assert_eq!(runs.len(), 2, "{runs:?}");
    let mut fire_times = Vec::new();
    for run in &runs {
        let job_id = run["jobId"].as_str().unwrap();
        let job = srv.wait_job(job_id, None, Duration::from_secs(10));
        assert_eq!(job["status"], "COMPLETED", "{job}");
        // An ordinary job that says which task and run it is.
        assert_eq!(job["inputs"]["taskId"], json!(task));
        assert_eq!(job["inputs"]["runId"], run["runId"]);
        assert_eq!(job["inputs"]["itemId"], json!(item));
        assert!(job_output_text(&srv, job_id).contains("x is 42"));
        let at = run["scheduledTime"].as_i64().unwrap();
        assert_eq!(at % 3000, 0, "fires on a multiple of 3 s: {at}");
        fire_times.push(at);
    }
    assert_eq!((fire_times[0] - fire_times[1]).abs() % 3000, 0);
    // maxOccurrences reached: completed, nothing more fires.
    let t = srv.get_at(&format!("{TASKS}/{task}?f=json")).json();
    assert_eq!(t["taskState"], "completed", "{t}");
    assert_eq!(t["active"], false);
    assert_eq!(t["occurrences"], 2);
    assert_eq!(
        t["cronSchedule"],
        json!({"second":"*/3","minute":"*","hour":"*","dayOfMonth":"*","month":"*","dayOfWeek":"?"})
    );
    // Each run's final job was POSTed to the task's notify URL.
    let posts = hook.wait_for(2, Duration::from_secs(20));
    assert_eq!(posts.len(), 2);
    for p in &posts {
        let sent: Value = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(sent["status"], "COMPLETED");
        assert_eq!(sent["inputs"]["taskId"], json!(task));
        // The receiver learns the job, not where the server keeps its files.
        let state = state.to_string_lossy().into_owned();
        assert!(!sent.to_string().contains(&state), "{sent}");
    }
    let _ = python_hmac_hex; // signed only when the server has a secret (none here)
    assert!(
        posts
            .iter()
            .all(|p| p.header("x-nbexec-signature").is_none())
    );
    std::thread::sleep(Duration::from_secs(4));
    let after = wait_runs(&srv, &task, Duration::from_secs(1), |_| true);
    assert_eq!(after.len(), 2, "completed tasks fire no more: {after:?}");
}

#[test]
fn serve_runs_a_task_the_command_line_added() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let srv = Server::start(&state, &[]);
    // Added with no request to the server: the server finds it in the shared store.
    let nb = printing_nb(dir.path());
    let task = schedule_json(
        &state,
        &[
            "add",
            nb.to_str().unwrap(),
            "--cron",
            "*/2 * * * * *",
            "-p",
            "x",
            "7",
            "--max-occurrences",
            "1",
            "--user",
            "alice",
        ],
    );
    let id = task["id"].as_str().unwrap();
    let runs = wait_runs(&srv, id, Duration::from_secs(60), |runs| {
        runs.iter().any(|r| r["status"] == "succeeded")
    });
    let job = runs[0]["jobId"].as_str().unwrap();
    assert!(job_output_text(&srv, job).contains("x is 7"));
    let shown = schedule_json(&state, &["show", id]);
    assert_eq!(shown["taskState"], "completed");
    assert_eq!(shown["runs"][0]["status"], "succeeded");
}

#[test]
fn serve_task_routes_check_input_and_change_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let item = add_item(&state, &printing_nb(dir.path()));
    let srv = Server::start(&state, &[]);
    let form = |extra: &[(&'static str, &'static str)]| {
        let mut f: Vec<(&str, &str)> = vec![
            ("minute", "0"),
            ("hour", "6"),
            ("dayOfMonth", "?"),
            ("month", "*"),
            ("dayOfWeek", "2-6"),
            ("f", "json"),
        ];
        f.extend_from_slice(extra);
        f
    };
    let create = |fields: &[(&str, &str)]| srv.post_form_at(&format!("{TASKS}/createTask"), fields);
    // Missing item, unknown item, a bad field: error shapes, nothing stored.
    let a = create(&form(&[]));
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["error"]["details"], json!(["itemId: required"]));
    let a = create(&form(&[("itemId", "0123456789abcdef0123456789abcdef")]));
    assert_eq!(a.status, 404, "{}", a.body);
    let mut bad = form(&[]);
    bad.push(("itemId", item.as_str()));
    bad[1] = ("hour", "25");
    let a = create(&bad);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.json()["error"]["details"][0]
            .as_str()
            .unwrap()
            .contains("0 25 ? * 2-6")
    );
    let a = create(
        &[
            form(&[]),
            vec![("itemId", item.as_str()), ("maxOccurrences", "many")],
        ]
        .concat(),
    );
    assert_eq!(a.status, 400, "{}", a.body);
    let list = srv.get_at(&format!("{TASKS}?f=json")).json();
    assert_eq!(list["tasks"], json!([]));
    assert_eq!(list["nextStart"], -1);
    // A good one, then update, disable, enable, delete.
    let a = create(
        &[
            form(&[("timeZone", "Europe/Berlin")]),
            vec![("itemId", item.as_str())],
        ]
        .concat(),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let id = a.json()["taskId"].as_str().unwrap().to_owned();
    let t = srv.get_at(&format!("{TASKS}/{id}?f=json")).json();
    assert_eq!(t["timeZone"], "Europe/Berlin");
    assert_eq!(t["cronDialect"], "quartz");
    assert_eq!(t["taskState"], "active");
    assert_eq!(t["runIntervalSeconds"], 86400);
    let a = srv.post_form_at(
        &format!("{TASKS}/{id}/update"),
        &[("hour", "7"), ("f", "json")],
    );
    assert_eq!(a.json(), json!({"success": true, "taskId": id}));
    let t = srv.get_at(&format!("{TASKS}/{id}?f=json")).json();
    assert_eq!(t["cronSchedule"]["hour"], "7");
    let a = srv.post_form_at(&format!("{TASKS}/{id}/disable"), &[("f", "json")]);
    assert_eq!(a.json(), json!({"success": true, "taskId": id}));
    let t = srv.get_at(&format!("{TASKS}/{id}?f=json")).json();
    assert_eq!(
        (t["taskState"].as_str(), t["active"].as_bool()),
        (Some("disabled"), Some(false))
    );
    srv.post_form_at(&format!("{TASKS}/{id}/enable"), &[("f", "json")]);
    let t = srv.get_at(&format!("{TASKS}/{id}?f=json")).json();
    assert_eq!(t["taskState"], "active");
    // The HTML page of the resource.
    let page = srv.get_at(&format!("{TASKS}/{id}"));
    assert!(page.content_type.starts_with("text/html"), "{page:?}");
    assert!(page.body.contains(&id));
    let a = srv.post_form_at(&format!("{TASKS}/{id}/delete"), &[("f", "json")]);
    assert_eq!(a.json(), json!({"success": true, "taskId": id}));
    let a = srv.get_at(&format!("{TASKS}/{id}?f=json"));
    assert_eq!(a.status, 404, "{}", a.body);
}

#[test]
fn serve_records_fires_missed_while_down_as_skipped_without_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let item = add_item(&state, &printing_nb(dir.path()));
    let mut srv = Server::start(&state, &[]);
    let a = srv.post_form_at(
        &format!("{TASKS}/createTask"),
        &[
            ("itemId", item.as_str()),
            ("second", "*/2"),
            ("minute", "*"),
            ("hour", "*"),
            ("dayOfMonth", "*"),
            ("month", "*"),
            ("dayOfWeek", "?"),
            ("f", "json"),
        ],
    );
    let task = a.json()["taskId"].as_str().unwrap().to_owned();
    wait_runs(&srv, &task, Duration::from_secs(60), |runs| {
        runs.iter().any(|r| r["status"] == "succeeded")
    });
    srv.signal(libc::SIGTERM);
    assert!(srv.wait_exit(Duration::from_secs(60)).success());
    let down = chrono::Utc::now().timestamp_millis();
    // Down long enough that the gap, less 2 s at each end, holds at least two of the
    // 2-second fires whatever the machine's load (7 s left one fire on a busy machine).
    std::thread::sleep(Duration::from_secs(12));
    let srv = Server::start(&state, &[]);
    let up = chrono::Utc::now().timestamp_millis();
    let runs = wait_runs(&srv, &task, Duration::from_secs(60), |runs| {
        runs.iter()
            .any(|r| r["status"] == "succeeded" && r["scheduledTime"].as_i64().unwrap() > up)
    });
    let in_gap: Vec<&Value> = runs
        .iter()
        .filter(|r| {
            let t = r["scheduledTime"].as_i64().unwrap();
            t > down + 2000 && t < up - 2000
        })
        .collect();
    assert!(in_gap.len() >= 2, "{runs:?}");
    // At most one fire of the gap ran (the newest, still on time); the rest were
    // recorded as missed.
    let ran = in_gap.iter().filter(|r| r["status"] != "skipped").count();
    assert!(ran <= 1, "a burst: {in_gap:?}");
    let missed = in_gap
        .iter()
        .filter(|r| {
            r["status"] == "skipped"
                && r["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("skipped: missed while nbexec serve was not running")
        })
        .count();
    assert!(missed >= 1, "{in_gap:?}");
    srv.post_form_at(&format!("{TASKS}/{task}/disable"), &[("f", "json")]);
}

#[test]
fn serve_deactivates_a_task_after_five_failed_runs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let failing = write_nb(
        dir.path(),
        "failing.ipynb",
        &notebook(vec![code("raise ValueError('no data today')", &[])]),
    );
    let item = add_item(&state, &failing);
    let srv = Server::start(&state, &[]);
    let a = srv.post_form_at(
        &format!("{TASKS}/createTask"),
        &[
            ("itemId", item.as_str()),
            ("second", "*/2"),
            ("minute", "*"),
            ("hour", "*"),
            ("dayOfMonth", "*"),
            ("month", "*"),
            ("dayOfWeek", "?"),
            ("f", "json"),
        ],
    );
    let task = a.json()["taskId"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let t = loop {
        let t = srv.get_at(&format!("{TASKS}/{task}?f=json")).json();
        if t["taskState"] != "active" {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "{t}\n{}", srv.log());
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(t["taskState"], "failed", "{t}");
    assert_eq!(
        t["stateReason"],
        "deactivated after five consecutive failed runs"
    );
    assert_eq!(t["nextFireTime"], Value::Null);
    std::thread::sleep(Duration::from_secs(3));
    let runs = wait_runs(&srv, &task, Duration::from_secs(1), |_| true);
    let failed: Vec<&Value> = runs.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 5, "{runs:?}");
    assert!(failed.iter().all(|r| r["message"] == "FAILED"));
    assert!(
        runs.iter()
            .all(|r| r["status"] == "failed" || r["status"] == "skipped"),
        "nothing runs after the fifth failure: {runs:?}"
    );
}
