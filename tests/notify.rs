//! `--notify-url`: the final job JSON POSTed to a real local HTTP server, signed,
//! with retries.

mod common;

use std::time::Duration;

use common::{
    HookAnswer, HookServer, RefusingPort, job_list, job_show, nbexec, python_hmac_hex, root, stderr,
};
use serde_json::Value;

fn run_with_notify(
    state: &std::path::Path,
    url: &str,
    secret: Option<&str>,
) -> std::process::Output {
    let dir = state.parent().unwrap();
    let mut cmd = nbexec();
    cmd.arg("run")
        .arg(root().join("fixtures/example.ipynb"))
        .arg(dir.join("out.ipynb"))
        .args(["--notify-url", url, "--state-dir"])
        .arg(state);
    cmd.env_remove("NBEXEC_NOTIFY_SECRET");
    if let Some(s) = secret {
        cmd.env("NBEXEC_NOTIFY_SECRET", s);
    }
    cmd.output().unwrap()
}

fn only_job(state: &std::path::Path) -> Value {
    let jobs = job_list(state);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    job_show(state, jobs[0]["jobId"].as_str().unwrap())
}

#[test]
fn run_notify_url_posts_the_signed_final_job() {
    let hook = HookServer::start(vec![]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = run_with_notify(&state, &hook.url, Some("s3cret"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 1, "one POST once delivered");
    let req = &reqs[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/hook"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("x-nbexec-event"), Some("job.finished"));
    assert!(
        req.header("x-nbexec-delivery")
            .is_some_and(|d| d.len() == 36)
    );
    // The signature, checked with Python's own HMAC.
    assert_eq!(
        req.header("x-nbexec-signature"),
        Some(python_hmac_hex("s3cret", &req.body).as_str())
    );
    let sent: Value = serde_json::from_slice(&req.body).unwrap();
    let job = only_job(&state);
    assert_eq!(sent["jobId"], job["jobId"]);
    assert_eq!(sent["status"], "COMPLETED", "the final status is sent");
    assert!(sent["endTime"].as_i64().unwrap() > 0);
    let messages: Vec<String> = serde_json::from_value(job["messages"].clone()).unwrap();
    let expected = format!(
        "notification to {} delivered (HTTP 200, 1 attempt, signed)",
        hook.url
    );
    assert!(messages.contains(&expected), "{messages:?}");
}

#[test]
fn run_notify_url_retries_while_the_receiver_is_failing() {
    // 503, then a dropped connection, then 200.
    let hook = HookServer::start(vec![HookAnswer::Status(503), HookAnswer::Drop]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = run_with_notify(&state, &hook.url, None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 3);
    // One delivery: the same id on every attempt; unsigned without a secret.
    let ids: Vec<_> = reqs.iter().map(|r| r.header("x-nbexec-delivery")).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert!(
        reqs.iter()
            .all(|r| r.header("x-nbexec-signature").is_none())
    );
    assert!(reqs.iter().all(|r| r.body == reqs[0].body));
    let job = only_job(&state);
    let messages: Vec<String> = serde_json::from_value(job["messages"].clone()).unwrap();
    let expected = format!(
        "notification to {} delivered (HTTP 200, 3 attempts, unsigned)",
        hook.url
    );
    assert!(messages.contains(&expected), "{messages:?}");
}

#[test]
fn run_notify_url_gives_up_after_bounded_retries_and_the_run_still_succeeds() {
    let refusing = RefusingPort::new();
    let port = refusing.port;
    let url = format!("http://127.0.0.1:{port}/down");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let started = std::time::Instant::now();
    let out = run_with_notify(&state, &url, Some("k"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(60));
    let job = only_job(&state);
    assert_eq!(job["status"], "COMPLETED");
    let messages: Vec<String> = serde_json::from_value(job["messages"].clone()).unwrap();
    assert!(
        messages.iter().any(|m| m.starts_with(&format!(
            "notification to {url} failed after 4 attempts: cannot connect"
        ))),
        "{messages:?}"
    );
}

#[test]
fn run_notify_url_refuses_bad_urls_and_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = run_with_notify(&state, "ftp://127.0.0.1/x", None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: --notify-url: "),
        "{}",
        stderr(&out)
    );
    let out = nbexec()
        .arg("run")
        .arg(root().join("fixtures/example.ipynb"))
        .arg(dir.path().join("o.ipynb"))
        .args(["--notify-url", "http://127.0.0.1:9/x", "--no-record"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "error: --notify-url sends the finished job: it cannot go with --no-record"
    );
}

#[test]
fn serve_execute_notebook_notify_url_posts_the_final_job() {
    let hook = HookServer::start(vec![HookAnswer::Status(500)]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let item = common::add_item(&state, &root().join("fixtures/example.ipynb"));
    let srv = common::Server::start(&state, &[]);
    // A bad notifyUrl is refused before anything is recorded.
    let a = srv.post_form(
        "/notebooks/executeNotebook",
        &[
            ("itemId", item.as_str()),
            ("notifyUrl", "mailto:x"),
            ("f", "json"),
        ],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("notifyUrl: "), "{}", a.body);
    let id = srv.execute(
        &item,
        &serde_json::json!({}),
        &[
            ("notifyUrl", hook.url.as_str()),
            ("updatePortalItem", "false"),
        ],
    );
    let posts = hook.wait_for(2, Duration::from_secs(90));
    assert_eq!(posts.len(), 2, "a 500, then delivered: {}", srv.log());
    let sent: Value = serde_json::from_slice(&posts[1].body).unwrap();
    assert_eq!(sent["jobId"], serde_json::json!(id));
    assert_eq!(sent["status"], "COMPLETED");
    // The outcome is in the job's messages (added once the POST is done).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let job = srv.job(&id);
        let messages = job["messages"].to_string();
        if messages.contains("delivered (HTTP 200, 2 attempts, unsigned)") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_detached_run_notifies_when_it_ends() {
    let hook = HookServer::start(vec![]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = nbexec()
        .arg("run")
        .arg(root().join("fixtures/example.ipynb"))
        .arg(dir.path().join("out.ipynb"))
        .args(["--detach", "--notify-url", &hook.url, "--state-dir"])
        .arg(&state)
        .env("NBEXEC_NOTIFY_SECRET", "detached")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let posts = hook.wait_for(1, Duration::from_secs(90));
    assert_eq!(posts.len(), 1);
    let sent: Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(sent["jobId"], printed["jobId"]);
    assert_eq!(sent["status"], "COMPLETED");
    assert_eq!(
        posts[0].header("x-nbexec-signature"),
        Some(python_hmac_hex("detached", &posts[0].body).as_str())
    );
}

#[test]
fn serve_notifies_a_job_cancelled_while_it_waited() {
    let hook = HookServer::start(vec![]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let nb = common::write_nb(
        dir.path(),
        "sleepy.ipynb",
        &common::notebook(vec![
            common::code("secs = 0", &["parameters"]),
            common::code("import time\ntime.sleep(secs)", &[]),
        ]),
    );
    let item = common::add_item(&state, &nb);
    let srv = common::Server::start(&state, &["--workers", "1"]);
    let busy = srv.execute(
        &item,
        &serde_json::json!({"secs": 20}),
        &[("updatePortalItem", "false")],
    );
    srv.wait_job(&busy, Some("EXECUTING"), Duration::from_secs(60));
    let waiting = srv.execute(
        &item,
        &serde_json::json!({}),
        &[
            ("notifyUrl", hook.url.as_str()),
            ("updatePortalItem", "false"),
        ],
    );
    let a = srv.post_form(
        &format!("/notebooks/jobs/{waiting}/cancel"),
        &[("f", "json")],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let posts = hook.wait_for(1, Duration::from_secs(30));
    assert_eq!(posts.len(), 1, "{}", srv.log());
    let sent: Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(sent["jobId"], serde_json::json!(waiting));
    assert_eq!(sent["status"], "CANCELLED");
    let a = srv.post_form(&format!("/notebooks/jobs/{busy}/cancel"), &[("f", "json")]);
    assert_eq!(a.status, 200, "{}", a.body);
    srv.wait_job(&busy, None, Duration::from_secs(60));
}
