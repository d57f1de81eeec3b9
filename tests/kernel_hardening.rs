//! Kernel-side hardening, end to end through the `nbexec` binary: bytes from the
//! kernel that are not UTF-8, kernels that outlive nbexec, leftover runtime files,
//! unsafe shared runtime directories and kernelspec names.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use serde_json::json;

use common::*;

/// A cell that prints and raises with a file name that is not UTF-8 (Python keeps
/// the byte 0xE9 as a lone surrogate, and ipykernel sends it raw): nbexec must not
/// hang, and records the text with U+FFFD, as Python's `errors="replace"` would.
#[test]
fn output_that_is_not_utf8_is_recorded_with_replacement_characters() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dir");
    std::fs::create_dir(&data).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.csv");
    std::fs::write(data.join(name), "").unwrap();
    let nb = notebook(vec![code(
        "import os\nfor n in os.listdir('dir'):\n    print('processing', n)\n    raise RuntimeError('cannot parse ' + n)\n",
        &[],
    )]);
    let input = write_nb(dir.path(), "in.ipynb", &nb);
    let output = dir.path().join("out.ipynb");
    let mut cmd = nbexec();
    cmd.current_dir(dir.path())
        .arg("run")
        .arg(&input)
        .arg(&output)
        .args(["--cwd", dir.path().to_str().unwrap()]);
    let out = output_within(cmd, Duration::from_secs(120))
        .expect("nbexec finished (it used to wait for a reply it had dropped)");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let nb = read_nb(&output);
    let cell = cell_with(&nb, "cannot parse");
    assert_eq!(stream_text(cell, "stdout"), "processing caf\u{fffd}.csv\n");
    let error = cell["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["output_type"] == "error")
        .expect("the error is recorded");
    assert_eq!(error["ename"], "RuntimeError");
    assert_eq!(error["evalue"], "cannot parse caf\u{fffd}.csv");
    assert_eq!(status(cell), "failed");
    assert!(
        stderr(&out).contains("cannot parse caf\u{fffd}.csv"),
        "{}",
        stderr(&out)
    );
    assert_kernel_gone(&nb);
}

/// Makes the kernel send its next `msg_type` message whose content satisfies
/// `when` with a content frame that is not JSON (still correctly signed).
fn sabotage_next(msg_type: &str, when: &str) -> String {
    format!(
        "_k = get_ipython().kernel\n_s = _k.session\n_orig_send = _s.send\n\
         def _bad_send(stream, msg_or_type, content=None, *a, **kw):\n    \
         c = content if isinstance(content, dict) else {{}}\n    \
         if msg_or_type == {msg_type:?} and ({when}):\n        \
         _s.send = _orig_send\n        content = b'{{\"status\": \"ok\", trunc'\n    \
         return _orig_send(stream, msg_or_type, content, *a, **kw)\n\
         _s.send = _bad_send\n"
    )
}

/// An unreadable `status: idle` ends its cell (with a note), and an unreadable
/// `execute_reply` fails its cell (with an error saying so): neither hangs the run.
#[test]
fn unreadable_replies_and_idles_end_their_cells() {
    let dir = tempfile::tempdir().unwrap();
    let nb = notebook(vec![
        code(
            &(sabotage_next("status", "c.get('execution_state') == 'idle'") + "print('first')\n"),
            &[],
        ),
        code("print('second')\n", &[]),
        code(
            &(sabotage_next("execute_reply", "True") + "print('third')\n"),
            &[],
        ),
        code("print('never')\n", &[]),
    ]);
    let input = write_nb(dir.path(), "in.ipynb", &nb);
    let output = dir.path().join("out.ipynb");
    let mut cmd = nbexec();
    cmd.arg("run").arg(&input).arg(&output);
    let out = output_within(cmd, Duration::from_secs(120)).expect("nbexec finished");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let nb = read_nb(&output);
    let first = cell_with(&nb, "print('first')");
    assert_eq!(status(first), "completed");
    assert_eq!(stream_text(first, "stdout"), "first\n");
    let note = stream_text(first, "stderr");
    assert!(
        note.contains("status for this cell that could not be read")
            && note.contains("taken as the end of the cell"),
        "{note}"
    );
    assert_eq!(
        stream_text(cell_with(&nb, "print('second')"), "stdout"),
        "second\n"
    );
    let third = cell_with(&nb, "print('third')");
    assert_eq!(status(third), "failed");
    assert_eq!(stream_text(third, "stdout"), "third\n");
    let error = third["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["output_type"] == "error")
        .expect("an error output says why");
    assert_eq!(error["ename"], "UnreadableReply");
    assert!(
        error["evalue"]
            .as_str()
            .unwrap()
            .contains("execute_reply for this cell could not be read"),
        "{error}"
    );
    assert_eq!(status(cell_with(&nb, "print('never')")), "pending");
    assert_kernel_gone(&nb);
}

/// `nbexec` with no HOME (nor any other directory setting), temporary files in `tmp`.
fn homeless(tmp: &std::path::Path) -> std::process::Command {
    let mut cmd = nbexec();
    for var in [
        "HOME",
        "XDG_RUNTIME_DIR",
        "XDG_STATE_HOME",
        "JUPYTER_RUNTIME_DIR",
        "NBEXEC_STATE_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("TMPDIR", tmp);
    cmd
}

/// Without HOME the runtime and state directories are per-user directories under
/// the temporary directory, never a shared `/tmp/.local/...`; one that already
/// exists but belongs to another user, or that others can write, is refused.
#[test]
fn without_home_runtime_and_state_dirs_are_private_or_refused() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("print('ran')", &[])]),
    );
    let output = dir.path().join("out.ipynb");
    let runtime = tmp.path().join(format!("nbexec-{uid}"));
    let state = tmp.path().join(format!("nbexec-state-{uid}"));
    let run = || {
        let mut cmd = homeless(tmp.path());
        cmd.arg("run").arg(&input).arg(&output);
        output_within(cmd, Duration::from_secs(120)).expect("nbexec finished")
    };
    let jobs = || {
        let mut cmd = homeless(tmp.path());
        cmd.arg("jobs");
        output_within(cmd, Duration::from_secs(60)).expect("nbexec finished")
    };

    // Nothing there yet: private directories are made and used.
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stream_text(&read_nb(&output)["cells"][0], "stdout"),
        "ran\n"
    );
    let mode = std::fs::metadata(&runtime).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(!tmp.path().join(".local").exists());
    let out = jobs();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(state.join("jobs.sqlite3").exists());

    // Writable by others: refused, each where it is used.
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::remove_file(&output).unwrap();
    let out = run();
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains(runtime.to_str().unwrap()) && err.contains("can be written by other users"),
        "{err}"
    );
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = jobs();
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains(state.to_str().unwrap()) && err.contains("can be written by other users"),
        "{err}"
    );
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();

    // Private but another user's (nobody): refused.
    std::os::unix::fs::chown(&runtime, Some(65534), Some(65534)).unwrap();
    let out = run();
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("is owned by uid 65534"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let out = jobs();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("is owned by uid 65534"),
        "{}",
        stderr(&out)
    );
}

/// SIGKILL of nbexec (no code of ours runs) still takes down the kernel and the
/// processes the kernel started in its process group.
#[test]
fn kill_9_of_nbexec_takes_down_the_kernel_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let nb = notebook(vec![code(
        &format!(
            "import os, subprocess, time\np = subprocess.Popen(['sleep', '1000'])\n\
             with open({:?} + '.tmp', 'w') as f:\n    f.write(f'{{os.getpid()}} {{p.pid}}')\n\
             os.rename({:?} + '.tmp', {:?})\ntime.sleep(1000)\n",
            pids.to_str().unwrap(),
            pids.to_str().unwrap(),
            pids.to_str().unwrap()
        ),
        &[],
    )]);
    let input = write_nb(dir.path(), "in.ipynb", &nb);
    let output = dir.path().join("out.ipynb");
    let mut child = nbexec()
        .arg("run")
        .arg(&input)
        .arg(&output)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nbexec starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(&pids) {
            break t;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the cell never wrote its pids");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut it = text.split(' ').map(|p| p.parse::<i32>().expect("a pid"));
    let (kernel, sleep) = (it.next().unwrap(), it.next().unwrap());
    assert!(std::path::Path::new(&format!("/proc/{sleep}")).exists());
    child.kill().expect("SIGKILL nbexec");
    child.wait().unwrap();
    assert_pid_gone(kernel);
    assert_pid_gone(sleep);
}

/// A kernelspec that exists but cannot be used (not JSON, no argv) is bad input,
/// like an unknown kernel: exit 2 with a one-line error, and, as for an unknown
/// kernel, no output notebook since no run started.
#[test]
fn an_invalid_kernelspec_is_an_input_error_like_an_unknown_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let jupyter = dir.path().join("jupyter");
    for (name, text) in [
        ("notjson", "not json"),
        ("noargv", r#"{"display_name": "x", "language": "python"}"#),
    ] {
        let spec = jupyter.join("kernels").join(name);
        std::fs::create_dir_all(&spec).unwrap();
        std::fs::write(spec.join("kernel.json"), text).unwrap();
    }
    let input = write_nb(dir.path(), "in.ipynb", &notebook(vec![code("1", &[])]));
    for name in ["notjson", "noargv", "no-such-kernel"] {
        let output = dir.path().join(format!("out-{name}.ipynb"));
        let out = nbexec()
            .env("JUPYTER_PATH", &jupyter)
            .arg("run")
            .arg(&input)
            .arg(&output)
            .args(["-k", name])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with("error: ") && err.contains(name), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        // Written, marked as not run, as on every failure path.
        let nb = read_nb(&output);
        assert_eq!(
            nb["metadata"]["nbexec"]["status"],
            json!("kernel_unavailable"),
            "{name}"
        );
    }
}

/// `-k python` (papermill's own test notebooks say `python`) means `python3`, as in
/// jupyter_client, unless a kernelspec is literally named `python`.
#[test]
fn the_python_kernel_name_is_an_alias_of_python3() {
    let dir = tempfile::tempdir().unwrap();
    let mut nb = notebook(vec![code(
        "import sys\nprint('py', sys.version_info[0])",
        &[],
    )]);
    nb["metadata"]["kernelspec"]["name"] = "python".into();
    let input = write_nb(dir.path(), "in.ipynb", &nb);
    let output = dir.path().join("out.ipynb");
    let out = run(&["run", input.to_str().unwrap(), output.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stream_text(&read_nb(&output)["cells"][0], "stdout"),
        "py 3\n"
    );
    let out = run(&[
        "run",
        input.to_str().unwrap(),
        output.to_str().unwrap(),
        "-k",
        "python",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // A spec really named `python` wins over the alias.
    let jupyter = dir.path().join("jupyter");
    let spec = jupyter.join("kernels/python");
    std::fs::create_dir_all(&spec).unwrap();
    std::fs::write(
        spec.join("kernel.json"),
        r#"{"argv": ["/bin/sh", "-c", "echo the real python spec; exit 3"], "display_name": "p", "language": "python"}"#,
    )
    .unwrap();
    std::fs::remove_file(&output).unwrap();
    let out = nbexec()
        .env("JUPYTER_PATH", &jupyter)
        .arg("run")
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("the real python spec"),
        "{}",
        stderr(&out)
    );
}

/// The start time of a process, as nbexec puts it in its runtime file names.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    after.split_whitespace().nth(19).unwrap().parse().unwrap()
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Connection files and IPC sockets left by an nbexec that was SIGKILLed are removed
/// by the next run; files of live processes and files nbexec did not create stay.
#[test]
fn files_left_by_a_killed_nbexec_are_cleaned_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    let started = dir.path().join("started");
    let nb = notebook(vec![code(
        &format!(
            "import time\nopen({:?}, 'w').close()\ntime.sleep(1000)\n",
            started.to_str().unwrap()
        ),
        &[],
    )]);
    let input = write_nb(dir.path(), "in.ipynb", &nb);
    let output = dir.path().join("out.ipynb");
    let mut child = nbexec()
        .env("JUPYTER_RUNTIME_DIR", &runtime)
        .arg("run")
        .arg(&input)
        .arg(&output)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nbexec starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !started.exists() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the cell never started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let tag = format!("{}-{}", child.id(), start_time(child.id()));
    child.kill().expect("SIGKILL nbexec");
    child.wait().unwrap();
    let left = names(&runtime);
    assert!(
        left.iter()
            .any(|n| n.starts_with(&format!("kernel-nbexec-{tag}-")) && n.ends_with(".json")),
        "{left:?}"
    );
    assert!(
        left.iter()
            .filter(|n| n.starts_with(&format!("nbexec-{tag}-")))
            .count()
            >= 5,
        "the kernel's IPC sockets are left: {left:?}"
    );
    // What must survive: a live process's files, and files nbexec did not make.
    let me = std::process::id();
    let live = format!("kernel-nbexec-{me}-{}-abc.json", start_time(me));
    let reused = format!("nbexec-{me}-1-abc-1");
    let foreign = ["kernel-0123abcd.json", "nbexec-notes.txt", "nbexec-1-2"];
    for name in [live.as_str(), reused.as_str()].into_iter().chain(foreign) {
        std::fs::write(runtime.join(name), "").unwrap();
    }

    let quick = write_nb(dir.path(), "quick.ipynb", &notebook(vec![code("1", &[])]));
    let out = nbexec()
        .env("JUPYTER_RUNTIME_DIR", &runtime)
        .arg("run")
        .arg(&quick)
        .arg(dir.path().join("quick-out.ipynb"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut expected: Vec<String> = [live.as_str()]
        .into_iter()
        .chain(foreign)
        .map(String::from)
        .collect();
    expected.sort();
    // `reused` names a live pid with another start time: that process is gone.
    assert_eq!(names(&runtime), expected);
}
