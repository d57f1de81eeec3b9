//! A kernel running behind a gateway: started over REST, driven over the channels
//! WebSocket, deleted at the end whatever happens.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::ws::{self, Framing, Ws};
use crate::{Gateway, GatewayError};

/// How often the WebSocket is pinged.
const PING_EVERY: Duration = Duration::from_secs(15);

/// How long deleting a kernel may take before nbexec gives up on it.
pub const DELETE_CAP: Duration = Duration::from_secs(10);

/// A Jupyter message, as it travels over the WebSocket.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub header: Value,
    pub parent_header: Value,
    pub metadata: Value,
    pub content: Value,
}

impl Message {
    pub fn msg_type(&self) -> &str {
        self.header
            .get("msg_type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The msg_id of the request this message answers.
    pub fn parent_id(&self) -> Option<String> {
        self.parent_header
            .get("msg_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

/// What a remote kernel tells its driver. (`Message` is nearly every event: boxing
/// it would cost an allocation per message to shrink the rare `Died`.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum RemoteEvent {
    /// A message on `channel` (`iopub`, `shell`, `stdin`, `control`).
    Message { channel: String, msg: Message },
    /// The kernel is gone, or the gateway is unreachable for good.
    Died { detail: String },
}

/// How to start a remote kernel.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub kernel_name: String,
    /// The `env` of `POST /api/kernels` (see [`crate::GatewayConfig::kernel_env`]).
    pub env: Map<String, Value>,
    /// From `POST` to `kernel_info_reply`, including waits for a free kernel slot.
    pub start_timeout: Duration,
}

/// A kernel behind a gateway. Dropping it deletes the kernel (best effort, capped).
pub struct RemoteKernel {
    gateway: Gateway,
    id: String,
    session: String,
    framing: Framing,
    out: mpsc::UnboundedSender<(String, Message)>,
    events: mpsc::UnboundedReceiver<RemoteEvent>,
    pump: Option<JoinHandle<()>>,
    guard: DeleteGuard,
    /// The content of the kernel's `kernel_info_reply` (null until it answered).
    kernel_info: Value,
}

impl std::fmt::Debug for RemoteKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKernel")
            .field("gateway", &self.gateway.url())
            .field("id", &self.id)
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

impl RemoteKernel {
    /// Starts a kernel and waits until it answers `kernel_info_request`. While the
    /// gateway is at its kernel limit (`403 … Resource Limit`), waits and retries,
    /// saying so through `note`.
    pub async fn start(
        gateway: &Gateway,
        opts: &StartOptions,
        note: &mut (dyn FnMut(&str) + Send),
    ) -> Result<RemoteKernel, GatewayError> {
        let deadline = Instant::now() + opts.start_timeout;
        let mut env = opts.env.clone();
        env.entry("KERNEL_LAUNCH_TIMEOUT")
            .or_insert_with(|| Value::from(opts.start_timeout.as_secs().max(1).to_string()));
        let mut wait = Duration::from_secs(1);
        let model = loop {
            match create_unleaked(gateway, &opts.kernel_name, env.clone()).await {
                Ok(model) => break model,
                Err(e) if e.is_resource_limit() && Instant::now() + wait < deadline => {
                    note(&format!(
                        "{e}; waiting {} s for a free kernel slot",
                        wait.as_secs()
                    ));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e),
            }
        };
        let id = model["id"].as_str().unwrap_or_default().to_owned();
        // From here on, every way out deletes the kernel: errors below, and a start
        // that is abandoned (cancelled) while it waits.
        let guard = DeleteGuard {
            gateway: gateway.clone(),
            id: Some(id.clone()),
        };
        let session = uuid::Uuid::new_v4().simple().to_string();
        let (ws, framing) = gateway.open_channels(&id, &session).await?;
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let pump = tokio::spawn(pump(
            gateway.clone(),
            id.clone(),
            session.clone(),
            ws,
            framing,
            out_rx,
            ev_tx,
        ));
        let mut kernel = RemoteKernel {
            gateway: gateway.clone(),
            id,
            session,
            framing,
            out: out_tx,
            events: ev_rx,
            pump: Some(pump),
            guard,
            kernel_info: Value::Null,
        };
        kernel.wait_ready(deadline, opts.start_timeout).await?;
        Ok(kernel)
    }

    /// Asks `kernel_info` until the kernel answers (it is `starting` after `POST`).
    async fn wait_ready(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), GatewayError> {
        let mut asked = HashSet::new();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(GatewayError::StartTimeout {
                    url: self.gateway.url().to_owned(),
                    kernel_id: self.id.clone(),
                    secs: timeout.as_secs(),
                });
            }
            asked.insert(self.send("shell", "kernel_info_request", json!({}))?);
            let next_ask = (now + Duration::from_secs(2)).min(deadline);
            loop {
                let event = tokio::select! {
                    e = self.events.recv() => e,
                    () = tokio::time::sleep_until(next_ask) => break,
                };
                match event {
                    Some(RemoteEvent::Message { channel, msg })
                        if channel == "shell"
                            && msg.msg_type() == "kernel_info_reply"
                            && msg.parent_id().is_some_and(|p| asked.contains(&p)) =>
                    {
                        self.kernel_info = msg.content;
                        return Ok(());
                    }
                    Some(RemoteEvent::Message { .. }) => {}
                    Some(RemoteEvent::Died { detail }) => {
                        return Err(GatewayError::Protocol {
                            url: self.gateway.url().to_owned(),
                            detail: format!("kernel {} failed while starting: {detail}", self.id),
                        });
                    }
                    None => {
                        return Err(GatewayError::Protocol {
                            url: self.gateway.url().to_owned(),
                            detail: format!("the connection to kernel {} ended", self.id),
                        });
                    }
                }
            }
        }
    }

    /// The content of the kernel's `kernel_info_reply`.
    pub fn kernel_info(&self) -> &Value {
        &self.kernel_info
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Sends a request on `channel` and returns its msg_id.
    pub fn send(
        &self,
        channel: &str,
        msg_type: &str,
        content: Value,
    ) -> Result<String, GatewayError> {
        let msg_id = uuid::Uuid::new_v4().simple().to_string();
        let header = json!({
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": self.session,
            "username": "nbexec",
            "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "version": "5.4",
        });
        let msg = Message {
            header,
            parent_header: json!({}),
            metadata: json!({}),
            content,
        };
        self.out
            .send((channel.to_owned(), msg))
            .map_err(|_| GatewayError::Protocol {
                url: self.gateway.url().to_owned(),
                detail: format!("the connection to kernel {} is closed", self.id),
            })?;
        Ok(msg_id)
    }

    /// The next message or the kernel's end; cancel-safe. A status of `restarting`
    /// or `dead` (the gateway saw the kernel process die) is the kernel's end.
    pub async fn recv(&mut self) -> RemoteEvent {
        match self.events.recv().await {
            Some(RemoteEvent::Message { channel, msg }) => {
                if channel == "iopub" && msg.msg_type() == "status" {
                    let state = msg.content["execution_state"].as_str().unwrap_or("");
                    if matches!(state, "restarting" | "dead") {
                        return RemoteEvent::Died {
                            detail: format!(
                                "gateway {} reports kernel {} {state} (its process ended)",
                                self.gateway.url(),
                                self.id
                            ),
                        };
                    }
                }
                RemoteEvent::Message { channel, msg }
            }
            Some(died) => died,
            None => RemoteEvent::Died {
                detail: format!("the connection to gateway {} ended", self.gateway.url()),
            },
        }
    }

    /// `POST /api/kernels/<id>/interrupt`.
    pub async fn interrupt(&self) -> Result<(), GatewayError> {
        self.gateway.interrupt(&self.id).await
    }

    /// Deletes the kernel (capped at [`DELETE_CAP`]) and closes the connection.
    pub async fn shutdown(mut self) -> Result<(), GatewayError> {
        let result = self.gateway.delete_kernel(&self.id, DELETE_CAP).await;
        self.guard.id = None;
        if let Some(p) = self.pump.take() {
            p.abort();
        }
        result
    }
}

impl Drop for RemoteKernel {
    fn drop(&mut self) {
        if let Some(p) = self.pump.take() {
            p.abort();
        }
    }
}

/// `POST /api/kernels` in a way that cannot leak the kernel if the start is
/// abandoned (cancelled, its task aborted, its runtime shut down) while the request
/// is in flight: the request runs on a thread of its own, and whoever ends up
/// holding a created kernel that nobody takes deletes it.
async fn create_unleaked(
    gateway: &Gateway,
    name: &str,
    env: Map<String, Value>,
) -> Result<Value, GatewayError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let worker = gateway.clone();
    let name = name.to_owned();
    std::thread::spawn(move || {
        // Dropped when this thread ends: what an abandoned start waits for.
        let _done = done_tx;
        // A client of its own: this thread's runtime is not the caller's.
        let (rt, gateway) = match (
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            worker.detached(),
        ) {
            (Ok(rt), Ok(gateway)) => (rt, gateway),
            (Err(e), _) => {
                let _ = tx.send(Err(GatewayError::Config(format!(
                    "cannot start a runtime for the kernel request: {e}"
                ))));
                return;
            }
            (_, Err(e)) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let result = rt.block_on(gateway.create_kernel(&name, env));
        if let Err(Ok(model)) = tx.send(result) {
            // The start was abandoned meanwhile: nobody will delete this kernel
            // but us.
            if let Some(id) = model["id"].as_str() {
                let _ = rt.block_on(gateway.delete_kernel(id, DELETE_CAP));
            }
        }
    });
    let mut pending = PendingCreate {
        rx,
        taken: false,
        done: done_rx,
        gateway: gateway.clone(),
        wait: gateway.config().request_timeout + DELETE_CAP,
    };
    let result = (&mut pending.rx).await;
    // Taken: from here the caller's guard owns the kernel.
    pending.taken = true;
    result.unwrap_or_else(|_| {
        Err(GatewayError::Protocol {
            url: gateway.url().to_owned(),
            detail: "the kernel request ended without an answer".into(),
        })
    })
}

/// A kernel request whose answer nobody has taken yet. Dropped before it is taken,
/// it makes sure the kernel, if the gateway created one, is deleted before it goes.
struct PendingCreate {
    rx: tokio::sync::oneshot::Receiver<Result<Value, GatewayError>>,
    taken: bool,
    done: std::sync::mpsc::Receiver<()>,
    gateway: Gateway,
    /// How long the request and a DELETE after it may take.
    wait: Duration,
}

impl Drop for PendingCreate {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let rx = &mut self.rx;
        // After close, the request's thread cannot hand its answer over any more:
        // either the answer is here already (ours to delete), or the thread keeps
        // it and deletes the kernel itself.
        rx.close();
        if let Ok(Ok(model)) = rx.try_recv() {
            drop(DeleteGuard {
                gateway: self.gateway.clone(),
                id: model["id"].as_str().map(str::to_owned),
            });
        } else {
            // Wait (bounded) for the thread, so that the process does not exit
            // before the DELETE is sent.
            let _ = self.done.recv_timeout(self.wait);
        }
    }
}

/// Deletes a kernel when dropped, unless disarmed: the last line of defence against
/// a kernel left running on a cluster.
struct DeleteGuard {
    gateway: Gateway,
    id: Option<String>,
}

impl Drop for DeleteGuard {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let gateway = self.gateway.clone();
        // Drop cannot await; a thread of its own runs the DELETE, waited for up to
        // the cap so the process does not exit before it is sent. It uses a client
        // of its own: the pooled connections of ours belong to the runtime that is
        // blocked here.
        let worker = std::thread::spawn(move || {
            if let (Ok(rt), Ok(gateway)) = (
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build(),
                gateway.detached(),
            ) {
                let _ = rt.block_on(gateway.delete_kernel(&id, DELETE_CAP));
            }
        });
        let _ = worker.join();
    }
}

/// Moves frames between the WebSocket and the kernel's channels, and reconnects a
/// dropped connection with the same session id (the gateway replays what it
/// buffered meanwhile) up to `reconnect_max` times in a row.
async fn pump(
    gateway: Gateway,
    id: String,
    session: String,
    ws: Ws,
    mut framing: Framing,
    mut out_rx: mpsc::UnboundedReceiver<(String, Message)>,
    ev_tx: mpsc::UnboundedSender<RemoteEvent>,
) {
    let max = gateway.config().reconnect_max;
    let mut fd = ws::raw_fd(&ws);
    let (mut sink, mut stream) = ws::split(ws);
    // A message that could not be sent when the connection dropped: sent again first.
    let mut pending: Option<(String, Message)> = None;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Anything from the gateway (a pong included) proves the connection alive; a
        // connection silent for three pings is treated as dropped.
        let mut last_seen = Instant::now();
        let lost: String = 'conn: loop {
            if let Some((channel, msg)) = pending.take()
                && let Err(e) = sink.send(ws::encode(framing, &channel, &msg)).await
            {
                pending = Some((channel, msg));
                break 'conn e.to_string();
            }
            tokio::select! {
                frame = stream.next() => match frame {
                    None | Some(Ok(WsMessage::Close(_))) => break 'conn "the gateway closed the WebSocket".to_owned(),
                    Some(Err(e)) => break 'conn e.to_string(),
                    Some(Ok(frame)) => {
                        ws::ack_now(fd);
                        last_seen = Instant::now();
                        if let Ok(Some((channel, msg))) = ws::decode(framing, &frame)
                            && ev_tx.send(RemoteEvent::Message { channel, msg }).is_err()
                        {
                            return;
                        }
                    }
                },
                out = out_rx.recv() => match out {
                    None => {
                        let _ = sink.close().await;
                        return;
                    }
                    Some((channel, msg)) => {
                        if let Err(e) = sink.send(ws::encode(framing, &channel, &msg)).await {
                            pending = Some((channel, msg));
                            break 'conn e.to_string();
                        }
                    }
                },
                _ = ping.tick() => {
                    if last_seen.elapsed() > 3 * PING_EVERY {
                        break 'conn format!("no answer to pings for {} s", last_seen.elapsed().as_secs());
                    }
                    if let Err(e) = sink.send(WsMessage::Ping(Vec::new().into())).await {
                        break 'conn e.to_string();
                    }
                }
            }
        };
        // Lost: a dead kernel, or only a dropped connection?
        let mut attempt = 0;
        loop {
            if attempt >= max {
                let _ = ev_tx.send(RemoteEvent::Died {
                    detail: format!(
                        "lost the WebSocket to gateway {} ({lost}) and could not reconnect in {max} attempts",
                        gateway.url()
                    ),
                });
                return;
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(500) * (1 << (attempt - 1).min(5))).await;
            match gateway.kernel(&id).await {
                Ok(None) => {
                    let _ = ev_tx.send(RemoteEvent::Died {
                        detail: format!("gateway {} no longer has kernel {id}", gateway.url()),
                    });
                    return;
                }
                Ok(Some(model)) if model["execution_state"] == "dead" => {
                    let _ = ev_tx.send(RemoteEvent::Died {
                        detail: format!("gateway {} reports kernel {id} dead", gateway.url()),
                    });
                    return;
                }
                Ok(Some(_)) => {
                    if let Ok((ws, f)) = gateway.open_channels(&id, &session).await {
                        framing = f;
                        fd = ws::raw_fd(&ws);
                        (sink, stream) = ws::split(ws);
                        break;
                    }
                }
                Err(_) => {}
            }
        }
    }
}
