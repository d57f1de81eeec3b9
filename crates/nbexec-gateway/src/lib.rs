//! A client for Jupyter Kernel Gateway and Enterprise Gateway: the REST API
//! (`/api/kernelspecs`, `/api/kernels`, interrupt, delete) and the kernel channels
//! WebSocket, with the `v1.kernel.websocket.jupyter.org` binary framing when the
//! gateway accepts it and the legacy JSON frames otherwise.
//!
//! It knows Jupyter messages, not notebooks: the runner adapts a [`RemoteKernel`] to
//! its kernel trait.

mod config;
mod error;
mod kernel;
mod rest;
#[cfg(feature = "tls")]
mod tls;
mod ws;

pub use config::GatewayConfig;
pub use error::GatewayError;
pub use kernel::{Message, RemoteEvent, RemoteKernel, StartOptions};
pub use rest::Gateway;
pub use ws::{Framing, V1_PROTOCOL};
