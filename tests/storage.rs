//! Notebooks in object stores and on the web: S3 (a real `moto_server` on loopback),
//! plain HTTP GET/PUT (a small local server), Jupyter's Contents API (a real
//! `jupyter-server` with a token), and `file://` URLs. The network backends are the
//! `remote` feature's; a build without it names the feature.

mod common;

use common::*;
use serde_json::Value;

/// An input notebook: a parameters cell, then `cells` more.
fn input_nb(cells: Vec<Value>) -> Value {
    let mut all = vec![code("name = 'nobody'\nn = 1", &["parameters"])];
    all.extend(cells);
    notebook(all)
}

#[test]
fn file_urls_are_local_paths() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(
        dir.path(),
        "in put.ipynb",
        &input_nb(vec![code("print(name)", &[])]),
    );
    let out = dir.path().join("out.ipynb");
    let in_url = format!("file://{}", input.display()).replace(' ', "%20");
    let out_url = format!("file://{}", out.display());
    let o = run(&[
        "run",
        &in_url,
        &out_url,
        "-p",
        "name",
        "filed",
        "--no-progress-bar",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let nb = read_nb(&out);
    assert_eq!(stream_text(&nb["cells"][2], "stdout"), "filed\n");
    // A detached run's jobUrl is the file the URL names.
    let detached = dir.path().join("detached.ipynb");
    let state = dir.path().join("state");
    let o = run(&[
        "run",
        &in_url,
        &format!("file://{}", detached.display()),
        "--detach",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let answer: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        answer["jobUrl"],
        format!("file://{}", detached.display()),
        "{answer}"
    );
    let waited = run(&[
        "jobs",
        "wait",
        answer["jobId"].as_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(waited.status.code(), Some(0), "{}", stderr(&waited));
    assert!(detached.exists());
}

#[test]
fn no_overwrite_refuses_an_existing_local_output_before_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(dir.path(), "in.ipynb", &input_nb(vec![]));
    let out = dir.path().join("out.ipynb");
    std::fs::write(&out, "keep me").unwrap();
    let o = run(&[
        "run",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--no-overwrite",
        "--no-progress-bar",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already exists (--no-overwrite)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
}

/// Without the `remote` feature a URL that needs it is a one-line error naming it.
#[cfg(not(feature = "remote"))]
#[test]
fn remote_urls_name_the_missing_feature() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(dir.path(), "in.ipynb", &input_nb(vec![]));
    for args in [
        vec!["run", "s3://bucket/in.ipynb", "out.ipynb"],
        vec!["run", input.to_str().unwrap(), "gs://bucket/out.ipynb"],
    ] {
        let o = nbexec()
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains("`remote` feature"), "{err}");
    }
    assert!(!dir.path().join("out.ipynb").exists());
}

#[test]
fn unknown_url_schemes_are_refused() {
    let o = run(&["run", "ftp://host/in.ipynb", "out.ipynb"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unsupported URL scheme"),
        "{}",
        stderr(&o)
    );
}

#[cfg(feature = "remote")]
mod remote {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn nb_bytes(nb: &Value) -> Vec<u8> {
        serde_json::to_vec_pretty(nb).unwrap()
    }

    #[test]
    fn s3_input_parameters_output_and_report() {
        let moto = MotoServer::start();
        moto.create_bucket("nbs");
        let nb = input_nb(vec![code("print(name, n)", &[])]);
        moto.put_object("nbs", "in.ipynb", &nb_bytes(&nb));
        moto.put_object("nbs", "params.yaml", b"n: 42\n");
        let o = moto
            .nbexec()
            .args([
                "run",
                "s3://nbs/in.ipynb",
                "s3://nbs/out/{name}.ipynb",
                "-p",
                "name",
                "remote",
                "-f",
                "s3://nbs/params.yaml",
                "--report",
                "s3://nbs/out/report.html",
                "--no-progress-bar",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("written to s3://nbs/out/remote.ipynb"),
            "{}",
            stderr(&o)
        );
        let out: Value =
            serde_json::from_slice(&moto.get_object("nbs", "out/remote.ipynb").unwrap()).unwrap();
        assert_eq!(stream_text(&out["cells"][2], "stdout"), "remote 42\n");
        assert_eq!(
            out["metadata"]["nbexec"]["output_url"],
            json!("s3://nbs/out/remote.ipynb")
        );
        assert_eq!(
            out["metadata"]["papermill"]["input_path"],
            json!("s3://nbs/in.ipynb")
        );
        assert_eq!(
            out["metadata"]["papermill"]["output_path"],
            json!("s3://nbs/out/remote.ipynb")
        );
        let report = moto.get_object("nbs", "out/report.html").unwrap();
        assert!(String::from_utf8_lossy(&report).contains("remote 42"));
        // A short run: no checkpoint came due, so the notebook went up once.
        assert_eq!(moto.requests("PUT", "/nbs/out/remote.ipynb"), 1);
        assert_no_staging_left(&o);
    }

    /// The local staging file is gone after a successful upload.
    fn assert_no_staging_left(o: &std::process::Output) {
        let err = stderr(o);
        assert!(!err.contains("nbexec-"), "{err}");
    }

    #[test]
    fn s3_missing_input_and_missing_bucket_fail_before_any_kernel() {
        let moto = MotoServer::start();
        moto.create_bucket("nbs");
        let dir = tempfile::tempdir().unwrap();
        let local = write_nb(dir.path(), "in.ipynb", &input_nb(vec![]));
        // Missing object.
        let o = moto
            .nbexec()
            .args(["run", "s3://nbs/absent.ipynb", "out.ipynb"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with("error: s3://nbs/absent.ipynb: not found"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        // Missing bucket for the output: refused before the kernel starts, nothing
        // written anywhere.
        let started = Instant::now();
        let o = moto
            .nbexec()
            .args([
                "run",
                local.to_str().unwrap(),
                "s3://no-such-bucket/out.ipynb",
                "--no-progress-bar",
            ])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("s3://no-such-bucket/out.ipynb"), "{err}");
        assert!(err.contains("does not exist"), "{err}");
        assert!(
            !err.contains("nbexec: "),
            "no run summary: the kernel never started: {err}"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(moto.requests("PUT", "/no-such-bucket/out.ipynb"), 0);
    }

    #[test]
    fn s3_no_overwrite_is_a_conditional_create() {
        let moto = MotoServer::start();
        moto.create_bucket("nbs");
        moto.put_object("nbs", "in.ipynb", &nb_bytes(&input_nb(vec![])));
        moto.put_object("nbs", "taken.ipynb", b"keep me");
        // An output that exists already: refused before the kernel starts.
        let o = moto
            .nbexec()
            .args([
                "run",
                "s3://nbs/in.ipynb",
                "s3://nbs/taken.ipynb",
                "--no-overwrite",
            ])
            .output()
            .unwrap();
        refused_as_taken(&moto, &o);
        // One that appears while the notebook runs: the store's conditional create
        // refuses the upload at the end, and the notebook is kept locally.
        let nb = input_nb(vec![code("import time; time.sleep(4)", &[])]);
        moto.put_object("nbs", "slow.ipynb", &nb_bytes(&nb));
        let child = moto
            .nbexec()
            .args([
                "run",
                "s3://nbs/slow.ipynb",
                "s3://nbs/late.ipynb",
                "--no-overwrite",
                "--no-progress-bar",
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(
            || moto.log_text().contains("list-type=2"),
            "the output check",
        );
        moto.put_object("nbs", "late.ipynb", b"someone else's");
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let fallback = fallback_named(&stderr(&o));
        assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
        assert_eq!(
            moto.get_object("nbs", "late.ipynb").unwrap(),
            b"someone else's"
        );
        let kept = read_nb(&fallback);
        assert!(
            kept["metadata"]["papermill"]["end_time"].is_string(),
            "a finished run"
        );
        std::fs::remove_file(fallback).unwrap();
    }

    #[test]
    fn s3_prepare_only_writes_the_injected_notebook_and_no_overwrite_keeps_an_object() {
        let moto = MotoServer::start();
        moto.create_bucket("nbs");
        moto.put_object("nbs", "in.ipynb", &nb_bytes(&input_nb(vec![])));
        let prepare = |out: &str, extra: &[&str]| {
            moto.nbexec()
                .args(["run", "s3://nbs/in.ipynb", out, "--prepare-only"])
                .args(["-p", "n", "7"])
                .args(extra)
                .output()
                .unwrap()
        };
        let o = prepare("s3://nbs/prepared.ipynb", &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let nb: Value =
            serde_json::from_slice(&moto.get_object("nbs", "prepared.ipynb").unwrap()).unwrap();
        let injected = &nb["cells"][1];
        assert_eq!(injected["metadata"]["tags"], json!(["injected-parameters"]));
        assert!(source(injected).contains("n = 7"), "{}", source(injected));
        assert!(
            nb["cells"].as_array().unwrap().iter().all(|c| c
                .get("outputs")
                .is_none_or(|o| o.as_array().unwrap().is_empty())),
            "nothing executed"
        );
        // With --no-overwrite, an object already there is refused and kept.
        moto.put_object("nbs", "taken.ipynb", b"keep me");
        let o = prepare("s3://nbs/taken.ipynb", &["--no-overwrite"]);
        refused_as_taken(&moto, &o);
        // And a new object is created.
        let o = prepare("s3://nbs/new.ipynb", &["--no-overwrite"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(moto.get_object("nbs", "new.ipynb").is_some());
    }

    /// `o` was refused (exit 2, before any kernel) because `s3://nbs/taken.ipynb`
    /// exists, and that object still holds "keep me".
    fn refused_as_taken(moto: &MotoServer, o: &std::process::Output) {
        assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
        assert!(
            stderr(o).contains("s3://nbs/taken.ipynb: already exists (--no-overwrite)"),
            "{}",
            stderr(o)
        );
        assert_eq!(moto.get_object("nbs", "taken.ipynb").unwrap(), b"keep me");
    }

    /// The path in "it was written to PATH instead".
    fn fallback_named(err: &str) -> std::path::PathBuf {
        let (_, rest) = err
            .split_once("it was written to ")
            .unwrap_or_else(|| panic!("no fallback named: {err}"));
        let path = rest.split(" instead").next().unwrap();
        let path = std::path::PathBuf::from(path);
        assert!(path.exists(), "{}", path.display());
        path
    }

    fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}");
    }

    #[test]
    fn s3_upload_failing_at_the_end_leaves_a_named_local_file() {
        let mut moto = MotoServer::start();
        moto.create_bucket("nbs");
        let nb = input_nb(vec![code("import time; time.sleep(3); print('done')", &[])]);
        moto.put_object("nbs", "in.ipynb", &nb_bytes(&nb));
        let child = moto
            .nbexec()
            .args([
                "run",
                "s3://nbs/in.ipynb",
                "s3://nbs/out.ipynb",
                "--no-progress-bar",
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The input read and the output checked: stop the server mid-run.
        wait_for(
            || moto.log_text().contains("list-type=2"),
            "the output check",
        );
        moto.kill();
        let started = Instant::now();
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains("cannot save the executed notebook to s3://nbs/out.ipynb"),
            "{err}"
        );
        assert!(err.contains("attempts"), "retried: {err}");
        // Retried with backoff, but not for minutes.
        assert!(started.elapsed() < Duration::from_secs(60), "{err}");
        let fallback = fallback_named(&err);
        let kept = read_nb(&fallback);
        assert_eq!(stream_text(&kept["cells"][1], "stdout"), "done\n");
        assert_eq!(
            kept["metadata"]["nbexec"]["output_url"],
            json!("s3://nbs/out.ipynb")
        );
        std::fs::remove_file(fallback).unwrap();
    }

    #[test]
    fn s3_denied_credentials_are_one_line_before_any_kernel() {
        // moto checks credentials after this many unauthenticated actions: the
        // bucket and the input are made first, then any key it does not know is
        // refused, as S3 refuses one.
        let moto = MotoServer::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "2")]);
        moto.create_bucket("nbs");
        moto.put_object("nbs", "in.ipynb", &nb_bytes(&input_nb(vec![])));
        let o = moto
            .nbexec()
            .args(["run", "s3://nbs/in.ipynb", "out.ipynb"])
            .current_dir(tempfile::tempdir().unwrap().path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with("error: s3://nbs/in.ipynb: access denied"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn s3_uploads_once_per_checkpoint_plus_one_never_per_cell() {
        let moto = MotoServer::start();
        moto.create_bucket("nbs");
        // 200 quick cells: papermill would PUT 2N+3 = 403 times.
        let quick: Vec<Value> = (0..200).map(|i| code(&format!("x = {i}"), &[])).collect();
        moto.put_object("nbs", "quick.ipynb", &nb_bytes(&input_nb(quick)));
        let o = moto
            .nbexec()
            .args(["run", "s3://nbs/quick.ipynb", "s3://nbs/quick-out.ipynb"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(moto.requests("PUT", "/nbs/quick-out.ipynb"), 1);
        // A run that spans a few 1 s checkpoints: at most one PUT each, plus one.
        let slow: Vec<Value> = (0..8)
            .map(|_| code("import time; time.sleep(0.5)", &[]))
            .collect();
        moto.put_object("nbs", "slow.ipynb", &nb_bytes(&input_nb(slow)));
        let started = Instant::now();
        let o = moto
            .nbexec()
            .args([
                "run",
                "s3://nbs/slow.ipynb",
                "s3://nbs/slow-out.ipynb",
                "--autosave-seconds",
                "1",
            ])
            .output()
            .unwrap();
        let took = started.elapsed().as_secs_f64();
        assert!(o.status.success(), "{}", stderr(&o));
        let puts = moto.requests("PUT", "/nbs/slow-out.ipynb");
        assert!(puts >= 2, "checkpoints were uploaded: {puts}");
        assert!(
            puts as f64 <= took.floor() + 1.0,
            "{puts} PUTs in {took:.1} s with 1 s checkpoints"
        );
        let out: Value =
            serde_json::from_slice(&moto.get_object("nbs", "slow-out.ipynb").unwrap()).unwrap();
        assert!(
            out["metadata"]["papermill"]["end_time"].is_string(),
            "a finished run"
        );
    }

    #[test]
    fn s3_batch_file_and_output_template() {
        let moto = MotoServer::start();
        moto.create_bucket("nbs");
        let nb = input_nb(vec![code("print(name, n)", &[])]);
        moto.put_object("nbs", "in.ipynb", &nb_bytes(&nb));
        moto.put_object(
            "nbs",
            "sets.jsonl",
            b"{\"name\": \"a\", \"n\": 1}\n{\"name\": \"b\", \"n\": 2}\n",
        );
        let state = tempfile::tempdir().unwrap();
        let o = moto
            .nbexec()
            .args([
                "run",
                "s3://nbs/in.ipynb",
                "s3://nbs/batch/{name}-{_index}.ipynb",
                "--batch",
                "s3://nbs/sets.jsonl",
                "--jobs",
                "2",
                "--state-dir",
                state.path().to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        for (key, printed) in [("batch/a-1.ipynb", "a 1\n"), ("batch/b-2.ipynb", "b 2\n")] {
            let out: Value = serde_json::from_slice(&moto.get_object("nbs", key).unwrap()).unwrap();
            assert_eq!(stream_text(&out["cells"][2], "stdout"), printed, "{key}");
            assert_eq!(
                out["metadata"]["nbexec"]["output_url"],
                json!(format!("s3://nbs/{key}"))
            );
            assert_eq!(moto.requests("PUT", &format!("/nbs/{key}")), 1, "{key}");
        }
    }

    #[test]
    fn s3_detached_run_answers_with_the_output_url() {
        let moto = MotoServer::start();
        moto.create_bucket("nbs");
        let nb = input_nb(vec![code("print('detached', n)", &[])]);
        moto.put_object("nbs", "in.ipynb", &nb_bytes(&nb));
        let state = tempfile::tempdir().unwrap();
        let o = moto
            .nbexec()
            .args([
                "run",
                "s3://nbs/in.ipynb",
                "s3://nbs/detached.ipynb",
                "-p",
                "n",
                "5",
            ])
            .args(["--detach", "--state-dir", state.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let answer: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(answer["jobUrl"], json!("s3://nbs/detached.ipynb"));
        let id = answer["jobId"].as_str().unwrap();
        let job = wait_job_finished(state.path(), id, Duration::from_secs(90));
        assert_eq!(job["status"], "COMPLETED", "{job}");
        let out: Value =
            serde_json::from_slice(&moto.get_object("nbs", "detached.ipynb").unwrap()).unwrap();
        assert_eq!(stream_text(&out["cells"][2], "stdout"), "detached 5\n");
        assert_eq!(out["metadata"]["nbexec"]["job_id"], json!(id));
    }

    #[test]
    fn http_get_and_put() {
        let server = HttpObjects::start();
        let nb = input_nb(vec![code("print('over http', n)", &[])]);
        server
            .objects
            .lock()
            .unwrap()
            .insert("/nb/in.ipynb".into(), nb_bytes(&nb));
        let base = format!("http://127.0.0.1:{}", server.port);
        let o = nbexec()
            .args([
                "run",
                &format!("{base}/nb/in.ipynb"),
                &format!("{base}/nb/out.ipynb"),
                "-p",
                "n",
                "7",
                "--no-progress-bar",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let body = server.objects.lock().unwrap()["/nb/out.ipynb"].clone();
        let out: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(stream_text(&out["cells"][2], "stdout"), "over http 7\n");
        assert_eq!(server.count("PUT"), 1);
        // A missing object is a one-line error naming the URL.
        let o = nbexec()
            .args(["run", &format!("{base}/nb/absent.ipynb"), "out.ipynb"])
            .current_dir(tempfile::tempdir().unwrap().path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).starts_with(&format!("error: {base}/nb/absent.ipynb: not found")),
            "{}",
            stderr(&o)
        );
    }

    #[test]
    fn jupyter_contents_api_with_a_token() {
        let server = JupyterServer::start();
        let nb = input_nb(vec![code("print('from jupyter', n)", &[])]);
        std::fs::create_dir(server.root.path().join("work")).unwrap();
        std::fs::write(server.root.path().join("work/in.ipynb"), nb_bytes(&nb)).unwrap();
        let base = format!("jupyter+http://127.0.0.1:{}/api/contents/work", server.port);
        let o = nbexec()
            .env("JUPYTER_TOKEN", &server.token)
            .args([
                "run",
                &format!("{base}/in.ipynb"),
                &format!("{base}/out.ipynb"),
                "-p",
                "n",
                "3",
                "--no-progress-bar",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        // The server wrote the notebook itself, from the model nbexec sent.
        let out = read_nb(&server.root.path().join("work/out.ipynb"));
        assert_eq!(stream_text(&out["cells"][2], "stdout"), "from jupyter 3\n");
        assert_eq!(
            out["metadata"]["nbexec"]["output_url"],
            json!(format!("{base}/out.ipynb"))
        );
        // A wrong token is refused in one line, before any kernel.
        let o = nbexec()
            .env("JUPYTER_TOKEN", "wrong")
            .args(["run", &format!("{base}/in.ipynb"), "out.ipynb"])
            .current_dir(tempfile::tempdir().unwrap().path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("access denied"), "{}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
}
