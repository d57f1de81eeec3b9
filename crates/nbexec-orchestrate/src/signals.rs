//! Turning process signals into cancellation of the run.
//!
//! A signal can come at any moment, also in the first microseconds of the process,
//! long before the runtime and its signal streams exist (`nbexec jobs cancel` of a
//! job whose run is just starting, a Ctrl-C right after Enter). [`install_early`]
//! runs first thing in `main`: it catches SIGINT, SIGTERM and SIGUSR1 into a flag, so
//! none of them kills the process by its default action and leaves a kernel or its
//! connection file behind. [`forward_signals`] takes that flag over when the run
//! starts listening.

use std::sync::atomic::{AtomicI32, Ordering};

use nbexec_runner::CancelReason;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The first of SIGINT/SIGTERM/SIGUSR1 caught before the run listened (0: none).
static EARLY: AtomicI32 = AtomicI32::new(0);

const CAUGHT: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGUSR1];

extern "C" fn remember(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe. The first signal wins.
    let _ = EARLY.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
}

fn set_handler(sig: libc::c_int, handler: libc::sighandler_t) {
    // SAFETY: a zeroed sigaction with an empty mask is a valid argument; the handler
    // is either SIG_DFL or `remember`, which only touches an atomic.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(sig, &action, std::ptr::null_mut());
    }
}

/// Catches SIGINT, SIGTERM and SIGUSR1 into a flag from now on. Call it before
/// anything else in `main`. The signals are then unblocked: a `--detach` parent
/// starts its child with them blocked (see [`block_for_exec`]), so one sent before
/// this point waited, pending, and is caught now.
pub fn install_early() {
    for sig in CAUGHT {
        set_handler(
            sig,
            remember as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    set_mask(libc::SIG_UNBLOCK);
}

/// Blocks SIGINT, SIGTERM and SIGUSR1 in a child about to `exec` nbexec again (the
/// mask survives `exec`): a cancel in the child's first instant, before its
/// handlers exist, then waits instead of killing it by default action.
/// Async-signal-safe, for `pre_exec`.
pub fn block_for_exec() {
    set_mask(libc::SIG_BLOCK);
}

fn set_mask(how: libc::c_int) {
    // SAFETY: sigemptyset/sigaddset/pthread_sigmask on a local set, with valid
    // signal numbers; all three are async-signal-safe.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in CAUGHT {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// For commands that do not cancel runs (`jobs`, `fmt`, …): the signals get their
/// default action back, and one caught meanwhile is raised again now, so it has
/// the effect it would have had.
pub fn restore_defaults() {
    for sig in CAUGHT {
        set_handler(sig, libc::SIG_DFL);
    }
    let sig = EARLY.swap(0, Ordering::SeqCst);
    if sig != 0 {
        // SAFETY: raise(3) with a valid signal number.
        unsafe {
            libc::raise(sig);
        }
    }
}

/// A SIGINT/SIGTERM/SIGUSR1 caught since [`install_early`] that no run has taken
/// over yet, as the exit code it stands for (130, or 143 for SIGTERM); taking it
/// clears it. For paths that never start a run (`--detach` before it spawns).
pub fn take_pending_exit_code() -> Option<i32> {
    match EARLY.swap(0, Ordering::SeqCst) {
        0 => None,
        libc::SIGTERM => Some(143),
        _ => Some(130),
    }
}

fn reason_of(sig: libc::c_int) -> Option<CancelReason> {
    match sig {
        libc::SIGINT => Some(CancelReason::Interrupt),
        libc::SIGTERM => Some(CancelReason::Terminate),
        libc::SIGUSR1 => Some(CancelReason::Cancel),
        _ => None,
    }
}

fn send_first(tx: &watch::Sender<Option<CancelReason>>, reason: CancelReason) {
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

/// SIGINT → Interrupt, SIGTERM → Terminate, SIGUSR1 (sent by `nbexec jobs cancel`)
/// → Cancel. Each handler is a task; abort them when the run is over. A signal
/// caught before this (see [`install_early`]) is sent at once.
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
                send_first(&tx, reason);
            }
        }));
    }
    // The streams listen now; whatever came before them is in the flag.
    if let Some(reason) = reason_of(EARLY.swap(0, Ordering::SeqCst)) {
        send_first(&tx, reason);
    }
    tasks
}
