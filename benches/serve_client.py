"""The client side of benches/serve.sh: drives a running `nbexec serve` over HTTP
with the standard library only, and prints one JSON object of measurements.

  serve_client.py latency URL ITEM N GAP   N submissions GAP seconds apart; each one's
                                           submit->COMPLETED time (its events stream)
  serve_client.py burst URL ITEM N         N submissions at once; the time from the
                                           first submit until all are finished
  serve_client.py list URL N               N times GET jobs?f=json; each one's latency
  serve_client.py seed STATE TOTAL         copies finished jobs of the registry in
                                           STATE until it holds TOTAL jobs (server stopped)

URL is the server's /admin root as it prints it.
"""

import http.client
import json
import sqlite3
import statistics
import sys
import threading
import time
import urllib.parse
import uuid

FINISHED = {"COMPLETED", "FAILED", "CANCELLED"}


class Client:
    """One keep-alive connection to the server."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.base = parts.path.rstrip("/")
        self.conn = None

    def request(self, method, path, body=None, stream=False):
        headers = {}
        if body is not None:
            body = urllib.parse.urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in range(3):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
            try:
                self.conn.request(method, self.base + path, body=body, headers=headers)
                resp = self.conn.getresponse()
                if stream:
                    return resp
                data = resp.read()
                return resp.status, data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise

    def submit(self, item):
        status, data = self.request(
            "POST", "/notebooks/executeNotebook", {"f": "json", "itemId": item}
        )
        answer = json.loads(data)
        if status != 200 or "jobId" not in answer:
            raise SystemExit(f"executeNotebook answered {status}: {data[:300]!r}")
        return answer["jobId"]

    def job(self, job_id):
        status, data = self.request("GET", f"/notebooks/jobs/{job_id}?f=json")
        return json.loads(data)

    def wait_finished(self, job_id):
        """Reads the job's events stream until its status is a finished one."""
        resp = self.request("GET", f"/notebooks/jobs/{job_id}/events", stream=True)
        event = None
        try:
            while True:
                line = resp.readline()
                if not line:
                    return None
                line = line.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "status":
                    status = json.loads(line[5:].strip()).get("status")
                    if status in FINISHED:
                        return status
        finally:
            # The stream ends by itself; never reuse its connection.
            self.conn.close()
            self.conn = None


def latency(url, item, n, gap):
    client = Client(url)
    times, statuses, waits, runs = [], [], [], []
    for i in range(n):
        started = time.perf_counter()
        job_id = client.submit(item)
        status = client.wait_finished(job_id)
        times.append(time.perf_counter() - started)
        statuses.append(status)
        # The server's own record (epoch ms): queued, then start to end.
        job = client.job(job_id)
        if job.get("startTime") and job.get("endTime") and job.get("dateCreated"):
            waits.append((job["startTime"] - job["dateCreated"]) / 1000)
            runs.append((job["endTime"] - job["startTime"]) / 1000)
        if i + 1 < n:
            time.sleep(max(0.0, gap - (time.perf_counter() - started)))
    return {
        "latencies": times,
        "median": statistics.median(times),
        "statuses": sorted(set(map(str, statuses))),
        "median_queued": statistics.median(waits) if waits else None,
        "median_start_to_end": statistics.median(runs) if runs else None,
    }


def burst(url, item, n):
    ids = [None] * n
    errors = []
    start_line = threading.Barrier(min(n, 50))

    def submit_some(indices):
        client = Client(url)
        try:
            start_line.wait()
        except threading.BrokenBarrierError:
            pass
        for i in indices:
            try:
                ids[i] = client.submit(item)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(str(e))

    threads = [
        threading.Thread(target=submit_some, args=(range(t, n, 50),))
        for t in range(min(n, 50))
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    submitted = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} submissions failed, first: {errors[0]}")
    pending = set(ids)
    statuses = {}
    client = Client(url)
    deadline = time.monotonic() + 3600
    while pending and time.monotonic() < deadline:
        status, data = client.request("GET", "/notebooks/jobs?f=json&num=10000")
        for job in json.loads(data).get("asyncNotebookJobs", []):
            if job.get("jobId") in pending and job.get("status") in FINISHED:
                pending.discard(job["jobId"])
                statuses[job["status"]] = statuses.get(job["status"], 0) + 1
        if pending:
            time.sleep(0.05)
    total = time.perf_counter() - started
    return {
        "total": total,
        "submitted_in": submitted,
        "finished": n - len(pending),
        "statuses": statuses,
    }


def list_jobs(url, n):
    client = Client(url)
    times, sizes, counts = [], [], []
    for _ in range(n):
        started = time.perf_counter()
        status, data = client.request("GET", "/notebooks/jobs?f=json")
        times.append(time.perf_counter() - started)
        if status != 200:
            raise SystemExit(f"jobs answered {status}: {data[:300]!r}")
        sizes.append(len(data))
        counts.append(len(json.loads(data).get("asyncNotebookJobs", [])))
    return {
        "latencies_ms": [t * 1000 for t in times],
        "median_ms": statistics.median(times) * 1000,
        "bytes": sizes[0],
        "jobs_in_answer": counts[0],
    }


def seed(state, total):
    db = sqlite3.connect(f"{state}/jobs.sqlite3", timeout=30)
    have = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    columns = [r[1] for r in db.execute("PRAGMA table_info(jobs)")]
    templates = db.execute(
        "SELECT * FROM jobs WHERE status IN ('COMPLETED', 'FAILED')"
    ).fetchall()
    if not templates:
        raise SystemExit("no finished job in the registry to copy")
    at = {c: i for i, c in enumerate(columns)}
    rows = []
    for k in range(max(0, total - have)):
        row = list(templates[k % len(templates)])
        row[at["id"]] = "j" + uuid.uuid4().hex
        # Older submissions, one second apart, so the newest-first order is stable.
        for col in ("submitted", "start_time", "end_time"):
            if row[at[col]]:
                row[at[col]] -= (k + 1) * 1000
        rows.append(row)
    marks = ",".join("?" * len(columns))
    db.executemany(f"INSERT INTO jobs VALUES ({marks})", rows)
    db.commit()
    return {"jobs": db.execute("SELECT count(*) FROM jobs").fetchone()[0]}


def main(argv):
    kind = argv[1]
    if kind == "latency":
        out = latency(argv[2], argv[3], int(argv[4]), float(argv[5]))
    elif kind == "burst":
        out = burst(argv[2], argv[3], int(argv[4]))
    elif kind == "list":
        out = list_jobs(argv[2], int(argv[3]))
    elif kind == "seed":
        out = seed(argv[2], int(argv[3]))
    else:
        raise SystemExit(f"unknown measurement {kind}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
