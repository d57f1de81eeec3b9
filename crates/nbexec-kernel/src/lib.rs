//! Finds, starts, talks to, interrupts and stops Jupyter kernels over ZeroMQ
//! (Jupyter messaging protocol 5.x), for nbexec's runner and anyone else who
//! needs a kernel without Python's jupyter_client.
//!
//! This crate knows nothing about notebooks and must never see a notebook
//! type: it speaks in kernelspecs, code strings and raw protocol messages
//! (kept as raw JSON, never re-typed). It must never leave a kernel process
//! behind: every kernel runs in its own session and process group, which is
//! killed on shutdown, on `Drop` (also after a panic or a cancelled task), and
//! when the kernel's leader exits. If nbexec itself is SIGKILLed, no code of
//! ours runs; on Linux the kernel then gets SIGKILL from the OS through
//! `PR_SET_PDEATHSIG`, and a small supervisor process (`sh`, outside the
//! group) that notices nbexec's end through a pipe kills the kernel's process
//! group, which takes the processes the kernel started with it. Processes that
//! leave the group (a new session) are out of reach.
//!
//! Map: [`find_kernelspec`] and friends find `kernel.json` files where Jupyter
//! does; [`KernelClient::start`] writes a connection file, spawns the kernel
//! and waits until it is ready; [`KernelClient::execute`] and
//! [`KernelClient::recv`] are the whole conversation; an [`Interrupter`]
//! interrupts from another task; [`KernelClient::shutdown`] ends it.
//! One reader task per socket drains it into an unbounded channel so the
//! kernel never blocks on us; the caller keeps a bounded window of requests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nbexec_kernel::KernelError> {
//! use nbexec_kernel::{ExecuteOptions, KernelClient, KernelEvent, LaunchOptions, find_kernelspec};
//! let spec = find_kernelspec("python3")?;
//! let mut kernel = KernelClient::start(&spec, &LaunchOptions::default()).await?;
//! let id = kernel.execute("1 + 1", ExecuteOptions::default()).await?;
//! let (mut replied, mut idle) = (false, false);
//! while !(replied && idle) {
//!     match kernel.recv().await {
//!         KernelEvent::ShellReply(m) if m.parent_msg_id.as_deref() == Some(&id) => replied = true,
//!         KernelEvent::Iopub(m) if m.parent_msg_id.as_deref() == Some(&id) => {
//!             idle |= m.msg_type == "status" && m.content["execution_state"] == "idle";
//!             if m.msg_type == "execute_result" {
//!                 println!("{}", m.content["data"]["text/plain"]);
//!             }
//!         }
//!         KernelEvent::Died { .. } => return Err(nbexec_kernel::KernelError::Dead),
//!         _ => {}
//!     }
//! }
//! kernel.shutdown(std::time::Duration::from_secs(1)).await
//! # }
//! ```

#![warn(missing_docs)]

mod client;
mod connection;
mod error;
mod kernelspec;
mod launch;
mod process;
mod wire;

pub use client::{Channel, ExecuteOptions, Interrupter, KernelClient, KernelEvent, LaunchOptions};
pub use connection::{ConnectionInfo, Transport, default_runtime_dir, ensure_private_dir};
pub use error::KernelError;
pub use kernelspec::{
    InterruptMode, KernelSpec, find_kernelspec, find_kernelspec_in, find_kernelspecs,
    find_kernelspecs_in, kernelspec_search_dirs, kernelspecs_json, load_kernelspec,
};
pub use wire::{Message, hex, unhex};

/// Entry points for the fuzz targets (`fuzz/`): not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use bytes::Bytes;

    /// What decoding received frames gave.
    #[derive(Debug)]
    pub enum Decoded {
        /// A message, as a reader task forwards it.
        Message(Box<crate::Message>),
        /// Signed but unreadable: forwarded as [`crate::KernelEvent::Unreadable`].
        Unreadable {
            /// `header.msg_type`, if readable.
            msg_type: Option<String>,
            /// `parent_header.msg_id`, if readable.
            parent_msg_id: Option<String>,
        },
        /// Dropped: bad signature.
        BadSignature,
        /// Dropped: not a Jupyter message.
        Malformed,
    }

    /// Decodes `frames` as the client does with a connection key of `key`.
    pub fn decode(key: &[u8], frames: &[&[u8]]) -> Decoded {
        let session = crate::wire::Session::new(key);
        let frames = frames.iter().map(|f| Bytes::copy_from_slice(f)).collect();
        match session.decode(frames) {
            Ok(m) => Decoded::Message(Box::new(m)),
            Err(crate::wire::Rejected::Unreadable {
                msg_type,
                parent_msg_id,
                ..
            }) => Decoded::Unreadable {
                msg_type,
                parent_msg_id,
            },
            Err(crate::wire::Rejected::BadSignature) => Decoded::BadSignature,
            Err(crate::wire::Rejected::Malformed(_)) => Decoded::Malformed,
        }
    }

    /// `[identity, <IDS|MSG>, signature, header, parent, metadata, content,
    /// buffers...]`, signed with `key` as a kernel would sign them.
    pub fn signed_frames(key: &[u8], parts: [&[u8]; 4], buffers: &[&[u8]]) -> Vec<Vec<u8>> {
        let session = crate::wire::Session::new(key);
        let mut frames = vec![b"id".to_vec(), b"<IDS|MSG>".to_vec()];
        frames.push(session.sign(parts).into_bytes());
        frames.extend(parts.iter().map(|p| p.to_vec()));
        frames.extend(buffers.iter().map(|b| b.to_vec()));
        frames
    }

    /// The lossy JSON reading used for every part.
    pub fn parse_lossy(frame: &[u8]) -> Result<serde_json::Value, String> {
        crate::wire::parse_lossy(frame)
    }
}
