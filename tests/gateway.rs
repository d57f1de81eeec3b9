//! Remote kernels through a real Jupyter Kernel Gateway 3.0.1 (its own environment,
//! `.venv-gateway`, made by `scripts/venv.sh gateway`) on 127.0.0.1 with a token:
//! the run scenarios give the same notebooks as locally, and the faults (gateway
//! down, killed, a dropped WebSocket, a bad token, the kernel limit) end cleanly.
//! Every test ends by asserting the gateway runs no kernel.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The `error:` lines of a run's stderr (the last line is the run's summary).
fn error_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("error"))
        .map(str::to_owned)
        .collect()
}

fn run_cmd(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args).output().expect("nbexec runs")
}

/// What must be the same locally and remotely: per cell, its source, execution
/// count, papermill status and outputs (an error by its name: messages about a
/// dead kernel say how it was seen).
fn comparable(nb: &Value) -> Vec<Value> {
    nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let outputs: Vec<Value> = c["outputs"]
                .as_array()
                .map(|outs| {
                    outs.iter()
                        .map(|o| {
                            if o["output_type"] == "error" {
                                json!({"error": o["ename"]})
                            } else {
                                let mut o = o.clone();
                                if let Some(m) = o.get_mut("metadata") {
                                    *m = json!({});
                                }
                                o
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            // A kernel killed by os._exit may take its last IOPub messages
            // (`execute_input`, so the execution count) with it, over TCP locally as
            // through a gateway: that count, and the banner quoting it, are not
            // compared for the dead cell.
            let died = outputs.iter().any(|o| o["error"] == "DeadKernelError");
            let banner = c["source"].to_string().contains("papermill-error-cell");
            json!({
                "source": if banner { json!("(banner)") } else { c["source"].clone() },
                "count": if died { Value::Null } else { c["execution_count"].clone() },
                "status": c["metadata"]["papermill"]["status"],
                "outputs": outputs,
            })
        })
        .collect()
}

#[test]
fn the_run_scenarios_give_the_same_notebooks_through_the_gateway_as_locally() {
    let gw = KernelGateway::start();
    let dir = tmp();
    let scenarios: Vec<(&str, Vec<Value>, Vec<&str>, i32)> = vec![
        (
            "outputs",
            vec![
                markdown("# outputs"),
                code(
                    "print('out'); import sys; print('err', file=sys.stderr)",
                    &[],
                ),
                code("1 + 1", &[]),
                code(
                    "from IPython.display import display, HTML, Markdown\ndisplay(HTML('<b>x</b>'))\ndisplay(Markdown('*y*'))",
                    &[],
                ),
                code(
                    "h = display('first', display_id=True)\nh.update('second')\nprint('after')",
                    &[],
                ),
                code(
                    "x = 'z' * 1_500_000\nprint(x)\nfor i in range(3000): print(i)",
                    &[],
                ),
                code("raise ValueError('expected')", &["raises-exception"]),
                code("print('end')", &[]),
            ],
            vec![],
            0,
        ),
        (
            "error",
            vec![
                code("a = 1", &[]),
                code("1 / 0", &[]),
                code("print('never')", &[]),
            ],
            vec![],
            1,
        ),
        (
            "allow-errors",
            vec![code("1 / 0", &[]), code("print('still')", &[])],
            vec!["--allow-errors"],
            0,
        ),
        (
            "timeout-interrupts",
            vec![
                code("print('before')", &[]),
                code("import time\ntime.sleep(60)", &[]),
                code("print('never')", &[]),
            ],
            vec!["--execution-timeout", "3"],
            124,
        ),
        (
            "kernel-death",
            vec![
                code("print('x')", &[]),
                code("import os\nos._exit(1)", &[]),
                code("print('never')", &[]),
            ],
            vec![],
            138,
        ),
    ];
    for (name, cells, extra, expected) in scenarios {
        let input = write_nb(dir.path(), &format!("{name}.ipynb"), &notebook(cells));
        let local_out = dir.path().join(format!("{name}-local.ipynb"));
        let remote_out = dir.path().join(format!("{name}-remote.ipynb"));
        let mut args = vec!["run", input.to_str().unwrap(), local_out.to_str().unwrap()];
        args.extend(&extra);
        let local = run(&args);
        let mut args = vec!["run", input.to_str().unwrap(), remote_out.to_str().unwrap()];
        args.extend(&extra);
        let remote = run_cmd(gw.nbexec(), &args);
        assert_eq!(
            local.status.code(),
            Some(expected),
            "{name} locally: {}",
            stderr(&local)
        );
        assert_eq!(
            remote.status.code(),
            Some(expected),
            "{name} through the gateway: {}\n{}",
            stderr(&remote),
            gw.log_text()
        );
        let (l, r) = (read_nb(&local_out), read_nb(&remote_out));
        assert_eq!(comparable(&l), comparable(&r), "{name}: notebooks differ");
        // The remote run names where it ran; it had no local kernel process.
        assert_eq!(r["metadata"]["nbexec"]["gateway"], json!(gw.url), "{name}");
        assert!(
            r["metadata"]["nbexec"]["kernel_id"]
                .as_str()
                .is_some_and(|k| !k.is_empty())
        );
        assert!(r["metadata"]["nbexec"].get("kernel_pid").is_none());
        if expected != 0 {
            assert_eq!(error_lines(&remote).len(), 1, "{name}: {}", stderr(&remote));
        }
        gw.assert_no_kernels();
    }
}

#[test]
fn kernels_lists_the_gateways_kernelspecs() {
    let gw = KernelGateway::start();
    let out = run_cmd(gw.nbexec(), &["kernels"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("Available kernels at {}", gw.url)),
        "{text}"
    );
    assert!(text.contains("python3"), "{text}");
    let out = run_cmd(gw.nbexec(), &["kernels", "--json"]);
    let specs: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(specs["default"], json!("python3"));
}

#[test]
fn a_gateway_that_is_down_at_start_is_a_clear_error_and_exit_2() {
    let refusing = RefusingPort::new();
    let port = refusing.port;
    let dir = tmp();
    let input = write_nb(dir.path(), "in.ipynb", &notebook(vec![code("1", &[])]));
    let output = dir.path().join("out.ipynb");
    let url = format!("http://127.0.0.1:{port}");
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "--gateway-url",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = error_lines(&out);
    assert_eq!(err.len(), 1, "{}", stderr(&out));
    assert!(
        err[0].starts_with(&format!("error: cannot reach the gateway at {url}")),
        "{}",
        err[0]
    );
    // The output notebook is written whatever happened, as for a local kernel.
    assert_eq!(
        read_nb(&output)["metadata"]["nbexec"]["status"],
        json!("kernel_unavailable")
    );
}

#[test]
fn a_bad_token_is_one_line_naming_the_gateway_and_the_401() {
    let gw = KernelGateway::start();
    let dir = tmp();
    let input = write_nb(dir.path(), "in.ipynb", &notebook(vec![code("1", &[])]));
    let output = dir.path().join("out.ipynb");
    let mut cmd = gw.nbexec();
    cmd.env("JUPYTER_GATEWAY_AUTH_TOKEN", "wrong");
    let out = run_cmd(
        cmd,
        &["run", input.to_str().unwrap(), output.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = error_lines(&out);
    assert_eq!(err.len(), 1, "{}", stderr(&out));
    assert!(
        err[0].starts_with(&format!(
            "error: gateway {}: POST /api/kernels answered 401",
            gw.url
        )),
        "{}",
        err[0]
    );
    gw.assert_no_kernels();
}

/// Spawns `nbexec run` on a notebook whose first cell prints `first` and whose
/// second sleeps; returns once `first` was printed.
fn start_long_run(
    cmd: Command,
    dir: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, std::path::PathBuf) {
    let input = write_nb(
        dir,
        "in.ipynb",
        &notebook(vec![
            code("print('first', flush=True)", &[]),
            code("import time\ntime.sleep(60)", &[]),
            code("print('never')", &[]),
        ]),
    );
    let output = dir.join("out.ipynb");
    let mut cmd = cmd;
    let mut child = cmd
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--log-output",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first");
    std::thread::sleep(Duration::from_millis(700));
    (child, output)
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn sigterm_mid_run_saves_deletes_the_remote_kernel_and_exits_143() {
    let gw = KernelGateway::start();
    let dir = tmp();
    let (mut child, output) = start_long_run(gw.nbexec(), dir.path(), &[]);
    assert_eq!(gw.kernels().len(), 1);
    unsafe {
        libc_kill(child.id() as i32, 15);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let nb = read_nb(&output);
    assert_eq!(
        stream_text(cell_with(&nb, "print('first'"), "stdout"),
        "first\n"
    );
    assert_eq!(status_of(&nb, "time.sleep(60)"), "failed");
    gw.assert_no_kernels();
}

fn status_of<'a>(nb: &'a Value, needle: &str) -> &'a str {
    status(cell_with(nb, needle))
}

#[test]
fn jobs_cancel_stops_a_remote_run_and_the_job_names_the_gateway_and_kernel() {
    let gw = KernelGateway::start();
    let dir = tmp();
    let state = tmp();
    let state_arg = state.path().to_str().unwrap().to_owned();
    let (mut child, output) = start_long_run(gw.nbexec(), dir.path(), &["--state-dir", &state_arg]);
    let running = gw.kernels();
    assert_eq!(running.len(), 1);
    let jobs = job_list(state.path());
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let id = jobs[0]["jobId"].as_str().unwrap().to_owned();
    let (code, text) = jobs_cmd(state.path(), &["cancel", &id]);
    assert_eq!(code, Some(0), "{text}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let job = job_show(state.path(), &id);
    assert_eq!(job["status"], json!("CANCELLED"), "{job}");
    assert_eq!(job["results"]["gateway"], json!(gw.url), "{job}");
    assert_eq!(job["results"]["remoteKernelId"], running[0]["id"], "{job}");
    let nb = read_nb(&output);
    assert_eq!(nb["metadata"]["nbexec"]["kernel_id"], running[0]["id"]);
    gw.assert_no_kernels();
}

#[test]
fn a_gateway_killed_mid_run_is_exit_138_with_the_notebook_saved() {
    let mut gw = KernelGateway::start();
    let dir = tmp();
    let mut cmd = gw.nbexec();
    cmd.env("JUPYTER_GATEWAY_RETRY_MAX", "2");
    let (mut child, output) = start_long_run(cmd, dir.path(), &[]);
    gw.kill();
    let started = Instant::now();
    let status = child.wait().unwrap();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
    assert_eq!(status.code(), Some(138), "{err}");
    assert!(started.elapsed() < Duration::from_secs(40));
    assert!(
        err.contains("kernel died") && err.contains(&gw.url),
        "{err}"
    );
    let nb = read_nb(&output);
    assert_eq!(
        stream_text(cell_with(&nb, "print('first'"), "stdout"),
        "first\n"
    );
    assert_eq!(status_of(&nb, "time.sleep(60)"), "failed");
    assert_eq!(nb["metadata"]["nbexec"]["status"], json!("kernel_died"));
}

#[test]
fn a_start_abandoned_while_the_kernel_request_is_in_flight_leaves_no_kernel() {
    // The gateway creates the kernel at once, but its answer (the kernel's id)
    // reaches nbexec only 3 s later: SIGTERM comes in between.
    let gw = KernelGateway::start();
    let proxy = TcpProxy::start_slow(gw.port, Duration::from_secs(3));
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("print('never')", &[])]),
    );
    let output = dir.path().join("out.ipynb");
    let mut cmd = gw.nbexec();
    cmd.env(
        "JUPYTER_GATEWAY_URL",
        format!("http://127.0.0.1:{}", proxy.port),
    );
    let mut child = cmd
        .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while gw.kernels().is_empty() {
        assert!(Instant::now() < deadline, "no kernel was created");
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe {
        libc_kill(child.id() as i32, 15);
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
    assert_eq!(status.code(), Some(143), "{err}");
    assert_eq!(
        read_nb(&output)["metadata"]["nbexec"]["status"],
        json!("cancelled"),
        "{err}"
    );
    // Nobody took the kernel the gateway made: it was deleted all the same.
    gw.assert_no_kernels();
}

#[test]
fn a_dropped_websocket_is_reconnected_and_the_run_completes() {
    let gw = KernelGateway::start();
    let proxy = TcpProxy::start(gw.port);
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("print('first', flush=True)", &[]),
            code("import time\ntime.sleep(4)\nprint('slept')", &[]),
            code("print('last')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let mut cmd = gw.nbexec();
    cmd.env(
        "JUPYTER_GATEWAY_URL",
        format!("http://127.0.0.1:{}", proxy.port),
    );
    let mut child = cmd
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--log-output",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "first");
    std::thread::sleep(Duration::from_millis(500));
    // Cut every connection while the second cell sleeps; new ones go through.
    assert!(proxy.cut() > 0);
    let status = child.wait().unwrap();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
    assert_eq!(status.code(), Some(0), "{err}\n{}", gw.log_text());
    let nb = read_nb(&output);
    assert_eq!(stream_text(&nb["cells"][1], "stdout"), "slept\n");
    assert_eq!(stream_text(&nb["cells"][2], "stdout"), "last\n");
    gw.assert_no_kernels();
}

#[test]
fn at_the_gateways_kernel_limit_a_run_waits_then_runs() {
    let gw = KernelGateway::start_with(Some(1));
    let dir = tmp();
    let first = tmp();
    let (mut holder, _) = start_long_run(gw.nbexec(), first.path(), &["--execution-timeout", "5"]);
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("print('ran')", &[])]),
    );
    let output = dir.path().join("out.ipynb");
    let out = run_cmd(
        gw.nbexec(),
        &["run", input.to_str().unwrap(), output.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("403") && err.contains("Resource Limit") && err.contains("waiting"),
        "{err}"
    );
    assert_eq!(
        stream_text(&read_nb(&output)["cells"][0], "stdout"),
        "ran\n"
    );
    assert_eq!(holder.wait().unwrap().code(), Some(124));
    gw.assert_no_kernels();
}

#[test]
fn a_batch_runs_every_line_on_its_own_remote_kernel() {
    let gw = KernelGateway::start();
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("n = 0", &["parameters"]),
            code("import os\nprint(n * n, os.getpid())", &[]),
        ]),
    );
    let batch = dir.path().join("params.jsonl");
    std::fs::write(&batch, "{\"n\": 2}\n{\"n\": 3}\n{\"n\": 4}\n").unwrap();
    let template = dir.path().join("out-{_index}.ipynb");
    let out = run_cmd(
        gw.nbexec(),
        &[
            "run",
            input.to_str().unwrap(),
            template.to_str().unwrap(),
            "--batch",
            batch.to_str().unwrap(),
            "--jobs",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut kernel_ids = std::collections::HashSet::new();
    for (line, n) in [(1, 2), (2, 3), (3, 4)] {
        let nb = read_nb(&dir.path().join(format!("out-{line}.ipynb")));
        let printed = stream_text(&nb["cells"][2], "stdout");
        assert!(printed.starts_with(&format!("{} ", n * n)), "{printed}");
        assert_eq!(nb["metadata"]["nbexec"]["gateway"], json!(gw.url));
        kernel_ids.insert(nb["metadata"]["nbexec"]["kernel_id"].to_string());
    }
    assert_eq!(kernel_ids.len(), 3);
    gw.assert_no_kernels();
}

#[test]
fn kernel_variables_working_dir_and_launch_timeout_reach_the_remote_kernel() {
    let gw = KernelGateway::start();
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code(
            "import os\nfor k in ('KERNEL_TEAM', 'KERNEL_WORKING_DIR', 'KERNEL_LAUNCH_TIMEOUT', 'NOT_A_KERNEL_VAR'):\n    print(k, os.environ.get(k))",
            &[],
        )]),
    );
    let output = dir.path().join("out.ipynb");
    let mut cmd = gw.nbexec();
    cmd.env("KERNEL_TEAM", "blue").env("NOT_A_KERNEL_VAR", "x");
    let out = run_cmd(
        cmd,
        &[
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--cwd",
            dir.path().to_str().unwrap(),
            "--start-timeout",
            "77",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cwd = std::path::absolute(dir.path()).unwrap();
    assert_eq!(
        stream_text(&read_nb(&output)["cells"][0], "stdout"),
        format!(
            "KERNEL_TEAM blue\nKERNEL_WORKING_DIR {}\nKERNEL_LAUNCH_TIMEOUT 77\nNOT_A_KERNEL_VAR None\n",
            cwd.display()
        )
    );
    gw.assert_no_kernels();
}
