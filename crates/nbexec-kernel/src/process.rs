//! The kernel's operating-system process: spawning it in its own session,
//! capturing its output, noticing its exit and signalling its process group.

use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::watch;

/// How much of the kernel's combined stdout/stderr is kept for diagnostics.
const TAIL_BYTES: usize = 64 * 1024;

/// What to run.
pub(crate) struct LaunchCommand {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub env_remove: Vec<String>,
    pub cwd: Option<PathBuf>,
}

/// A running (or finished) kernel process that we spawned.
pub(crate) struct KernelProcess {
    pid: u32,
    exit: watch::Receiver<Option<ExitStatus>>,
    output: Arc<OutputTail>,
    /// The write end of the supervisor's pipe (see [`Supervisor`]).
    supervisor: Option<Supervisor>,
}

/// A tiny `sh` that outlives nbexec to kill what PDEATHSIG cannot reach: the
/// processes the kernel started itself, left in its process group when nbexec
/// is SIGKILLed. It reads one line from a pipe whose only write end nbexec
/// holds. When nbexec dies, whatever the way, the OS closes that end, the read
/// sees end-of-file, and the supervisor SIGKILLs the kernel's process group.
/// When nbexec ends the kernel itself (its group is killed with it), it first
/// writes `done`, and the supervisor exits without signalling a group id that
/// may since have been reused. It runs in its own process group so that
/// neither a terminal's Ctrl-C nor the kernel group's SIGKILL reaches it.
struct Supervisor {
    pipe: std::fs::File,
}

/// The supervisor's whole program: `$1` is the kernel's process group.
const SUPERVISOR_SCRIPT: &str = r#"read -r line; [ -n "$line" ] || kill -9 -"$1""#;

impl Supervisor {
    fn spawn(pgid: u32) -> std::io::Result<Supervisor> {
        let (read_end, write_end) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let mut child = Command::new("/bin/sh")
            .args(["-c", SUPERVISOR_SCRIPT, "nbexec-kernel-supervisor"])
            .arg(pgid.to_string())
            .stdin(Stdio::from(read_end))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        // Reap it whenever it exits, so that it never lingers as a zombie.
        std::thread::Builder::new()
            .name("nbexec-kernel-supervisor".into())
            .spawn(move || {
                let _ = child.wait();
            })?;
        Ok(Supervisor {
            pipe: std::fs::File::from(write_end),
        })
    }

    /// Tells the supervisor that the kernel's group has been dealt with.
    fn dismiss(&mut self) {
        use std::io::Write;
        let _ = self.pipe.write_all(b"done\n");
    }
}

struct OutputTail {
    bytes: Mutex<VecDeque<u8>>,
    closed: watch::Sender<bool>,
}

impl OutputTail {
    fn push(&self, data: &[u8]) {
        // A poisoned lock only means another reader panicked mid-push;
        // the bytes are still usable for diagnostics.
        let mut buf = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        buf.extend(data);
        let excess = buf.len().saturating_sub(TAIL_BYTES);
        buf.drain(..excess);
    }

    fn text(&self) -> String {
        let buf = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = buf.as_slices();
        let mut v = Vec::with_capacity(buf.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        String::from_utf8_lossy(&v).into_owned()
    }
}

impl KernelProcess {
    /// Starts `cmd` in a new session (so its process group can be signalled as
    /// a whole, and a terminal's Ctrl-C does not reach it directly), with
    /// stdin from /dev/null and stdout+stderr into one captured pipe.
    ///
    /// On Linux the child also gets `PR_SET_PDEATHSIG = SIGKILL`, so it dies
    /// when nbexec dies, even by SIGKILL, when no `Drop` can run. The death
    /// signal fires when the *thread* that forked exits, not the process, so
    /// the fork happens on a dedicated thread that lives exactly as long as the
    /// child: it spawns, then waits for the child's exit. That keeps the
    /// guarantee independent of the caller's async runtime and its threads.
    pub(crate) async fn spawn(cmd: LaunchCommand) -> std::io::Result<KernelProcess> {
        let (read_end, write_end) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let (program, args) = cmd
            .argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty argv"))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(write_end.try_clone()?))
            .stderr(Stdio::from(write_end));
        for k in &cmd.env_remove {
            command.env_remove(k);
        }
        command.envs(cmd.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &cmd.cwd {
            command.current_dir(dir);
        }
        let parent = nix::unistd::getpid();
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe system calls (setsid, prctl, getppid).
        unsafe {
            command.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                #[cfg(target_os = "linux")]
                {
                    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                        .map_err(std::io::Error::from)?;
                    // If nbexec died between fork and prctl, the death signal
                    // was never armed: refuse to start an orphan.
                    if nix::unistd::getppid() != parent {
                        return Err(std::io::Error::other("parent exited during spawn"));
                    }
                }
                #[cfg(not(target_os = "linux"))]
                let _ = parent;
                Ok(())
            });
        }

        // The reader starts first so that nothing can fail between spawning
        // the kernel and handing it to a KernelProcess (whose Drop kills it).
        let (closed_tx, _) = watch::channel(false);
        let output = Arc::new(OutputTail {
            bytes: Mutex::new(VecDeque::new()),
            closed: closed_tx,
        });
        let reader_output = Arc::clone(&output);
        let mut reader = std::fs::File::from(read_end);
        std::thread::Builder::new()
            .name("nbexec-kernel-output".into())
            .spawn(move || {
                let mut buf = [0u8; 8192];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => reader_output.push(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                reader_output.closed.send_replace(true);
            })?;
        let (exit_tx, exit_rx) = watch::channel(None);
        let (spawned_tx, spawned_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("nbexec-kernel-wait".into())
            .spawn(move || {
                let spawned = command.spawn();
                // The parent's copies of the pipe's write end live in `command`;
                // drop them so the reader sees EOF when the kernel's side closes.
                drop(command);
                let mut child = match spawned {
                    Ok(child) => child,
                    Err(e) => {
                        let _ = spawned_tx.send(Err(e));
                        return;
                    }
                };
                let pid = child.id();
                // Without a supervisor the kernel still dies with nbexec (by
                // PDEATHSIG); only its own children could then survive.
                let supervisor = Supervisor::spawn(pid).ok();
                if spawned_tx.send(Ok((pid, supervisor))).is_err() {
                    // The caller was cancelled while we spawned: nobody will
                    // ever own this kernel, so it must not live.
                    kill_group(pid, Signal::SIGKILL);
                }
                let status = child
                    .wait()
                    .unwrap_or_else(|_| ExitStatus::from_raw(0x7f00));
                // The leader is gone; anything it left in its group (its own
                // children) is of no use without it.
                kill_group(pid, Signal::SIGKILL);
                exit_tx.send_replace(Some(status));
            })?;
        let (pid, supervisor) = spawned_rx
            .await
            .map_err(|_| std::io::Error::other("spawn thread ended early"))??;

        Ok(KernelProcess {
            pid,
            exit: exit_rx,
            output,
            supervisor,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status, once the process has been reaped.
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// A receiver that sees the exit status when the process has been reaped.
    pub(crate) fn exit_watch(&self) -> watch::Receiver<Option<ExitStatus>> {
        self.exit.clone()
    }

    /// Waits for the process to exit (cancel-safe).
    pub(crate) async fn wait(&self) -> ExitStatus {
        let mut rx = self.exit.clone();
        let status = match rx.wait_for(Option::is_some).await {
            Ok(s) => *s,
            // The watcher thread never drops the sender before sending.
            Err(_) => None,
        };
        status.unwrap_or_else(|| ExitStatus::from_raw(0x7f00))
    }

    /// Has the kernel printed `needle` (within the kept tail of its output)?
    pub(crate) fn output_contains(&self, needle: &str) -> bool {
        self.output.text().contains(needle)
    }

    /// The last bytes of the kernel's output, after giving the pipe reader a
    /// moment to catch up with a process that has just exited.
    pub(crate) async fn output_tail(&self) -> String {
        let mut closed = self.output.closed.subscribe();
        let _ = tokio::time::timeout(Duration::from_millis(300), closed.wait_for(|c| *c)).await;
        self.output.text()
    }

    /// Sends `signal` to the kernel's process group unless it has already
    /// been reaped (after which its id may belong to someone else).
    pub(crate) fn signal(&self, signal: Signal) -> bool {
        if self.exit_status().is_some() {
            return false;
        }
        kill_group(self.pid, signal)
    }

    /// SIGKILLs the group and waits (up to `limit`) until it has been reaped.
    pub(crate) async fn kill_and_reap(&self, limit: Duration) {
        self.signal(Signal::SIGKILL);
        let _ = tokio::time::timeout(limit, self.wait()).await;
    }
}

impl Drop for KernelProcess {
    fn drop(&mut self) {
        // Whatever path led here (panic, cancellation, forgotten shutdown),
        // leave no kernel behind. The waiter thread reaps it.
        self.signal(Signal::SIGKILL);
        if let Some(s) = &mut self.supervisor {
            s.dismiss();
        }
    }
}

/// `killpg`, ignoring "no such group" (already gone). True when delivered.
fn kill_group(pid: u32, signal: Signal) -> bool {
    match i32::try_from(pid) {
        Ok(p) if p > 1 => killpg(Pid::from_raw(p), signal).is_ok(),
        _ => false,
    }
}
