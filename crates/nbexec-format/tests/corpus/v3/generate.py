"""Generate the expected upgrades of the nbformat 3 corpus with Python nbformat (the
oracle).

Each `<name>.ipynb` here is an nbformat 3 notebook; `expected/<name>.ipynb` is what
`nbformat.write(nbformat.read(path, as_version=4))` makes of it, except that the cell
ids, which Python draws at random, are numbered (`00000000`, `00000001`, ...) so the
file is reproducible. `test2-as-v3.ipynb` is made here too, from `v2/test2.ipynb`.
The Rust test upgrades each notebook, gives its cells the same
ids, and must write the same bytes. The notebooks in `bad/` are ones Python refuses.

Run: .venv/bin/python crates/nbexec-format/tests/corpus/v3/generate.py
"""
import glob
import itertools
import os
import warnings

import nbformat
import nbformat.v4.convert

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "expected")
os.makedirs(out_dir, exist_ok=True)
warnings.simplefilter("ignore")

# A real notebook of the v3 era: nbformat's v2 test notebook (the IPython notebook
# introduction, with text, code, streams and a PNG), converted to v3 by nbformat.
with open(os.path.join(here, "v2", "test2.ipynb"), encoding="utf-8") as f:
    v3 = nbformat.reads(f.read(), as_version=3)
with open(os.path.join(here, "test2-as-v3.ipynb"), "w", encoding="utf-8") as f:
    nbformat.write(v3, f)

for path in sorted(glob.glob(os.path.join(here, "*.ipynb"))):
    counter = itertools.count()
    nbformat.v4.convert.random_cell_id = lambda: "%08x" % next(counter)
    nb = nbformat.read(path, as_version=4)
    with open(os.path.join(out_dir, os.path.basename(path)), "w", encoding="utf-8") as f:
        nbformat.write(nb, f)

for path in sorted(glob.glob(os.path.join(here, "bad", "*.ipynb"))):
    try:
        nbformat.read(path, as_version=4)
    except Exception:
        continue
    raise SystemExit(f"{path}: Python reads it, so it does not belong in bad/")
