//! [`KernelSession`] over a kernel behind a Jupyter gateway (`nbexec-gateway`).

use nbexec_gateway::{RemoteEvent, RemoteKernel};
use serde_json::json;

use crate::session::{KernelSession, SessionEvent};

/// A kernel started through a gateway, driven by the runner.
pub struct GatewaySession {
    pub(crate) kernel: RemoteKernel,
}

impl GatewaySession {
    /// A silent execute request (no execution count, no history): checks run
    /// before the first cell.
    pub(crate) fn execute_silent(&mut self, code: &str) -> Result<String, String> {
        let content = json!({
            "code": code,
            "silent": true,
            "store_history": false,
            "user_expressions": {},
            "allow_stdin": false,
            "stop_on_error": false,
        });
        self.kernel
            .send("shell", "execute_request", content)
            .map_err(|e| e.to_string())
    }

    pub fn new(kernel: RemoteKernel) -> Self {
        GatewaySession { kernel }
    }

    pub fn into_kernel(self) -> RemoteKernel {
        self.kernel
    }
}

impl KernelSession for GatewaySession {
    async fn execute(&mut self, code: &str, stop_on_error: bool) -> Result<String, String> {
        // The same request the ZeroMQ driver sends (`allow_stdin=false`: `input()`
        // fails at once instead of hanging).
        let content = json!({
            "code": code,
            "silent": false,
            "store_history": true,
            "user_expressions": {},
            "allow_stdin": false,
            "stop_on_error": stop_on_error,
        });
        self.kernel
            .send("shell", "execute_request", content)
            .map_err(|e| e.to_string())
    }

    async fn recv(&mut self) -> SessionEvent {
        loop {
            match self.kernel.recv().await {
                RemoteEvent::Message { channel, msg } => {
                    let parent = msg.parent_id();
                    let msg_type = msg.msg_type().to_owned();
                    // nbclient's timing keys come from the kernel's header dates.
                    let date = msg
                        .header
                        .get("date")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned);
                    match channel.as_str() {
                        "iopub" => {
                            return SessionEvent::Iopub {
                                parent,
                                msg_type,
                                content: msg.content,
                                date,
                            };
                        }
                        "shell" => {
                            return SessionEvent::Reply {
                                parent,
                                msg_type,
                                content: msg.content,
                                date,
                            };
                        }
                        // stdin is never asked for (allow_stdin=false); control
                        // replies are not the runner's business.
                        _ => continue,
                    }
                }
                RemoteEvent::Died { detail } => return SessionEvent::Died { detail },
            }
        }
    }

    async fn interrupt(&mut self) {
        let _ = self.kernel.interrupt().await;
    }
}
