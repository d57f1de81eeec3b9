//! Webhook receivers on a real `nbexec serve`: signed deliveries run the receiver's
//! notebook with its parameters plus `webhook_payload`; bad or missing signatures,
//! oversized bodies and replays run nothing.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const SECRET: &str = "0123456789abcdefghijklmnopqrstuv";
const RECEIVERS: &str = "/notebooks/webhookReceivers";

fn webhook_nb(dir: &std::path::Path) -> std::path::PathBuf {
    write_nb(
        dir,
        "hook.ipynb",
        &notebook(vec![
            code("num = 0\nwebhook_payload = None", &["parameters"]),
            code("print('num', num, 'event', webhook_payload['event'])", &[]),
        ]),
    )
}

/// A server with one receiver on the webhook notebook: (server, receiver JSON).
fn server_with_receiver(dir: &std::path::Path) -> (Server, Value) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let item = add_item(&state, &webhook_nb(dir));
    let srv = Server::start(&state, &[]);
    let a = srv.post_form(
        &format!("{RECEIVERS}/create"),
        &[
            ("name", "on item change"),
            ("itemId", item.as_str()),
            ("secret", SECRET),
            (
                "signatureHeaders",
                "X-EsriHook-Signature,x-hub-signature-256",
            ),
            ("parameters", r#"{"num": 5}"#),
            ("f", "json"),
        ],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let r = a.json()["webhookReceiver"].clone();
    (srv, r)
}

fn job_count(srv: &Server) -> usize {
    srv.get("/notebooks/jobs?f=json").json()["asyncNotebookJobs"]
        .as_array()
        .unwrap()
        .len()
}

fn inbound_path(receiver: &Value) -> String {
    format!("/rest/events/webhooks/{}", receiver["id"].as_str().unwrap())
}

#[test]
fn receivers_are_created_listed_validated_and_toggled_with_arcgis_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, r) = server_with_receiver(dir.path());
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["secret"], SECRET, "create answers with the secret");
    assert_eq!(r["name"], "on item change");
    assert_eq!(
        r["signatureHeaders"],
        "x-esrihook-signature,x-hub-signature-256"
    );
    assert_eq!(r["disabled"], false);
    assert_eq!(
        r["parameters"], r#"{"num":5}"#,
        "parameters as a JSON string"
    );
    assert_eq!(
        r["url"],
        json!(format!("{}/rest/events/webhooks/{id}", srv.origin()))
    );
    let list = srv.get(&format!("{RECEIVERS}?f=json")).json();
    let listed = &list["webhookReceivers"][0];
    assert_eq!(listed["id"], json!(id));
    assert!(
        listed.get("secret").is_none(),
        "the list hides the secret: {listed}"
    );
    assert_eq!(
        srv.get(&format!("{RECEIVERS}/{id}/validate?f=json")).json(),
        json!({"success": "true", "id": id})
    );
    // A secret of the wrong length is refused (ArcGIS: exactly 32 characters).
    let a = srv.post_form(
        &format!("{RECEIVERS}/{id}/update"),
        &[("secret", "short"), ("f", "json")],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("exactly 32 characters"), "{}", a.body);
    assert_eq!(
        srv.post_form(&format!("{RECEIVERS}/{id}/disable"), &[("f", "json")])
            .json(),
        json!({"status": "success"})
    );
    assert_eq!(
        srv.get(&format!("{RECEIVERS}/{id}?f=json")).json()["disabled"],
        true
    );
    // A disabled receiver runs nothing.
    let body = br#"{"event":"x"}"#.to_vec();
    let sig = python_hmac_b64(SECRET, &body);
    let a = srv.post_raw_at(&inbound_path(&r), &[("x-esrihook-signature", &sig)], body);
    assert_eq!(a.status, 409, "{}", a.body);
    assert_eq!(job_count(&srv), 0);
    assert_eq!(
        srv.post_form(&format!("{RECEIVERS}/{id}/enable"), &[("f", "json")])
            .json(),
        json!({"status": "success"})
    );
    let page = srv.get(RECEIVERS);
    assert!(page.content_type.starts_with("text/html"), "{page:?}");
}

#[test]
fn a_signed_delivery_runs_the_notebook_with_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, r) = server_with_receiver(dir.path());
    let body = br#"{"event": "itemUpdated", "itemId": "abc"}"#.to_vec();
    let sig = python_hmac_b64(SECRET, &body);
    let a = srv.post_raw_at(
        &inbound_path(&r),
        &[
            ("content-type", "application/json"),
            ("X-EsriHook-Signature", &sig),
        ],
        body,
    );
    assert_eq!(a.status, 202, "{}", a.body);
    let v = a.json();
    assert_eq!(v["status"], "success");
    let job_id = v["jobId"].as_str().unwrap();
    assert_eq!(v["job"]["jobId"], json!(job_id));
    assert!(
        v["jobUrl"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/admin/notebooks/jobs/{job_id}"))
    );
    let job = srv.wait_job(job_id, None, Duration::from_secs(60));
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(
        job["inputs"]["notebookParameters"],
        json!({"num": 5, "webhook_payload": {"event": "itemUpdated", "itemId": "abc"}})
    );
    assert!(job_output_text(&srv, job_id).contains("num 5 event itemUpdated"));
    // GitHub's style works too: `sha256=` and the hex digest.
    let body = br#"{"event": "push"}"#.to_vec();
    let hex = python_hmac_hex(SECRET, &body);
    let a = srv.post_raw_at(&inbound_path(&r), &[("x-hub-signature-256", &hex)], body);
    assert_eq!(a.status, 202, "{}", a.body);
}

#[test]
fn bad_or_missing_signatures_are_401_and_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, r) = server_with_receiver(dir.path());
    let body = br#"{"event": "itemUpdated"}"#.to_vec();
    let path = inbound_path(&r);
    // Missing.
    let a = srv.post_raw_at(&path, &[("content-type", "application/json")], body.clone());
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], 401);
    assert!(a.body.contains("no signature header"), "{}", a.body);
    // Signed with another secret; signed over another body; garbage.
    let other = python_hmac_b64("another secret, thirty-two chars", &body);
    let stale = python_hmac_b64(SECRET, b"{}");
    for sig in [other.as_str(), stale.as_str(), "not base64!"] {
        let a = srv.post_raw_at(&path, &[("x-esrihook-signature", sig)], body.clone());
        assert_eq!(a.status, 401, "{sig}: {}", a.body);
        assert!(a.body.contains("signature does not match"), "{}", a.body);
    }
    // A good signature in a header the receiver does not accept.
    let good = python_hmac_b64(SECRET, &body);
    let a = srv.post_raw_at(&path, &[("x-other-signature", &good)], body.clone());
    assert_eq!(a.status, 401, "{}", a.body);
    // An unknown receiver.
    let a = srv.post_raw_at(
        "/rest/events/webhooks/0123456789abcdef0123456789abcdef",
        &[("x-esrihook-signature", &good)],
        body,
    );
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(job_count(&srv), 0);
}

#[test]
fn an_oversized_body_is_413_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, r) = server_with_receiver(dir.path());
    let mut body = br#"{"event": ""#.to_vec();
    body.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    body.extend_from_slice(br#""}"#);
    let sig = python_hmac_b64(SECRET, &body);
    let a = srv.post_raw_at(&inbound_path(&r), &[("x-esrihook-signature", &sig)], body);
    assert_eq!(a.status, 413, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], 413);
    assert!(a.body.contains("at most 1 MiB"), "{}", a.body);
    assert_eq!(job_count(&srv), 0);
}

#[test]
fn a_replayed_delivery_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, r) = server_with_receiver(dir.path());
    let path = inbound_path(&r);
    let send = |body: &[u8], delivery: Option<&str>| {
        let sig = python_hmac_b64(SECRET, body);
        let mut headers = vec![("x-esrihook-signature", sig.as_str())];
        if let Some(d) = delivery {
            headers.push(("x-nbexec-delivery", d));
        }
        srv.post_raw_at(&path, &headers, body.to_vec())
    };
    let first = send(br#"{"event": "a"}"#, Some("d-1"));
    assert_eq!(first.status, 202, "{}", first.body);
    // The same delivery id again (even with another, validly signed body).
    let again = send(br#"{"event": "b"}"#, Some("d-1"));
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["ignored"], true);
    // The same signed body under a new delivery id (the header is not signed).
    let again = send(br#"{"event": "a"}"#, Some("d-2"));
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["ignored"], true);
    // Without a delivery id, the same body is a replay too.
    let again = send(br#"{"event": "a"}"#, None);
    assert_eq!(again.json()["ignored"], true);
    assert_eq!(job_count(&srv), 1, "only the first delivery ran");
    // A new delivery runs.
    let next = send(br#"{"event": "c"}"#, Some("d-3"));
    assert_eq!(next.status, 202, "{}", next.body);
    assert_eq!(job_count(&srv), 2);
    let id = first.json()["jobId"].as_str().unwrap().to_owned();
    srv.wait_job(&id, None, Duration::from_secs(60));
}

#[test]
fn the_receiver_pages_offer_forms_and_never_show_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, r) = server_with_receiver(dir.path());
    let id = r["id"].as_str().unwrap();
    // A browser's create, answered as a page: the receiver, not its secret.
    let item = r["itemId"].as_str().unwrap();
    let created = srv.post_form(
        &format!("{RECEIVERS}/create"),
        &[
            ("name", "second"),
            ("itemId", item),
            ("secret", "ZYXWVUTSRQPONMLKJIHGFEDCBA987654"),
            ("f", "html"),
        ],
    );
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(created.body.contains("Go to receiver "), "{}", created.body);
    for path in [
        RECEIVERS.to_owned(),
        format!("{RECEIVERS}/{id}"),
        format!("{RECEIVERS}/{id}/update"),
    ] {
        let page = srv.get(&format!("{path}?f=html"));
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(page.body.starts_with("<!DOCTYPE html>"), "{path}");
        for body in [&page.body, &created.body] {
            assert!(!body.contains(SECRET), "{path}: {body}");
            assert!(
                !body.contains("ZYXWVUTSRQPONMLKJIHGFEDCBA987654"),
                "{path}: {body}"
            );
        }
        assert!(
            page.body.contains("on item change"),
            "{path}: {}",
            page.body
        );
    }
    // A plain GET of update is its form (it changed nothing); a POST form disables.
    let form = srv.get(&format!("{RECEIVERS}/{id}/update"));
    assert!(
        form.body
            .contains("<button type=\"submit\">Update Receiver</button>")
    );
    let one = srv.get(&format!("{RECEIVERS}/{id}?f=html"));
    assert!(
        one.body.contains("id=\"disable\">Disable</button>"),
        "{}",
        one.body
    );
    let off = srv.post_form(&format!("{RECEIVERS}/{id}/disable"), &[("f", "html")]);
    assert_eq!(off.status, 200, "{}", off.body);
    let now = srv.get(&format!("{RECEIVERS}/{id}?f=json")).json();
    assert_eq!(now["disabled"], true, "{now}");
    assert_eq!(now["name"], "on item change");
    let one = srv.get(&format!("{RECEIVERS}/{id}?f=html"));
    assert!(
        one.body.contains("id=\"enable\">Enable</button>"),
        "{}",
        one.body
    );
}
