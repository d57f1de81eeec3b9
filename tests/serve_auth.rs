//! `nbexec serve` users, tokens and TLS: the users file made by `nbexec users`, the
//! ArcGIS token errors, the three token carriers, job ownership, and HTTPS.

mod common;

use common::*;

#[test]
fn users_cli_adds_lists_updates_and_removes_without_keeping_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.json");
    let out = add_user(&file, "alice", "admin", "s3cret pw");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("added user alice (admin)"),
        "{}",
        stderr(&out)
    );
    let out = add_user(&file, "bob", "user", "x");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("s3cret"),
        "no clear password in the file: {text}"
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["users"][0]["name"], "alice");
    assert!(
        json["users"][0]["password_hash"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$")
    );
    assert_eq!(mode_of(&file) & 0o777, 0o600);

    let list = nbexec()
        .args(["users", "list", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(stdout(&list), "alice\tadmin\nbob\tuser\n");

    // Adding again updates the role (and the password).
    let out = add_user(&file, "bob", "admin", "y");
    assert!(
        stderr(&out).contains("updated user bob (admin)"),
        "{}",
        stderr(&out)
    );
    let rm = nbexec()
        .args(["users", "rm", "alice", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(rm.status.code(), Some(0), "{}", stderr(&rm));
    let list = nbexec()
        .args(["users", "list", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(stdout(&list), "bob\tadmin\n");

    let hash = python_free_hash("pw");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
}

fn python_free_hash(password: &str) -> String {
    use std::io::Write;
    let mut child = nbexec()
        .args(["users", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn users_cli_bad_input_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.json");
    let out = add_user(&file, "al ice", "user", "pw");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: invalid user name"),
        "{}",
        stderr(&out)
    );
    let out = add_user(&file, "alice", "user", "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: no password"),
        "{}",
        stderr(&out)
    );
    assert!(!file.exists(), "nothing written on bad input");
    let out = add_user(&file, "alice", "root", "pw");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    std::fs::write(&file, "{not json").unwrap();
    let out = add_user(&file, "alice", "user", "pw");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.contains("not a valid users file"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{not json",
        "left as it was"
    );
    let rm = nbexec()
        .args(["users", "rm", "nobody", "-f"])
        .arg(dir.path().join("none.json"))
        .output()
        .unwrap();
    assert_eq!(rm.status.code(), Some(1));
    assert!(stderr(&rm).starts_with("error: "), "{}", stderr(&rm));
}

// ---------------------------------------------------------------------------------
// The server

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

/// A quick notebook with a `parameters` cell (`x = 1`) that prints x.
fn quick_nb(dir: &Path) -> PathBuf {
    write_nb(
        dir,
        "quick.ipynb",
        &notebook(vec![
            code("x = 1", &["parameters"]),
            code("print('x is', x)", &[]),
        ]),
    )
}

/// Users alice (user, pw "alice-pw"), bob (user, "bob-pw") and root (admin, "root-pw").
fn users_file(dir: &Path) -> PathBuf {
    let file = dir.join("users.json");
    for (name, role) in [("alice", "user"), ("bob", "user"), ("root", "admin")] {
        let out = add_user(&file, name, role, &format!("{name}-pw"));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    file
}

/// A server with the users of [`users_file`] and one item: (server, item id).
fn secured_server(dir: &Path, extra: &[&str]) -> (Server, String) {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let item = add_item(&state, &quick_nb(dir));
    let users = users_file(dir);
    let mut args = vec!["--users", users.to_str().unwrap(), "--workers", "1"];
    args.extend_from_slice(extra);
    (Server::start(&state, &args), item)
}

/// generateToken as `user` (password `<user>-pw`) at `path` under the server root.
fn token_at(srv: &Server, root: &str, user: &str, expiration: Option<&str>) -> Value {
    let pw = format!("{user}-pw");
    let mut fields = vec![("username", user), ("password", pw.as_str()), ("f", "json")];
    if let Some(e) = expiration {
        fields.push(("expiration", e));
    }
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let a = srv.send(
        srv.http
            .post(format!("{root}/generateToken"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()
}

fn token(srv: &Server, user: &str) -> String {
    token_at(srv, &srv.url, user, None)["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// GET `path` (under /admin) with `X-Esri-Authorization: Bearer <token>`.
fn get_as(srv: &Server, path: &str, token: &str) -> Answer {
    srv.send(
        srv.http
            .get(srv.at(path))
            .header("X-Esri-Authorization", format!("Bearer {token}")),
    )
}

fn post_as(srv: &Server, path: &str, token: &str, fields: &[(&str, &str)]) -> Answer {
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    srv.send(
        srv.http
            .post(srv.at(path))
            .header("X-Esri-Authorization", format!("Bearer {token}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
}

fn assert_arcgis_error(a: &Answer, status: u16, code: u64, message: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert!(a.content_type.starts_with("application/json"), "{a:?}");
    assert_eq!(
        a.json(),
        json!({"error": {"code": code, "message": message, "details": []}}),
        "{}",
        a.body
    );
}

#[test]
fn tokens_gate_the_admin_routes_with_arcgis_errors_and_every_carrier_works() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, _item) = secured_server(dir.path(), &[]);

    // No token: 499 Token Required, on every resource; /healthz stays open.
    for path in [
        "?f=json",
        "/notebooks?f=json",
        "/notebooks/jobs?f=json",
        "/system/jobs?f=json",
    ] {
        assert_arcgis_error(&srv.get(path), 401, 499, "Token Required");
    }
    let health = srv.get_url(&srv.url.replace("/admin", "/healthz"));
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    // A token this server never made: 498 Invalid token.
    for bad in ["nope", "6162.99999999999999.00.00", &"0".repeat(300)] {
        assert_arcgis_error(&get_as(&srv, "?f=json", bad), 401, 498, "Invalid token.");
    }

    // generateToken: {"token","expires","ssl"}, 60 minutes by default.
    let before = now_ms();
    let t = token_at(&srv, &srv.url, "alice", None);
    let keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["token", "expires", "ssl"], "{t}");
    assert_eq!(t["ssl"], json!(false));
    let minutes = (t["expires"].as_i64().unwrap() - before) as f64 / 60_000.0;
    assert!((59.9..=60.1).contains(&minutes), "{minutes}");
    let alice = t["token"].as_str().unwrap();

    // The three carriers, and the token field of a query and of a form.
    let via_esri = get_as(&srv, "?f=json", alice);
    assert_eq!(via_esri.status, 200, "{}", via_esri.body);
    let via_auth = srv.send(
        srv.http
            .get(srv.at("?f=json"))
            .header("Authorization", format!("Bearer {alice}")),
    );
    assert_eq!(via_auth.status, 200, "{}", via_auth.body);
    let via_query = srv.get(&format!("?f=json&token={}", form_encode(alice)));
    assert_eq!(via_query.status, 200, "{}", via_query.body);
    let via_form = srv.post_form("/notebooks/jobs", &[("f", "json"), ("token", alice)]);
    assert_eq!(via_form.status, 200, "{}", via_form.body);
    assert!(via_form.json()["asyncNotebookJobs"].is_array());

    // A token edited to live longer (or to name another user) is refused.
    let mut parts: Vec<String> = alice.split('.').map(str::to_owned).collect();
    parts[1] = (before + 10 * 86_400_000).to_string();
    assert_arcgis_error(
        &get_as(&srv, "?f=json", &parts.join(".")),
        401,
        498,
        "Invalid token.",
    );

    // Wrong password, unknown user, missing fields: 400 "Unable to generate token."
    for fields in [
        vec![("username", "alice"), ("password", "wrong"), ("f", "json")],
        vec![
            ("username", "mallory"),
            ("password", "alice-pw"),
            ("f", "json"),
        ],
    ] {
        let a = srv.post_form("/generateToken", &fields);
        assert_eq!(a.status, 400, "{}", a.body);
        assert_eq!(
            a.json(),
            json!({"error": {"code": 400, "message": "Unable to generate token.",
                             "details": ["Invalid username or password."]}})
        );
    }
    let a = srv.post_form("/generateToken", &[("username", "alice"), ("f", "json")]);
    assert_eq!(a.status, 400, "{}", a.body);
    let a = srv.post_form(
        "/generateToken",
        &[
            ("username", "alice"),
            ("password", "alice-pw"),
            ("expiration", "soon"),
            ("f", "json"),
        ],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    // Credentials in a URL are refused (they would end up in logs).
    let a = srv.get("/generateToken?username=alice&password=alice-pw&f=json");
    assert_eq!(a.status, 405, "{}", a.body);
    assert!(a.json()["error"].is_object());

    // Neither the password nor a token reaches the server's log.
    let log = srv.log();
    assert!(!log.contains("alice-pw") && !log.contains(alice), "{log}");
}

#[test]
fn an_expired_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, _item) = secured_server(dir.path(), &[]);
    // expiration takes fractions of a minute: 0.02 min = 1.2 s.
    let t = token_at(&srv, &srv.url, "alice", Some("0.02"));
    let short = t["token"].as_str().unwrap();
    assert!(t["expires"].as_i64().unwrap() - now_ms() <= 1_200);
    let a = get_as(&srv, "?f=json", short);
    assert_eq!(a.status, 200, "{}", a.body);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_arcgis_error(&get_as(&srv, "?f=json", short), 401, 498, "Invalid token.");
    // A fresh token works again.
    assert_eq!(get_as(&srv, "?f=json", &token(&srv, "alice")).status, 200);
}

#[test]
fn users_see_and_touch_only_their_own_jobs_and_admins_all() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = secured_server(dir.path(), &[]);
    let (alice, bob, root) = (
        token(&srv, "alice"),
        token(&srv, "bob"),
        token(&srv, "root"),
    );

    let submit = |tok: &str| -> String {
        let a = post_as(
            &srv,
            "/notebooks/executeNotebook",
            tok,
            &[
                ("itemId", &item),
                ("notebookParameters", r#"{"x": 7}"#),
                ("updatePortalItem", "false"),
                ("f", "json"),
            ],
        );
        assert_eq!(a.status, 200, "{}\n{}", a.body, srv.log());
        a.json()["jobId"].as_str().unwrap().to_owned()
    };
    let job_a = submit(&alice);
    let job_b = submit(&bob);
    let wait = |id: &str, tok: &str| -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let v = get_as(&srv, &format!("/notebooks/jobs/{id}?f=json"), tok).json();
            if matches!(
                v["status"].as_str(),
                Some("COMPLETED" | "FAILED" | "CANCELLED")
            ) {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "{v}\n{}", srv.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let done_a = wait(&job_a, &alice);
    assert_eq!(done_a["status"], "COMPLETED", "{done_a}\n{}", srv.log());
    wait(&job_b, &bob);

    let listed = |tok: &str| -> Vec<String> {
        get_as(&srv, "/notebooks/jobs?f=json", tok).json()["asyncNotebookJobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["jobId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(listed(&alice), vec![job_a.clone()]);
    assert_eq!(listed(&bob), vec![job_b.clone()]);
    let all = listed(&root);
    assert!(all.contains(&job_a) && all.contains(&job_b), "{all:?}");
    // The 10.x aliases follow the same rule.
    let old = get_as(&srv, "/system/jobs?f=json", &bob).json();
    assert_eq!(
        old["asyncNotebookJobs"].as_array().unwrap().len(),
        1,
        "{old}"
    );

    // Bob and alice's job: detail, artifacts and cancel are 403.
    for path in [
        format!("/notebooks/jobs/{job_a}?f=json"),
        format!("/system/jobs/{job_a}?f=json"),
        format!("/notebooks/jobs/{job_a}/output.ipynb?f=json"),
        format!("/notebooks/jobs/{job_a}/report.html?f=json"),
        format!("/notebooks/jobs/{job_a}/log?f=json"),
        format!("/notebooks/jobs/{job_a}/events?f=json"),
    ] {
        let a = get_as(&srv, &path, &bob);
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert_eq!(a.json()["error"]["code"], 403, "{path}");
    }
    let a = post_as(
        &srv,
        &format!("/notebooks/jobs/{job_a}/cancel"),
        &bob,
        &[("f", "json")],
    );
    assert_eq!(a.status, 403, "{}", a.body);
    // Alice and the admin may read it.
    for tok in [&alice, &root] {
        let a = get_as(&srv, &format!("/notebooks/jobs/{job_a}/output.ipynb"), tok);
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.body.contains("x is 7"), "{}", a.body);
    }
    // The job records its owner, and neither the token nor a password.
    let record = job_show(&srv.state, &job_a);
    assert_eq!(record["username"], "alice", "{record}");
    let db = std::fs::read(srv.state.join("jobs.sqlite3")).expect("the registry");
    let text = record.to_string() + &String::from_utf8_lossy(&db);
    assert!(
        !text.contains(&alice) && !text.contains("alice-pw"),
        "{record}"
    );
    // Bob's deleteAll removes only bob's finished jobs.
    let a = post_as(&srv, "/system/jobs/deleteAll", &bob, &[("f", "json")]);
    assert_eq!(a.json()["deleted"], 1, "{}", a.body);
    assert_eq!(listed(&root), vec![job_a.clone()]);
    assert!(!srv.log().contains(&alice), "{}", srv.log());
}

#[test]
fn a_non_loopback_bind_without_users_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = nbexec();
    cmd.args(["serve", "--bind", "0.0.0.0:0", "--state-dir"])
        .arg(dir.path().join("state"));
    let out = output_within(cmd, Duration::from_secs(30)).expect("exits at once");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: refusing to listen on 0.0.0.0:0: without --users"),
        "{err}"
    );
    assert_eq!(stdout(&out), "", "nothing was listening");

    // Bad TLS material and a bad users file: one line, exit 2, before listening.
    let users = dir.path().join("users.json");
    std::fs::write(&users, "{}").unwrap();
    let missing = dir.path().join("missing.pem");
    for (args, needle) in [
        (
            vec!["--users", users.to_str().unwrap()],
            "not a valid users file",
        ),
        (
            vec![
                "--tls-cert",
                missing.to_str().unwrap(),
                "--tls-key",
                missing.to_str().unwrap(),
            ],
            "missing.pem",
        ),
    ] {
        let mut cmd = nbexec();
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--state-dir"])
            .arg(dir.path().join("state"))
            .args(&args);
        let out = output_within(cmd, Duration::from_secs(30)).expect("exits at once");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn https_with_a_self_signed_certificate_serves_the_one_it_printed() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let (srv, _item) = secured_server(dir.path(), &["--tls-self-signed"]);
    assert!(srv.url.starts_with("https://127.0.0.1:"), "{}", srv.url);
    let healthz = srv.url.replace("/admin", "/healthz");
    let (status, body, cert) = https_request("GET", &healthz, &[], "").expect("answers over TLS");
    assert_eq!((status, body.as_str()), (200, "ok"));
    let fingerprint: Vec<String> = Sha256::digest(&cert)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let line = format!(
        "nbexec serve: TLS certificate SHA-256 {}",
        fingerprint.join(":")
    );
    assert!(srv.log().contains(&line), "{line}\n{}", srv.log());

    // A token over HTTPS says so, and works there.
    let form = "username=alice&password=alice-pw&f=json";
    let ctype = [("Content-Type", "application/x-www-form-urlencoded")];
    let (status, body, _) =
        https_request("POST", &format!("{}/generateToken", srv.url), &ctype, form).unwrap();
    assert_eq!(status, 200, "{body}");
    let t: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["ssl"], json!(true));
    let bearer = format!("Bearer {}", t["token"].as_str().unwrap());
    let auth = [("X-Esri-Authorization", bearer.as_str())];
    let (status, body, _) =
        https_request("GET", &format!("{}?f=json", srv.url), &auth, "").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["currentVersion"],
        "11.4"
    );
    let (status, _, _) = https_request("GET", &format!("{}?f=json", srv.url), &[], "").unwrap();
    assert_eq!(status, 401);
    // Plain HTTP on the same port gets no HTTP answer.
    let plain = srv.url.replace("https://", "http://");
    let r = srv.rt.block_on(async { srv.http.get(plain).send().await });
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn portal_lite_answers_what_the_arcgis_client_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, item) = secured_server(dir.path(), &["--portal"]);
    let origin = srv.url.strip_suffix("/admin").unwrap().to_owned();
    let portal = format!("{origin}/portal");
    let sharing = format!("{portal}/sharing/rest");
    let get = |url: String, tok: Option<&str>| -> Answer {
        let mut req = srv.http.get(url);
        if let Some(t) = tok {
            req = req.header("X-Esri-Authorization", format!("Bearer {t}"));
        }
        srv.send(req)
    };

    // Public: info (where to get a token), version.
    let info = get(format!("{sharing}/info?f=json"), None).json();
    assert_eq!(info["authInfo"]["isTokenBasedSecurity"], true, "{info}");
    assert_eq!(
        info["authInfo"]["tokenServicesUrl"],
        format!("{sharing}/generateToken")
    );
    assert_eq!(
        get(format!("{sharing}/?f=json"), None).json()["currentVersion"],
        "2025.1"
    );
    for p in ["/info", "/rest/info", "/rest/services"] {
        assert_eq!(get(format!("{portal}{p}?f=json"), None).status, 200, "{p}");
    }

    // generateToken at the portal path; the token works on /admin too.
    let t = token_at(&srv, &sharing, "alice", None);
    let alice = t["token"].as_str().unwrap();
    assert_eq!(get_as(&srv, "?f=json", alice).status, 200);

    let me = get(format!("{sharing}/portals/self?f=json"), Some(alice)).json();
    assert_eq!(me["isPortal"], true);
    assert_eq!(me["portalMode"], "singletenant");
    assert_eq!(me["user"]["username"], "alice", "{me}");
    let id = me["id"].as_str().unwrap();
    let user = get(
        format!("{sharing}/community/users/alice?f=json"),
        Some(alice),
    )
    .json();
    assert_eq!(
        (user["username"].as_str(), user["role"].as_str()),
        (Some("alice"), Some("org_user"))
    );
    // Another user's record is not alice's to read; the admin's it is.
    let a = get(format!("{sharing}/community/users/bob?f=json"), Some(alice));
    assert!(a.json()["error"].is_object(), "{}", a.body);
    let root = token(&srv, "root");
    let bob = get(format!("{sharing}/community/users/bob?f=json"), Some(&root)).json();
    assert_eq!(bob["username"], "bob", "{bob}");
    // Without a token: 499.
    assert_arcgis_error(
        &get(format!("{sharing}/community/users/alice?f=json"), None),
        401,
        499,
        "Token Required",
    );

    // The federated Notebook Server: adminUrl + "/admin" is this server's admin root.
    let servers = get(
        format!("{sharing}/portals/{id}/servers?f=json"),
        Some(alice),
    )
    .json();
    let nb = &servers["servers"][0];
    assert_eq!(nb["serverFunction"], "NotebookServer", "{servers}");
    let admin = get(
        format!("{}/admin?f=json", nb["adminUrl"].as_str().unwrap()),
        Some(alice),
    )
    .json();
    assert_eq!(admin["currentVersion"], "11.4", "{admin}");

    // The item, as gis.content.get reads it.
    let it = get(
        format!("{sharing}/content/items/{item}?f=json"),
        Some(alice),
    )
    .json();
    assert_eq!(it["id"], item.as_str());
    assert_eq!(it["type"], "Notebook");
    assert!(
        it["typeKeywords"]
            .as_array()
            .unwrap()
            .contains(&json!("Notebook"))
    );
    let missing = get(
        format!("{sharing}/content/items/{}?f=json", "0".repeat(32)),
        Some(alice),
    );
    assert!(missing.json()["error"].is_object(), "{}", missing.body);
}

#[test]
fn portal_routes_are_off_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, _item) = secured_server(dir.path(), &[]);
    let url = srv
        .url
        .replace("/admin", "/portal/sharing/rest/info?f=json");
    assert_eq!(srv.get_url(&url).status, 404);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn portal_on_an_open_server_goes_by_the_signed_in_name() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let srv = Server::start(&state, &["--portal"]);
    let sharing = srv.url.replace("/admin", "/portal/sharing/rest");
    // No users: any credentials get a token (every caller is the administrator anyway).
    let t = token_at(&srv, &sharing, "carol", None);
    let carol = t["token"].as_str().unwrap();
    let me = srv.send(
        srv.http
            .get(format!("{sharing}/portals/self?f=json"))
            .header("X-Esri-Authorization", format!("Bearer {carol}")),
    );
    let me = me.json();
    assert_eq!(me["user"]["username"], "carol", "{me}");
    assert_eq!(me["user"]["role"], "org_admin", "{me}");
    // Without a token the open server still answers, as its anonymous administrator.
    let anon = srv
        .get_url(&format!("{sharing}/community/self?f=json"))
        .json();
    assert_eq!(anon["username"], "admin", "{anon}");
}

#[test]
fn https_with_certificate_files_serves_that_certificate() {
    use sha2::{Digest, Sha256};
    let cert = root().join("fixtures/tls/cert.pem");
    let key = root().join("fixtures/tls/key.pem");
    let dir = tempfile::tempdir().unwrap();
    let (srv, _item) = secured_server(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(srv.url.starts_with("https://"), "{}", srv.url);
    let (status, body, served) =
        https_request("GET", &srv.url.replace("/admin", "/healthz"), &[], "").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok"));
    // The fixture's certificate (fixtures/tls/README.md), no other.
    let fingerprint: Vec<String> = Sha256::digest(&served)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(
        fingerprint.join(":"),
        "1C:FC:1A:EC:CE:D8:1D:FB:C3:26:B5:B2:7B:BA:B6:84:A5:07:44:55:8E:20:7C:81:6B:31:EB:9B:FF:7A:60:F8"
    );
    // Half of the pair is a usage error.
    let mut cmd = nbexec();
    cmd.args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--state-dir",
    ])
    .arg(dir.path().join("other"));
    let out = output_within(cmd, Duration::from_secs(30)).expect("exits at once");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--tls-key"), "{}", stderr(&out));
    // A key file without a key: one line, exit 2.
    let other_key = dir.path().join("other-key.pem");
    let mut cmd = nbexec();
    cmd.args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
    ])
    .arg(&other_key)
    .arg("--state-dir")
    .arg(dir.path().join("other"));
    std::fs::write(&other_key, "not a key\n").unwrap();
    let out = output_within(cmd, Duration::from_secs(30)).expect("exits at once");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.contains("no private key"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A client that sends half a request head and waits must not hold SIGTERM's graceful
/// shutdown (and the drain of jobs behind it) open: its connection is dropped when the
/// head has not arrived within the server's header timeout (10 s), over HTTP and HTTPS.
#[test]
fn a_half_sent_request_does_not_hold_a_graceful_shutdown() {
    use std::io::Write;
    for tls in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let args: &[&str] = if tls { &["--tls-self-signed"] } else { &[] };
        let mut srv = Server::start(&state, args);
        let authority = srv
            .url
            .split("://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let mut tcp = std::net::TcpStream::connect(&authority).unwrap();
        if tls {
            // Half a TLS handshake is the same kind of stall.
            tcp.write_all(&[0x16, 0x03, 0x01]).unwrap();
        } else {
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        srv.signal(libc::SIGTERM);
        let status = srv.wait_exit(Duration::from_secs(40));
        assert_eq!(status.code(), Some(0), "tls {tls}: {}", srv.log());
        drop(tcp);
    }
}

#[test]
fn the_users_file_is_reread_so_changes_apply_to_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, _item) = secured_server(dir.path(), &[]);
    let users = dir.path().join("users.json");
    let bob = token(&srv, "bob");
    assert_eq!(get_as(&srv, "?f=json", &bob).status, 200);
    // A user added now can sign in; a user removed now is refused at once.
    let out = add_user(&users, "carol", "user", "carol-pw");
    assert!(out.status.success(), "{}", stderr(&out));
    let carol = token(&srv, "carol");
    let rm = nbexec()
        .args(["users", "rm", "bob", "-f"])
        .arg(&users)
        .output()
        .unwrap();
    assert!(rm.status.success(), "{}", stderr(&rm));
    assert_arcgis_error(&get_as(&srv, "?f=json", &bob), 401, 498, "Invalid token.");
    let a = srv.post_form(
        "/generateToken",
        &[("username", "bob"), ("password", "bob-pw"), ("f", "json")],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(get_as(&srv, "?f=json", &carol).status, 200);
    // A broken file keeps the last good table (with a warning), rather than locking out.
    std::fs::write(&users, "{broken").unwrap();
    assert_eq!(get_as(&srv, "?f=json", &carol).status, 200);
    assert!(
        srv.log().contains("keeping the previous users table"),
        "{}",
        srv.log()
    );
}

#[test]
fn an_item_of_another_user_is_not_run_scheduled_or_hooked_by_a_user() {
    // Bob's item: alice may neither run it, nor schedule it, nor put a webhook on it
    // (any of which would run it as her, and with updatePortalItem rewrite it).
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let out = nbexec()
        .args(["items", "add"])
        .arg(quick_nb(dir.path()))
        .args(["--owner", "bob", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let bobs = stdout(&out).trim().to_owned();
    let users = users_file(dir.path());
    let srv = Server::start(&state, &["--users", users.to_str().unwrap()]);
    let (alice, bob, root) = (
        token(&srv, "alice"),
        token(&srv, "bob"),
        token(&srv, "root"),
    );
    let tasks = |user: &str| format!("/portal/sharing/rest/community/users/{user}/tasks");
    let create_task = |user: &str, tok: &str| {
        srv.post_form_at(
            &format!("{}/createTask", tasks(user)),
            &[
                ("itemId", bobs.as_str()),
                ("minute", "0"),
                ("hour", "6"),
                ("dayOfMonth", "?"),
                ("month", "*"),
                ("dayOfWeek", "2-6"),
                ("token", tok),
                ("f", "json"),
            ],
        )
    };
    let create_receiver = |tok: &str| {
        post_as(
            &srv,
            "/notebooks/webhookReceivers/create",
            tok,
            &[("name", "r"), ("itemId", bobs.as_str()), ("f", "json")],
        )
    };
    let execute = |tok: &str| {
        post_as(
            &srv,
            "/notebooks/executeNotebook",
            tok,
            &[("itemId", bobs.as_str()), ("f", "json")],
        )
    };

    // Alice: the answer of an unknown item each time, and nothing is kept.
    for a in [
        execute(&alice),
        create_task("alice", &alice),
        create_receiver(&alice),
    ] {
        assert_eq!(a.status, 404, "{}", a.body);
        assert_eq!(
            a.json()["error"]["message"],
            "Item does not exist or is inaccessible."
        );
    }
    let listed = srv.get_at(&format!("{}?f=json&token={alice}", tasks("alice")));
    assert_eq!(listed.json()["tasks"], json!([]), "{}", listed.body);
    let receivers = get_as(&srv, "/notebooks/webhookReceivers?f=json", &alice).json();
    assert_eq!(receivers["webhookReceivers"], json!([]), "{receivers}");
    let jobs = get_as(&srv, "/notebooks/jobs?f=json", &root).json();
    assert_eq!(jobs["asyncNotebookJobs"], json!([]), "{jobs}");

    // Its owner, and an administrator, may.
    for (user, tok) in [("bob", &bob), ("root", &root)] {
        let a = create_task(user, tok);
        assert_eq!(a.status, 200, "{user}: {}", a.body);
        let a = create_receiver(tok);
        assert_eq!(a.status, 200, "{user}: {}", a.body);
    }
}
