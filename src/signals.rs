//! Turning process signals into cancellation of the run.

use nbexec_runner::CancelReason;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// SIGINT → Interrupt, SIGTERM → Terminate, SIGUSR1 (sent by `nbexec jobs cancel`)
/// → Cancel. Each handler is a task; abort them when the run is over.
pub fn forward_signals(tx: watch::Sender<Option<CancelReason>>) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (kind, reason) in [
        (SignalKind::interrupt(), CancelReason::Interrupt),
        (SignalKind::terminate(), CancelReason::Terminate),
        (SignalKind::user_defined1(), CancelReason::Cancel),
    ] {
        let Ok(mut stream) = signal(kind) else {
            continue;
        };
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while stream.recv().await.is_some() {
                // The first reason wins; a second Ctrl-C does not change the exit code.
                tx.send_if_modified(|current| {
                    if current.is_none() {
                        *current = Some(reason);
                        true
                    } else {
                        false
                    }
                });
            }
        }));
    }
    tasks
}
