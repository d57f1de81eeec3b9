//! The small interface the runner needs from a kernel. The ZeroMQ driver implements
//! it today; a Jupyter Gateway (WebSocket) driver could implement it later without
//! the runner changing.

use std::future::Future;

use serde_json::Value;

/// What a kernel tells the runner.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// An IOPub message (status, stream, display_data, …) with its parent's msg_id.
    Iopub {
        parent: Option<String>,
        msg_type: String,
        content: Value,
        /// `header.date` as the kernel wrote it (ISO 8601), if it did.
        date: Option<String>,
    },
    /// A shell reply (`execute_reply`) with its parent's msg_id.
    Reply {
        parent: Option<String>,
        msg_type: String,
        content: Value,
        /// `header.date` as the kernel wrote it (ISO 8601), if it did.
        date: Option<String>,
    },
    /// A message from the kernel that could not be read (not JSON even after
    /// lossy decoding), with what could be read of its header: the runner must
    /// not wait for ever for a reply or idle that arrived this way.
    Unreadable {
        /// It came on the shell channel (a reply) rather than IOPub.
        shell: bool,
        parent: Option<String>,
        msg_type: Option<String>,
        detail: String,
    },
    /// The kernel is gone (crash, OOM, `os._exit`): a one-line description.
    Died { detail: String },
}

/// A running kernel, as the runner drives it.
pub trait KernelSession: Send {
    /// Sends an execute request and returns its msg_id without waiting for it to run.
    fn execute(
        &mut self,
        code: &str,
        stop_on_error: bool,
    ) -> impl Future<Output = Result<String, String>> + Send;
    /// The next event; must be cancel-safe (it is polled inside `select!`).
    fn recv(&mut self) -> impl Future<Output = SessionEvent> + Send;
    /// Interrupts the running cell (SIGINT or `interrupt_request`, as the kernel wants).
    fn interrupt(&mut self) -> impl Future<Output = ()> + Send;
}
