//! Behaviour of the kernel client against the real ipykernel in the project's .venv.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nbexec_kernel::{
    ExecuteOptions, InterruptMode, KernelClient, KernelError, KernelEvent, LaunchOptions, Transport,
};

const GRACE: Duration = Duration::from_secs(2);

#[tokio::test]
async fn kernel_info_reports_python_and_200_executes_count_1_to_200() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = start(&rt).await;
    assert_eq!(k.kernel_info()["language_info"]["name"], "python");
    assert_eq!(k.kernel_info()["status"], "ok");
    let pid = k.pid().expect("we started it");
    for n in 1..=200u64 {
        let cell = run(&mut k, "1+1").await;
        assert_eq!(cell.reply.content["status"], "ok");
        assert_eq!(cell.reply.content["execution_count"].as_u64(), Some(n));
        let results = cell.of_type("execute_result");
        assert_eq!(results.len(), 1, "one result for execution {n}");
        assert_eq!(results[0].content["data"]["text/plain"], "2");
        assert_eq!(results[0].content["execution_count"].as_u64(), Some(n));
    }
    assert_eq!(k.dropped_messages(), 0);
    let conn = k.connection_file().to_path_buf();
    assert!(conn.exists());
    k.shutdown(GRACE).await.expect("shutdown");
    assert!(!conn.exists(), "connection file removed by shutdown");
    assert_group_gone(pid);
}

#[tokio::test]
async fn a_20_mb_display_data_arrives_intact() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = start(&rt).await;
    let pid = k.pid().expect("pid");
    let cell = run(
        &mut k,
        "from IPython.display import display\n\
         display({'text/plain': 'x' * 20_000_000}, raw=True)",
    )
    .await;
    let shown = cell.of_type("display_data");
    assert_eq!(shown.len(), 1);
    let text = shown[0].content["data"]["text/plain"]
        .as_str()
        .expect("text/plain is a string");
    assert_eq!(text.len(), 20_000_000);
    assert!(text.bytes().all(|b| b == b'x'));
    k.shutdown(GRACE).await.expect("shutdown");
    assert_group_gone(pid);
}

#[tokio::test]
async fn stdout_and_stderr_streams_arrive_in_order() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = start(&rt).await;
    let pid = k.pid().expect("pid");
    let cell = run(
        &mut k,
        "import sys\n\
         for i in range(5):\n    print('out', i, flush=True)\n    print('err', i, file=sys.stderr, flush=True)",
    )
    .await;
    assert_eq!(
        stream_text(&cell, "stdout"),
        "out 0\nout 1\nout 2\nout 3\nout 4\n"
    );
    assert_eq!(
        stream_text(&cell, "stderr"),
        "err 0\nerr 1\nerr 2\nerr 3\nerr 4\n"
    );
    // With flushes in between, the two streams interleave as written.
    let order: Vec<String> = cell
        .of_type("stream")
        .iter()
        .map(|m| m.content["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(order.concat().lines().next(), Some("out 0"));
    assert!(order.concat().find("err 0") < order.concat().find("out 1"));
    k.shutdown(GRACE).await.expect("shutdown");
    assert_group_gone(pid);
}

#[tokio::test]
async fn update_display_data_and_clear_output_are_delivered() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = start(&rt).await;
    let pid = k.pid().expect("pid");
    let cell = run(
        &mut k,
        "from IPython.display import display, clear_output\n\
         h = display('first', display_id=True)\n\
         h.update('second')\n\
         print('gone')\n\
         clear_output(wait=False)\n\
         print('kept')",
    )
    .await;
    let shown = cell.of_type("display_data");
    assert_eq!(shown.len(), 1);
    let display_id = &shown[0].content["transient"]["display_id"];
    assert!(display_id.is_string(), "display_id given: {shown:?}");
    assert_eq!(shown[0].content["data"]["text/plain"], "'first'");
    let updates = cell.of_type("update_display_data");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].content["transient"]["display_id"], *display_id);
    assert_eq!(updates[0].content["data"]["text/plain"], "'second'");
    let clears = cell.of_type("clear_output");
    assert_eq!(clears.len(), 1);
    assert_eq!(clears[0].content["wait"], false);
    let kinds: Vec<&str> = cell.outputs.iter().map(|m| m.msg_type.as_str()).collect();
    let clear_at = kinds.iter().position(|t| *t == "clear_output");
    let last_stream = kinds.iter().rposition(|t| *t == "stream");
    assert!(
        clear_at < last_stream,
        "'kept' comes after the clear: {kinds:?}"
    );
    k.shutdown(GRACE).await.expect("shutdown");
    assert_group_gone(pid);
}

/// Runs `time.sleep(60)`, interrupts it once it is running, and checks it
/// ends with KeyboardInterrupt in under 2 s.
async fn interrupt_sleeping_cell(mode: InterruptMode) {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut spec = python_spec();
    spec.interrupt_mode = mode;
    let mut k = KernelClient::start(&spec, &opts(&rt)).await.expect("start");
    let pid = k.pid().expect("pid");
    // Twice: the second interrupt proves the first left the channel usable.
    for _ in 0..2 {
        interrupt_once(&mut k).await;
    }
    k.shutdown(GRACE).await.expect("shutdown");
    assert_group_gone(pid);
}

async fn interrupt_once(k: &mut KernelClient) {
    let id = k
        .execute("import time\ntime.sleep(60)", ExecuteOptions::default())
        .await
        .expect("execute");
    // Wait until the kernel is running the cell.
    loop {
        if let KernelEvent::Iopub(m) = k.recv().await
            && m.parent_msg_id.as_deref() == Some(id.as_str())
            && m.msg_type == "execute_input"
        {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    k.interrupter().interrupt().await.expect("interrupt sent");
    let cell = collect(k, &id, Duration::from_secs(10)).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "interrupt took {took:?}");
    assert_eq!(cell.reply.content["status"], "error");
    assert_eq!(cell.reply.content["ename"], "KeyboardInterrupt");
    // The kernel is still usable afterwards.
    let after = run(k, "40+2").await;
    assert_eq!(
        after.of_type("execute_result")[0].content["data"]["text/plain"],
        "42"
    );
}

#[tokio::test]
async fn signal_interrupt_ends_a_sleeping_cell_with_keyboard_interrupt_quickly() {
    interrupt_sleeping_cell(InterruptMode::Signal).await;
}

#[tokio::test]
async fn message_interrupt_ends_a_sleeping_cell_with_keyboard_interrupt_quickly() {
    interrupt_sleeping_cell(InterruptMode::Message).await;
}

#[tokio::test]
async fn os_exit_is_reported_as_died_quickly_and_leaves_no_process() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = start(&rt).await;
    let pid = k.pid().expect("pid");
    // A child process in the kernel's group must not survive either.
    run(
        &mut k,
        "import subprocess\np = subprocess.Popen(['sleep', '60'])",
    )
    .await;
    let id = k
        .execute("import os\nos._exit(1)", ExecuteOptions::default())
        .await
        .expect("execute");
    let t0 = Instant::now();
    let died = loop {
        match tokio::time::timeout(Duration::from_secs(5), k.recv()).await {
            Ok(KernelEvent::Died {
                status,
                stderr_tail,
            }) => break (status, stderr_tail),
            Ok(_) => {}
            Err(_) => panic!("death of {id} not reported within 5 s"),
        }
    };
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "death noticed after {took:?}"
    );
    let status = died.0.expect("exit status of our child");
    assert_eq!(status.code(), Some(1));
    // Died is sticky, and requests now fail cleanly.
    assert!(matches!(k.recv().await, KernelEvent::Died { .. }));
    assert!(matches!(
        k.execute("1", ExecuteOptions::default()).await,
        Err(KernelError::Dead)
    ));
    assert!(matches!(
        k.interrupter().interrupt().await,
        Err(KernelError::Dead)
    ));
    assert_group_gone(pid);
    k.shutdown(GRACE).await.expect("shutdown of a dead kernel");
}

#[tokio::test]
async fn a_wrongly_signed_message_is_dropped_counted_and_harmless() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = start(&rt).await;
    let pid = k.pid().expect("pid");
    let cell = run(
        &mut k,
        "import jupyter_client.session as s\n\
         k = get_ipython().kernel\n\
         bad = s.Session(key=b'wrong')\n\
         bad.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': 'evil'}, parent=k.get_parent())\n\
         unsigned = s.Session(key=b'')\n\
         unsigned.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': 'evil'}, parent=k.get_parent())",
    )
    .await;
    let next = run(&mut k, "print('good')").await;
    assert!(
        k.dropped_messages() >= 2,
        "dropped {}",
        k.dropped_messages()
    );
    assert_eq!(stream_text(&cell, "stdout"), "");
    assert_eq!(stream_text(&next, "stdout"), "good\n");
    assert_eq!(next.reply.content["status"], "ok");
    k.shutdown(GRACE).await.expect("shutdown");
    assert_group_gone(pid);
}

async fn ten_in_parallel(transport: Transport) {
    let rt = tempfile::tempdir().expect("tempdir");
    let options = LaunchOptions {
        transport,
        ..opts(&rt)
    };
    let spec = python_spec();
    let starts = (0..10).map(|_| KernelClient::start(&spec, &options));
    let kernels: Vec<KernelClient> = futures_join_all(starts)
        .await
        .into_iter()
        .map(|r| r.expect("every kernel starts"))
        .collect();
    let pids: Vec<u32> = kernels.iter().map(|k| k.pid().expect("pid")).collect();
    let runs = kernels
        .into_iter()
        .enumerate()
        .map(|(i, mut k)| async move {
            let cell = run(&mut k, &format!("import os\nprint({i}, os.getpid())")).await;
            (k, i, stream_text(&cell, "stdout"))
        });
    let mut seen = Vec::new();
    for (k, i, out) in futures_join_all(runs).await {
        let pid = k.pid().expect("pid");
        // Each kernel ran its own cell: a collision would mix them up.
        assert_eq!(out, format!("{i} {pid}\n"));
        seen.push(pid);
        k.shutdown(GRACE).await.expect("shutdown");
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 10);
    for pid in pids {
        assert_group_gone(pid);
    }
}

/// `join_all` without a futures dependency: spawn on the local set and await in order.
async fn futures_join_all<F>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future,
{
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[tokio::test]
async fn ten_kernels_start_in_parallel_over_ipc_without_colliding() {
    ten_in_parallel(Transport::Ipc).await;
}

#[tokio::test]
async fn ten_kernels_start_in_parallel_over_tcp_without_colliding() {
    ten_in_parallel(Transport::Tcp).await;
}

#[tokio::test]
async fn a_missing_executable_is_a_spawn_error_naming_it() {
    let rt = tempfile::tempdir().expect("tempdir");
    let spec = custom_spec(
        "ghost",
        &["/no/such/kernel-binary", "-f", "{connection_file}"],
    );
    let err = KernelClient::start(&spec, &opts(&rt))
        .await
        .err()
        .expect("start fails");
    assert!(matches!(err, KernelError::Spawn { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("/no/such/kernel-binary"), "{msg}");
    assert!(msg.contains("ghost"), "{msg}");
    assert_no_files_left(&rt);

    // A missing working directory is named as such, not blamed on argv[0].
    let options = LaunchOptions {
        cwd: Some(rt.path().join("no-such-dir")),
        ..opts(&rt)
    };
    let err = KernelClient::start(&python_spec(), &options)
        .await
        .err()
        .expect("start fails");
    assert!(matches!(err, KernelError::File { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[tokio::test]
async fn a_kernel_that_exits_at_once_is_reported_with_its_status_and_output() {
    let rt = tempfile::tempdir().expect("tempdir");
    let py = python().display().to_string();
    let spec = custom_spec(
        "quitter",
        &[
            &py,
            "-c",
            "import sys; print('bye from kernel', file=sys.stderr); sys.exit(3)",
        ],
    );
    let t0 = Instant::now();
    let err = KernelClient::start(&spec, &opts(&rt))
        .await
        .err()
        .expect("start fails");
    assert!(t0.elapsed() < Duration::from_secs(10));
    match &err {
        KernelError::ExitedDuringStart {
            status,
            stderr_tail,
            ..
        } => {
            assert_eq!(status.code(), Some(3));
            assert!(stderr_tail.contains("bye from kernel"), "{stderr_tail:?}");
        }
        other => panic!("expected ExitedDuringStart, got {other:?}"),
    }
    assert!(err.to_string().contains("quitter"));
    assert_no_files_left(&rt);
}

#[tokio::test]
async fn python3_exiting_at_once_is_exited_during_start() {
    let rt = tempfile::tempdir().expect("tempdir");
    // The brief's literal case: a bare `python3` on PATH.
    let spec = custom_spec("exit3", &["python3", "-c", "import sys; sys.exit(3)"]);
    match KernelClient::start(&spec, &opts(&rt)).await {
        Err(KernelError::ExitedDuringStart { status, .. }) => assert_eq!(status.code(), Some(3)),
        Err(other) => panic!("expected ExitedDuringStart, got {other:?}"),
        Ok(_) => panic!("python3 -c 'sys.exit(3)' cannot be a kernel"),
    }
}

#[tokio::test]
async fn a_kernel_that_never_answers_times_out_and_is_killed() {
    let rt = tempfile::tempdir().expect("tempdir");
    let spec = custom_spec("mute", &["sleep", "60"]);
    let options = LaunchOptions {
        start_timeout: Duration::from_secs(2),
        ..opts(&rt)
    };
    let t0 = Instant::now();
    let err = KernelClient::start(&spec, &options)
        .await
        .err()
        .expect("start fails");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(matches!(err, KernelError::StartTimeout { .. }), "{err:?}");
    assert!(err.to_string().contains("sleep 60"), "{err}");
    // No `sleep 60` of ours survives: look for one whose parent is this process.
    let me = std::process::id().to_string();
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let close = stat.rfind(')').unwrap_or(0);
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            stat.contains("(sleep)")
                && fields.get(1) == Some(&me.as_str())
                && fields.first() != Some(&"Z")
        })
        .collect();
    assert!(survivors.is_empty(), "sleep survived: {survivors:?}");
    assert_no_files_left(&rt);
}

#[tokio::test]
async fn input_fails_fast_with_stdin_not_implemented() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = start(&rt).await;
    let pid = k.pid().expect("pid");
    let t0 = Instant::now();
    let id = k
        .execute("input('name? ')", ExecuteOptions::default())
        .await
        .expect("execute");
    let cell = collect(&mut k, &id, Duration::from_secs(10)).await;
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(cell.reply.content["status"], "error");
    assert_eq!(cell.reply.content["ename"], "StdinNotImplementedError");
    k.shutdown(GRACE).await.expect("shutdown");
    assert_group_gone(pid);
}

#[tokio::test]
async fn pipelined_requests_all_complete_in_order() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = start(&rt).await;
    let pid = k.pid().expect("pid");
    // A window of 100 requests in flight, with output, before reading anything.
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(
            k.execute(&format!("print({i})\n{i}"), ExecuteOptions::default())
                .await
                .expect("execute"),
        );
    }
    // Group everything by request until every request has its reply and idle.
    let mut stdout = vec![String::new(); ids.len()];
    let mut results = vec![String::new(); ids.len()];
    let mut replies = vec![0; ids.len()];
    let mut idles = vec![0; ids.len()];
    let mut order = Vec::new();
    while idles.iter().sum::<usize>() < ids.len() || replies.iter().sum::<usize>() < ids.len() {
        let ev = tokio::time::timeout(Duration::from_secs(60), k.recv())
            .await
            .expect("events keep coming");
        let (m, is_reply) = match ev {
            KernelEvent::Iopub(m) => (m, false),
            KernelEvent::ShellReply(m) => (m, true),
            other => panic!("unexpected {other:?}"),
        };
        let Some(i) = ids
            .iter()
            .position(|id| m.parent_msg_id.as_ref() == Some(id))
        else {
            continue;
        };
        match (is_reply, m.msg_type.as_str()) {
            (true, _) => {
                replies[i] += 1;
                order.push(i);
            }
            (false, "stream") => stdout[i].push_str(m.content["text"].as_str().unwrap_or_default()),
            (false, "execute_result") => {
                results[i] = m.content["data"]["text/plain"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
            }
            (false, "status") if m.content["execution_state"] == "idle" => idles[i] += 1,
            _ => {}
        }
    }
    assert_eq!(
        order,
        (0..ids.len()).collect::<Vec<_>>(),
        "replies in request order"
    );
    for i in 0..ids.len() {
        assert_eq!(stdout[i], format!("{i}\n"));
        assert_eq!(results[i], i.to_string());
    }
    k.shutdown(GRACE).await.expect("shutdown");
    assert_group_gone(pid);
}

#[tokio::test]
async fn stop_on_error_aborts_the_requests_queued_behind_a_failure() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = start(&rt).await;
    let pid = k.pid().expect("pid");
    let failing = k
        .execute("raise ValueError('boom')", ExecuteOptions::default())
        .await
        .expect("execute");
    let queued = k
        .execute("print('never')", ExecuteOptions::default())
        .await
        .expect("execute");
    let mut cells = collect_all(&mut k, &[failing, queued], Duration::from_secs(30)).await;
    let second = cells.remove(1);
    let first = cells.remove(0);
    assert_eq!(first.reply.content["ename"], "ValueError");
    let errors = first.of_type("error");
    assert_eq!(errors[0].content["evalue"], "boom");
    assert_eq!(second.reply.content["status"], "aborted");
    assert_eq!(stream_text(&second, "stdout"), "");
    k.shutdown(GRACE).await.expect("shutdown");
    assert_group_gone(pid);
}

#[tokio::test]
async fn dropping_the_client_kills_the_kernel_and_removes_its_files() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = start(&rt).await;
    let pid = k.pid().expect("pid");
    run(
        &mut k,
        "import subprocess\np = subprocess.Popen(['sleep', '60'])",
    )
    .await;
    drop(k);
    assert_group_gone(pid);
    assert_no_files_left(&rt);
}

#[tokio::test]
async fn a_connected_client_notices_death_through_the_heartbeat() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut owner = start(&rt).await;
    let pid = owner.pid().expect("pid");
    let mut other =
        KernelClient::connect_existing(owner.connection_file(), Duration::from_secs(20))
            .await
            .expect("connect to a running kernel");
    assert_eq!(other.pid(), None);
    assert_eq!(other.kernel_info()["language_info"]["name"], "python");
    // A kernel busy for longer than the heartbeat's patience is not dead:
    // ipykernel answers pings from its own thread.
    let busy = run(
        &mut other,
        "import time\nt = time.time()\nwhile time.time() - t < 2.5: pass",
    )
    .await;
    assert_eq!(busy.reply.content["status"], "ok");
    let cell = run(&mut other, "6*7").await;
    assert_eq!(
        cell.of_type("execute_result")[0].content["data"]["text/plain"],
        "42"
    );
    // Kill the kernel behind the second client's back.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let t0 = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), other.recv()).await {
            Ok(KernelEvent::Died { status, .. }) => {
                assert_eq!(status, None);
                break;
            }
            Ok(_) => {}
            Err(_) => panic!("heartbeat loss not noticed within 5 s"),
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // The owner sees its child's exit (after the other client's broadcasts).
    loop {
        if let KernelEvent::Died { status, .. } = owner.recv().await {
            assert!(status.is_some());
            break;
        }
    }
    other.shutdown(GRACE).await.expect("shutdown");
    owner.shutdown(GRACE).await.expect("shutdown");
    assert_group_gone(pid);
}

#[tokio::test]
async fn cwd_env_and_resolved_venv_python_reach_the_kernel() {
    let rt = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let mut spec = python_spec();
    spec.env
        .insert("NBEXEC_FROM_SPEC".into(), "${HOME}|$$".into());
    let options = LaunchOptions {
        cwd: Some(work.path().to_path_buf()),
        env: vec![("NBEXEC_FROM_OPTS".into(), "yes".into())],
        ..opts(&rt)
    };
    let mut k = KernelClient::start(&spec, &options).await.expect("start");
    let pid = k.pid().expect("pid");
    let cell = run(
        &mut k,
        "import os, sys\n\
         print(os.getcwd())\n\
         print(os.environ['NBEXEC_FROM_SPEC'])\n\
         print(os.environ['NBEXEC_FROM_OPTS'])\n\
         print(sys.prefix)\n\
         print(os.getpgid(0) == os.getpid())",
    )
    .await;
    let home = std::env::var("HOME").unwrap_or_default();
    let out = stream_text(&cell, "stdout");
    let lines: Vec<&str> = out.lines().collect();
    let canon = |p: &std::path::Path| std::fs::canonicalize(p).expect("canonical");
    assert_eq!(canon(std::path::Path::new(lines[0])), canon(work.path()));
    assert_eq!(lines[1], format!("{home}|$"));
    assert_eq!(lines[2], "yes");
    assert_eq!(
        canon(std::path::Path::new(lines[3])),
        canon(&python_prefix())
    );
    assert_eq!(lines[4], "True", "the kernel leads its own process group");
    k.shutdown(GRACE).await.expect("shutdown");
    assert_group_gone(pid);
}

fn assert_no_files_left(rt: &tempfile::TempDir) {
    let left: Vec<_> = std::fs::read_dir(rt.path())
        .expect("runtime dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn cancelling_a_start_leaves_no_kernel_and_no_files() {
    let rt = tempfile::tempdir().expect("tempdir");
    let spec = python_spec();
    // Give up while the kernel is still importing.
    let r = tokio::time::timeout(
        Duration::from_millis(150),
        KernelClient::start(&spec, &opts(&rt)),
    )
    .await;
    assert!(r.is_err(), "a python kernel cannot be ready in 150 ms");
    // The kernel's argv names its connection file, inside our runtime dir.
    let marker = rt.path().display().to_string();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let alive: Vec<String> = std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&marker))
            .collect();
        if alive.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kernel survived cancellation: {alive:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_no_files_left(&rt);
}

#[tokio::test]
async fn an_unknown_kernel_name_is_not_found_with_the_places_searched() {
    let err = nbexec_kernel::find_kernelspec("no-such-kernel-xyz").expect_err("unknown");
    match &err {
        KernelError::NotFound { searched, .. } => {
            assert_eq!(searched, &nbexec_kernel::kernelspec_search_dirs());
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("no kernel named 'no-such-kernel-xyz'")
    );
}

/// Set in the copy of this test binary that `a_kernel_dies_when_nbexec_is_sigkilled`
/// starts: that copy starts a kernel, prints its pid and waits to be killed.
const PDEATHSIG_HELPER: &str = "NBEXEC_TEST_PDEATHSIG_HELPER";

#[tokio::test]
async fn a_kernel_dies_when_nbexec_is_sigkilled() {
    if let Some(runtime) = std::env::var_os(PDEATHSIG_HELPER) {
        // Helper role. The parent poller is switched off (JPY_PARENT_PID=0)
        // so that only PR_SET_PDEATHSIG can end the kernel.
        let options = LaunchOptions {
            runtime_dir: Some(runtime.into()),
            env: vec![("JPY_PARENT_PID".into(), "0".into())],
            ..LaunchOptions::default()
        };
        let k = KernelClient::start(&python_spec(), &options)
            .await
            .expect("helper's kernel starts");
        println!("KERNEL_PID={}", k.pid().expect("pid"));
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }
    use std::io::BufRead;
    let rt = tempfile::tempdir().expect("tempdir");
    let mut helper = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_kernel_dies_when_nbexec_is_sigkilled",
            "--nocapture",
        ])
        .env(PDEATHSIG_HELPER, rt.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("helper starts");
    let stdout = helper.stdout.take().expect("piped");
    let pid_line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("KERNEL_PID=").map(str::to_owned));
    let kernel_pid: u32 = match pid_line.and_then(|p| p.parse().ok()) {
        Some(p) => p,
        None => {
            let _ = helper.kill();
            panic!("helper did not report a kernel pid");
        }
    };
    helper.kill().expect("SIGKILL the helper");
    let _ = helper.wait();
    assert_group_gone_or_orphaned_dead(kernel_pid);
}

/// The kernel was the helper's child, so once the helper is gone it is reaped
/// by init; "gone" means no live (non-zombie) process with that pid remains.
fn assert_group_gone_or_orphaned_dead(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let close = s.rfind(')')?;
                s[close + 1..].split_whitespace().next().map(str::to_owned)
            });
        match state.as_deref() {
            None | Some("Z") | Some("X") => return,
            _ if Instant::now() > deadline => panic!("kernel {pid} outlived its killed parent"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[tokio::test]
async fn a_kernel_asking_for_input_anyway_gets_an_empty_reply_and_is_reported() {
    let rt = tempfile::tempdir().expect("tempdir");
    let mut k = start(&rt).await;
    let pid = k.pid().expect("pid");
    // Only a request with allow_stdin=true makes ipykernel ask.
    let id = k
        .shell_request(
            "execute_request",
            serde_json::json!({
                "code": "print(repr(input('name? ')))",
                "silent": false,
                "store_history": true,
                "user_expressions": {},
                "allow_stdin": true,
                "stop_on_error": true,
            }),
        )
        .await
        .expect("request sent");
    let mut asked = false;
    let mut out = String::new();
    let mut done = (false, false);
    while !(done.0 && done.1) {
        let ev = tokio::time::timeout(Duration::from_secs(10), k.recv())
            .await
            .expect("the cell does not hang");
        match ev {
            KernelEvent::StdinRequest(m) => {
                assert_eq!(m.msg_type, "input_request");
                assert_eq!(m.content["prompt"], "name? ");
                asked = true;
            }
            KernelEvent::ShellReply(m) if m.parent_msg_id.as_deref() == Some(id.as_str()) => {
                assert_eq!(m.content["status"], "ok");
                done.0 = true;
            }
            KernelEvent::Iopub(m) if m.parent_msg_id.as_deref() == Some(id.as_str()) => {
                if m.msg_type == "stream" {
                    out.push_str(m.content["text"].as_str().unwrap_or_default());
                }
                done.1 |= m.msg_type == "status" && m.content["execution_state"] == "idle";
            }
            KernelEvent::Died { stderr_tail, .. } => panic!("died: {stderr_tail}"),
            _ => {}
        }
    }
    assert!(asked, "the input_request was reported");
    assert!(
        out.ends_with("''\n"),
        "input() returned the empty reply: {out:?}"
    );
    k.shutdown(GRACE).await.expect("shutdown");
    assert_group_gone(pid);
}

#[test]
fn clients_interrupters_and_their_futures_can_move_across_threads() {
    fn send<T: Send>(_: &T) {}
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send_sync_clone::<nbexec_kernel::Interrupter>();
    fn check(k: &mut KernelClient) {
        send(&k.recv());
        send(&k.execute("1", ExecuteOptions::default()));
        send(&k.interrupter().interrupt());
    }
    fn owned(k: KernelClient) {
        send(&k);
        send(&k.shutdown(GRACE));
    }
    let _ = (check as fn(&mut KernelClient), owned as fn(KernelClient));
    send(&KernelClient::start(
        &python_spec(),
        &LaunchOptions::default(),
    ));
}
