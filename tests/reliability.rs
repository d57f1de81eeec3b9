//! Fault injection and load: the real `nbexec` binary against a real ipykernel, with
//! kernels killed, crashed, starved of memory or hung, nbexec itself killed at random
//! moments, disks that fill up, very chatty cells, and many runs at once.
//!
//! Every test here takes one lock, so they run one after another even under the
//! parallel test harness: several of them measure time or memory, and the machines
//! this runs on are small (2 cores). The whole file takes about 1.5-2 minutes in a
//! debug build on such a machine.
//!
//! `NBEXEC_LONG_TESTS=1` makes `nbexec_killed_at_random_moments_*` do the full 100
//! runs (3-6 minutes on its own) instead of the CI count, 12 (35-55 s).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------
// Helpers: processes, kernelspecs, measurements
// ---------------------------------------------------------------------------------

unsafe extern "C" {
    #[link_name = "kill"]
    fn c_kill(pid: i32, sig: i32) -> i32;
    /// `struct rusage` is 2 timevals then 14 longs (144 bytes on 64-bit Linux);
    /// `ru_maxrss` (KiB) is the 5th i64.
    #[link_name = "wait4"]
    fn c_wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut [i64; 18]) -> i32;
}

const SIGKILL: i32 = 9;

fn send_signal(pid: i32, sig: i32) {
    unsafe {
        c_kill(pid, sig);
    }
}

/// Serialises the tests of this file (see the module docs).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn python() -> PathBuf {
    venv().join("bin/python")
}

/// (state, ppid, start time in clock ticks) of a process, if it exists.
fn proc_stat(pid: i32) -> Option<(char, i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state(0) ppid(1) ... starttime is field 22 of stat, i.e. 19 here.
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, ppid, start))
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// A process identified by pid and start time, so that a reused pid is not mistaken
/// for it (pid_max is 32768 on some machines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: i32,
    start: u64,
}

impl Proc {
    fn of(pid: i32) -> Option<Proc> {
        proc_stat(pid).map(|(_, _, start)| Proc { pid, start })
    }

    /// Running (not a zombie that only its exited parent could reap, not reused).
    fn alive(&self) -> bool {
        match proc_stat(self.pid) {
            Some((state, _, start)) => start == self.start && !matches!(state, 'Z' | 'X'),
            None => false,
        }
    }
}

/// Every process: pid -> (ppid, start).
fn proc_table() -> BTreeMap<i32, (i32, u64)> {
    let mut table = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Some((_, ppid, start)) = proc_stat(pid) {
            table.insert(pid, (ppid, start));
        }
    }
    table
}

/// Watches a process tree: a thread records every descendant of `root` it ever sees
/// (with its command line), polling /proc every 20 ms.
struct ProcWatch {
    seen: Arc<Mutex<BTreeMap<Proc, String>>>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ProcWatch {
    fn start(root: i32) -> ProcWatch {
        let seen: Arc<Mutex<BTreeMap<Proc, String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&seen), Arc::clone(&stop));
        let handle = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                Self::scan(root, &s);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        ProcWatch {
            seen,
            stop,
            handle: Some(handle),
        }
    }

    fn scan(root: i32, seen: &Mutex<BTreeMap<Proc, String>>) {
        let table = proc_table();
        let known: BTreeSet<Proc> = seen.lock().unwrap().keys().copied().collect();
        let mut tree: BTreeSet<i32> = known.iter().map(|p| p.pid).collect();
        tree.insert(root);
        let mut found: BTreeSet<Proc> = BTreeSet::new();
        let mut grew = true;
        while grew {
            grew = false;
            for (&pid, &(ppid, start)) in &table {
                if tree.contains(&ppid) && !tree.contains(&pid) {
                    tree.insert(pid);
                    found.insert(Proc { pid, start });
                    grew = true;
                }
            }
        }
        // Still-running known processes are re-read too: one seen between fork and
        // exec showed its parent's command line.
        found.extend(
            known
                .into_iter()
                .filter(|p| table.get(&p.pid).is_some_and(|&(_, st)| st == p.start)),
        );
        let lines: Vec<(Proc, String)> = found.into_iter().map(|p| (p, cmdline(p.pid))).collect();
        let mut s = seen.lock().unwrap();
        for (p, line) in lines {
            let entry = s.entry(p).or_default();
            if !line.is_empty() {
                *entry = line;
            }
        }
    }

    fn finish(mut self) -> BTreeMap<Proc, String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for ProcWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Waits up to `within` for every process to be gone; returns the ones still running.
fn still_running_after(procs: &BTreeMap<Proc, String>, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<String> = procs
            .iter()
            .filter(|(p, _)| p.alive())
            .map(|(p, c)| format!("{} ({c})", p.pid))
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Live processes started by the nbexec process `pid`: the kernel environment carries
/// `JPY_PARENT_PID=<nbexec pid>`, so this finds kernels even if they were spawned
/// after the last /proc scan.
fn kernels_of_nbexec(pid: i32) -> Vec<String> {
    let needle = format!("JPY_PARENT_PID={pid}\0");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{p}/environ")) else {
            continue;
        };
        if env.windows(needle.len()).any(|w| w == needle.as_bytes())
            && Proc::of(p).is_some_and(|x| x.alive())
        {
            out.push(format!("{p} ({})", cmdline(p)));
        }
    }
    out
}

/// Writes `<dir>/kernels/<name>/kernel.json`; `dir` is then a JUPYTER_PATH entry.
fn kernelspec(dir: &Path, name: &str, argv: &[&str]) {
    let kdir = dir.join("kernels").join(name);
    std::fs::create_dir_all(&kdir).unwrap();
    let spec = json!({"argv": argv, "display_name": name, "language": "python"});
    std::fs::write(kdir.join("kernel.json"), spec.to_string()).unwrap();
}

/// The venv's ipykernel, started through `sh -c` with `prelude` run first.
fn ipykernel_via_sh(prelude: &str) -> String {
    format!(
        "{prelude}; exec {} -m ipykernel_launcher -f {{connection_file}}",
        python().display()
    )
}

/// Tells whether a run started a kernel. Runs get a kernelspec `marker` whose wrapper
/// first writes a marker file (a shell builtin, no fork), and a runtime directory of
/// their own. A kernel process that got as far as its first command leaves the
/// marker, but one killed within a millisecond or two of its fork may not; the
/// launch itself always leaves `$XDG_RUNTIME_DIR/jupyter`, created to hold the
/// connection file that is written just before the kernel is spawned (spec §3).
struct LaunchProbe {
    jupyter: PathBuf,
    marker: PathBuf,
    runtime: PathBuf,
}

impl LaunchProbe {
    fn new(dir: &Path) -> LaunchProbe {
        let probe = LaunchProbe {
            jupyter: dir.join("jupyter"),
            marker: dir.join("kernel-started"),
            runtime: dir.join("runtime"),
        };
        let sh = ipykernel_via_sh(&format!(": > '{}'", probe.marker.display()));
        kernelspec(&probe.jupyter, "marker", &["sh", "-c", &sh]);
        probe
    }

    /// `nbexec` on the `marker` kernelspec (pass `-k marker`).
    fn nbexec(&self) -> Command {
        let mut cmd = nbexec();
        cmd.env("JUPYTER_PATH", &self.jupyter)
            .env("XDG_RUNTIME_DIR", &self.runtime);
        cmd
    }

    /// Evidence that a kernel was started, if any.
    fn kernel_started(&self) -> Vec<&'static str> {
        let mut evidence = Vec::new();
        if self.marker.exists() {
            evidence.push("the kernel process ran (its marker file exists)");
        }
        if self.runtime.join("jupyter").exists() {
            evidence.push("a kernel launch began (a connection file directory was created)");
        }
        evidence
    }
}

fn nbformat_validate(paths: &[&Path]) {
    let out = Command::new(python())
        .args([
            "-c",
            "import nbformat, sys\nfor p in sys.argv[1:]:\n    nbformat.validate(nbformat.read(p, 4))\nprint('ok')",
        ])
        .args(paths)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "nbformat rejects {paths:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn show_job(state: &Path, id: &str) -> Value {
    let out = nbexec()
        .args(["jobs", "show", id, "-f", "json", "--state-dir"])
        .arg(state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn outputs_of(cell: &Value) -> &Vec<Value> {
    cell["outputs"].as_array().unwrap()
}

fn has_error(cell: &Value, ename: &str) -> bool {
    outputs_of(cell)
        .iter()
        .any(|o| o["output_type"] == "error" && o["ename"] == ename)
}

/// The one-line `error: ` summary on stderr: its first line, or, when a cell raised,
/// the line right after that cell's traceback.
fn error_line(out: &std::process::Output) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    let line = lines[at].to_owned();
    assert!(
        at == 0 || line.contains(" raised "),
        "only a raised cell's traceback comes before the error line: {err}"
    );
    line
}

/// What a directly spawned nbexec did, and how much memory it used.
struct Measured {
    code: Option<i32>,
    stderr: String,
    elapsed: Duration,
    /// Peak resident set of the nbexec process only (VmHWM, polled every 10 ms
    /// until it exits), in KiB.
    hwm_kib: u64,
    /// `ru_maxrss` from wait4, in KiB: the larger of nbexec's and any child it
    /// reaped (its kernel), so an upper bound for nbexec, not nbexec's own.
    maxrss_kib: i64,
}

/// Spawns `cmd` (stdout discarded), polls its VmHWM and reaps it with wait4.
// The child is reaped by wait4 (for its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn run_measured(mut cmd: Command) -> Measured {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut err_pipe = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (pk, dn) = (Arc::clone(&peak), Arc::clone(&done));
    let poller = std::thread::spawn(move || {
        while !dn.load(Ordering::Relaxed) {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                break;
            };
            if let Some(kib) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                pk.fetch_max(kib, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut status = 0i32;
    let mut usage = [0i64; 18];
    let r = unsafe { c_wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    done.store(true, Ordering::Relaxed);
    let _ = poller.join();
    let code = (status & 0x7f == 0).then_some((status >> 8) & 0xff);
    Measured {
        code,
        stderr: err_reader.join().unwrap(),
        elapsed: started.elapsed(),
        hwm_kib: peak.load(Ordering::Relaxed),
        maxrss_kib: usage[4],
    }
}

/// xorshift64*: a fixed seed gives the same kill schedule on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn long_tests() -> bool {
    std::env::var("NBEXEC_LONG_TESTS").is_ok_and(|v| !v.is_empty() && v != "0")
}

// ---------------------------------------------------------------------------------
// 1. The kernel killed from outside
// ---------------------------------------------------------------------------------

#[test]
fn a_kernel_killed_with_sigkill_mid_cell_fails_the_cell_and_the_job_with_exit_138() {
    let _serial = serial();
    let dir = tmp();
    let state = dir.path().join("state");
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("import os\nprint(os.getpid(), flush=True)", &[]),
            code("import time\ntime.sleep(60)", &[]),
            code("print('never')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let mut child = nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--log-output",
            "--state-dir",
        ])
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let nbexec_pid = child.id() as i32;
    let watch = ProcWatch::start(nbexec_pid);
    let mut stdout = child.stdout.take().unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    let kernel_pid: i32 = String::from_utf8_lossy(&first)
        .trim()
        .parse()
        .expect("the cell printed its pid");
    let kernel = Proc::of(kernel_pid).expect("the kernel is running");
    assert_eq!(
        proc_stat(kernel_pid).unwrap().1,
        nbexec_pid,
        "the kernel is nbexec's child"
    );
    // (Also checks the helper the kill test relies on.)
    assert!(
        kernels_of_nbexec(nbexec_pid)
            .iter()
            .any(|k| k.starts_with(&format!("{kernel_pid} "))),
        "the kernel's environment names its nbexec"
    );
    // Let the second cell start sleeping, then kill the kernel from outside.
    std::thread::sleep(Duration::from_millis(700));
    send_signal(kernel_pid, SIGKILL);
    let killed_at = Instant::now();
    let exit = child.wait().unwrap();
    let noticed = killed_at.elapsed();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let procs = watch.finish();
    eprintln!(
        "kernel SIGKILLed: nbexec finished {:.3} s later",
        noticed.as_secs_f64()
    );

    assert_eq!(exit.code(), Some(138), "{err}");
    assert!(
        err.starts_with("error: ") && err.lines().next().unwrap().contains("kernel died"),
        "{err}"
    );
    // Spec §3: kernel death is detected within a second (measured: ~0.05 s).
    assert!(
        noticed < Duration::from_secs(3),
        "nbexec took {noticed:?} to finish after the kill"
    );

    let nb = read_nb(&output);
    let cell = cell_with(&nb, "time.sleep(60)");
    assert_eq!(status(cell), "failed");
    assert!(has_error(cell, "DeadKernelError"), "{:?}", cell["outputs"]);
    assert_eq!(status(cell_with(&nb, "print('never')")), "pending");
    assert_eq!(
        stream_text(cell_with(&nb, "os.getpid()"), "stdout").trim(),
        kernel_pid.to_string()
    );
    assert_eq!(nb["metadata"]["nbexec"]["status"], json!("kernel_died"));
    assert_eq!(nb["metadata"]["papermill"]["exception"], json!(true));

    let id = nb["metadata"]["nbexec"]["job_id"]
        .as_str()
        .expect("job id recorded");
    let job = show_job(&state, id);
    assert_eq!(job["status"], json!("FAILED"), "{job}");
    assert_eq!(job["results"]["exitCode"], json!(138), "{job}");

    assert!(
        procs.contains_key(&kernel),
        "the watcher saw the kernel: {procs:?}"
    );
    let left = still_running_after(&procs, Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

// ---------------------------------------------------------------------------------
// 2. Memory exhaustion and hard crashes
// ---------------------------------------------------------------------------------

/// Under `ulimit -v 1500000` (about 1.4 GiB of address space) a cell that allocates
/// 50 MB buffers until it fails gets a Python MemoryError: the allocation fails
/// cleanly, the kernel survives and reports it, and the run ends as a failed cell
/// (exit 1), not as a kernel death (138). That is what happens with ipykernel 7 /
/// CPython 3.11 here; a kernel death would be a change worth knowing about.
#[test]
fn a_memory_blow_up_under_a_limit_is_a_recorded_memory_error_with_exit_1() {
    let _serial = serial();
    let dir = tmp();
    let jupyter = dir.path().join("jupyter");
    kernelspec(
        &jupyter,
        "memcap",
        &["sh", "-c", &ipykernel_via_sh("ulimit -v 1500000")],
    );
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("print('before')", &[]),
            code(
                "chunks = []\nwhile True:\n    chunks.append(bytearray(50_000_000))",
                &[],
            ),
            code("print('never')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let child = nbexec()
        .env("JUPYTER_PATH", &jupyter)
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "-k",
            "memcap",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watch = ProcWatch::start(child.id() as i32);
    let out = child.wait_with_output().unwrap();
    let procs = watch.finish();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a MemoryError, not a kernel death: {}",
        stderr(&out)
    );
    assert!(error_line(&out).contains("MemoryError"), "{}", stderr(&out));
    let nb = read_nb(&output);
    let cell = cell_with(&nb, "bytearray(50_000_000)");
    assert_eq!(status(cell), "failed");
    assert!(has_error(cell, "MemoryError"), "{:?}", cell["outputs"]);
    assert_eq!(
        stream_text(cell_with(&nb, "print('before')"), "stdout"),
        "before\n"
    );
    assert_eq!(status(cell_with(&nb, "print('never')")), "pending");
    assert!(!procs.is_empty(), "the kernel was seen");
    assert_kernel_gone(&nb);
    let left = still_running_after(&procs, Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn a_hard_crash_of_the_kernel_is_a_kernel_death_with_exit_138() {
    let _serial = serial();
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("print('before')", &[]),
            code("import ctypes\nctypes.string_at(0)", &[]),
            code("print('never')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let started = Instant::now();
    let child = nbexec()
        .args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watch = ProcWatch::start(child.id() as i32);
    let out = child.wait_with_output().unwrap();
    let procs = watch.finish();
    assert_eq!(out.status.code(), Some(138), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(20));
    let line = error_line(&out);
    assert!(
        line.contains("kernel died") && line.contains("SIGSEGV"),
        "{line}"
    );
    let nb = read_nb(&output);
    let cell = cell_with(&nb, "ctypes.string_at(0)");
    assert_eq!(status(cell), "failed");
    assert!(has_error(cell, "DeadKernelError"), "{:?}", cell["outputs"]);
    assert_eq!(status(cell_with(&nb, "print('never')")), "pending");
    assert_eq!(nb["metadata"]["nbexec"]["exit_code"], json!(138));
    assert_kernel_gone(&nb);
    let left = still_running_after(&procs, Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

// ---------------------------------------------------------------------------------
// 3. nbexec itself killed with SIGKILL at random moments
// ---------------------------------------------------------------------------------

/// How an output path looks after nbexec was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum After {
    Absent,
    Previous,
    Complete,
}

/// nbexec is SIGKILLed at pseudo-random moments (fixed seed) of runs whose notebook
/// prints 20 MB, so that saving it (serialising ~22 MB and writing it) takes a
/// measurable time. Half the kills wait for the temporary file of the final
/// save to appear and land inside the save; the rest are spread from 0 to 1.25 times
/// a whole run. Half the runs pre-create the output with known content.
///
/// Afterwards the output must be absent, the previous file byte for byte, or a
/// complete notebook (serde_json parses every one; Python nbformat validates a
/// sample), never a partial file. And no kernel may outlive its nbexec by more than
/// 5 s: nbexec cannot clean up after SIGKILL, but the driver starts the kernel with
/// `PR_SET_PDEATHSIG = SIGKILL` (set between fork and exec, from a thread that lives
/// as long as the kernel), so the Linux kernel kills it when nbexec dies; ipykernel's
/// own parent poller (`JPY_PARENT_PID`) is a second line of defence.
///
/// Measured on a 2-core machine, debug build: a whole run takes 2.3-3.5 s; the final
/// save's temporary file exists for ~20 ms (write, fsync, rename: the notebook is
/// serialised before it is created). CI count (12 runs): 35-55 s. NBEXEC_LONG_TESTS=1
/// (100 runs): 3-6 minutes (measured 187 s with 22 kills inside the save on a quiet
/// machine; 350 s with 13 inside the save at load average 7).
#[test]
fn nbexec_killed_at_random_moments_leaves_no_partial_file_and_no_kernel() {
    let _serial = serial();
    let runs = if long_tests() { 100 } else { 12 };
    let dir = tmp();
    let state = dir.path().join("state");
    let runtime = dir.path().join("runtime");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("x = 1", &["parameters"]),
            code(
                "import sys\nsys.stdout.write(('x' * 99 + '\\n') * 200_000)",
                &[],
            ),
            code("print('done')", &[]),
        ]),
    );
    let output = work.join("out.ipynb");
    let start_run = || {
        nbexec()
            .env("XDG_RUNTIME_DIR", &runtime)
            .args([
                "run",
                input.to_str().unwrap(),
                output.to_str().unwrap(),
                "--state-dir",
            ])
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let temp_files = || -> Vec<PathBuf> {
        std::fs::read_dir(&work)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p != &output)
            .collect()
    };
    // The final save's temporary file only: the writability probe made at start-up
    // (`.nbexec-probe.*`) is not a save, and taking it for one put the calibrated
    // save window at the very start of the run.
    let saving_now = || {
        temp_files()
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".nbexec-tmp"))
    };

    // Calibrate: how long a whole run takes, and when its final save starts. Twice,
    // keeping the faster: the first run on a cold machine is much slower.
    let mut calibration = Vec::new();
    for _ in 0..2 {
        let _ = std::fs::remove_file(&output);
        let began = Instant::now();
        let mut child = start_run();
        let mut save_started = None;
        let mut saved = None;
        while child.try_wait().unwrap().is_none() {
            if save_started.is_none() && saving_now() {
                save_started = Some(began.elapsed());
            }
            if saved.is_none() && output.exists() {
                saved = Some(began.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let whole = began.elapsed();
        assert!(child.wait().unwrap().success());
        calibration.push((whole, save_started, saved));
    }
    let (whole, save_started, saved) = calibration.into_iter().min().unwrap();
    let reference = std::fs::read(&output).unwrap();
    let reference_nb: Value = serde_json::from_slice(&reference).unwrap();
    assert_eq!(
        stream_text(cell_with(&reference_nb, "print('done')"), "stdout"),
        "done\n"
    );
    let save_started = save_started.unwrap_or(whole);
    let saved = saved.unwrap_or(whole);
    eprintln!(
        "calibration: run {:.2} s, save from {:.2} s to {:.2} s, {} bytes",
        whole.as_secs_f64(),
        save_started.as_secs_f64(),
        saved.as_secs_f64(),
        reference.len()
    );

    let mut rng = Rng(0x6e62_6578_6563_2121);
    let mut tally: BTreeMap<After, usize> = BTreeMap::new();
    let mut kills_in_save = 0;
    let mut finished_before_kill = 0;
    let mut leftover_temp = 0;
    let mut validated = 0;
    let mut failures = Vec::new();
    let loop_started = Instant::now();
    for run in 0..runs {
        let _ = std::fs::remove_file(&output);
        let previous = format!(
            "{{\"cells\": [], \"metadata\": {{\"previous\": {run}}}, \"nbformat\": 4, \"nbformat_minor\": 5}}\n"
        );
        if run % 2 == 0 {
            std::fs::write(&output, &previous).unwrap();
        }
        let in_save = rng.next().is_multiple_of(2);
        let fraction = rng.unit();
        let mut child = start_run();
        let pid = child.id() as i32;
        let watch = ProcWatch::start(pid);
        let t0 = Instant::now();
        if in_save {
            // Wait for the final save's temporary file, then kill somewhere inside
            // (or just after) the save.
            while !saving_now() && t0.elapsed() < Duration::from_secs(60) {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(
                (saved.saturating_sub(save_started) + Duration::from_millis(5))
                    .mul_f64(1.2 * fraction),
            );
        } else {
            std::thread::sleep(whole.mul_f64(1.25 * fraction));
        }
        // No /proc scan here (it takes tens of ms, longer than a save): the watcher
        // thread has seen the kernel, and the environment scan below finds any
        // kernel started since.
        let saving = saving_now();
        let already_done = child.try_wait().unwrap().is_some();
        send_signal(pid, SIGKILL);
        let _ = child.wait();
        let killed_after = t0.elapsed();
        let procs = watch.finish();
        if already_done {
            finished_before_kill += 1;
        } else if saving {
            kills_in_save += 1;
        }

        let after = match std::fs::read(&output) {
            Err(_) => After::Absent,
            Ok(bytes) if bytes == previous.as_bytes() => After::Previous,
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(nb) if nb["nbformat"] == 4 && nb["cells"].is_array() => {
                    if validated < 2 {
                        nbformat_validate(&[&output]);
                        validated += 1;
                    }
                    After::Complete
                }
                Ok(_) | Err(_) => {
                    failures.push(format!(
                        "run {run} (killed after {killed_after:?}): {} is a partial file of {} bytes",
                        output.display(),
                        bytes.len()
                    ));
                    continue;
                }
            },
        };
        *tally.entry(after).or_default() += 1;
        // The kernel must die with nbexec (parent-death signal).
        let mut left = still_running_after(&procs, Duration::from_secs(5));
        left.extend(kernels_of_nbexec(pid));
        left.sort();
        left.dedup();
        if !left.is_empty() {
            failures.push(format!(
                "run {run} (killed after {killed_after:?}, processes seen {:?}): still running 5 s later: {left:?}",
                procs.values().collect::<Vec<_>>()
            ));
        }
        // A SIGKILLed save cannot remove its temporary file; count them (they are
        // never at the output path) and clear them for the next run.
        for t in temp_files() {
            leftover_temp += 1;
            let _ = std::fs::remove_file(t);
        }
    }
    let elapsed = loop_started.elapsed();
    let leftover_connection_files = std::fs::read_dir(runtime.join("jupyter"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0);
    eprintln!(
        "{runs} kills in {:.1} s: {tally:?}; {kills_in_save} during the save, {finished_before_kill} after the run had ended; \
         {leftover_temp} temporary files and {leftover_connection_files} connection files left behind",
        elapsed.as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        kills_in_save > 0,
        "no kill landed during a save: the test did not test saving"
    );

    // The job registry survives being killed mid-write, and no job is left running.
    let listed = nbexec()
        .args(["jobs", "-f", "json", "--all", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let stuck: Vec<&Value> = listed["asyncNotebookJobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| {
            !["COMPLETED", "FAILED", "CANCELLED"].contains(&j["status"].as_str().unwrap_or(""))
        })
        .collect();
    assert!(
        stuck.is_empty(),
        "jobs of killed runs not finished: {stuck:?}"
    );
}

// ---------------------------------------------------------------------------------
// 4. Output directory problems
// ---------------------------------------------------------------------------------

#[test]
fn an_output_whose_directory_is_missing_or_a_file_fails_fast_before_the_kernel() {
    let _serial = serial();
    let dir = tmp();
    let probe = LaunchProbe::new(dir.path());
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("print(1)", &[])]),
    );
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let cases = [
        file.join("out.ipynb"),
        dir.path().join("missing").join("out.ipynb"),
        dir.path().join("missing/deeper/out.ipynb"),
    ];
    for output in &cases {
        let started = Instant::now();
        let out = probe
            .nbexec()
            .args([
                "run",
                input.to_str().unwrap(),
                output.to_str().unwrap(),
                "-k",
                "marker",
                "--state-dir",
            ])
            .arg(dir.path().join("state"))
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: {}",
            output.display(),
            stderr(&out)
        );
        let line = error_line(&out);
        assert_eq!(
            stderr(&out).trim_end().lines().count(),
            1,
            "one line: {}",
            stderr(&out)
        );
        assert!(
            line.contains(&output.display().to_string()),
            "names the output: {line}"
        );
        assert!(
            elapsed < Duration::from_secs(1),
            "{} took {elapsed:?}",
            output.display()
        );
        assert!(
            probe.kernel_started().is_empty(),
            "a kernel was started for {}: {:?}",
            output.display(),
            probe.kernel_started()
        );
    }
    // Nothing written: the file is untouched, no directory created.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
    assert!(!dir.path().join("missing").exists());
    // Control: a run that does start its kernel leaves both marks.
    let ok = dir.path().join("ok.ipynb");
    let out = probe
        .nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            ok.to_str().unwrap(),
            "-k",
            "marker",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(probe.kernel_started().len(), 2, "the probe works");
}

/// A tmpfs mounted for the test; unmounted on drop (lazily if still busy).
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(Mount(dir.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// The disk fills up while the final notebook is saved: the run must say so, name a
/// fallback path where the whole notebook was written instead, and that file must be
/// complete. Needs `mount` (root, CAP_SYS_ADMIN); in a mount namespace of its own
/// (`unshare -m`) when mounting here is not permitted; skipped, saying why, when
/// neither is.
#[test]
fn a_full_disk_while_saving_writes_the_notebook_to_a_named_fallback() {
    let _serial = serial();
    let dir = tmp();
    let small = dir.path().join("small");
    let fallback_dir = dir.path().join("fallback-tmp");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::create_dir_all(&fallback_dir).unwrap();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("print('y' * 2_000_000)", &[]),
            code("print('last')", &[]),
        ]),
    );
    let output = small.join("out.ipynb");
    let run_args = |cmd: &mut Command| {
        cmd.env("TMPDIR", &fallback_dir)
            .args([
                "run",
                input.to_str().unwrap(),
                output.to_str().unwrap(),
                "--state-dir",
            ])
            .arg(dir.path().join("state"));
    };

    let (code, err, left_on_tmpfs) = match Mount::tmpfs(&small, "512k") {
        Ok(mount) => {
            let mut cmd = nbexec();
            run_args(&mut cmd);
            let out = cmd.output().unwrap();
            let left: Vec<String> = std::fs::read_dir(&small)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            drop(mount);
            (out.status.code(), stderr(&out), left)
        }
        Err(why) => {
            // Not permitted here: try a private mount namespace, where the mount
            // disappears with the process.
            let nbexec_cmd = nbexec();
            let mut cmd = Command::new("unshare");
            cmd.args(["-m", "sh", "-c", "mount -t tmpfs -o size=512k tmpfs \"$1\" || exit 99; shift; \"$@\"; rc=$?; echo; echo LEFT:; ls -A \"$0\"; exit $rc"])
                .arg(&small)
                .arg(&small)
                .arg(nbexec_cmd.get_program());
            for (k, v) in nbexec_cmd.get_envs() {
                match v {
                    Some(v) => cmd.env(k, v),
                    None => cmd.env_remove(k),
                };
            }
            run_args(&mut cmd);
            // The arguments were appended after the program, which is what "$@" runs.
            let out = match cmd.output() {
                Ok(out) => out,
                Err(e) => {
                    eprintln!("SKIPPED: cannot mount a tmpfs here ({why}) and no unshare ({e})");
                    return;
                }
            };
            if out.status.code() == Some(99)
                || out.status.code() == Some(1) && stderr(&out).contains("unshare")
            {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs here ({why}) nor in a private mount namespace ({}): \
                     a full disk cannot be simulated",
                    stderr(&out).trim()
                );
                return;
            }
            let so = stdout(&out);
            let left = so
                .split("LEFT:")
                .nth(1)
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            (out.status.code(), stderr(&out), left)
        }
    };

    eprintln!(
        "full disk: exit {code:?}: {}",
        err.lines().next().unwrap_or("")
    );
    // The notebook itself ran fine; only the save failed: exit 1 (the mapping keeps a
    // failed run's own code and turns success into 1).
    assert_eq!(code, Some(1), "{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.starts_with("error: ") && first.contains(&output.display().to_string()),
        "{err}"
    );
    assert!(first.contains("No space left on device"), "{err}");
    let fallback = first
        .split("written to ")
        .nth(1)
        .and_then(|s| s.strip_suffix(" instead"))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no fallback path named: {first}"));
    assert!(
        fallback.starts_with(&fallback_dir),
        "fallback {} is in TMPDIR",
        fallback.display()
    );
    let nb = read_nb(&fallback);
    assert_eq!(
        stream_text(&nb["cells"][0], "stdout"),
        format!("{}\n", "y".repeat(2_000_000))
    );
    assert_eq!(stream_text(&nb["cells"][1], "stdout"), "last\n");
    nbformat_validate(&[&fallback]);
    // Nothing partial (or temporary) is left on the full disk.
    assert!(
        left_on_tmpfs.is_empty(),
        "left on the full tmpfs: {left_on_tmpfs:?}"
    );
}

// ---------------------------------------------------------------------------------
// 5. Kernels that never answer, and cells that hang
// ---------------------------------------------------------------------------------

#[test]
fn a_kernel_that_never_answers_hits_the_start_timeout_with_exit_124() {
    let _serial = serial();
    let dir = tmp();
    let jupyter = dir.path().join("jupyter");
    kernelspec(&jupyter, "mute", &["sleep", "600"]);
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("print(1)", &[])]),
    );
    let output = dir.path().join("out.ipynb");
    let started = Instant::now();
    let child = nbexec()
        .env("JUPYTER_PATH", &jupyter)
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "-k",
            "mute",
            "--start-timeout",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watch = ProcWatch::start(child.id() as i32);
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    let procs = watch.finish();
    eprintln!(
        "start timeout of 2 s: exit {:?} after {:.2} s",
        out.status.code(),
        elapsed.as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
    let line = error_line(&out);
    assert!(
        line.contains("mute")
            && line.contains("2s")
            && (line.contains("ready") || line.contains("start")),
        "{line}"
    );
    assert!(
        procs.values().any(|c| c == "sleep 600"),
        "the 'kernel' was started: {procs:?}"
    );
    let left = still_running_after(&procs, Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// README: "In every case but a usage error the output notebook is written" (and
/// papermill writes it before starting the kernel). A start timeout is exit 124, not a
/// usage error.
#[test]
fn a_kernel_that_never_answers_still_gets_the_output_notebook_written() {
    let _serial = serial();
    let dir = tmp();
    let jupyter = dir.path().join("jupyter");
    kernelspec(&jupyter, "mute", &["sleep", "600"]);
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("print(1)", &[])]),
    );
    let output = dir.path().join("out.ipynb");
    let out = nbexec()
        .env("JUPYTER_PATH", &jupyter)
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "-k",
            "mute",
            "--start-timeout",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(
        output.exists(),
        "no output notebook written after a start timeout"
    );
    let nb = read_nb(&output);
    assert_eq!(
        nb["metadata"]["papermill"]["exception"],
        json!(true),
        "{}",
        nb["metadata"]
    );
}

/// The cell blocks SIGINT and ignores SIGTERM before sleeping, so neither the
/// interrupt nor the polite shutdown works: only the SIGKILL of the process group.
#[test]
fn a_cell_that_hangs_past_interrupts_times_out_with_exit_124_and_leaves_nothing() {
    let _serial = serial();
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("print('up')", &[]),
            code(
                "import signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)",
                &[],
            ),
            code("print('never')", &[]),
        ]),
    );
    let output = dir.path().join("out.ipynb");
    let started = Instant::now();
    let child = nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "--execution-timeout",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watch = ProcWatch::start(child.id() as i32);
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    let procs = watch.finish();
    eprintln!(
        "hung cell, 2 s timeout: exit {:?} after {:.2} s",
        out.status.code(),
        elapsed.as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    // 2 s timeout + 3 s interrupt grace + shutdown (0.5 s grace, then the group is
    // killed), plus the kernel's start: measured ~7 s.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(error_line(&out).contains("timed out"), "{}", stderr(&out));
    let nb = read_nb(&output);
    let cell = cell_with(&nb, "time.sleep(600)");
    assert_eq!(status(cell), "failed");
    assert!(has_error(cell, "CellTimeoutError"), "{:?}", cell["outputs"]);
    assert_eq!(status(cell_with(&nb, "print('never')")), "pending");
    assert_eq!(nb["metadata"]["nbexec"]["status"], json!("timeout"));
    assert_kernel_gone(&nb);
    let left = still_running_after(&procs, Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

// ---------------------------------------------------------------------------------
// 6. Very chatty cells: output limits and nbexec's own memory
// ---------------------------------------------------------------------------------

const MIB: u64 = 1024;

/// Runs `cell` (with `print('after')` next) and returns what happened, measured.
fn run_chatty(cell: &str, extra: &[&str]) -> (Measured, Value) {
    let dir = tmp();
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code(cell, &[]), code("print('after')", &[])]),
    );
    let output = dir.path().join("out.ipynb");
    let mut cmd = nbexec();
    cmd.args(["run", input.to_str().unwrap(), output.to_str().unwrap()])
        .args(extra);
    let m = run_measured(cmd);
    // The notebook is written on every path; if it is not, say how nbexec ended.
    assert!(
        output.exists(),
        "no notebook written: exit {:?} (None: killed by a signal), stderr: {}",
        m.code,
        m.stderr
    );
    let nb = read_nb(&output);
    (m, nb)
}

fn kept_and_dropped(cell: &Value) -> (usize, Option<usize>) {
    let kept = stream_text(cell, "stdout").len();
    let note = stream_text(cell, "stderr");
    let dropped = note
        .split("; ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok());
    (kept, dropped)
}

/// A million short prints: ~6.9 MB of stdout, under the 64 MiB cap, all kept, in time
/// linear in the output. Measured: ~10 s (ipykernel's own printing dominates),
/// nbexec's peak RSS 39 MiB.
#[test]
fn a_million_short_prints_are_all_recorded_in_bounded_memory() {
    let _serial = serial();
    let (m, nb) = run_chatty("for i in range(1_000_000):\n    print(i)", &[]);
    eprintln!(
        "1M prints: exit {:?} in {:.1} s, nbexec peak RSS {} MiB (wait4 maxrss incl. kernel {} MiB)",
        m.code,
        m.elapsed.as_secs_f64(),
        m.hwm_kib / MIB,
        m.maxrss_kib / 1024
    );
    assert_eq!(m.code, Some(0), "{}", m.stderr);
    let text = stream_text(&nb["cells"][0], "stdout");
    let expected: String = (0..1_000_000).map(|i| format!("{i}\n")).collect();
    assert!(
        text == expected,
        "stdout differs: {} bytes, expected {}",
        text.len(),
        expected.len()
    );
    assert_eq!(stream_text(&nb["cells"][1], "stdout"), "after\n");
    // Bound: 7 MB of text held as the notebook, the saved copy, and ~100 MiB slack.
    assert!(m.hwm_kib < 128 * MIB, "nbexec peak RSS {} KiB", m.hwm_kib);
}

/// 200 MB written to stdout in 1 MB chunks: over the default 64 MiB cap, so the cell
/// keeps at most 64 MiB and says how much more it dropped; kept + dropped is exactly
/// what the cell wrote. ipykernel batches stream writes (one message per 0.2 s flush),
/// so single messages reach tens of MB here.
///
/// The bound on nbexec's peak RSS: the 64 MiB cap + twice the largest single message
/// (the received frame and its parsed JSON coexist) + 100 MiB. The largest message
/// cannot be observed from outside; it is at most the whole 200 MB, so the bound is
/// stated for a 64 MiB message: 64 + 2*64 + 100 = 292 MiB. Measured: 145 MiB, ~14 s.
#[test]
fn two_hundred_mb_of_stdout_is_capped_with_a_note_in_bounded_memory() {
    let _serial = serial();
    let (m, nb) = run_chatty(
        "import sys\nchunk = 'x' * 1_000_000\nfor _ in range(200):\n    sys.stdout.write(chunk)\n    sys.stdout.flush()",
        &[],
    );
    eprintln!(
        "200 MB stdout: exit {:?} in {:.1} s, nbexec peak RSS {} MiB (wait4 maxrss incl. kernel {} MiB)",
        m.code,
        m.elapsed.as_secs_f64(),
        m.hwm_kib / MIB,
        m.maxrss_kib / 1024
    );
    assert_eq!(m.code, Some(0), "{}", m.stderr);
    let cell = &nb["cells"][0];
    let note = stream_text(cell, "stderr");
    assert!(
        note.contains("[nbexec] this cell's output reached the limit"),
        "{note}"
    );
    let (kept, dropped) = kept_and_dropped(cell);
    assert!(kept <= 64 << 20, "kept {kept} bytes");
    assert_eq!(
        kept + dropped.expect("the note says how much was dropped"),
        200_000_000,
        "{note}"
    );
    assert_eq!(stream_text(&nb["cells"][1], "stdout"), "after\n");
    assert!(m.hwm_kib < 292 * MIB, "nbexec peak RSS {} KiB", m.hwm_kib);
}

/// One display of a 200 MB string: a single 200 MB IOPub message, over the cap, so it
/// is dropped with a note. The bound: 64 MiB cap + 2 x the 191 MiB message + 100 MiB
/// = 546 MiB. Measured: 395 MiB, ~9 s: nbexec holds the received frame and its parsed
/// JSON at once before it sees the message is over the cap (one copy would be ~290).
#[test]
fn one_200_mb_display_is_dropped_with_a_note_in_bounded_memory() {
    let _serial = serial();
    let (m, nb) = run_chatty(
        "from IPython.display import display\ndisplay({'text/plain': 'x' * 200_000_000}, raw=True)",
        &[],
    );
    eprintln!(
        "200 MB display: exit {:?} in {:.1} s, nbexec peak RSS {} MiB (wait4 maxrss incl. kernel {} MiB)",
        m.code,
        m.elapsed.as_secs_f64(),
        m.hwm_kib / MIB,
        m.maxrss_kib / 1024
    );
    assert_eq!(m.code, Some(0), "{}", m.stderr);
    let cell = &nb["cells"][0];
    let note = stream_text(cell, "stderr");
    assert!(
        note.contains("[nbexec] this cell's output reached the limit"),
        "{note}"
    );
    assert!(
        outputs_of(cell)
            .iter()
            .all(|o| o["output_type"] != "display_data"),
        "the display was kept"
    );
    assert_eq!(stream_text(&nb["cells"][1], "stdout"), "after\n");
    assert!(m.hwm_kib < 546 * MIB, "nbexec peak RSS {} KiB", m.hwm_kib);
}

// ---------------------------------------------------------------------------------
// 7. Load: many detached runs at once
// ---------------------------------------------------------------------------------

/// 50 detached runs at once (every other one over TCP, the rest over IPC), each
/// printing its own parameter. All must finish COMPLETED with the right output,
/// distinct kernels, and no connection file left behind, with the default 60 s start
/// timeout. Measured on 2 cores: launched in ~7 s, all finished after ~20 s.
#[test]
fn fifty_detached_runs_at_once_all_complete_with_their_own_output() {
    let _serial = serial();
    const N: usize = 50;
    let dir = tmp();
    let state = dir.path().join("state");
    let runtime = dir.path().join("runtime");
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![
            code("n = -1", &["parameters"]),
            code("import os\nprint(f'n={n} pid={os.getpid()}')", &[]),
        ]),
    );
    let started = Instant::now();
    let mut launched = Vec::new();
    for i in 0..N {
        let output = dir.path().join(format!("out-{i}.ipynb"));
        let mut cmd = nbexec();
        cmd.env("XDG_RUNTIME_DIR", &runtime)
            .args([
                "run",
                input.to_str().unwrap(),
                output.to_str().unwrap(),
                "-p",
                "n",
                &i.to_string(),
            ])
            .args(["--detach", "--state-dir"])
            .arg(&state);
        if i % 2 == 1 {
            cmd.arg("--tcp");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "launch {i}: {}", stderr(&out));
        let response: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(response["status"], json!("success"));
        launched.push((i, response["jobId"].as_str().unwrap().to_owned(), output));
    }
    let launch_time = started.elapsed();
    let mut failures = Vec::new();
    for (i, id, _) in &launched {
        let out = nbexec()
            .args(["jobs", "wait", id, "--timeout", "600", "--state-dir"])
            .arg(&state)
            .output()
            .unwrap();
        if out.status.code() != Some(0) {
            failures.push(format!(
                "job {i} ({id}): wait exited {:?}: {}",
                out.status.code(),
                stderr(&out)
            ));
        }
    }
    let total = started.elapsed();
    eprintln!(
        "{N} detached runs: launched in {:.1} s, all finished after {:.1} s",
        launch_time.as_secs_f64(),
        total.as_secs_f64()
    );
    let mut pids = BTreeSet::new();
    for (i, id, output) in &launched {
        let job = show_job(&state, id);
        if job["status"] != "COMPLETED" {
            failures.push(format!("job {i}: {} {}", job["status"], job["messages"]));
            continue;
        }
        let nb = read_nb(output);
        let printed = stream_text(&nb["cells"][2], "stdout");
        let want = format!("n={i} pid=");
        if !printed.starts_with(&want) {
            failures.push(format!("job {i}: printed {printed:?}"));
        }
        assert_eq!(nb["metadata"]["nbexec"]["job_id"], json!(id));
        assert_eq!(
            job["results"]["outputNotebook"],
            json!(output.to_str().unwrap())
        );
        pids.insert(printed.trim().rsplit('=').next().unwrap_or("").to_owned());
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(pids.len(), N, "every run had a kernel of its own");
    // Connection files are per run and removed at the end.
    let left: Vec<String> = std::fs::read_dir(runtime.join("jupyter"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the runtime dir: {left:?}");
    // Only the outputs, the input and the state are in the directory.
    let stray: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            let expected = (n.starts_with("out-") && n.ends_with(".ipynb"))
                || ["in.ipynb", "state", "runtime"].contains(&n.as_str());
            !expected
        })
        .collect();
    assert!(stray.is_empty(), "stray files: {stray:?}");
}

/// The TCP port race, made deterministic: the kernelspec's wrapper takes the IOPub
/// port named in the connection file before ipykernel starts (first attempt only).
/// ipykernel then prints `ZMQError: Address already in use` but does not exit when the
/// IOPub or heartbeat port is the one taken (a thread keeps it alive), so a retry
/// that waits for the kernel to exit never happens. nbexec must notice and start
/// again on fresh ports, well before the start timeout. (In the 50-run test above,
/// with every other run over TCP, this happened to one run in about three test runs.)
#[test]
fn a_tcp_port_taken_before_the_kernel_binds_it_is_retried_on_fresh_ports() {
    let _serial = serial();
    let dir = tmp();
    let jupyter = dir.path().join("jupyter");
    let first = dir.path().join("first-attempt");
    let occupy = format!(
        "{} -c 'import json, socket, sys, time\nc = json.load(open(sys.argv[1]))\ns = socket.socket()\ns.bind((c[\"ip\"], c[\"iopub_port\"]))\ns.listen()\nprint(\"taken\", flush=True)\ntime.sleep(60)' {{connection_file}} &",
        python().display()
    );
    let prelude = format!(
        "if [ ! -e '{m}' ]; then touch '{m}'; {occupy} sleep 0.5; fi",
        m = first.display()
    );
    kernelspec(
        &jupyter,
        "contested",
        &["sh", "-c", &ipykernel_via_sh(&prelude)],
    );
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("print('ran')", &[])]),
    );
    let output = dir.path().join("out.ipynb");
    let started = Instant::now();
    let child = nbexec()
        .env("JUPYTER_PATH", &jupyter)
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "-k",
            "contested",
            "--tcp",
            "--start-timeout",
            "20",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watch = ProcWatch::start(child.id() as i32);
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    let procs = watch.finish();
    eprintln!(
        "contested TCP port: exit {:?} after {:.1} s",
        out.status.code(),
        elapsed.as_secs_f64()
    );
    assert!(first.exists(), "the wrapper ran");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    assert_eq!(
        stream_text(&read_nb(&output)["cells"][0], "stdout"),
        "ran\n"
    );
    let left = still_running_after(&procs, Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

// ---------------------------------------------------------------------------------
// 8. Parameter names that are code
// ---------------------------------------------------------------------------------

#[test]
fn parameter_names_that_are_code_are_refused_before_any_kernel_starts() {
    let _serial = serial();
    let dir = tmp();
    let probe = LaunchProbe::new(dir.path());
    let input = write_nb(
        dir.path(),
        "in.ipynb",
        &notebook(vec![code("x = 0", &["parameters"]), code("print(x)", &[])]),
    );
    let output = dir.path().join("out.ipynb");
    for name in [
        "x; import os",
        "__import__('os')",
        "class",
        "x=1\nimport os",
        "",
        "1x",
    ] {
        let started = Instant::now();
        let out = probe
            .nbexec()
            .args([
                "run",
                input.to_str().unwrap(),
                output.to_str().unwrap(),
                "-k",
                "marker",
                "-p",
                name,
                "1",
                "--state-dir",
            ])
            .arg(dir.path().join("state"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name:?}: {}", stderr(&out));
        let line = error_line(&out);
        assert_eq!(
            stderr(&out).trim_end().lines().count(),
            1,
            "{name:?}: one line: {}",
            stderr(&out)
        );
        // The name is quoted in the message (a newline in it shows escaped).
        let shown = name.replace('\n', "\\n");
        assert!(line.contains(&shown), "{name:?} not named: {line}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{name:?}: took {:?}",
            started.elapsed()
        );
        assert!(
            probe.kernel_started().is_empty(),
            "{name:?}: a kernel was started: {:?}",
            probe.kernel_started()
        );
        assert!(!output.exists(), "{name:?}: an output was written");
    }
    // Control: a good name runs on the same kernelspec, which leaves both marks.
    let out = probe
        .nbexec()
        .args([
            "run",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
            "-k",
            "marker",
            "-p",
            "x",
            "7",
            "--state-dir",
        ])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(probe.kernel_started().len(), 2, "the probe works");
    assert_eq!(stream_text(&read_nb(&output)["cells"][2], "stdout"), "7\n");
}
