//! Starts the .venv's python3 kernel and runs N trivial executes one after
//! another (send, then wait for both execute_reply and status idle), reporting
//! milliseconds per execute. Compare with `execute_loop.py` beside it:
//!
//! ```text
//! cargo run --release -p nbexec-kernel --example execute_loop -- [N] [ipc|tcp]
//! .venv/bin/python crates/nbexec-kernel/examples/execute_loop.py [N]
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nbexec_kernel::{
    ExecuteOptions, KernelClient, KernelEvent, LaunchOptions, Transport, load_kernelspec,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let transport = match args.next().as_deref() {
        Some("tcp") => Transport::Tcp,
        _ => Transport::Ipc,
    };
    let prefix = std::env::var_os("NBEXEC_TEST_PYTHON_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let spec = load_kernelspec(&prefix.join("share/jupyter/kernels/python3"))?;

    let t0 = Instant::now();
    let opts = LaunchOptions {
        transport,
        ..LaunchOptions::default()
    };
    let mut kernel = KernelClient::start(&spec, &opts).await?;
    let started = t0.elapsed();

    // One warm-up execute, not timed, as in the Python script.
    run(&mut kernel, "pass").await?;
    let cpu0 = self_cpu_seconds();
    let t1 = Instant::now();
    for _ in 0..n {
        run(&mut kernel, "1+1").await?;
    }
    let looped = t1.elapsed();
    let cpu = self_cpu_seconds() - cpu0;

    let t2 = Instant::now();
    kernel.shutdown(Duration::from_secs(2)).await?;
    let stopped = t2.elapsed();
    println!(
        "nbexec-kernel ({transport:?}): start {:.0} ms, {n} executes {:.0} ms = {:.3} ms/execute \
         (client CPU {:.3} ms/execute), shutdown {:.0} ms",
        started.as_secs_f64() * 1e3,
        looped.as_secs_f64() * 1e3,
        looped.as_secs_f64() * 1e3 / n as f64,
        cpu * 1e3 / n as f64,
        stopped.as_secs_f64() * 1e3,
    );
    Ok(())
}

/// User+system CPU time of this process alone (not the kernel), from
/// /proc/self/stat, so the client's own cost can be told from the kernel's.
fn self_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after `comm`.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // The kernel's USER_HZ is 100 on every Linux nbexec targets.
    (ticks(11) + ticks(12)) / 100.0
}

async fn run(kernel: &mut KernelClient, code: &str) -> Result<(), Box<dyn std::error::Error>> {
    let id = kernel.execute(code, ExecuteOptions::default()).await?;
    let (mut replied, mut idle) = (false, false);
    while !(replied && idle) {
        match kernel.recv().await {
            KernelEvent::ShellReply(m) if m.parent_msg_id.as_deref() == Some(id.as_str()) => {
                replied = true;
            }
            KernelEvent::Iopub(m) if m.parent_msg_id.as_deref() == Some(id.as_str()) => {
                idle |= m.msg_type == "status" && m.content["execution_state"] == "idle";
            }
            KernelEvent::Died { stderr_tail, .. } => {
                return Err(format!("kernel died: {stderr_tail}").into());
            }
            _ => {}
        }
    }
    Ok(())
}
