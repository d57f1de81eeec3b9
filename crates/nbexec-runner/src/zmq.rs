//! [`KernelSession`] over the ZeroMQ driver of `nbexec-kernel`.

use nbexec_kernel::{Channel, ExecuteOptions, Interrupter, KernelClient, KernelEvent};

use crate::session::{KernelSession, SessionEvent};

/// A kernel started by `nbexec-kernel`, driven by the runner.
pub struct ZmqSession {
    pub(crate) client: KernelClient,
    interrupter: Interrupter,
}

impl ZmqSession {
    pub fn new(client: KernelClient) -> Self {
        let interrupter = client.interrupter();
        ZmqSession {
            client,
            interrupter,
        }
    }

    pub fn into_client(self) -> KernelClient {
        self.client
    }
}

impl KernelSession for ZmqSession {
    async fn execute(&mut self, code: &str, stop_on_error: bool) -> Result<String, String> {
        let opts = ExecuteOptions {
            stop_on_error,
            ..ExecuteOptions::default()
        };
        self.client
            .execute(code, opts)
            .await
            .map_err(|e| e.to_string())
    }

    async fn recv(&mut self) -> SessionEvent {
        loop {
            match self.client.recv().await {
                KernelEvent::Iopub(m) => {
                    return SessionEvent::Iopub {
                        date: header_date(&m.header),
                        parent: m.parent_msg_id,
                        msg_type: m.msg_type,
                        content: m.content,
                    };
                }
                KernelEvent::ShellReply(m) => {
                    return SessionEvent::Reply {
                        date: header_date(&m.header),
                        parent: m.parent_msg_id,
                        msg_type: m.msg_type,
                        content: m.content,
                    };
                }
                KernelEvent::Unreadable {
                    channel,
                    msg_type,
                    parent_msg_id,
                    detail,
                } => {
                    return SessionEvent::Unreadable {
                        shell: channel == Channel::Shell,
                        parent: parent_msg_id,
                        msg_type,
                        detail,
                    };
                }
                KernelEvent::Died {
                    status,
                    stderr_tail,
                } => {
                    let mut detail = match status {
                        Some(s) => format!("the kernel process exited ({s})"),
                        None => "the kernel stopped answering".to_owned(),
                    };
                    if let Some(last) = stderr_tail.lines().rev().find(|l| !l.trim().is_empty()) {
                        detail.push_str(&format!("; its last words: {}", last.trim()));
                    }
                    return SessionEvent::Died { detail };
                }
                // The driver answers input requests itself; nothing to record.
                KernelEvent::StdinRequest(_) => continue,
            }
        }
    }

    async fn interrupt(&mut self) {
        let _ = self.interrupter.interrupt().await;
    }
}

fn header_date(header: &serde_json::Value) -> Option<String> {
    header.get("date")?.as_str().map(str::to_owned)
}
