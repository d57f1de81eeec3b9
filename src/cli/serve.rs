//! `nbexec serve`: the ArcGIS Notebook Server operations as a local HTTP service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, error_line};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port); the bound address is printed
    /// on stdout as the first line
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8380")]
    bind: SocketAddr,
    /// The item store: the notebooks executeNotebook runs, by item id (default: <state dir>/items)
    #[arg(long, value_name = "DIR")]
    items: Option<PathBuf>,
    /// Add this notebook to the item store at start-up (its id is printed on stderr); repeatable
    #[arg(long = "item", value_name = "NB")]
    item: Vec<PathBuf>,
    /// Notebooks run at once (default: the number of cores)
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Jobs that may wait for a worker; executeNotebook beyond that answers 503
    #[arg(long = "max-queue", value_name = "N", default_value_t = 100)]
    max_queue: usize,
    /// On SIGTERM, how long running jobs may take to finish before they are cancelled
    #[arg(long = "shutdown-grace", value_name = "SECS", default_value_t = 30.0)]
    shutdown_grace: f64,
    /// A prefix before /admin (e.g. /arcgis)
    #[arg(long = "base-path", value_name = "P", default_value = "")]
    base_path: String,
    /// Run the kernels behind this Jupyter Kernel Gateway or Enterprise Gateway (the
    /// JUPYTER_GATEWAY_* environment is read as for `nbexec run --gateway-url`)
    #[arg(long = "gateway-url", value_name = "URL")]
    gateway_url: Option<String>,
    /// Where the job registry lives (default: $NBEXEC_STATE_DIR, $XDG_STATE_HOME/nbexec, ~/.local/state/nbexec)
    #[arg(long = "state-dir", value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

pub fn main(args: ServeArgs) -> i32 {
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(nbexec::jobs::default_state_dir);
    let mut config = nbexec_serve::Config::new(state_dir.clone());
    config.bind = args.bind;
    if let Some(dir) = args.items {
        config.items_dir = dir;
    }
    config.add_items = args.item;
    if let Some(w) = args.workers {
        if w == 0 {
            error_line("--workers must be at least 1");
            return EXIT_USAGE;
        }
        config.workers = w;
    }
    config.max_queue = args.max_queue;
    if !(args.shutdown_grace.is_finite() && args.shutdown_grace >= 0.0) {
        error_line("--shutdown-grace must be a non-negative number of seconds");
        return EXIT_USAGE;
    }
    config.shutdown_grace = Duration::from_secs_f64(args.shutdown_grace.min(86_400.0));
    config.base_path = match nbexec_serve::normalize_base_path(&args.base_path) {
        Ok(p) => p,
        Err(e) => {
            error_line(e);
            return EXIT_USAGE;
        }
    };
    if !args.bind.ip().is_loopback() {
        error_line(format!(
            "refusing to listen on {}: without users configured, nbexec serve binds only to loopback",
            args.bind
        ));
        return EXIT_USAGE;
    }
    config.gateway = match nbexec_gateway::GatewayConfig::from_env(args.gateway_url.as_deref()) {
        Ok(g) => g,
        Err(e) => {
            error_line(e);
            return EXIT_USAGE;
        }
    };
    let base = config.base_path.clone();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error_line(format!("cannot start the async runtime: {e}"));
            return EXIT_FAILED;
        }
    };
    let result = runtime.block_on(nbexec_serve::serve(config, |addr| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "nbexec serve: listening on http://{addr}{base}/admin");
        let _ = out.flush();
    }));
    match result {
        Ok(()) => EXIT_OK,
        Err(e @ (nbexec_serve::Error::Config(_) | nbexec_serve::Error::Bind { .. })) => {
            error_line(e);
            EXIT_USAGE
        }
        Err(e) => {
            error_line(e);
            EXIT_FAILED
        }
    }
}
