#!/usr/bin/env python3
"""Remote-output benchmark: PUT counts and wall times of nbexec and papermill writing
to the same S3 server (moto_server on 127.0.0.1, a free port), for a notebook of N
trivial cells (default 1,000).

papermill uploads the whole notebook before the run and after every cell (its s3
handler through boto3); nbexec writes locally and uploads at each autosave checkpoint
and once at the end. The PUTs are counted from moto's request log, per object key.

Usage: .venv/bin/python benches/storage_puts.py [--cells N] [--rounds R] [--nbexec PATH]
  --nbexec PATH  the nbexec binary (default: $CARGO_TARGET_DIR or ./target, release if
                 built, else debug; the result says which)
Needs the test environment (scripts/venv.sh test: moto[server], boto3, papermill).
Everything it writes goes to a temporary directory.
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_nbexec(explicit):
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    for profile in ("release", "debug"):
        path = os.path.join(target, profile, "nbexec")
        if os.path.exists(path):
            return path
    sys.exit("bench: no nbexec binary built (cargo build), or pass --nbexec PATH")


def notebook(cells):
    def code(src, tags=()):
        return {"cell_type": "code", "execution_count": None, "metadata": {"tags": list(tags)},
                "outputs": [], "source": src}
    all_cells = [code("n = 0", ["parameters"])] + [code(f"x = {i}") for i in range(cells)]
    for i, c in enumerate(all_cells):
        c["id"] = f"c{i:05d}"
    return {"cells": all_cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}}}


def puts(log_path, key):
    pattern = re.compile(r'"(?:\x1b\[[0-9;]*m)*PUT /bench/' + re.escape(key) + r'[ ?]')
    with open(log_path, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if pattern.search(line))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--nbexec")
    args = ap.parse_args()
    nbexec = find_nbexec(args.nbexec)
    # A SIGTERM (a timeout) still stops the server below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    work = tempfile.mkdtemp(prefix="nbexec-bench-s3-")
    port = free_port()
    log_path = os.path.join(work, "moto.log")
    log = open(log_path, "w")
    moto = subprocess.Popen([os.path.join(VENV_BIN, "moto_server"), "-H", "127.0.0.1",
                             "-p", str(port)], stdout=log, stderr=log, cwd=work,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        env = dict(os.environ, AWS_ENDPOINT_URL=url, AWS_ALLOW_HTTP="true",
                   AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
                   VIRTUAL_ENV=os.path.dirname(VENV_BIN),
                   PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
        import boto3
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="bench")
        s3.put_object(Bucket="bench", Key="in.ipynb",
                      Body=json.dumps(notebook(args.cells)).encode())

        tools = {
            "nbexec": lambda out: [nbexec, "run", "s3://bench/in.ipynb", f"s3://bench/{out}",
                                   "--no-progress-bar"],
            "papermill": lambda out: [os.path.join(VENV_BIN, "papermill"), "--no-progress-bar",
                                      "s3://bench/in.ipynb", f"s3://bench/{out}"],
        }
        results = {name: {"times": [], "puts": []} for name in tools}
        for r in range(args.rounds):
            for name, cmd in tools.items():
                out = f"out-{name}-{r}.ipynb"
                t0 = time.perf_counter()
                done = subprocess.run(cmd(out), env=env, cwd=work, capture_output=True)
                took = time.perf_counter() - t0
                if done.returncode != 0:
                    sys.exit(f"bench: {name} failed ({done.returncode}):\n"
                             f"{done.stderr.decode(errors='replace')[-2000:]}")
                time.sleep(0.2)  # let moto flush its log line
                results[name]["times"].append(took)
                results[name]["puts"].append(puts(log_path, out))
        profile = "release" if "/release/" in nbexec else "debug"
        print(f"S3 output, {args.cells} trivial cells, moto_server on loopback, "
              f"{args.rounds} round(s); nbexec {profile} build ({nbexec})")
        print(f"{'tool':<10} {'PUTs of the output':>20} {'median wall s':>15}")
        for name, res in results.items():
            print(f"{name:<10} {statistics.median(res['puts']):>20.0f} "
                  f"{statistics.median(res['times']):>15.2f}")
        print(f"(the run executes {args.cells + 2} code cells: the {args.cells}, the parameters "
              f"cell and the injected one; nbexec checkpoints every 10 s by default)")
    finally:
        os.killpg(moto.pid, 9)
        moto.wait()
        log.close()


if __name__ == "__main__":
    main()
