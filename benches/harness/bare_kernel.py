"""The kernel floor for a 1-cell run: start the python3 kernel, wait until it is
ready, execute `1`, shut it down at once. Runs in the bench venv (jupyter_client).

Prints one JSON line of in-process timings (seconds): `import` (import
jupyter_client), `start` (spawn), `ready` (wait_for_ready), `execute` (reply and
idle), `shutdown` (shutdown_kernel(now=True)) and `kernel_total` = start + ready +
execute + shutdown, and `floor` = start + ready + execute: the kernel's start and one
execute, which any client spends whatever its language (the harness subtracts it from
nbexec's 1-cell time to estimate nbexec's own time; how a client shuts the kernel
down is its own choice, so shutdown is left in nbexec's share).
"""
import json
import sys
import time

t0 = time.perf_counter()
import jupyter_client  # noqa: E402

t1 = time.perf_counter()
km = jupyter_client.KernelManager(kernel_name="python3")
km.start_kernel()
t2 = time.perf_counter()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
t3 = time.perf_counter()
reply = kc.execute_interactive("1", timeout=60, output_hook=lambda msg: None)
t4 = time.perf_counter()
kc.stop_channels()
km.shutdown_kernel(now=True)
t5 = time.perf_counter()
ok = reply["content"]["status"] == "ok"
print(json.dumps({
    "import": t1 - t0, "start": t2 - t1, "ready": t3 - t2, "execute": t4 - t3,
    "shutdown": t5 - t4, "kernel_total": t5 - t1, "floor": t4 - t1, "ok": ok,
}))
sys.exit(0 if ok else 1)
