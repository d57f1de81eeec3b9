//! `nbexec serve`: ArcGIS Notebook Server's executeNotebook and jobs resources over
//! real HTTP, against the real server binary on an ephemeral loopback port, running
//! notebooks on the project's Python kernel.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A notebook with a `parameters` cell (`x = 1`, `secs = 0`) that prints x and
/// sleeps `secs`.
fn param_nb(dir: &Path) -> std::path::PathBuf {
    write_nb(
        dir,
        "param.ipynb",
        &notebook(vec![
            code("x = 1\nsecs = 0", &["parameters"]),
            code("import time\ntime.sleep(secs)\nprint('x is', x)", &[]),
        ]),
    )
}

/// A server with one item (the parameters notebook): (server, item id).
fn server_with_item(dir: &Path, args: &[&str]) -> (Server, String) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let item = add_item(&state, &param_nb(dir));
    (Server::start(&state, args), item)
}

fn assert_error_shape(a: &Answer, status: u16, code: u64) -> Value {
    assert_eq!(a.status, status, "{}", a.body);
    assert!(a.content_type.starts_with("application/json"), "{a:?}");
    let v = a.json();
    assert_eq!(v["error"]["code"], json!(code), "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(v["error"]["details"].is_array(), "{v}");
    v
}

/// Every job in the registry, as `nbexec jobs` lists them.
fn registry_jobs(state: &Path) -> Vec<Value> {
    job_list(state)
}

/// The injected parameters cell of a notebook.
fn injected(nb: &Value) -> &Value {
    nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["metadata"]["tags"]
                .to_string()
                .contains("injected-parameters")
        })
        .unwrap_or_else(|| panic!("no injected cell: {nb}"))
}

/// The stream texts of the executed cells of a notebook.
fn all_stdout(nb: &Value) -> String {
    nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| stream_text(c, "stdout"))
        .collect()
}

#[test]
fn every_route_answers_json_and_pjson() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = server_with_item(dir.path(), &["--workers", "1"]);
    for f in ["json", "pjson"] {
        let root = srv.get(&format!("?f={f}"));
        assert_eq!(root.status, 200);
        assert!(root.content_type.starts_with("application/json"));
        assert_eq!(
            root.json(),
            json!({"version": "11.4", "currentVersion": "11.4", "resources": ["notebooks", "system"]})
        );
        // pjson is the same value, pretty.
        assert_eq!(root.body.contains('\n'), f == "pjson", "{}", root.body);
        let nbs = srv.get(&format!("/notebooks?f={f}")).json();
        assert_eq!(nbs["operations"], json!(["executeNotebook"]));
        assert_eq!(nbs["resources"], json!(["jobs"]));
        assert_eq!(nbs["notebooks"], json!([]));
    }
    // POST with a form works wherever GET does.
    let posted = srv.post_form("", &[("f", "json")]);
    assert_eq!(posted.json()["currentVersion"], "11.4");

    let id = srv.execute(&item, &json!({"x": 42}), &[]);
    assert!(id.starts_with('j') && id.len() == 33, "{id}");
    let job = srv.wait_job(&id, None, Duration::from_secs(120));
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["inputs"]["itemId"], json!(item));
    assert_eq!(job["inputs"]["notebookParameters"], json!({"x": 42}));
    assert_eq!(job["inputs"]["updatePortalItem"], json!(true));
    assert_eq!(job["inputs"]["saveInjectedParameters"], json!(false));
    assert!(job["endTime"].as_i64().unwrap() >= job["startTime"].as_i64().unwrap());
    assert_eq!(job["results"]["exitCode"], json!(0));
    assert_eq!(
        job["results"]["outputNotebookUrl"],
        json!(format!("{}/notebooks/jobs/{id}/output.ipynb", srv.url))
    );
    // A client learns URLs, not where the server keeps its files.
    let state = srv.state.to_string_lossy().into_owned();
    assert!(!job.to_string().contains(&state), "{job}");

    // The list, both names, pretty too; paging.
    for path in ["/notebooks/jobs", "/system/jobs"] {
        for f in ["json", "pjson"] {
            let list = srv.get(&format!("{path}?f={f}")).json();
            let jobs = list["asyncNotebookJobs"].as_array().unwrap();
            assert_eq!(jobs.len(), 1, "{list}");
            assert_eq!(jobs[0]["jobId"], json!(id));
            assert_eq!(jobs[0]["name"], "executeNotebook");
            assert_eq!(jobs[0]["status"], "COMPLETED");
        }
        let page2 = srv.get(&format!("{path}?f=json&start=2&num=10")).json();
        assert_eq!(page2["asyncNotebookJobs"], json!([]));
    }
    let alias = srv.get(&format!("/system/jobs/{id}?f=pjson")).json();
    assert_eq!(alias["jobId"], json!(id));

    // The artifacts: the executed notebook keeps the injected cell (it is the record).
    let out = srv.get(&format!("/notebooks/jobs/{id}/output.ipynb"));
    assert_eq!(out.status, 200);
    let nb: Value = serde_json::from_str(&out.body).unwrap();
    assert!(all_stdout(&nb).contains("x is 42"), "{nb}");
    assert!(
        nb["cells"][1]["metadata"]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("injected-parameters"))
    );
    let report = srv.get(&format!("/notebooks/jobs/{id}/report.html"));
    assert_eq!(report.status, 200);
    assert!(report.content_type.starts_with("text/html"));
    assert!(report.body.contains("x is 42"), "{}", report.body);
    let log = srv.get(&format!("/notebooks/jobs/{id}/log"));
    assert_eq!(log.status, 200);
    assert!(log.body.contains("x is 42"), "{}", log.body);
    let log_json = srv.get(&format!("/notebooks/jobs/{id}/log?f=json")).json();
    assert!(log_json["log"].as_str().unwrap().contains("x is 42"));
    // Events of a finished job: its status, then the stream ends.
    let events = srv.get(&format!("/notebooks/jobs/{id}/events"));
    assert_eq!(events.status, 200);
    assert!(events.content_type.starts_with("text/event-stream"));
    assert!(
        events.body.contains("event: status") && events.body.contains("COMPLETED"),
        "{}",
        events.body
    );

    // Cancel of a finished job, on both names.
    for path in ["/notebooks/jobs", "/system/jobs"] {
        let a = srv.post_form(&format!("{path}/{id}/cancel"), &[("f", "json")]);
        assert_eq!(
            a.json(),
            json!({"status": "error", "messages": [format!("Unable to cancel job :[{id}]")], "code": 500})
        );
    }
    let health = srv.get_url(&format!("{}/healthz", srv.url.trim_end_matches("/admin")));
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));

    // deleteAll removes finished jobs.
    let del = srv
        .post_form("/system/jobs/deleteAll", &[("f", "json")])
        .json();
    assert_eq!(del["status"], "success");
    assert_eq!(del["deleted"], json!(1));
    assert_error_shape(&srv.get(&format!("/notebooks/jobs/{id}?f=json")), 404, 404);
    assert!(registry_jobs(&srv.state).is_empty());
}

#[test]
fn bad_requests_get_the_error_shape_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = server_with_item(dir.path(), &["--workers", "1"]);
    let exec = "/notebooks/executeNotebook";

    // Missing itemId (form and JSON body).
    let v = assert_error_shape(&srv.post_form(exec, &[("f", "json")]), 400, 400);
    assert!(
        v["error"]["details"][0]
            .as_str()
            .unwrap()
            .contains("itemId"),
        "{v}"
    );
    assert_error_shape(&srv.post_json(exec, &json!({"f": "json"})), 400, 400);
    // Unknown item: the 404 of the spec, exactly.
    let a = srv.post_form(
        exec,
        &[
            ("itemId", "0123456789abcdef0123456789abcdef"),
            ("f", "json"),
        ],
    );
    assert_eq!(a.status, 404);
    assert_eq!(
        a.json(),
        json!({"error": {"code": 404, "message": "Item does not exist or is inaccessible.", "details": []}})
    );
    let a = srv.post_form(exec, &[("itemId", "../../etc"), ("f", "json")]);
    assert_error_shape(&a, 404, 404);
    // notebookParameters: invalid JSON, not an object.
    let a = srv.post_form(
        exec,
        &[
            ("itemId", &item),
            ("notebookParameters", "{\"x\": "),
            ("f", "json"),
        ],
    );
    let v = assert_error_shape(&a, 400, 400);
    assert!(
        v["error"]["details"][0]
            .as_str()
            .unwrap()
            .starts_with("notebookParameters: not valid JSON"),
        "{v}"
    );
    let a = srv.post_form(
        exec,
        &[
            ("itemId", &item),
            ("notebookParameters", "[1, 2]"),
            ("f", "json"),
        ],
    );
    assert_error_shape(&a, 400, 400);
    let a = srv.post_json(
        exec,
        &json!({"itemId": item, "notebookParameters": 5, "f": "json"}),
    );
    assert_error_shape(&a, 400, 400);
    // A bad FeatureSet: the details name the parameter and the problem.
    let bad_fs = json!({"parcels": {"geometryType": "esriGeometryPoint", "spatialReference": {"wkid": 4326},
                        "features": [{"geometry": {"x": "east", "y": 1}, "attributes": {}}]}});
    let a = srv.post_json(
        exec,
        &json!({"itemId": item, "notebookParameters": bad_fs, "f": "json"}),
    );
    let v = assert_error_shape(&a, 400, 400);
    let detail = v["error"]["details"][0].as_str().unwrap();
    assert!(
        detail.contains("parcels") && detail.contains("feature 0"),
        "{v}"
    );
    // A bad flag.
    let a = srv.post_form(
        exec,
        &[
            ("itemId", &item),
            ("updatePortalItem", "maybe"),
            ("f", "json"),
        ],
    );
    assert_error_shape(&a, 400, 400);
    // An unknown kernel.
    let a = srv.post_form(
        exec,
        &[
            ("itemId", &item),
            ("kernelName", "no-such-kernel"),
            ("f", "json"),
        ],
    );
    assert_error_shape(&a, 400, 400);
    // Unknown f, anywhere.
    for path in [
        "?f=xml",
        "/notebooks?f=yaml",
        "/notebooks/jobs?f=csv",
        "/notebooks/executeNotebook?f=txt",
    ] {
        let v = assert_error_shape(&srv.get(path), 400, 400);
        assert!(
            v["error"]["details"][0].as_str().unwrap().contains("f:"),
            "{v}"
        );
    }
    // An oversized body: 413 in the shape.
    // (A raw request: the server answers on the announced length, before the body
    // is sent, and closes; an HTTP client still writing would see a broken pipe.)
    let a = srv.raw_post_head(exec, 33 * 1024 * 1024);
    assert_error_shape(&a, 413, 413);
    // Invalid JSON body.
    let a = srv.send_body(exec, "application/json", "{not json");
    assert_error_shape(&a, 400, 400);
    // Unknown routes.
    assert_error_shape(&srv.get("/nothing/here?f=json"), 404, 404);
    assert_error_shape(&srv.get("/notebooks/jobs/jnosuchjob?f=json"), 404, 404);

    // Nothing ran, nothing was recorded.
    assert!(
        registry_jobs(&srv.state).is_empty(),
        "{:?}",
        registry_jobs(&srv.state)
    );
    let serve_dir = srv.state.join("serve");
    let left: Vec<_> = std::fs::read_dir(&serve_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // And the item is untouched.
    assert_eq!(
        item_record(&srv.state, &item)["revision"],
        item_record(&srv.state, &item)["created"]
    );
}

#[test]
fn cancel_running_queued_finished_and_unknown_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = server_with_item(dir.path(), &["--workers", "1"]);
    let running = srv.execute(&item, &json!({"secs": 60, "x": "long"}), &[]);
    srv.wait_job(&running, Some("EXECUTING"), Duration::from_secs(60));
    let queued = srv.execute(&item, &json!({"x": "queued"}), &[]);
    assert_eq!(srv.job(&queued)["status"], "SUBMITTED");

    // Queued: CANCELLED at once, and it never runs.
    let a = srv.post_form(
        &format!("/notebooks/jobs/{queued}/cancel"),
        &[("f", "json")],
    );
    assert_eq!(a.json(), json!({"status": "success"}), "{}", a.body);
    let q = srv.job(&queued);
    assert_eq!(q["status"], "CANCELLED", "{q}");
    // Running: interrupted, CANCELLED, its notebook saved.
    let a = srv.post_form(
        &format!("/notebooks/jobs/{running}/cancel"),
        &[("f", "json")],
    );
    assert_eq!(a.json(), json!({"status": "success"}), "{}", a.body);
    let r = srv.wait_job(&running, None, Duration::from_secs(60));
    assert_eq!(r["status"], "CANCELLED", "{r}");
    let out = srv.get(&format!("/notebooks/jobs/{running}/output.ipynb"));
    assert_eq!(out.status, 200);
    let nb: Value = serde_json::from_str(&out.body).unwrap();
    assert!(source(injected(&nb)).contains("x = \"long\""), "{nb}");
    assert!(
        r["messages"].to_string().to_lowercase().contains("cancel"),
        "{r}"
    );
    // The item was not updated by a cancelled run.
    assert_eq!(
        item_record(&srv.state, &item)["revision"],
        item_record(&srv.state, &item)["created"]
    );
    // The queued job still has not run (the worker was free for a while now).
    std::thread::sleep(Duration::from_millis(500));
    let q = srv.job(&queued);
    assert_eq!(q["status"], "CANCELLED", "{q}");
    assert!(
        !srv.state
            .join("serve")
            .join(&queued)
            .join("output.ipynb")
            .exists()
    );
    assert!(
        q["messages"].to_string().contains("before it started"),
        "{q}"
    );
    // Finished: the ArcGIS operation error.
    let a = srv.post_form(
        &format!("/notebooks/jobs/{running}/cancel"),
        &[("f", "json")],
    );
    assert_eq!(
        a.json(),
        json!({"status": "error", "messages": [format!("Unable to cancel job :[{running}]")], "code": 500})
    );
    // Unknown: 404 in the error shape.
    assert_error_shape(
        &srv.post_form("/notebooks/jobs/jdoesnotexist/cancel", &[("f", "json")]),
        404,
        404,
    );
}

#[test]
fn nbexec_jobs_lists_and_cancels_server_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = server_with_item(dir.path(), &["--workers", "1"]);
    let running = srv.execute(&item, &json!({"secs": 60}), &[]);
    srv.wait_job(&running, Some("EXECUTING"), Duration::from_secs(60));
    let queued = srv.execute(&item, &json!({}), &[]);
    let listed: Vec<String> = job_list(&srv.state)
        .iter()
        .map(|j| j["jobId"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        listed.contains(&running) && listed.contains(&queued),
        "{listed:?}"
    );
    let shown = job_show(&srv.state, &queued);
    assert_eq!(shown["status"], "SUBMITTED");
    assert_eq!(shown["inputs"]["itemId"], json!(item));
    // `nbexec jobs cancel` of the queued job, then of the running one.
    let (code, text) = jobs_cmd(&srv.state, &["cancel", &queued, "-f", "json"]);
    assert_eq!(code, Some(0), "{text}");
    let q = srv.wait_job(&queued, None, Duration::from_secs(30));
    assert_eq!(q["status"], "CANCELLED", "{q}");
    let (code, text) = jobs_cmd(&srv.state, &["cancel", &running, "-f", "json"]);
    assert_eq!(code, Some(0), "{text}");
    let r = srv.wait_job(&running, None, Duration::from_secs(60));
    assert_eq!(r["status"], "CANCELLED", "{r}");
    assert!(
        !srv.state
            .join("serve")
            .join(&queued)
            .join("output.ipynb")
            .exists()
    );
    // The server is still up (the cancel's SIGUSR1 did not kill it).
    assert_eq!(srv.get("?f=json").status, 200);
}

#[test]
fn update_portal_item_and_save_injected_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = server_with_item(dir.path(), &["--workers", "1"]);
    let before = item_record(&srv.state, &item);
    let original =
        std::fs::read(srv.state.join("items").join(&item).join("notebook.ipynb")).unwrap();

    // updatePortalItem=false: the item is untouched; the job keeps its notebook.
    let id = srv.execute(
        &item,
        &json!({"x": "kept apart"}),
        &[("updatePortalItem", "false")],
    );
    let job = srv.wait_job(&id, None, Duration::from_secs(120));
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["inputs"]["updatePortalItem"], json!(false));
    assert_eq!(item_record(&srv.state, &item), before);
    assert_eq!(
        std::fs::read(srv.state.join("items").join(&item).join("notebook.ipynb")).unwrap(),
        original
    );

    // Default (true), saveInjectedParameters default false: the item gets the
    // executed notebook without the injected cell; the revision advances.
    let id = srv.execute(&item, &json!({"x": "first"}), &[]);
    let job = srv.wait_job(&id, None, Duration::from_secs(120));
    assert_eq!(job["status"], "COMPLETED", "{job}");
    let after = item_record(&srv.state, &item);
    assert!(
        after["revision"].as_i64() > before["revision"].as_i64(),
        "{after}"
    );
    assert!(
        after["modified"].as_i64() > before["modified"].as_i64(),
        "{after}"
    );
    let nb = item_notebook(&srv.state, &item);
    assert!(all_stdout(&nb).contains("x is first"), "{nb}");
    assert!(
        !nb["cells"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["metadata"]["tags"]
                .to_string()
                .contains("injected-parameters")),
        "{nb}"
    );
    assert!(
        job["messages"].to_string().contains("updated to revision"),
        "{job}"
    );
    // The job's own copy keeps the injected cell.
    let own = read_nb(&srv.state.join("serve").join(&id).join("output.ipynb"));
    assert!(source(injected(&own)).contains("x = \"first\""), "{own}");

    // saveInjectedParameters=true: the item keeps the injected cell.
    let id = srv.execute(
        &item,
        &json!({"x": "second"}),
        &[("saveInjectedParameters", "true")],
    );
    let job = srv.wait_job(&id, None, Duration::from_secs(120));
    assert_eq!(job["status"], "COMPLETED", "{job}");
    let again = item_record(&srv.state, &item);
    assert!(
        again["revision"].as_i64() > after["revision"].as_i64(),
        "{again}"
    );
    let nb = item_notebook(&srv.state, &item);
    assert!(source(injected(&nb)).contains("x = \"second\""), "{nb}");
    assert!(all_stdout(&nb).contains("x is second"), "{nb}");
}

#[test]
fn the_later_finisher_wins_and_says_it_replaced_a_newer_revision() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = server_with_item(dir.path(), &["--workers", "2"]);
    // Both start from the same revision; the slow one finishes last.
    let slow = srv.execute(&item, &json!({"x": "slow", "secs": 4}), &[]);
    let fast = srv.execute(&item, &json!({"x": "fast"}), &[]);
    let f = srv.wait_job(&fast, None, Duration::from_secs(120));
    assert_eq!(f["status"], "COMPLETED", "{f}");
    let s = srv.wait_job(&slow, None, Duration::from_secs(120));
    assert_eq!(s["status"], "COMPLETED", "{s}");
    assert!(!f["messages"].to_string().contains("had changed"), "{f}");
    assert!(
        s["messages"]
            .to_string()
            .contains("had changed since this job started"),
        "{s}"
    );
    let nb = item_notebook(&srv.state, &item);
    assert!(all_stdout(&nb).contains("x is slow"), "{nb}");
}

#[test]
fn a_hundred_submissions_at_once_none_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = server_with_item(dir.path(), &["--workers", "2", "--max-queue", "20"]);
    let url = srv.at("/notebooks/executeNotebook");
    let answers: Vec<(u16, Value)> = srv.rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..100 {
            let http = srv.http.clone();
            let url = url.clone();
            let item = item.clone();
            tasks.push(tokio::spawn(async move {
                let params = json!({"x": i}).to_string();
                let resp = http
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!(
                        "itemId={item}&f=json&notebookParameters={}",
                        form_encode(&params)
                    ))
                    .send()
                    .await
                    .expect("the server answers");
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.expect("a JSON answer");
                (status, body)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let accepted: Vec<String> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v["jobId"].as_str().unwrap().to_owned())
        .collect();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(accepted.len() + refused.len(), 100, "{answers:?}");
    assert!(accepted.len() >= 20, "{} accepted", accepted.len());
    assert!(!refused.is_empty(), "a queue of 20 took 100 submissions");
    for v in &refused {
        assert_eq!(v["error"]["code"], json!(503), "{v}");
    }
    for id in &accepted {
        let job = srv.wait_job(id, None, Duration::from_secs(600));
        assert_eq!(job["status"], "COMPLETED", "{job}");
    }
    // Exactly the accepted jobs are recorded: none lost, none extra.
    let mut recorded: Vec<String> = job_list(&srv.state)
        .iter()
        .map(|j| j["jobId"].as_str().unwrap().to_owned())
        .collect();
    let mut want = accepted.clone();
    recorded.sort();
    want.sort();
    assert_eq!(recorded, want);
}

/// The server's kernels: its child processes running ipykernel, and theirs.
fn kernels_of(pid: i32) -> Vec<i32> {
    let mut all = Vec::new();
    let mut todo = children_of(pid);
    while let Some(p) = todo.pop() {
        todo.extend(children_of(p));
        all.push(p);
    }
    all.into_iter()
        .filter(|p| process_shows(*p, "ipykernel"))
        .collect()
}

#[test]
fn after_kill_9_a_restarted_server_settles_every_job() {
    let dir = tempfile::tempdir().unwrap();
    let (mut srv, item) = server_with_item(dir.path(), &["--workers", "1"]);
    let state = srv.state.clone();
    let running = srv.execute(&item, &json!({"secs": 60, "x": "interrupted"}), &[]);
    srv.wait_job(&running, Some("EXECUTING"), Duration::from_secs(60));
    let queued: Vec<String> = (0..2)
        .map(|i| srv.execute(&item, &json!({"x": format!("requeued {i}")}), &[]))
        .collect();
    let kernels = kernels_of(srv.pid());
    assert!(!kernels.is_empty(), "the running job has a kernel");
    srv.signal(libc::SIGKILL);
    srv.wait_exit(Duration::from_secs(10));
    // The kernels of the killed server do not survive it.
    for pid in &kernels {
        assert_pid_gone(*pid);
    }
    // Read from the command line meanwhile: the running job is settled FAILED, the
    // queued ones wait for the next server.
    let r = job_show(&state, &running);
    assert_eq!(r["status"], "FAILED", "{r}");
    assert!(
        r["messages"]
            .to_string()
            .contains("the server stopped during the run"),
        "{r}"
    );
    for id in &queued {
        assert_eq!(job_show(&state, id)["status"], "SUBMITTED");
    }
    drop(srv);

    let srv = Server::start(&state, &["--workers", "1"]);
    for id in &queued {
        let job = srv.wait_job(id, None, Duration::from_secs(120));
        assert_eq!(job["status"], "COMPLETED", "{job}");
        assert!(job["messages"].to_string().contains("re-queued"), "{job}");
    }
    let r = srv.job(&running);
    assert_eq!(r["status"], "FAILED", "{r}");
    // The item store holds a whole notebook: the last re-queued run's.
    let nb = item_notebook(&state, &item);
    assert!(all_stdout(&nb).contains("x is requeued"), "{nb}");
}

#[test]
fn a_killed_server_queued_jobs_are_re_queued_even_unread() {
    // Nobody reads the registry between the two servers: the restart alone
    // settles the running job with the server's message.
    let dir = tempfile::tempdir().unwrap();
    let (mut srv, item) = server_with_item(dir.path(), &["--workers", "1"]);
    let state = srv.state.clone();
    let running = srv.execute(&item, &json!({"secs": 60}), &[]);
    srv.wait_job(&running, Some("EXECUTING"), Duration::from_secs(60));
    let queued = srv.execute(&item, &json!({"x": "after restart"}), &[]);
    srv.signal(libc::SIGKILL);
    srv.wait_exit(Duration::from_secs(10));
    drop(srv);
    let srv = Server::start(&state, &["--workers", "1"]);
    let r = srv.job(&running);
    assert_eq!(r["status"], "FAILED", "{r}");
    assert!(
        r["messages"]
            .to_string()
            .contains("the server stopped during the run"),
        "{r}"
    );
    let q = srv.wait_job(&queued, None, Duration::from_secs(120));
    assert_eq!(q["status"], "COMPLETED", "{q}");
}

#[test]
fn sigterm_drains_finishing_or_cancelling_running_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut srv, item) =
        server_with_item(dir.path(), &["--workers", "2", "--shutdown-grace", "3"]);
    let state = srv.state.clone();
    // One finishes within the grace period, one does not.
    let short = srv.execute(&item, &json!({"secs": 1, "x": "short"}), &[]);
    let long = srv.execute(&item, &json!({"secs": 120, "x": "long"}), &[]);
    srv.wait_job(&short, Some("EXECUTING"), Duration::from_secs(60));
    srv.wait_job(&long, Some("EXECUTING"), Duration::from_secs(60));
    let kernels = kernels_of(srv.pid());
    // A client watching the long job's events must not hold the server up.
    let events_url = srv.at(&format!("/notebooks/jobs/{long}/events"));
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = http_client(Duration::from_secs(100));
            let mut resp = client.get(&events_url).send().await.unwrap();
            let mut text = String::new();
            let _ = tx.send(());
            while let Ok(Some(chunk)) = resp.chunk().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
            text
        })
    });
    rx.recv_timeout(Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    srv.signal(libc::SIGTERM);
    let status = srv.wait_exit(Duration::from_secs(60));
    let seen = watcher.join().unwrap();
    assert!(seen.contains("EXECUTING"), "{seen}");
    assert_eq!(status.code(), Some(0), "{}", srv.log());
    let s = job_show(&state, &short);
    assert_eq!(s["status"], "COMPLETED", "{s}");
    let l = job_show(&state, &long);
    assert_eq!(l["status"], "CANCELLED", "{l}");
    assert!(l["messages"].to_string().contains("shut down"), "{l}");
    // Every notebook saved, no kernel left (the warm ones too).
    let out = read_nb(&state.join("serve").join(&long).join("output.ipynb"));
    assert!(source(injected(&out)).contains("x = \"long\""), "{out}");
    assert_eq!(out["metadata"]["nbexec"]["status"], "cancelled");
    for pid in &kernels {
        assert_pid_gone(*pid);
    }
}

#[test]
fn events_stream_a_jobs_status_and_cells_live_and_end_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = server_with_item(dir.path(), &["--workers", "1"]);
    // The worker is busy, so the watched job is still queued when watched.
    let blocker = srv.execute(&item, &json!({"secs": 2}), &[]);
    srv.wait_job(&blocker, Some("EXECUTING"), Duration::from_secs(60));
    let id = srv.execute(&item, &json!({"x": "streamed"}), &[]);
    let url = srv.at(&format!("/notebooks/jobs/{id}/events"));
    let text = srv.rt.block_on(async {
        let mut resp = srv.http.get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let mut text = String::new();
        // The stream ends by itself when the job finishes (bounded by the client's
        // 60 s timeout).
        while let Ok(Some(chunk)) = resp.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    });
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_owned(), serde_json::from_str(data).ok()?))
        })
        .collect();
    let statuses: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "status")
        .map(|(_, d)| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["SUBMITTED", "EXECUTING", "COMPLETED"], "{text}");
    let cells: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "cell")
        .map(|(_, d)| d)
        .collect();
    assert!(cells.iter().any(|c| c["status"] == "running"), "{text}");
    assert!(cells.iter().any(|c| c["status"] == "completed"), "{text}");
    assert!(
        events.iter().any(|(n, d)| n == "output"
            && d["text"]
                .as_str()
                .is_some_and(|t| t.contains("x is streamed"))),
        "{text}"
    );
}

#[test]
fn resources_default_to_html() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, _item) = server_with_item(dir.path(), &["--workers", "1"]);
    for path in [
        "",
        "/notebooks",
        "/notebooks/jobs",
        "/notebooks/executeNotebook",
    ] {
        let a = srv.get(path);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert!(a.content_type.starts_with("text/html"), "{path}: {a:?}");
    }
}

#[test]
fn serve_runs_jobs_through_a_gateway() {
    let gw = KernelGateway::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let item = add_item(&state, &param_nb(dir.path()));
    let srv = Server::start_with_env(
        &state,
        &["--workers", "1", "--gateway-url", &gw.url],
        &[("JUPYTER_GATEWAY_AUTH_TOKEN", &gw.token)],
    );
    let id = srv.execute(&item, &json!({"x": "remote"}), &[]);
    let job = srv.wait_job(&id, None, Duration::from_secs(120));
    assert_eq!(job["status"], "COMPLETED", "{job}\n{}", srv.log());
    assert_eq!(job["results"]["gateway"], json!(gw.url), "{job}");
    let nb = item_notebook(&state, &item);
    assert!(all_stdout(&nb).contains("x is remote"), "{nb}");
    drop(srv);
    gw.assert_no_kernels();
}

#[test]
fn items_add_list_rm_and_serve_item() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let nb = param_nb(dir.path());
    let out = nbexec()
        .args(["items", "add"])
        .arg(&nb)
        .args([
            "--title",
            "My <b>report</b>",
            "--owner",
            "alice",
            "--state-dir",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_owned();
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{id}"
    );
    let rec = item_record(&state, &id);
    assert_eq!(rec["id"], json!(id));
    assert_eq!(rec["title"], "My <b>report</b>");
    assert_eq!(rec["owner"], "alice");
    assert_eq!(rec["type"], "Notebook");
    assert_eq!(item_notebook(&state, &id), read_nb(&nb));
    let list = nbexec()
        .args(["items", "list", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let listed: Value = serde_json::from_str(&stdout(&list)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], json!(id));
    // Not a notebook: refused, nothing added.
    let bad = dir.path().join("bad.ipynb");
    std::fs::write(&bad, "not json").unwrap();
    let out = nbexec()
        .args(["items", "add"])
        .arg(&bad)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    // rm, and rm of an unknown id.
    let rm = nbexec()
        .args(["items", "rm", &id, "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(rm.status.success(), "{}", stderr(&rm));
    assert!(!state.join("items").join(&id).exists());
    let rm = nbexec()
        .args(["items", "rm", &id, "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(rm.status.code(), Some(2));
    assert!(
        stderr(&rm).starts_with("error: no such item"),
        "{}",
        stderr(&rm)
    );

    // serve --item adds at start-up and says the id.
    let srv = Server::start(&state, &["--item", nb.to_str().unwrap(), "--workers", "1"]);
    let log = srv.log();
    let new_id = log
        .lines()
        .find_map(|l| l.strip_prefix("nbexec serve: item "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{log}"))
        .to_owned();
    assert!(
        state
            .join("items")
            .join(&new_id)
            .join("notebook.ipynb")
            .is_file()
    );
    // A notebook that cannot be added stops the start with one line.
    let out = nbexec()
        .args(["serve", "--bind", "127.0.0.1:0", "--item"])
        .arg(&bad)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn serve_refuses_a_non_loopback_bind_without_users() {
    let dir = tempfile::tempdir().unwrap();
    let out = nbexec()
        .args(["serve", "--bind", "0.0.0.0:0", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: refusing to listen on 0.0.0.0:0"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn max_queue_zero_still_runs_on_idle_workers() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = server_with_item(dir.path(), &["--workers", "1", "--max-queue", "0"]);
    let first = srv.execute(&item, &json!({"secs": 3}), &[]);
    srv.wait_job(&first, Some("EXECUTING"), Duration::from_secs(60));
    // The one worker is busy and nothing may wait: refused.
    let a = srv.post_form(
        "/notebooks/executeNotebook",
        &[("itemId", &item), ("f", "json")],
    );
    assert_error_shape(&a, 503, 503);
    assert_eq!(
        srv.wait_job(&first, None, Duration::from_secs(60))["status"],
        "COMPLETED"
    );
    // Idle again: accepted.
    let second = srv.execute(&item, &json!({}), &[]);
    assert_eq!(
        srv.wait_job(&second, None, Duration::from_secs(60))["status"],
        "COMPLETED"
    );
    assert_eq!(job_list(&srv.state).len(), 2);
}

#[test]
fn an_older_registry_gains_the_server_columns_and_still_lists() {
    // A registry as nbexec wrote it before `serve` (no username, no kind).
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let conn = rusqlite::Connection::open(state.join("jobs.sqlite3")).unwrap();
        conn.execute_batch(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, submitted INTEGER NOT NULL,
             start_time INTEGER NOT NULL DEFAULT 0, end_time INTEGER NOT NULL DEFAULT 0, pid INTEGER,
             pid_start TEXT, inputs TEXT NOT NULL, messages TEXT NOT NULL DEFAULT '[]',
             results TEXT NOT NULL DEFAULT '{}', exit_code INTEGER);
             INSERT INTO jobs (id, status, submitted, start_time, end_time, inputs, exit_code)
             VALUES ('jold', 'COMPLETED', 1, 1, CAST(strftime('%s', 'now') AS INTEGER) * 1000,
                     '{\"itemId\":\"/x.ipynb\"}', 0);",
        )
        .unwrap();
    }
    let jobs = job_list(&state);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["jobId"], "jold");
    let shown = job_show(&state, "jold");
    assert_eq!(shown["status"], "COMPLETED");
    assert!(shown.get("username").is_none(), "{shown}");
    // And a server on it records its jobs with their owner.
    let item = add_item(&state, &param_nb(dir.path()));
    let srv = Server::start(&state, &["--workers", "1"]);
    let id = srv.execute(&item, &json!({}), &[]);
    let job = srv.wait_job(&id, None, Duration::from_secs(60));
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["username"], "");
    assert_eq!(
        srv.get("/notebooks/jobs?f=json").json()["asyncNotebookJobs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn files_of_pruned_jobs_are_swept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (mut srv, item) = server_with_item(dir.path(), &["--workers", "1"]);
    let state = srv.state.clone();
    let id = srv.execute(&item, &json!({}), &[]);
    srv.wait_job(&id, None, Duration::from_secs(60));
    srv.signal(libc::SIGTERM);
    assert_eq!(srv.wait_exit(Duration::from_secs(60)).code(), Some(0));
    drop(srv);
    let job_dir = state.join("serve").join(&id);
    assert!(job_dir.join("output.ipynb").is_file());
    let (code, text) = jobs_cmd(&state, &["prune", "--older-than", "0s"]);
    assert_eq!(code, Some(0), "{text}");
    // Young directories are left alone (a submission writes its own before its
    // record); this one is made an hour old.
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    let f = std::fs::File::open(&job_dir).unwrap();
    f.set_modified(old).unwrap();
    let srv = Server::start(&state, &["--workers", "1"]);
    assert!(!job_dir.exists(), "{}", srv.log());
    assert!(!state.join("logs").join(format!("{id}.log")).exists());
}

#[test]
fn a_warm_kernel_that_died_idle_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = server_with_item(dir.path(), &["--workers", "1"]);
    let first = srv.execute(&item, &json!({}), &[]);
    assert_eq!(
        srv.wait_job(&first, None, Duration::from_secs(60))["status"],
        "COMPLETED"
    );
    // The next kernel is warming; once its run's kernel is gone it is the only one.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let warm = loop {
        let k = kernels_of(srv.pid());
        if k.len() == 1 {
            break k[0];
        }
        assert!(std::time::Instant::now() < deadline, "kernels: {k:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Let it finish starting, then kill it behind the server's back.
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: kill(2) on a kernel process this test's server started.
    unsafe {
        libc::kill(warm, libc::SIGKILL);
    }
    assert_pid_gone(warm);
    let second = srv.execute(&item, &json!({"x": "fresh kernel"}), &[]);
    let job = srv.wait_job(&second, None, Duration::from_secs(60));
    assert_eq!(job["status"], "COMPLETED", "{job}");
}

#[test]
fn base_path_timeout_json_body_and_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = server_with_item(dir.path(), &["--workers", "1", "--base-path", "arcgis/"]);
    assert!(srv.url.ends_with("/arcgis/admin"), "{}", srv.url);
    assert_eq!(srv.get("?f=json").json()["currentVersion"], "11.4");
    // Without the base path there is nothing.
    let bare = srv.get_url(&format!(
        "{}/admin?f=json",
        srv.url.trim_end_matches("/arcgis/admin")
    ));
    assert_error_shape(&bare, 404, 404);
    // A JSON body with typed fields; executionTimeoutInMinutes stops a long run;
    // an unknown field is ignored and named on stderr.
    let a = srv.post_json(
        "/notebooks/executeNotebook",
        &json!({"itemId": item, "notebookParameters": {"secs": 60}, "updatePortalItem": false,
                "executionTimeoutInMinutes": 0.05, "someFutureField": 1, "f": "json"}),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    let id = v["jobId"].as_str().unwrap();
    assert_eq!(
        v["jobUrl"],
        json!(format!("{}/notebooks/jobs/{id}", srv.url))
    );
    let job = srv.wait_job(id, None, Duration::from_secs(60));
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(job["messages"].to_string().contains("time limit"), "{job}");
    assert_eq!(job["results"]["exitCode"], json!(124));
    assert_eq!(job["inputs"]["executionTimeoutInMinutes"], json!(0.05));
    assert!(srv.log().contains("someFutureField"), "{}", srv.log());
    // A bad timeout is refused.
    let a = srv.post_form(
        "/notebooks/executeNotebook",
        &[
            ("itemId", &item),
            ("executionTimeoutInMinutes", "soon"),
            ("f", "json"),
        ],
    );
    let v = assert_error_shape(&a, 400, 400);
    assert!(
        v["error"]["details"][0]
            .as_str()
            .unwrap()
            .starts_with("executionTimeoutInMinutes"),
        "{v}"
    );
}
