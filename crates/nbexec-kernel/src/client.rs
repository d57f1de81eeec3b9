//! A connection to one running kernel: start-up, requests, events, interrupt, shutdown.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zeromq::util::PeerIdentity;
use zeromq::{
    DealerSendHalf, DealerSocket, ReqSocket, Socket, SocketOptions, SocketRecv, SocketSend,
    SubSocket, ZmqMessage,
};

use crate::connection::{ConnectionFile, ConnectionInfo, Transport, default_runtime_dir};
use crate::launch::{kernel_argv, kernel_env};
use crate::process::{KernelProcess, LaunchCommand};
use crate::wire::{Message, Rejected, Session};
use crate::{InterruptMode, KernelError, KernelSpec};

/// How often the heartbeat is pinged.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
/// Consecutive unanswered pings after which a kernel we cannot `wait` on is dead.
const HEARTBEAT_MISSES: u32 = 3;
/// Port collisions are possible with TCP (the OS's free port can be taken
/// before the kernel binds it), so a TCP launch is tried this many times.
const TCP_LAUNCH_TRIES: u32 = 3;
/// Launches over IPC retried when the first handshake is lost (see
/// [`is_lost_handshake`]).
const IPC_LAUNCH_TRIES: u32 = 2;

/// How to start a kernel.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// IPC (default on Unix) or TCP.
    pub transport: Transport,
    /// The kernel's working directory; nbexec's own when `None`.
    pub cwd: Option<PathBuf>,
    /// How long the kernel may take to answer its first `kernel_info_request`.
    pub start_timeout: Duration,
    /// Extra environment variables, applied after the kernelspec's `env`.
    pub env: Vec<(String, String)>,
    /// Where the connection file (and IPC sockets) go; see
    /// [`default_runtime_dir`](crate::default_runtime_dir) for the default.
    pub runtime_dir: Option<PathBuf>,
    /// Extra arguments appended to the kernel's command line.
    pub extra_args: Vec<String>,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            transport: Transport::Ipc,
            cwd: None,
            start_timeout: Duration::from_secs(60),
            env: Vec::new(),
            runtime_dir: None,
            extra_args: Vec::new(),
        }
    }
}

/// Flags of an `execute_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecuteOptions {
    /// Run without broadcasting outputs or incrementing the execution count.
    pub silent: bool,
    /// Record the code in the kernel's history (and count it).
    pub store_history: bool,
    /// Abort requests queued behind this one if it fails.
    pub stop_on_error: bool,
}

impl Default for ExecuteOptions {
    fn default() -> Self {
        ExecuteOptions {
            silent: false,
            store_history: true,
            stop_on_error: true,
        }
    }
}

/// Something that happened on the connection; see [`KernelClient::recv`].
#[derive(Debug, Clone)]
pub enum KernelEvent {
    /// Any IOPub message: `status`, `stream`, `display_data`,
    /// `update_display_data`, `execute_result`, `error`, `clear_output`,
    /// `execute_input`, comm messages...
    Iopub(Message),
    /// A reply on the shell channel (`execute_reply` and others).
    ShellReply(Message),
    /// An `input_request`. Requests are sent with `allow_stdin=false`, so this
    /// should not happen; if a kernel asks anyway, it has already been answered
    /// with an empty `input_reply` so nothing hangs.
    StdinRequest(Message),
    /// A correctly signed message from the kernel that is not JSON even after
    /// lossy decoding (bytes that are not UTF-8 are already read as U+FFFD, so
    /// this means a broken kernel). It is delivered in order with the others so
    /// that a reply or `status: idle` lost this way cannot leave the caller
    /// waiting for ever; it is also counted in
    /// [`dropped_messages`](KernelClient::dropped_messages).
    Unreadable {
        /// Where it arrived.
        channel: Channel,
        /// `header.msg_type`, when the header could be read.
        msg_type: Option<String>,
        /// `parent_header.msg_id`, when the parent header could be read.
        parent_msg_id: Option<String>,
        /// What could not be read, and why.
        detail: String,
    },
    /// The kernel process exited (or, for a kernel we did not start, its
    /// heartbeat stopped). Once returned, every later `recv` returns it again.
    Died {
        /// The exit status, when the kernel was our child.
        status: Option<ExitStatus>,
        /// The last output the kernel wrote to stdout/stderr.
        stderr_tail: String,
    },
}

/// The channel an [`KernelEvent::Unreadable`] message arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The shell channel (replies).
    Shell,
    /// The IOPub channel (status, outputs).
    Iopub,
}

/// What a reader task forwards: a message, or what could be read of one.
enum Incoming {
    Message(Box<Message>),
    Unreadable {
        msg_type: Option<String>,
        parent_msg_id: Option<String>,
        detail: String,
    },
}

impl Incoming {
    fn into_event(self, channel: Channel) -> KernelEvent {
        match (self, channel) {
            (Incoming::Message(m), Channel::Iopub) => KernelEvent::Iopub(*m),
            (Incoming::Message(m), Channel::Shell) => KernelEvent::ShellReply(*m),
            (
                Incoming::Unreadable {
                    msg_type,
                    parent_msg_id,
                    detail,
                },
                channel,
            ) => KernelEvent::Unreadable {
                channel,
                msg_type,
                parent_msg_id,
                detail,
            },
        }
    }

    fn parent(&self) -> Option<&String> {
        match self {
            Incoming::Message(m) => m.parent_msg_id.as_ref(),
            Incoming::Unreadable { parent_msg_id, .. } => parent_msg_id.as_ref(),
        }
    }
}

/// A connection to a running kernel.
///
/// Dropping it without [`shutdown`](KernelClient::shutdown) (a panic, a
/// cancelled task) SIGKILLs the kernel's process group at once and removes
/// the connection file: no kernel is left behind.
pub struct KernelClient {
    kernel_name: String,
    session: Arc<Session>,
    shell: DealerSendHalf,
    control: Arc<Mutex<DealerSendHalf>>,
    inbox: Inbox,
    liveness: Liveness,
    dropped: Arc<AtomicU64>,
    kernel_info: Value,
    /// The `kernel_info_request`s sent while waiting for the kernel: their
    /// late replies and status messages are not the caller's business.
    startup_ids: HashSet<String>,
    interrupt_mode: InterruptMode,
    /// A `shutdown_request` was already sent ([`KernelClient::request_shutdown`]).
    shutdown_requested: bool,
    /// Reader and heartbeat tasks, aborted on drop. Dropping `liveness` kills
    /// the process group (KernelProcess's Drop), dropping `conn` removes the
    /// files (ConnectionFile's Drop): together that is the `Drop` guarantee.
    _tasks: AbortOnDrop,
    conn: ConnectionFile,
}

struct Inbox {
    iopub: UnboundedReceiver<Incoming>,
    shell: UnboundedReceiver<Incoming>,
    stdin: UnboundedReceiver<Message>,
}

/// How death is noticed: the child's exit when we started it (authoritative),
/// otherwise the heartbeat.
struct Liveness {
    process: Option<KernelProcess>,
    heartbeat_lost: watch::Receiver<bool>,
    died: Option<(Option<ExitStatus>, String)>,
}

impl Liveness {
    fn is_dead(&self) -> bool {
        self.died.is_some()
            || match &self.process {
                Some(p) => p.exit_status().is_some(),
                None => *self.heartbeat_lost.borrow(),
            }
    }

    /// Resolves once the kernel is dead (cancel-safe).
    async fn dead(&mut self) -> (Option<ExitStatus>, String) {
        if let Some(d) = &self.died {
            return d.clone();
        }
        let d = match &self.process {
            Some(p) => {
                let status = p.wait().await;
                (Some(status), p.output_tail().await)
            }
            None => {
                if self.heartbeat_lost.wait_for(|lost| *lost).await.is_err() {
                    // The heartbeat task is gone without a verdict: no news.
                    std::future::pending::<()>().await;
                }
                (None, String::new())
            }
        };
        self.died = Some(d.clone());
        d
    }
}

struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Interrupts the kernel from anywhere (another task, a signal handler task).
#[derive(Clone)]
pub struct Interrupter {
    target: Arc<InterruptTarget>,
}

enum InterruptTarget {
    Signal {
        pid: u32,
        exit: watch::Receiver<Option<ExitStatus>>,
    },
    Message {
        control: Arc<Mutex<DealerSendHalf>>,
        session: Arc<Session>,
    },
}

impl Interrupter {
    /// Interrupts the running cell: SIGINT to the kernel's process group or an
    /// `interrupt_request` on the control channel, per the kernelspec's
    /// `interrupt_mode`. Returns [`KernelError::Dead`] if the kernel has exited.
    pub async fn interrupt(&self) -> Result<(), KernelError> {
        match &*self.target {
            InterruptTarget::Signal { pid, exit } => {
                if exit.borrow().is_some() {
                    return Err(KernelError::Dead);
                }
                let pgid = i32::try_from(*pid)
                    .map_err(|_| KernelError::Protocol(format!("pid {pid} out of range")))?;
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGINT).map_err(
                    |e| match e {
                        nix::errno::Errno::ESRCH => KernelError::Dead,
                        e => KernelError::Io(e.into()),
                    },
                )
            }
            InterruptTarget::Message { control, session } => {
                let (_, frames) = session.request("interrupt_request", json!({}), None);
                send(&mut *control.lock().await, frames).await
            }
        }
    }
}

async fn send(sock: &mut DealerSendHalf, frames: Vec<Bytes>) -> Result<(), KernelError> {
    let msg = ZmqMessage::try_from(frames)
        .map_err(|e| KernelError::Protocol(format!("cannot send an empty message: {e}")))?;
    sock.send(msg)
        .await
        .map_err(|e| KernelError::Protocol(format!("{SEND_FAILED}: {e}")))
}

impl KernelClient {
    /// Starts the kernel described by `spec` and waits until it is ready:
    /// it has answered a `kernel_info_request` and an IOPub message for one
    /// has arrived (so IOPub is known to be subscribed).
    ///
    /// The connection file is written (mode 0600) before the process starts.
    /// The kernel runs in its own session and process group, with stdout and
    /// stderr captured (the last 64 KiB are kept for error messages), and on
    /// Linux with `PR_SET_PDEATHSIG = SIGKILL` so that it dies with nbexec
    /// even if nbexec is SIGKILLed. A kernel that exits, or does not answer
    /// within `opts.start_timeout`, is reported with its output and killed.
    pub async fn start(
        spec: &KernelSpec,
        opts: &LaunchOptions,
    ) -> Result<KernelClient, KernelError> {
        let tries = match opts.transport {
            Transport::Tcp => TCP_LAUNCH_TRIES,
            Transport::Ipc => IPC_LAUNCH_TRIES,
        };
        let mut attempt = 1;
        loop {
            match start_once(spec, opts).await {
                Err(e) if attempt < tries && (is_port_collision(&e) || is_lost_handshake(&e)) => {
                    attempt += 1
                }
                other => return other,
            }
        }
    }

    /// Connects to a kernel someone else started, from its connection file.
    ///
    /// Death is then noticed through the heartbeat only (a few missed beats),
    /// interrupts are sent as messages, and neither [`shutdown`](Self::shutdown)
    /// nor `Drop` signals any process or removes the file.
    pub async fn connect_existing(
        connection_file: &Path,
        timeout: Duration,
    ) -> Result<KernelClient, KernelError> {
        let conn = ConnectionFile::existing(connection_file)?;
        let session = Arc::new(Session::new(conn.info.key.as_bytes()));
        let connected = tokio::time::timeout(timeout, connect(&conn.info, &session))
            .await
            .map_err(|_| {
                KernelError::Protocol(format!(
                    "no answer within {timeout:?} from the kernel of {}",
                    connection_file.display()
                ))
            })??;
        let name = connected
            .kernel_info
            .pointer("/language_info/name")
            .and_then(Value::as_str)
            .unwrap_or("kernel")
            .to_owned();
        Ok(connected.into_client(name, session, conn, None, InterruptMode::Message))
    }

    /// The content of the kernel's `kernel_info_reply`.
    pub fn kernel_info(&self) -> &serde_json::Value {
        &self.kernel_info
    }

    /// The kernel's process id (also its process group id), when we started it.
    pub fn pid(&self) -> Option<u32> {
        self.liveness.process.as_ref().map(KernelProcess::pid)
    }

    /// The connection file's path.
    pub fn connection_file(&self) -> &Path {
        &self.conn.path
    }

    /// The kernelspec's name (or the language, for a kernel we connected to).
    pub fn kernel_name(&self) -> &str {
        &self.kernel_name
    }

    /// Sends an `execute_request` (`allow_stdin=false`, so `input()` fails at
    /// once instead of hanging) and returns its `msg_id` without waiting.
    ///
    /// Several requests may be in flight; the kernel runs them in order. The
    /// connection buffers whatever the kernel sends without limit so it never
    /// stalls, which means the *caller* must keep a bounded window of
    /// outstanding requests and keep calling [`recv`](Self::recv).
    pub async fn execute(
        &mut self,
        code: &str,
        opts: ExecuteOptions,
    ) -> Result<String, KernelError> {
        let content = json!({
            "code": code,
            "silent": opts.silent,
            "store_history": opts.store_history,
            "user_expressions": {},
            "allow_stdin": false,
            "stop_on_error": opts.stop_on_error,
        });
        self.shell_request("execute_request", content).await
    }

    /// Sends any request on the shell channel and returns its `msg_id`; the
    /// reply comes back as [`KernelEvent::ShellReply`].
    pub async fn shell_request(
        &mut self,
        msg_type: &str,
        content: Value,
    ) -> Result<String, KernelError> {
        if self.liveness.is_dead() {
            return Err(KernelError::Dead);
        }
        let (id, frames) = self.session.request(msg_type, content, None);
        match send(&mut self.shell, frames).await {
            Ok(()) => Ok(id),
            // A send fails when the peer is gone; say why if we know.
            Err(_) if self.liveness.is_dead() => Err(KernelError::Dead),
            Err(e) => Err(e),
        }
    }

    /// The next event from any channel, or the kernel's death.
    ///
    /// Cancel-safe: it can be a branch of `tokio::select!` (e.g. against a
    /// cell timeout) without losing messages. Messages already received are
    /// delivered before a death is reported.
    pub async fn recv(&mut self) -> KernelEvent {
        loop {
            let event = tokio::select! {
                biased;
                Some(m) = self.inbox.iopub.recv() => (m, Channel::Iopub),
                Some(m) = self.inbox.shell.recv() => (m, Channel::Shell),
                Some(m) = self.inbox.stdin.recv() => return KernelEvent::StdinRequest(m),
                (status, stderr_tail) = self.liveness.dead() => {
                    return KernelEvent::Died { status, stderr_tail };
                }
            };
            let (incoming, channel) = event;
            let from_startup = incoming
                .parent()
                .is_some_and(|p| self.startup_ids.contains(p));
            if !from_startup {
                return incoming.into_event(channel);
            }
        }
    }

    /// A handle that interrupts the kernel; it can be cloned and moved to
    /// other tasks (e.g. a Ctrl-C handler or a timeout).
    pub fn interrupter(&self) -> Interrupter {
        let target = match (&self.liveness.process, self.interrupt_mode) {
            (Some(p), InterruptMode::Signal) => InterruptTarget::Signal {
                pid: p.pid(),
                exit: p.exit_watch(),
            },
            _ => InterruptTarget::Message {
                control: Arc::clone(&self.control),
                session: Arc::clone(&self.session),
            },
        };
        Interrupter {
            target: Arc::new(target),
        }
    }

    /// Sends `shutdown_request` without waiting: the kernel starts its (slow,
    /// ~0.1–0.3 s for ipykernel) graceful exit while the caller does other work,
    /// such as saving the notebook. [`KernelClient::shutdown`] then waits for it.
    pub async fn request_shutdown(&mut self) {
        if self.shutdown_requested || self.liveness.is_dead() {
            return;
        }
        let (_, frames) = self
            .session
            .request("shutdown_request", json!({"restart": false}), None);
        let _ = send(&mut *self.control.lock().await, frames).await;
        self.shutdown_requested = true;
    }

    /// Stops the kernel: a `shutdown_request` on the control channel, up to
    /// `grace` for it to exit, then SIGTERM and finally SIGKILL to its
    /// process group; the connection file and IPC sockets are removed.
    ///
    /// The grace period lets the kernel exit cleanly (its interpreter flushes
    /// files that user code left open); keep it short, but not zero.
    pub async fn shutdown(mut self, grace: Duration) -> Result<(), KernelError> {
        if !self.shutdown_requested && !self.liveness.is_dead() {
            let (_, frames) =
                self.session
                    .request("shutdown_request", json!({"restart": false}), None);
            // A kernel that cannot take the message is killed below anyway.
            let _ = send(&mut *self.control.lock().await, frames).await;
        }
        let result = match &self.liveness.process {
            Some(p) => {
                if tokio::time::timeout(grace, p.wait()).await.is_err() {
                    p.signal(Signal::SIGTERM);
                    if tokio::time::timeout(Duration::from_secs(1), p.wait())
                        .await
                        .is_err()
                    {
                        p.kill_and_reap(Duration::from_secs(5)).await;
                    }
                }
                match p.exit_status() {
                    Some(_) => Ok(()),
                    None => Err(KernelError::Protocol(format!(
                        "kernel '{}' (pid {}) survived SIGKILL",
                        self.kernel_name,
                        p.pid()
                    ))),
                }
            }
            None => {
                let _ = tokio::time::timeout(grace, self.liveness.dead()).await;
                Ok(())
            }
        };
        self.conn.remove();
        result
    }

    /// How many received messages were dropped because they were unsigned,
    /// wrongly signed or malformed.
    pub fn dropped_messages(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A kernel that could not bind a port another process took between our
/// choosing it and the kernel binding it (ipykernel prints the ZMQError).
fn is_port_collision(e: &KernelError) -> bool {
    matches!(e, KernelError::ExitedDuringStart { stderr_tail, .. }
        if stderr_tail.contains(ADDRESS_IN_USE))
}

/// A start-up whose connection dropped before the kernel answered: zmq.rs drops
/// a peer whose ZMTP handshake does not finish in time, which happens when 50
/// kernels start at once on two cores, and then has nobody to send to. A fresh
/// launch gets through.
fn is_lost_handshake(e: &KernelError) -> bool {
    matches!(e, KernelError::Protocol(msg) if msg.starts_with(SEND_FAILED) && msg.contains("Not connected to peers"))
}

const SEND_FAILED: &str = "send failed";

/// What ipykernel (through pyzmq) prints when a port it binds is taken.
const ADDRESS_IN_USE: &str = "Address already in use";

async fn start_once(spec: &KernelSpec, opts: &LaunchOptions) -> Result<KernelClient, KernelError> {
    if let Some(dir) = &opts.cwd {
        // Otherwise the spawn's ENOENT would read as if argv[0] were missing.
        std::fs::read_dir(dir).map_err(|source| KernelError::File {
            action: "cannot use kernel working directory",
            path: dir.clone(),
            source,
        })?;
    }
    let runtime_dir = opts.runtime_dir.clone().unwrap_or_else(default_runtime_dir);
    let conn = ConnectionFile::create(&runtime_dir, opts.transport, &spec.name)?;
    let argv = kernel_argv(spec, &conn.path, &opts.extra_args);
    let (env, env_remove) = kernel_env(spec, &opts.env);
    let process = KernelProcess::spawn(LaunchCommand {
        argv: argv.clone(),
        env,
        env_remove,
        cwd: opts.cwd.clone(),
    })
    .await
    .map_err(|source| KernelError::Spawn {
        kernel: spec.name.clone(),
        argv: argv.clone(),
        source,
    })?;

    let session = Arc::new(Session::new(conn.info.key.as_bytes()));
    enum Outcome {
        Ready(Box<Result<Connected, KernelError>>),
        Exited(ExitStatus),
        TimedOut,
        PortTaken,
    }
    // Over TCP another process can take a port between our choosing it and the
    // kernel binding it. ipykernel exits when that is its shell, stdin or control
    // port, but only prints the error and keeps running when it is the IOPub or
    // heartbeat port: watch its output for that, so the launch can be retried.
    let port_taken = async {
        if opts.transport != Transport::Tcp {
            return std::future::pending::<()>().await;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if process.output_contains(ADDRESS_IN_USE) {
                return;
            }
        }
    };
    // zmq.rs's connect waits for the peer to appear, so the connects and the
    // handshake race the child's exit and the deadline.
    let outcome = tokio::select! {
        r = connect(&conn.info, &session) => Outcome::Ready(Box::new(r)),
        status = process.wait() => Outcome::Exited(status),
        () = tokio::time::sleep(opts.start_timeout) => Outcome::TimedOut,
        () = port_taken => Outcome::PortTaken,
    };
    let err = match outcome {
        Outcome::Ready(r) => match *r {
            Ok(connected) => {
                return Ok(connected.into_client(
                    spec.name.clone(),
                    session,
                    conn,
                    Some(process),
                    spec.interrupt_mode,
                ));
            }
            Err(e) => e,
        },
        Outcome::Exited(status) => KernelError::ExitedDuringStart {
            kernel: spec.name.clone(),
            argv,
            status,
            stderr_tail: process.output_tail().await,
        },
        Outcome::PortTaken => {
            process.kill_and_reap(Duration::from_secs(2)).await;
            KernelError::ExitedDuringStart {
                kernel: spec.name.clone(),
                argv,
                status: process.exit_status().unwrap_or_else(|| {
                    <ExitStatus as std::os::unix::process::ExitStatusExt>::from_raw(0x7f00)
                }),
                stderr_tail: process.output_tail().await,
            }
        }
        Outcome::TimedOut => {
            process.kill_and_reap(Duration::from_secs(2)).await;
            KernelError::StartTimeout {
                kernel: spec.name.clone(),
                argv,
                after: opts.start_timeout,
                stderr_tail: process.output_tail().await,
            }
        }
    };
    process.kill_and_reap(Duration::from_secs(2)).await;
    Err(err)
}

/// Sockets connected, reader tasks running, kernel ready.
struct Connected {
    shell: DealerSendHalf,
    control: DealerSendHalf,
    inbox: Inbox,
    heartbeat_lost: watch::Receiver<bool>,
    dropped: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
    kernel_info: Value,
    startup_ids: HashSet<String>,
}

impl Connected {
    fn into_client(
        self,
        kernel_name: String,
        session: Arc<Session>,
        conn: ConnectionFile,
        process: Option<KernelProcess>,
        interrupt_mode: InterruptMode,
    ) -> KernelClient {
        KernelClient {
            kernel_name,
            session,
            shell: self.shell,
            control: Arc::new(Mutex::new(self.control)),
            inbox: self.inbox,
            liveness: Liveness {
                process,
                heartbeat_lost: self.heartbeat_lost,
                died: None,
            },
            dropped: self.dropped,
            kernel_info: self.kernel_info,
            startup_ids: self.startup_ids,
            interrupt_mode,
            shutdown_requested: false,
            _tasks: AbortOnDrop(self.tasks),
            conn,
        }
    }
}

/// Connects all five sockets, starts one reader task per socket, and waits
/// for the kernel to be ready.
async fn connect(info: &ConnectionInfo, session: &Arc<Session>) -> Result<Connected, KernelError> {
    let zmq_err = |what: &'static str| {
        move |e: zeromq::ZmqError| KernelError::Protocol(format!("{what}: {e}"))
    };
    // Shell and stdin must share an identity: the kernel sends an
    // input_request to the identity that sent the execute_request.
    let identity = PeerIdentity::try_from(uuid::Uuid::new_v4().as_bytes().to_vec())
        .map_err(zmq_err("identity"))?;
    let dealer = |identity: Option<PeerIdentity>| {
        let mut o = socket_options();
        if let Some(id) = identity {
            o.peer_identity(id);
        }
        DealerSocket::with_options(o)
    };
    let shell_identity = identity.clone();
    let sub = || SubSocket::with_options(socket_options());
    let (shell, stdin, control, mut iopub) = tokio::join!(
        connect_socket(
            || dealer(Some(shell_identity.clone())),
            info.endpoint(info.shell_port)
        ),
        connect_socket(
            || dealer(Some(identity.clone())),
            info.endpoint(info.stdin_port)
        ),
        connect_socket(|| dealer(None), info.endpoint(info.control_port)),
        connect_socket(sub, info.endpoint(info.iopub_port)),
    );
    iopub
        .subscribe("")
        .await
        .map_err(zmq_err("iopub subscribe"))?;

    let dropped = Arc::new(AtomicU64::new(0));
    let (iopub_tx, iopub_rx) = unbounded_channel();
    let (shell_tx, shell_rx) = unbounded_channel();
    let (stdin_tx, stdin_rx) = unbounded_channel();
    let (hb_tx, hb_rx) = watch::channel(false);
    let (mut shell, shell_recv) = shell.split();
    let (control, control_recv) = control.split();
    let mut tasks = AbortOnDrop(vec![
        tokio::spawn(read_loop(
            iopub,
            Arc::clone(session),
            Arc::clone(&dropped),
            Some(iopub_tx),
        )),
        tokio::spawn(read_loop(
            shell_recv,
            Arc::clone(session),
            Arc::clone(&dropped),
            Some(shell_tx),
        )),
        // Control replies (interrupt_reply, shutdown_reply) are only drained:
        // what matters is that the kernel acts on the request.
        tokio::spawn(read_loop(
            control_recv,
            Arc::clone(session),
            Arc::clone(&dropped),
            None,
        )),
        tokio::spawn(stdin_loop(
            stdin,
            Arc::clone(session),
            Arc::clone(&dropped),
            stdin_tx,
        )),
        tokio::spawn(heartbeat_loop(info.endpoint(info.hb_port), hb_tx)),
    ]);

    let mut inbox = Inbox {
        iopub: iopub_rx,
        shell: shell_rx,
        stdin: stdin_rx,
    };
    let (kernel_info, startup_ids) = wait_ready(&mut shell, &mut inbox, session).await?;
    Ok(Connected {
        shell,
        control,
        inbox,
        heartbeat_lost: hb_rx,
        dropped,
        tasks: std::mem::take(&mut tasks.0),
        kernel_info,
        startup_ids,
    })
}

/// No connect timeout (callers race connects against their own deadlines),
/// and larger read chunks than zmq.rs's 128-byte start: a Jupyter message is
/// rarely under a few hundred bytes, and outputs can be megabytes, so small
/// reads only cost system calls.
fn socket_options() -> SocketOptions {
    let mut o = SocketOptions::default();
    o.no_connect_timeout();
    o.read_buffer(8 * 1024, 1024 * 1024, 2);
    o
}

/// Connects a fresh socket from `make` to `endpoint`, retrying until it works.
///
/// Callers race this against the kernel's exit and a deadline, so it may
/// retry forever. A handshake can fail when what listens is not our kernel:
/// with TCP another process may have taken the port, in which case our kernel
/// fails to bind it and exits, which the caller sees (and retries the launch).
async fn connect_socket<S: Socket>(make: impl Fn() -> S, endpoint: String) -> S {
    loop {
        wait_listening(&endpoint).await;
        let mut socket = make();
        match socket.connect(&endpoint).await {
            Ok(()) => return socket,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Polls until something listens at `endpoint`. zmq.rs retries a refused
/// connect with exponential back-off (50 ms, 100 ms, ... 30 s), which can add
/// most of a second to a kernel's start; a cheap 5 ms poll does not.
async fn wait_listening(endpoint: &str) {
    let poll = Duration::from_millis(5);
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        while tokio::net::UnixStream::connect(path).await.is_err() {
            tokio::time::sleep(poll).await;
        }
    } else if let Some(addr) = endpoint.strip_prefix("tcp://") {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(poll).await;
        }
    }
}

/// Repeats `kernel_info_request` until one is answered on shell *and* an
/// IOPub message for one has arrived: a SUB socket's subscription takes
/// effect some time after connecting, and messages published before that are
/// lost (the slow-joiner problem). Never a fixed sleep.
async fn wait_ready(
    shell: &mut DealerSendHalf,
    inbox: &mut Inbox,
    session: &Session,
) -> Result<(Value, HashSet<String>), KernelError> {
    let mut ids = HashSet::new();
    let mut reply: Option<Value> = None;
    let mut iopub_seen = false;
    loop {
        let (id, frames) = session.request("kernel_info_request", json!({}), None);
        send(shell, frames).await?;
        ids.insert(id);
        // Before the first reply the kernel is still starting up, and each
        // request sent now is answered later: resend rarely. After it, only
        // the IOPub subscription is missing, which settles within milliseconds.
        let wait = if reply.is_some() {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(500)
        };
        let resend_at = Instant::now() + wait;
        loop {
            tokio::select! {
                Some(Incoming::Message(m)) = inbox.shell.recv() => {
                    let ours = m.parent_msg_id.as_ref().is_some_and(|p| ids.contains(p));
                    if ours && m.msg_type == "kernel_info_reply" && reply.is_none() {
                        reply = Some(m.content);
                    }
                }
                Some(Incoming::Message(m)) = inbox.iopub.recv() => {
                    if m.parent_msg_id.as_ref().is_some_and(|p| ids.contains(p)) {
                        iopub_seen = true;
                    }
                }
                () = tokio::time::sleep_until(resend_at) => break,
            }
            if iopub_seen && let Some(info) = reply.take() {
                return Ok((info, ids));
            }
        }
    }
}

/// Receives, verifies and forwards messages until the receiver goes away.
/// Channels are unbounded so this task always drains its socket: a kernel
/// that cannot send blocks, and a blocked kernel never answers.
/// With `tx` `None` messages are verified and discarded.
async fn read_loop<S: SocketRecv>(
    mut sock: S,
    session: Arc<Session>,
    dropped: Arc<AtomicU64>,
    tx: Option<UnboundedSender<Incoming>>,
) {
    loop {
        let incoming = match sock.recv().await {
            Ok(frames) => match session.decode(frames.into_vec()) {
                Ok(m) => Incoming::Message(Box::new(m)),
                Err(Rejected::BadSignature | Rejected::Malformed(_)) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // Signed by the kernel, so it is part of the conversation:
                // pass on what can be read, in order, so that a lost reply or
                // idle can still end the request it belonged to.
                Err(Rejected::Unreadable {
                    msg_type,
                    parent_msg_id,
                    detail,
                }) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    Incoming::Unreadable {
                        msg_type,
                        parent_msg_id,
                        detail,
                    }
                }
            },
            // The peer went away (the kernel died or is restarting); death is
            // reported by the process watcher, so only avoid spinning here.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Some(tx) = &tx
            && tx.send(incoming).is_err()
        {
            return;
        }
    }
}

/// Like [`read_loop`] for the stdin channel, answering every `input_request`
/// with an empty `input_reply` so that a kernel asking for input never hangs.
async fn stdin_loop(
    mut sock: DealerSocket,
    session: Arc<Session>,
    dropped: Arc<AtomicU64>,
    tx: UnboundedSender<Message>,
) {
    loop {
        match sock.recv().await {
            Ok(frames) => match session.decode(frames.into_vec()) {
                Ok(m) => {
                    if m.msg_type == "input_request" {
                        let (_, reply) =
                            session.request("input_reply", json!({"value": ""}), Some(&m.header));
                        if let Ok(msg) = ZmqMessage::try_from(reply) {
                            let _ = sock.send(msg).await;
                        }
                    }
                    if tx.send(m).is_err() {
                        return;
                    }
                }
                Err(_) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Pings the heartbeat every [`HEARTBEAT_INTERVAL`]; after
/// [`HEARTBEAT_MISSES`] unanswered pings in a row, reports the kernel lost.
/// ipykernel answers from its own thread, so a busy kernel still answers.
/// zmq.rs's REQ socket cannot recover from an abandoned request, so each
/// miss starts over with a fresh socket.
async fn heartbeat_loop(endpoint: String, lost: watch::Sender<bool>) {
    let mut sock: Option<ReqSocket> = None;
    let mut misses = 0;
    loop {
        let started = Instant::now();
        let ok = tokio::time::timeout(HEARTBEAT_INTERVAL, ping(&mut sock, &endpoint))
            .await
            .is_ok_and(|r| r.is_ok());
        if ok {
            misses = 0;
        } else {
            sock = None;
            misses += 1;
            if misses >= HEARTBEAT_MISSES {
                lost.send_replace(true);
                return;
            }
        }
        tokio::time::sleep_until(started + HEARTBEAT_INTERVAL).await;
    }
}

async fn ping(sock: &mut Option<ReqSocket>, endpoint: &str) -> zeromq::ZmqResult<()> {
    let s = match sock {
        Some(s) => s,
        None => {
            let mut s = ReqSocket::with_options(socket_options());
            s.connect(endpoint).await?;
            sock.insert(s)
        }
    };
    s.send(ZmqMessage::from(Bytes::from_static(b"ping")))
        .await?;
    s.recv().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn only_an_address_in_use_exit_counts_as_a_port_collision() {
        let exited = |tail: &str| KernelError::ExitedDuringStart {
            kernel: "k".into(),
            argv: vec![],
            status: ExitStatus::from_raw(256),
            stderr_tail: tail.into(),
        };
        assert!(is_port_collision(&exited(
            "zmq.error.ZMQError: Address already in use (addr='tcp://127.0.0.1:57565')"
        )));
        assert!(!is_port_collision(&exited(
            "ModuleNotFoundError: ipykernel"
        )));
        assert!(!is_port_collision(&KernelError::Dead));
    }
}
