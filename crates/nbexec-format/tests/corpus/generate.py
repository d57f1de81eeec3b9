"""Generate the round-trip corpus with Python nbformat (the oracle).

Each notebook is built in memory, written with `nbformat.write`, and stored as
`<name>.ipynb`: Python's canonical bytes. The Rust test reads and writes each one and
must get the same bytes back. Non-canonical inputs (`raw/*.json`) are stored with
Python's read+write of them (`raw/*.expected.ipynb`), so the test can check that
nbexec canonicalises exactly as Python does.

Run: .venv/bin/python crates/nbexec-format/tests/corpus/generate.py
"""
import base64
import json
import os
import random

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "canonical")
raw_dir = os.path.join(here, "raw")
os.makedirs(out_dir, exist_ok=True)
os.makedirs(raw_dir, exist_ok=True)
rng = random.Random(20261122)


def save(name, nb):
    # Store what Python read+write makes of it: a fixed point of Python's round trip
    # (an in-memory list of strings, say, is joined on read and not split again).
    text = nbformat.writes(nbformat.reads(nbformat.writes(nb), as_version=4))
    with open(os.path.join(out_dir, name + ".ipynb"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    assert nbformat.writes(nbformat.reads(text, as_version=4)) == text, name


def ids(nb):
    for i, c in enumerate(nb.cells):
        c["id"] = "%08x" % (0x1000 + i)
    return nb


png = base64.b64encode(bytes(rng.randrange(256) for _ in range(3000))).decode() + "\n"

# Unicode, control characters, quotes and backslashes everywhere.
nb = ids(new_notebook())
nb.cells = [
    new_code_cell("print('héllo wörld — €😀')\nx = \"quote\" + '\\\\'\n\ttab\n"),
    new_markdown_cell("# Título\n\nZero-width\u200b, NBSP\u00a0, RTL \u202e, BOM \ufeff, DEL \x7f, NUL-free C0: \x01\x02\x1f\n"),
    new_raw_cell("raw\rwith\r\ncarriage\x0bvt\x0cff\x1cfs\x85nel\u2028ls\u2029ps end"),
    new_code_cell(""),
    new_markdown_cell(""),
]
nb.cells[0].outputs = [
    new_output("stream", name="stdout", text="progress 10%\rprogress 100%\r\ndone\n"),
    new_output("stream", name="stderr", text="warn\x1b[31mred\x1b[0m\n"),
]
save("unicode-control", nb)

# Floats and integers of every awkward kind, in metadata and outputs.
nb = ids(new_notebook())
floats = [1e-05, 1e16, 1e15, 0.22025751675887162, -0.0, 0.0, 5e-324, 1.7976931348623157e308,
          0.1, 123456.789, 1e22, 2.5e-7, 100.0, 1e-4, 9007199254740993.0]
ints = [0, -1, 2**63 - 1, 2**64, -(2**64) - 7, 12345678901234567890123, 10**40]
nb.metadata["numbers"] = {"floats": floats, "ints": ints, "mixed": [1, 1.0, True, None, "1"]}
c = new_code_cell("1e-05")
c.execution_count = 3
c.outputs = [new_output("execute_result", execution_count=3, data={"text/plain": "1e-05"})]
c.metadata["scores"] = [rng.random() for _ in range(50)]
nb.cells = [c]
save("numbers", nb)

# Images, SVG, HTML, JS, JSON and vendor +json bundles, widget metadata, attachments.
nb = ids(new_notebook())
c = new_code_cell("display(...)")
c.execution_count = 1
c.outputs = [
    new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}, metadata={"image/png": {"width": 400}}),
    new_output("display_data", data={"image/svg+xml": "<svg>\n<rect/>\n</svg>\n", "text/html": "<b>x</b>\n<i>y</i>"}),
    new_output("display_data", data={"application/javascript": "var a = 1;\nvar b = 2;\n"}),
    new_output("execute_result", execution_count=1, data={
        "application/json": {"a": [1, 2, {"b": None}], "s": "line\nbreak"},
        "application/vnd.dataresource+json": {"data": [{"x": 1.5}], "schema": {"fields": []}},
        "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
        "text/plain": "multi\nline\nrepr",
    }),
    new_output("error", ename="ValueError", evalue="bad \"value\"", traceback=["\x1b[0;31mValueError\x1b[0m", "line 2"]),
]
m = new_markdown_cell("![img](attachment:a.png)")
m["attachments"] = {"a.png": {"image/png": png, "text/plain": "alt\ntext"}}
nb.cells = [c, m]
nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"abc": {"model_name": "IntSlider", "state": {"value": 3}}}, "version_major": 2, "version_minor": 0}}
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python", "version": "3.11.7", "codemirror_mode": {"name": "ipython", "version": 3}}
save("rich-outputs", nb)

# Unknown keys, unknown output types, null counts, odd bundles: nothing may be dropped.
nb = ids(new_notebook())
c = new_code_cell("x")
c.outputs = [
    nbformat.from_dict({"output_type": "future_output", "payload": {"z": 1, "a": [True, False]}, "text": ["not", " split"]}),
    new_output("execute_result", execution_count=None, data={"text/plain": ""}),
    new_output("display_data", data={"text/x-odd": "already split\nlines", "application/x-bytes": "AAEC"}),
]
c["x_unknown"] = {"nested": {"deep": [[], {}, ""]}}
nb.cells = [c, new_raw_cell("", metadata={"format": "text/x-rst"})]
nb["x_top_level"] = "kept"
nb.metadata["empty"] = {"list": [], "dict": {}, "str": ""}
save("unknown-keys", nb)

# Older minors: 4.0 and 4.4 (no ids), and a big-ish notebook.
for minor in (0, 4):
    nb = new_notebook()
    nb.nbformat_minor = minor
    nb.cells = [new_code_cell("a = %d\nprint(a)" % i) for i in range(5)] + [new_markdown_cell("## end")]
    for c in nb.cells:
        c.pop("id", None)
    save("v4-%d" % minor, nb)

nb = ids(new_notebook())
for i in range(300):
    c = new_code_cell("\n".join("line %d of cell %d" % (j, i) for j in range(rng.randrange(1, 8))))
    c.execution_count = i + 1
    c.outputs = [new_output("stream", name="stdout", text="out %d\n" % i * rng.randrange(1, 4))]
    nb.cells.append(c)
save("many-cells", nb)

# Non-canonical inputs: what Python read+write makes of them is the expected text.
raw_inputs = {
    "string-sources": {"cells": [{"cell_type": "code", "execution_count": None, "id": "abc12345", "metadata": {}, "outputs": [{"name": "stdout", "output_type": "stream", "text": "a\nb\r\nc"}], "source": "x = 1\ny = 2\n"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5},
    "v45-missing-ids": {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["hi"]}, {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [], "source": ["1"]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5},
    "transient-and-floats": {"cells": [{"cell_type": "code", "execution_count": 1, "metadata": {"trusted": True, "x": 1E5}, "outputs": [], "source": ["1"]}], "metadata": {"orig_nbformat": 3, "signature": "sha256:0", "f": [1E-5, 1.0e16, 1.50, -0, 0.1e1]}, "nbformat": 4, "nbformat_minor": 4},
    "unsorted-compact": {"nbformat_minor": 4, "nbformat": 4, "metadata": {"z": 1, "a": {"y": 2, "b": 3}}, "cells": [{"source": ["a", "b\n", "c"], "outputs": [], "metadata": {}, "execution_count": None, "cell_type": "code"}]},
}
for name, d in raw_inputs.items():
    text = json.dumps(d, ensure_ascii=True) if name != "transient-and-floats" else json.dumps(d).replace("100000.0", "1E5").replace("1e-05", "1E-5")
    with open(os.path.join(raw_dir, name + ".json"), "w", encoding="utf-8") as f:
        f.write(text)
    nb = nbformat.reads(text, as_version=4)
    # v45-missing-ids gets random ids from Python: the test checks their shape, then masks them.
    with open(os.path.join(raw_dir, name + ".expected.ipynb"), "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
print("corpus written to", here)
