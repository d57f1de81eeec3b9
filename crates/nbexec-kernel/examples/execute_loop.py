"""The same loop as execute_loop.rs, with jupyter_client, for comparison.

Usage: .venv/bin/python crates/nbexec-kernel/examples/execute_loop.py [N] [ipc|tcp]
Starts the python3 kernel the way nbclient does (with the in-memory history
flag nbexec also passes), runs one untimed warm-up, then N executes of `1+1`,
each waiting for its execute_reply and its status idle.
"""

import resource
import sys
import time

from jupyter_client.manager import KernelManager


def run(kc, code):
    msg_id = kc.execute(code)
    replied = idle = False
    while not (replied and idle):
        if not replied:
            # Poll both channels without blocking on either.
            while kc.shell_channel.msg_ready():
                m = kc.shell_channel.get_msg()
                if m["parent_header"].get("msg_id") == msg_id:
                    replied = True
        m = kc.iopub_channel.get_msg(timeout=60) if not idle else None
        if m and m["parent_header"].get("msg_id") == msg_id:
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                idle = True
        if idle and not replied:
            m = kc.shell_channel.get_msg(timeout=60)
            if m["parent_header"].get("msg_id") == msg_id:
                replied = True


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    transport = sys.argv[2] if len(sys.argv) > 2 else "ipc"
    t0 = time.perf_counter()
    km = KernelManager(kernel_name="python3", transport=transport)
    km.start_kernel(extra_arguments=["--HistoryManager.hist_file=:memory:"])
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    started = time.perf_counter() - t0
    run(kc, "pass")
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t1 = time.perf_counter()
    for _ in range(n):
        run(kc, "1+1")
    looped = time.perf_counter() - t1
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    t2 = time.perf_counter()
    kc.stop_channels()
    km.shutdown_kernel(now=False)
    stopped = time.perf_counter() - t2
    print(
        f"jupyter_client ({transport}): start {started * 1e3:.0f} ms, {n} executes "
        f"{looped * 1e3:.0f} ms = {looped * 1e3 / n:.3f} ms/execute "
        f"(client CPU {cpu * 1e3 / n:.3f} ms/execute), shutdown {stopped * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
