//! `nbexec serve`: ArcGIS Notebook Server's `executeNotebook` operation and
//! `notebooks/jobs` resource as a local HTTP service.
//!
//! Jobs run through `nbexec-orchestrate` (the same run builder and job registry as
//! `nbexec run`, so `nbexec jobs` lists and cancels server jobs too) on a bounded
//! worker pool with a queue. Notebooks come from the item store ([`items`]).
//!
//! Every resource handler builds a `serde_json::Value`; [`api::answer`] turns it
//! into json, pjson or html (`f`). Who asks is decided in one place,
//! [`auth::principal`].

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod api;
pub mod auth;
pub mod html;
pub mod items;
pub mod portal;
mod queue;
mod routes;
pub mod tls;

pub use items::{Item, ItemError, ItemStore};

/// How the server is set up (`nbexec serve`'s options).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 asks the system for a free port.
    pub bind: SocketAddr,
    /// The state directory: job registry, job files, logs.
    pub state_dir: PathBuf,
    /// The item store (default `<state dir>/items`).
    pub items_dir: PathBuf,
    /// Notebooks added to the item store at start-up.
    pub add_items: Vec<PathBuf>,
    /// Runs at once.
    pub workers: usize,
    /// Jobs waiting beyond the running ones; more are refused (503).
    pub max_queue: usize,
    /// On SIGTERM, how long running jobs get to finish before they are cancelled.
    pub shutdown_grace: Duration,
    /// A prefix before `/admin` (`/arcgis`, say); empty for none.
    pub base_path: String,
    /// Run the kernels behind this Jupyter gateway instead of locally.
    pub gateway: Option<nbexec_gateway::GatewayConfig>,
}

impl Config {
    /// Defaults for the given state directory: loopback on a free port, one
    /// worker per core, a queue of 100, 30 s grace.
    pub fn new(state_dir: PathBuf) -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            items_dir: state_dir.join("items"),
            state_dir,
            add_items: Vec::new(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_queue: 100,
            shutdown_grace: Duration::from_secs(30),
            base_path: String::new(),
            gateway: None,
        }
    }
}

/// Why the server could not start or stopped in error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Items(#[from] ItemError),
    #[error("{0}")]
    Jobs(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What every handler shares.
pub struct Inner {
    pub config: Config,
    pub items: ItemStore,
    /// The address actually bound (the port filled in).
    pub local_addr: SocketAddr,
    /// `http` (or `https` once TLS is on).
    pub scheme: &'static str,
    pub(crate) queue: Arc<queue::Queue>,
}

/// The shared state of the server (cheap to clone).
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// `scheme://host[:port]`, from the request's Host header, else the bound address.
    pub fn origin(&self, req: &api::Req) -> String {
        let host = req.host().unwrap_or_else(|| self.local_addr.to_string());
        format!("{}://{host}", self.scheme)
    }

    /// The absolute URL of `/admin` (with the base path).
    pub fn root_url(&self, req: &api::Req) -> String {
        format!("{}{}/admin", self.origin(req), self.config.base_path)
    }
}

/// The first `max` characters of `s` (for quoting input in messages).
pub(crate) fn short(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// Normalises `--base-path`: empty, or `/segment[/segment…]` without a trailing slash.
pub fn normalize_base_path(p: &str) -> Result<String, Error> {
    let trimmed = p.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let with_slash = if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    };
    let ok = with_slash[1..].split('/').all(|seg| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c))
            && seg != "."
            && seg != ".."
    });
    if !ok {
        return Err(Error::Config(format!(
            "--base-path {p:?}: expected path segments of letters, digits, - _ . ~ (e.g. /arcgis)"
        )));
    }
    Ok(with_slash)
}

/// Runs the server until SIGTERM or SIGINT (then drains, see [`Config::shutdown_grace`]).
/// `listening` is called once with the bound address, before any request is served.
pub async fn serve(config: Config, listening: impl FnOnce(SocketAddr)) -> Result<(), Error> {
    routes::serve(config, listening).await
}
