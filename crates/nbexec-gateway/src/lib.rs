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

/// Makes `ring` the process's default rustls provider, if none is set yet (a no-op
/// without the `tls` feature). With `tls` on, reqwest is built without a provider of
/// its own and sets up rustls for every client, http-only ones too, from the
/// process's default: any other reqwest client in the process (a test's, say) needs
/// this called first. The gateway client calls it itself.
pub fn install_crypto_provider() {
    #[cfg(feature = "tls")]
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
