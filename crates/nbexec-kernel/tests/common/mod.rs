//! Shared helpers for tests that run the real ipykernel from the project's .venv.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nbexec_kernel::{
    ExecuteOptions, KernelClient, KernelEvent, KernelSpec, LaunchOptions, Message, load_kernelspec,
};

/// The Python prefix with ipykernel: `$NBEXEC_TEST_PYTHON_PREFIX`, else `<workspace>/.venv`.
pub fn python_prefix() -> PathBuf {
    let prefix = match std::env::var_os("NBEXEC_TEST_PYTHON_PREFIX") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
            std::fs::canonicalize(&root).unwrap_or(root).join(".venv")
        }
    };
    let spec = prefix.join("share/jupyter/kernels/python3/kernel.json");
    assert!(
        prefix.join("bin/python").exists() && spec.exists(),
        "no Python with ipykernel at {} (missing bin/python or {}): run scripts/venv.sh first",
        prefix.display(),
        spec.display()
    );
    prefix
}

pub fn python() -> PathBuf {
    python_prefix().join("bin/python")
}

/// The .venv's own `python3` kernelspec, exactly as installed.
pub fn python_spec() -> KernelSpec {
    let dir = python_prefix().join("share/jupyter/kernels/python3");
    load_kernelspec(&dir).expect("the .venv's python3 kernelspec loads")
}

/// A spec that runs `argv` as is.
pub fn custom_spec(name: &str, argv: &[&str]) -> KernelSpec {
    KernelSpec {
        name: name.into(),
        display_name: name.into(),
        language: "python".into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: Default::default(),
        interrupt_mode: Default::default(),
        resource_dir: PathBuf::from("/nonexistent"),
        metadata: serde_json::json!({}),
    }
}

/// Launch options writing into a private temporary runtime dir.
pub fn opts(runtime: &tempfile::TempDir) -> LaunchOptions {
    LaunchOptions {
        runtime_dir: Some(runtime.path().to_path_buf()),
        ..LaunchOptions::default()
    }
}

pub async fn start(runtime: &tempfile::TempDir) -> KernelClient {
    KernelClient::start(&python_spec(), &opts(runtime))
        .await
        .expect("kernel starts")
}

/// What one execute produced.
#[derive(Debug)]
pub struct Cell {
    pub reply: Message,
    /// IOPub messages for the request other than `status` and `execute_input`.
    pub outputs: Vec<Message>,
}

impl Cell {
    pub fn of_type(&self, t: &str) -> Vec<&Message> {
        self.outputs.iter().filter(|m| m.msg_type == t).collect()
    }
}

/// Runs `code` and waits for its `execute_reply` and its `status: idle`.
pub async fn run(k: &mut KernelClient, code: &str) -> Cell {
    let id = k
        .execute(code, ExecuteOptions::default())
        .await
        .expect("execute sent");
    collect(k, &id, Duration::from_secs(60)).await
}

pub async fn collect(k: &mut KernelClient, id: &str, limit: Duration) -> Cell {
    let mut cells = collect_all(k, &[id.to_owned()], limit).await;
    cells.remove(0)
}

/// Waits until every request in `ids` has its reply and its `status: idle`,
/// grouping messages by request (the kernel may run ahead of the reader).
pub async fn collect_all(k: &mut KernelClient, ids: &[String], limit: Duration) -> Vec<Cell> {
    let deadline = Instant::now() + limit;
    let mut replies: Vec<Option<Message>> = ids.iter().map(|_| None).collect();
    let mut idle = vec![false; ids.len()];
    let mut outputs: Vec<Vec<Message>> = ids.iter().map(|_| Vec::new()).collect();
    let index = |m: &Message| {
        ids.iter()
            .position(|id| m.parent_msg_id.as_ref() == Some(id))
    };
    while replies.iter().any(Option::is_none) || idle.iter().any(|i| !i) {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, k.recv())
            .await
            .unwrap_or_else(|_| panic!("no reply+idle for all of {ids:?} within {limit:?}"));
        match ev {
            KernelEvent::ShellReply(m) => {
                if let Some(i) = index(&m) {
                    replies[i] = Some(m);
                }
            }
            KernelEvent::Iopub(m) => {
                let Some(i) = index(&m) else { continue };
                match m.msg_type.as_str() {
                    "status" => idle[i] |= m.content["execution_state"] == "idle",
                    "execute_input" => {}
                    _ => outputs[i].push(m),
                }
            }
            KernelEvent::Died { stderr_tail, .. } => panic!("kernel died: {stderr_tail}"),
            KernelEvent::StdinRequest(_) | KernelEvent::Unreadable { .. } => {}
        }
    }
    replies
        .into_iter()
        .zip(outputs)
        .map(|(reply, outputs)| Cell {
            reply: reply.expect("loop ends with every reply"),
            outputs,
        })
        .collect()
}

/// Text of all `stream` outputs of `name`, concatenated.
pub fn stream_text(cell: &Cell, name: &str) -> String {
    cell.of_type("stream")
        .iter()
        .filter(|m| m.content["name"] == name)
        .filter_map(|m| m.content["text"].as_str())
        .collect()
}

/// Asserts that the process group `pgid` is gone (waiting up to 3 s for the
/// reaper), i.e. no process of the kernel is left.
pub fn assert_group_gone(pgid: u32) {
    let pg = nix::unistd::Pid::from_raw(-(i32::try_from(pgid).expect("pid fits")));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match nix::sys::signal::kill(pg, None) {
            Err(nix::errno::Errno::ESRCH) => return,
            _ if Instant::now() > deadline => {
                panic!(
                    "process group {pgid} still has processes: {}",
                    group_members(pgid)
                )
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// `pid (comm)` of each process in group `pgid`, from /proc, for messages.
fn group_members(pgid: u32) -> String {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // Fields after the parenthesised command: state ppid pgrp ...
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            if fields.get(2) == Some(&pgid.to_string().as_str()) {
                out.push(stat[..=close].to_string());
            }
        }
    }
    out.join(", ")
}
