"""Python nbformat's notebook read + write, in-process: `python nbformat_io.py NB OUT`.
Runs in the bench venv. Prints one JSON line: read and write seconds, and their sum."""
import json
import sys
import time

import nbformat

src, dst = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
nb = nbformat.read(src, as_version=4)
t1 = time.perf_counter()
nbformat.write(nb, dst)
t2 = time.perf_counter()
print(json.dumps({"read": t1 - t0, "write": t2 - t1, "total": t2 - t0}))
