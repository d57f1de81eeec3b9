//! The `nbexec serve` HTML pages (`f=html`) in a real headless Chromium, driven over the
//! DevTools Protocol: the jobs page, a job page following its run live, the Cancel
//! button, forms without JavaScript, and escaping. Screenshots are kept under
//! `$CARGO_TARGET_TMPDIR/serve-pages/` (target/tmp/serve-pages).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::chromium::{Browser, Tab};
use common::*;
use serde_json::{Value, json};

const LIVE: Duration = Duration::from_secs(90);

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-pages");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A notebook of one cell, as an item of the store in `state`.
fn item(state: &Path, dir: &Path, name: &str, source: &str, title: &str) -> String {
    let nb = write_nb(dir, name, &notebook(vec![code(source, &[])]));
    add_item_titled(state, &nb, title)
}

/// The server's URL path of the admin root (`/admin`).
fn root_path(srv: &Server) -> String {
    let rest = srv.url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_owned()
}

/// The page's job rows: (id, status, item, owner, link).
fn job_rows(tab: &mut Tab) -> Vec<Value> {
    let rows = tab.eval(
        "[...document.querySelectorAll('table.jobs tbody tr')].map(r => ({
            id: r.cells[0].innerText.trim(),
            href: r.cells[0].querySelector('a').getAttribute('href'),
            status: r.cells[1].innerText.trim(),
            item: r.cells[2].innerText.trim(),
            owner: r.cells[3].innerText.trim(),
            start: r.cells[4].innerText.trim(),
            end: r.cells[5].innerText.trim(),
            duration: r.cells[6].innerText.trim(),
        }))",
    );
    rows.as_array().unwrap().clone()
}

fn status_text(tab: &mut Tab) -> String {
    tab.eval("document.querySelector('[data-field=status]').textContent")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// No console message, no script error, no CSP report: the page's own style and script
/// are admitted by the policy, and nothing else was attempted.
fn assert_quiet(tab: &mut Tab, what: &str) {
    let console = tab.console();
    assert!(console.is_empty(), "{what}: {console:#?}");
    let dialogs = tab.dialogs();
    assert!(dialogs.is_empty(), "{what}: dialogs {dialogs:?}");
}

#[test]
fn the_driver_sees_dialogs_console_errors_and_text() {
    // The detectors the page tests rely on, on a page that does what a served page must
    // never do.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("control.html");
    std::fs::write(
        &page,
        "<html><body><p>control text</p><script>console.error('control-error'); alert('control-alert')</script></body></html>",
    )
    .unwrap();
    let mut browser = Browser::launch();
    let mut tab = browser.tab();
    tab.goto(&format!("file://{}", page.display()));
    assert_eq!(tab.eval("document.body.innerText"), "control text");
    let dialogs = tab.dialogs();
    assert_eq!(dialogs, vec!["\"control-alert\"".to_owned()]);
    let console = tab.console();
    assert!(
        console.iter().any(|l| l.contains("control-error")),
        "{console:?}"
    );
}

#[test]
fn the_jobs_page_lists_a_finished_and_a_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let quick = item(&state, dir.path(), "quick.ipynb", "x = 1", "Quick one");
    let long = item(
        &state,
        dir.path(),
        "long.ipynb",
        "import time\ntime.sleep(120)",
        "Long one",
    );
    let srv = Server::start(&state, &["--workers", "2"]);
    let done = srv.execute(&quick, &json!({}), &[]);
    srv.wait_job(&done, Some("COMPLETED"), LIVE);
    let running = srv.execute(&long, &json!({"n": 1}), &[]);
    srv.wait_job(&running, Some("EXECUTING"), LIVE);

    let mut browser = Browser::launch();
    let mut tab = browser.tab();
    tab.goto(&srv.at("/notebooks/jobs"));
    assert_eq!(
        tab.eval("document.querySelector('header h1').innerText"),
        "nbexec Notebook Server Administrator Directory"
    );
    assert_eq!(
        tab.eval("document.querySelector('nav.crumbs').innerText"),
        "Home > notebooks > jobs"
    );
    let rows = job_rows(&mut tab);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    // Newest first: the running job, then the finished one.
    let root = root_path(&srv);
    for (row, id, status, title, item) in [
        (&rows[0], &running, "EXECUTING", "Long one", &long),
        (&rows[1], &done, "COMPLETED", "Quick one", &quick),
    ] {
        assert_eq!(row["id"], json!(id), "{row}");
        assert_eq!(row["status"], status, "{row}");
        assert_eq!(row["item"], json!(format!("{title} ({item})")), "{row}");
        assert_eq!(row["href"], json!(format!("{root}/notebooks/jobs/{id}")));
        assert!(row["start"].as_str().unwrap().starts_with("20"), "{row}");
        assert_eq!(row["owner"], "anonymous", "{row}");
    }
    assert_eq!(rows[0]["end"], "—");
    assert!(rows[0]["duration"].as_str().unwrap().ends_with("so far"));
    assert!(rows[1]["end"].as_str().unwrap().starts_with("20"));
    assert!(rows[1]["duration"].as_str().unwrap().ends_with(" s"));
    // A live job: the page follows it (script, and a <noscript> refresh).
    assert_eq!(
        tab.eval("document.querySelector('main').hasAttribute('data-live')"),
        true
    );
    // The policy comes as a header too, where frame-ancestors counts.
    let headers = tab.document_headers();
    let (_, h) = headers.last().expect("the page's response");
    let csp = h["content-security-policy"].as_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
    tab.screenshot(&shots().join("jobs.png"));
    assert_quiet(&mut tab, "jobs page");
    // Nothing but this server was asked for anything (no external asset).
    let origin = srv.url.trim_end_matches(&root).to_owned();
    let requests: Vec<String> = tab
        .take_events("Network.requestWillBeSent")
        .iter()
        .map(|e| e["params"]["request"]["url"].as_str().unwrap().to_owned())
        .collect();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|u| u.starts_with(&format!("{origin}/"))),
        "{requests:#?}"
    );

    // The list follows the running job: cancelled elsewhere, its row says so without a
    // reload.
    tab.eval("window.__nbexecMark = 'same document'");
    let a = srv.post_form(
        &format!("/notebooks/jobs/{running}/cancel"),
        &[("f", "json")],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    srv.wait_job(&running, Some("CANCELLED"), LIVE);
    tab.wait_for(
        "document.querySelector('table.jobs tbody tr:first-child [data-field=status]').textContent === 'CANCELLED'",
        LIVE,
    )
    .expect("the row shows CANCELLED");
    // The status cell changes as the event arrives; the list is then fetched again
    // and swapped in, and that one has nothing left to follow.
    tab.wait_for(
        "!document.querySelector('main').hasAttribute('data-live')",
        Duration::from_secs(10),
    )
    .expect("nothing left to follow once the list is brought up to date");
    assert_eq!(tab.eval("window.__nbexecMark"), "same document");

    // Each row links its job's page.
    tab.eval("document.querySelector('table.jobs tbody tr:nth-child(2) a').click()");
    tab.wait_for(
        &format!(
            "location.pathname === '{root}/notebooks/jobs/{done}' && document.readyState === 'complete'"
        ),
        Duration::from_secs(30),
    )
    .expect("the link opens the job's page");
    assert_eq!(status_text(&mut tab), "COMPLETED");
}

#[test]
fn a_job_page_follows_its_run_to_completed_without_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // Three cells of 3 s (and the injected one): the page, loaded early, sees the next
    // ones start.
    let nb = notebook(vec![
        code("import time\ntime.sleep(3)", &[]),
        code("time.sleep(3)", &[]),
        code("time.sleep(3)\nprint('slept')", &[]),
    ]);
    let slow = add_item_titled(&state, &write_nb(dir.path(), "slow.ipynb", &nb), "Slow one");
    let srv = Server::start(&state, &[]);
    // The browser is up before the job starts, so the page loads early in the run.
    let mut browser = Browser::launch();
    let mut tab = browser.tab();
    let id = srv.execute(&slow, &json!({"n": 7}), &[]);
    tab.goto(&srv.at(&format!("/notebooks/jobs/{id}")));
    let first = status_text(&mut tab);
    assert!(
        matches!(first.as_str(), "SUBMITTED" | "EXECUTING"),
        "the page must load while the job runs: {first}"
    );
    assert_eq!(tab.eval("!!document.getElementById('cancel')"), true);
    // A mark on this document: a reload would lose it.
    tab.eval("window.__nbexecMark = 'same document'");
    let progress = tab.wait_for(
        "/^cell [2-9] of 4$/.test(document.querySelector('[data-field=progress]').textContent)",
        LIVE,
    );
    assert!(progress.is_ok(), "no progress shown: {progress:?}");
    tab.screenshot(&shots().join("job-running.png"));
    let last = tab
        .wait_for(
            "document.querySelector('[data-field=status]').textContent === 'COMPLETED'",
            LIVE,
        )
        .map_err(|_| status_text(&mut tab));
    assert!(last.is_ok(), "the status did not reach COMPLETED: {last:?}");
    assert_eq!(tab.eval("window.__nbexecMark"), "same document");
    // It followed the job's event stream (not the polling fallback).
    let streams: Vec<String> = tab
        .take_events("Network.requestWillBeSent")
        .iter()
        .filter(|e| e["params"]["type"] == "EventSource")
        .map(|e| e["params"]["request"]["url"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        streams
            .iter()
            .any(|u| u.ends_with(&format!("/notebooks/jobs/{id}/events"))),
        "{streams:?}"
    );
    assert_eq!(
        tab.eval("performance.getEntriesByType('navigation').length"),
        1
    );
    // The page was brought up to date as a whole: end time, no Cancel, the output.
    tab.wait_for(
        "!document.getElementById('cancel')",
        Duration::from_secs(10),
    )
    .expect("the Cancel button goes once the job is finished");
    let text = tab.eval("document.body.innerText");
    let text = text.as_str().unwrap();
    assert!(!text.contains("(when the run ends)"), "{text}");
    assert!(
        !text.contains("hunter2"),
        "a secret reached the page: {text}"
    );
    let links =
        tab.eval("[...document.querySelectorAll('#artifacts a')].map(a => a.getAttribute('href'))");
    let root = root_path(&srv);
    assert_eq!(
        links,
        json!([
            format!("{root}/notebooks/jobs/{id}/log"),
            format!("{root}/notebooks/jobs/{id}/output.ipynb"),
            format!("{root}/notebooks/jobs/{id}/report.html"),
        ])
    );
    tab.screenshot(&shots().join("job.png"));
    assert_quiet(&mut tab, "job page");
    // The report link leads to the report of this run.
    tab.eval("document.querySelectorAll('#artifacts a')[2].click()");
    tab.wait_for(
        "location.pathname.endsWith('/report.html') && document.readyState === 'complete'",
        Duration::from_secs(30),
    )
    .expect("the report opens");
    let report = tab.eval("document.body.innerText");
    assert!(report.as_str().unwrap().contains("slept"), "{report}");
}

#[test]
fn the_cancel_button_cancels_a_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let long = item(
        &state,
        dir.path(),
        "long.ipynb",
        "import time\ntime.sleep(120)",
        "Long one",
    );
    let srv = Server::start(&state, &[]);
    let id = srv.execute(&long, &json!({}), &[]);
    srv.wait_job(&id, Some("EXECUTING"), LIVE);

    let mut browser = Browser::launch();
    let mut tab = browser.tab();
    let job_path = format!("{}/notebooks/jobs/{id}", root_path(&srv));
    tab.goto(&srv.at(&format!("/notebooks/jobs/{id}")));
    assert_eq!(status_text(&mut tab), "EXECUTING");
    tab.eval("document.getElementById('cancel').click()");
    // The form posts, and the answer leads back to the job's page, which shows the end.
    tab.wait_for(
        &format!(
            "location.pathname === '{job_path}' && document.readyState === 'complete' \
             && document.querySelector('[data-field=status]').textContent === 'CANCELLED'"
        ),
        LIVE,
    )
    .expect("back on the job's page, CANCELLED");
    // In the registry too (what `nbexec jobs` reads).
    let recorded = job_show(&state, &id);
    assert_eq!(recorded["status"], "CANCELLED", "{recorded}");
    assert_quiet(&mut tab, "cancelled job page");
}

#[test]
fn a_hostile_item_title_is_text() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let title = "<script>alert(1)</script>";
    let hostile = item(&state, dir.path(), "h.ipynb", "x = 1", title);
    let srv = Server::start(&state, &[]);
    let id = srv.execute(&hostile, &json!({"s": "<img src=x onerror=alert(2)>"}), &[]);
    srv.wait_job(&id, Some("COMPLETED"), LIVE);

    let mut browser = Browser::launch();
    let mut tab = browser.tab();
    for path in [
        "/notebooks/jobs".to_owned(),
        format!("/notebooks/jobs/{id}"),
    ] {
        tab.goto(&srv.at(&path));
        let text = tab.eval("document.body.innerText");
        let text = text.as_str().unwrap();
        assert!(text.contains(title), "{path}: {text}");
        assert_eq!(
            tab.eval("document.querySelectorAll('script').length"),
            0,
            "{path}: no live job, no script"
        );
        assert_eq!(
            tab.eval("document.querySelectorAll('img').length"),
            0,
            "{path}"
        );
        assert_quiet(&mut tab, &path);
    }
    let params = tab.eval("document.body.innerText");
    assert!(
        params
            .as_str()
            .unwrap()
            .contains("<img src=x onerror=alert(2)>")
    );
}

#[test]
fn execute_notebook_works_from_its_form_without_javascript() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let nb = item(
        &state,
        dir.path(),
        "p.ipynb",
        "import time\ntime.sleep(8)\nprint(greeting * 2)",
        "Greeter",
    );
    let srv = Server::start(&state, &[]);

    let mut browser = Browser::launch();
    let mut tab = browser.tab();
    tab.call(
        "Emulation.setScriptExecutionDisabled",
        json!({"value": true}),
    );
    tab.goto(&srv.at("/notebooks"));
    // From the directory to the operation, by its link.
    tab.eval("[...document.querySelectorAll('a')].find(a => a.textContent === 'executeNotebook').click()");
    tab.wait_for(
        "location.pathname.endsWith('/notebooks/executeNotebook') && document.readyState === 'complete'",
        Duration::from_secs(30),
    )
    .expect("the operation's page");
    tab.screenshot(&shots().join("execute-notebook.png"));
    // Fill the form (the browser's own form submission; page scripts are off).
    tab.eval(&format!(
        "document.getElementById('f-itemId').value = '{nb}';
         document.getElementById('f-notebookParameters').value = '{{\"greeting\": \"hi\"}}';
         document.querySelector('form.op button[type=submit]').click()"
    ));
    let link = tab
        .wait_for(
            "document.readyState === 'complete' && [...document.querySelectorAll('#result a')].map(a => a.getAttribute('href'))[0]",
            Duration::from_secs(30),
        )
        .expect("the answer links the job");
    let link = link.as_str().unwrap().to_owned();
    let id = link.rsplit('/').next().unwrap().to_owned();
    assert!(id.starts_with('j'), "{link}");
    // The job's page while it runs, without script: its <noscript> refresh brings the
    // end of the run.
    tab.eval("document.querySelector('#result a').click()");
    tab.wait_for(
        &format!("location.pathname.endsWith('/{id}') && document.readyState === 'complete'"),
        Duration::from_secs(30),
    )
    .expect("the job's page");
    let first = status_text(&mut tab);
    assert!(
        matches!(first.as_str(), "SUBMITTED" | "EXECUTING"),
        "the page must load while the job runs: {first}"
    );
    tab.wait_for(
        "document.querySelector('[data-field=status]').textContent === 'COMPLETED'",
        LIVE,
    )
    .expect("the refreshed page shows COMPLETED");
    let job = srv.wait_job(&id, Some("COMPLETED"), LIVE);
    assert_eq!(job["inputs"]["itemId"], json!(nb), "{job}");
    assert_eq!(
        job["inputs"]["notebookParameters"],
        json!({"greeting": "hi"}),
        "{job}"
    );
    let out = srv.get(&format!("/notebooks/jobs/{id}/output.ipynb"));
    assert!(out.body.contains("hihi"), "{}", out.body);
}

#[test]
fn the_tasks_pages_create_list_show_runs_and_disable_a_task() {
    const TASKS: &str = "/portal/sharing/rest/community/users/alice/tasks";
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let nb = item(
        &state,
        dir.path(),
        "tick.ipynb",
        "print('tick')",
        "Tick notebook",
    );
    let srv = Server::start(&state, &[]);
    let tasks_url = format!("{}{TASKS}", srv.origin());

    let mut browser = Browser::launch();
    let mut tab = browser.tab();
    // createTask from the tasks page's link, through its form.
    tab.goto(&tasks_url);
    assert!(
        tab.eval("document.body.innerText")
            .as_str()
            .unwrap()
            .contains("No tasks."),
        "an empty list first"
    );
    tab.eval(
        "[...document.querySelectorAll('a')].find(a => a.textContent === 'createTask').click()",
    );
    tab.wait_for(
        "location.pathname.endsWith('/tasks/createTask') && document.readyState === 'complete' \
         && !!document.getElementById('f-second')",
        Duration::from_secs(30),
    )
    .expect("the createTask form");
    tab.eval(&format!(
        "const set = (n, v) => document.getElementById('f-' + n).value = v;
         set('title', 'Every <two> seconds'); set('itemId', '{nb}'); set('second', '*/2');
         set('minute', '*'); set('hour', '*'); set('dayOfMonth', '*'); set('month', '*');
         set('dayOfWeek', '?'); set('timeZone', 'Europe/Berlin');
         document.querySelector('form.op button[type=submit]').click()"
    ));
    // The answer leads to the new task's page.
    let path = tab
        .wait_for(
            &format!(
                "document.readyState === 'complete' && location.pathname.startsWith('{TASKS}/') \
                 && !!document.getElementById('runs-heading') && location.pathname"
            ),
            Duration::from_secs(30),
        )
        .expect("on the task's page");
    let path = path.as_str().unwrap().to_owned();
    let id = path.rsplit('/').next().unwrap().to_owned();
    let json = srv.get_at(&format!("{TASKS}/{id}?f=json")).json();
    assert_eq!(json["title"], "Every <two> seconds", "{json}");
    assert_eq!(json["taskState"], "active", "{json}");
    assert_eq!(json["timeZone"], "Europe/Berlin", "{json}");

    // The list shows it: title linked, item, schedule, zone, state.
    tab.goto(&tasks_url);
    let rows = tab.eval(
        "[...document.querySelectorAll('#tasks tbody tr')].map(r => [...r.cells].map(c => c.innerText.trim()) \
           .concat([r.cells[0].querySelector('a').getAttribute('href')]))",
    );
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = rows[0].as_array().unwrap();
    assert_eq!(row[0], "Every <two> seconds");
    assert_eq!(
        row[1],
        format!("Tick notebook ({nb})"),
        "the item's own title"
    );
    assert_eq!(row[2], "*/2 * * * * ?");
    assert_eq!(row[3], "Europe/Berlin");
    assert_eq!(row[4], "active");
    assert_eq!(row[8], path.as_str());
    assert_quiet(&mut tab, "tasks page");

    // Its page shows a run once it fired and its job ended (reloaded, bounded).
    let task_url = format!("{}{path}", srv.origin());
    let deadline = std::time::Instant::now() + LIVE;
    let job = loop {
        tab.goto(&task_url);
        let done = tab.eval(
            "(() => { const r = document.querySelector('#runs tbody tr .status-succeeded');
                      return r ? r.closest('tr').querySelector('a').getAttribute('href') : null })()",
        );
        if let Some(href) = done.as_str() {
            break href.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no succeeded run on the page: {}\n{}",
            tab.eval("document.body.innerText"),
            srv.log()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let job_id = job.rsplit('/').next().unwrap();
    let recorded = srv.wait_job(job_id, Some("COMPLETED"), Duration::from_secs(10));
    assert_eq!(recorded["inputs"]["taskId"], json!(id), "{recorded}");
    assert!(
        tab.eval("document.querySelector('#runs time') !== null")
            .as_bool()
            .unwrap(),
        "the run's scheduled time"
    );
    tab.screenshot(&shots().join("serve-tasks.png"));
    assert_quiet(&mut tab, "task page");

    // Disable: a POST form; back on the task's page, paused, with Enable offered.
    tab.eval("document.getElementById('disable').click()");
    tab.wait_for(
        &format!(
            "location.pathname === '{path}' && document.readyState === 'complete' \
             && !!document.getElementById('enable')"
        ),
        Duration::from_secs(30),
    )
    .expect("back on the task's page, with Enable");
    assert_eq!(status_text(&mut tab), "disabled");
    let json = srv.get_at(&format!("{TASKS}/{id}?f=json")).json();
    assert_eq!(json["taskState"], "disabled", "{json}");
    assert_eq!(json["active"], false, "{json}");
    assert_quiet(&mut tab, "disabled task page");
}
