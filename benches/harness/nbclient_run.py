"""nbclient as a tool: `python nbclient_run.py INPUT OUTPUT`. Runs in the bench venv.

Executes the notebook with nbclient.NotebookClient(nb, kernel_name='python3'),
writes it with nbformat.write, exits 1 when a cell raised (the notebook is written
all the same), as papermill and nbexec do.
"""
import sys

import nbclient
import nbformat

src, dst = sys.argv[1], sys.argv[2]
nb = nbformat.read(src, as_version=4)
code = 0
try:
    nbclient.NotebookClient(nb, kernel_name="python3").execute()
except nbclient.exceptions.CellExecutionError as e:
    print(f"error: a cell failed: {str(e).splitlines()[-1] if str(e) else e!r}", file=sys.stderr)
    code = 1
nbformat.write(nb, dst)
sys.exit(code)
