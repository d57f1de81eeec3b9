"""The kernel floor without jupyter_client's own overheads: a minimal pyzmq client
(IPC transport, 10 ms reconnect) spawns the venv's ipykernel, waits for its
kernel_info reply, executes `1` (reply and `idle`), and SIGKILLs it. Runs in the
bench venv. Prints one JSON line of in-process timings (seconds) like bare_kernel.py:
`start`, `ready`, `execute`, `shutdown` and `floor` = start + ready + execute.

jupyter_client's start/wait_for_ready adds tens of ms to 100+ ms of client time on
this machine, so nbexec's own time estimated against bare_kernel.py alone can come
out negative; this gives the tighter floor."""
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import zmq

t0 = time.perf_counter()
tmp = tempfile.mkdtemp(prefix="nbexec-bench-")
key = uuid.uuid4().hex
conn = {
    "transport": "ipc", "ip": os.path.join(tmp, "k"), "key": key,
    "signature_scheme": "hmac-sha256", "kernel_name": "python3",
    "shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5,
}
if os.environ.get("BENCH_TRANSPORT") == "tcp":  # for experiments
    import socket

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    conn.update(transport="tcp", ip="127.0.0.1",
                **{f"{n}_port": free_port() for n in ("shell", "iopub", "stdin", "control", "hb")})
cfile = os.path.join(tmp, "kernel.json")
with open(cfile, "w") as f:
    json.dump(conn, f)
proc = subprocess.Popen([sys.executable, "-m", "ipykernel_launcher", "-f", cfile],
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        env=dict(os.environ, JPY_PARENT_PID=str(os.getpid())))
t1 = time.perf_counter()

ctx = zmq.Context()
session = uuid.uuid4().hex


def sock(kind, port):
    s = ctx.socket(kind)
    s.setsockopt(zmq.RECONNECT_IVL, 10)
    s.setsockopt(zmq.LINGER, 0)
    if kind == zmq.SUB:
        s.setsockopt(zmq.SUBSCRIBE, b"")
    if conn["transport"] == "tcp":
        s.connect(f"tcp://127.0.0.1:{conn[('shell_port', 'iopub_port')[port - 1]]}")
    else:
        s.connect(f"ipc://{conn['ip']}-{port}")
    return s


shell, iopub = sock(zmq.DEALER, 1), sock(zmq.SUB, 2)


def send(msg_type, content):
    mid = uuid.uuid4().hex
    header = {"msg_id": mid, "msg_type": msg_type, "session": session, "username": "bench",
              "date": "2026-01-01T00:00:00.000000Z", "version": "5.3"}
    parts = [json.dumps(p).encode() for p in (header, {}, {}, content)]
    sig = hmac.new(key.encode(), b"".join(parts), hashlib.sha256).hexdigest().encode()
    shell.send_multipart([b"<IDS|MSG>", sig, *parts])
    return mid


def recv(s, timeout_ms):
    if not s.poll(timeout_ms):
        return None
    frames = s.recv_multipart()
    i = frames.index(b"<IDS|MSG>")
    header, parent = json.loads(frames[i + 2]), json.loads(frames[i + 3])
    return header["msg_type"], parent.get("msg_id"), json.loads(frames[i + 5])


def reply_to(mid, deadline):
    while time.perf_counter() < deadline:
        m = recv(shell, 100)
        if m and m[1] == mid:
            return m
    raise SystemExit("no reply from the kernel")


def idle_for(mid, timeout):
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        m = recv(iopub, 50)
        if m and m[0] == "status" and m[1] == mid and m[2].get("execution_state") == "idle":
            return True
    return False


deadline = time.perf_counter() + 60
while True:  # as jupyter_client does: kernel_info until the reply comes and iopub is connected
    mid = send("kernel_info_request", {})
    reply_to(mid, deadline)
    if idle_for(mid, 0.2):
        break
t2 = time.perf_counter()
mid = send("execute_request", {"code": "1", "silent": False, "store_history": True,
                               "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
status = reply_to(mid, deadline)[2]["status"]
idle_for(mid, 5)
t3 = time.perf_counter()
proc.kill()
proc.wait()
t4 = time.perf_counter()
shell.close()
iopub.close()
ctx.term()
for name in os.listdir(tmp):
    os.unlink(os.path.join(tmp, name))
os.rmdir(tmp)
print(json.dumps({"start": t1 - t0, "ready": t2 - t1, "execute": t3 - t2, "shutdown": t4 - t3,
                  "kernel_total": t4 - t0, "floor": t3 - t0, "ok": status == "ok"}))
sys.exit(0 if status == "ok" else 1)
