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
