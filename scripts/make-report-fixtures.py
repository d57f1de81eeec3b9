"""Builds the report fixtures in fixtures/report/: source notebooks written here, executed
by nbexec on the project's kernel (so they are real executed notebooks), plus two written
by hand for what a run of nbexec never stores (raw `\\r`/backspace in streams, and the
sanitiser corpus rendered without running).

Usage: python scripts/make-report-fixtures.py PATH/TO/nbexec
Needs nbformat and ImageMagick's `convert` (for the JPEG).
"""

import base64
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "report")


def png(width, height, rgb_at):
    raw = b"".join(
        b"\x00" + b"".join(bytes(rgb_at(x, y)) for x in range(width)) for y in range(height)
    )

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def gradient(x, y):
    return (x * 4 % 256, y * 4 % 256, 160)


def jpeg():
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "a.png")
        dst = os.path.join(d, "a.jpg")
        with open(src, "wb") as f:
            f.write(png(48, 32, lambda x, y: (200, x * 5 % 256, y * 7 % 256)))
        subprocess.run(["convert", src, "-quality", "70", dst], check=True)
        with open(dst, "rb") as f:
            return f.read()


PNG_B64 = base64.b64encode(png(64, 40, gradient)).decode()
JPEG_B64 = base64.b64encode(jpeg()).decode()
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60">'
    '<rect width="120" height="60" fill="#4a90d9"/><circle cx="30" cy="30" r="20" fill="#f5a623"/>'
    '<text x="60" y="36" font-size="14" fill="white">svg</text></svg>'
)
DATAFRAME = """<div>
<style scoped>
    .dataframe tbody tr th:only-of-type {
        vertical-align: middle;
    }
    .dataframe thead th {
        text-align: right;
    }
</style>
<table border="1" class="dataframe">
  <thead>
    <tr style="text-align: right;">
      <th></th>
      <th>city</th>
      <th>population</th>
      <th>area_km2</th>
    </tr>
  </thead>
  <tbody>
    <tr>
      <th>0</th>
      <td>Lyon</td>
      <td>522250</td>
      <td>47.87</td>
    </tr>
    <tr>
      <th>1</th>
      <td>Porto</td>
      <td>231800</td>
      <td>41.42</td>
    </tr>
    <tr>
      <th>2</th>
      <td>Graz</td>
      <td>291072</td>
      <td>127.57</td>
    </tr>
  </tbody>
</table>
</div>"""

STREAMS = [
    new_markdown_cell("# Streams and colours\n\nStandard output, standard error, ANSI colours and a progress bar."),
    new_code_cell(
        "import sys, time\n"
        "print('plain line')\n"
        "print('\\x1b[31mred\\x1b[0m \\x1b[1;32mbold green\\x1b[0m \\x1b[44mblue background\\x1b[0m')\n"
        "print('\\x1b[38;5;208m256-colour orange\\x1b[0m and \\x1b[38;2;10;20;200mtruecolor\\x1b[0m')\n"
        "print('<b>not bold</b> & escaped')\n"
        "sys.stderr.write('a warning on stderr\\n')"
    ),
    new_code_cell(
        "import sys\n"
        "for i in range(0, 101, 20):\n"
        "    sys.stdout.write(f'\\rprogress {i:3d}%')\n"
        "    sys.stdout.flush()\n"
        "print()\n"
        "print('done')"
    ),
    new_code_cell("x = 6 * 7\nx"),
]

RICH = [
    new_markdown_cell("# Rich outputs\n\nA DataFrame, images, SVG, LaTeX, JSON and interactive outputs."),
    new_code_cell(
        "from IPython.display import HTML, display\n"
        f"display(HTML({DATAFRAME!r}))"
    ),
    new_code_cell(
        "import base64\n"
        "from IPython.display import Image, display\n"
        f"display(Image(data=base64.b64decode({PNG_B64!r}), width=256, height=160))\n"
        f"display(Image(data=base64.b64decode({JPEG_B64!r}), format='jpeg'))"
    ),
    new_code_cell("from IPython.display import SVG\n" f"SVG({SVG!r})"),
    new_code_cell(
        "from IPython.display import Latex, Markdown, JSON, Javascript, display\n"
        "display(Latex(r'$\\int_0^1 x^2\\,dx = \\frac{1}{3}$'))\n"
        "display(Markdown('Some **markdown** output with `code`.'))\n"
        "display(JSON({'a': [1, 2, 3], 'b': {'c': None}}))\n"
        "display(Javascript('document.title = \"changed\"'))"
    ),
    new_code_cell(
        "from IPython.display import display\n"
        "display({'application/vnd.jupyter.widget-view+json': {'model_id': 'abc', 'version_major': 2, 'version_minor': 0},\n"
        "         'text/plain': 'IntSlider(value=3)'}, raw=True)"
    ),
    new_code_cell(
        "from IPython.display import display, update_display\n"
        "h = display('first version', display_id=True)\n"
        "h.update('updated version')\n"
        "print('after the update')"
    ),
    new_code_cell("print('this input is hidden')", metadata={"tags": ["remove-input"]}),
    new_code_cell("print('this output is hidden')", metadata={"tags": ["remove-output"]}),
    new_code_cell("print('this whole cell is hidden')", metadata={"tags": ["remove-cell"]}),
    new_raw_cell("raw text, not shown in HTML"),
]

ONE_PX = base64.b64encode(png(16, 16, lambda x, y: (30, 160, 90))).decode()
MARKDOWN_CELL = new_markdown_cell(
    "# Markdown\n\n"
    "## Tables\n\n"
    "| name | value |\n|------|------:|\n| alpha | 1 |\n| beta | 22 |\n\n"
    "## Lists and text\n\n"
    "- [x] done task\n- [ ] open task\n\n"
    "Some ~~struck~~ text, *emphasis*, **strong**, `inline code` and a [link](https://example.org/).\n\n"
    "```python\nprint('fenced code')\n```\n\n"
    "## Math\n\n"
    "Inline $a_1 + b_1 = c^2$ and display:\n\n"
    "$$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$\n\n"
    "## Attachment\n\n"
    "![green square](attachment:square.png)\n\n"
    "<div class=\"note\">Raw <em>HTML</em> in Markdown.</div>\n"
)
MARKDOWN_CELL["attachments"] = {"square.png": {"image/png": ONE_PX}}
MARKDOWN = [MARKDOWN_CELL, new_code_cell("print('after the markdown')")]

FAILED = [
    new_markdown_cell("# A failing run"),
    new_code_cell("threshold = 1\nlabel = 'default'", metadata={"tags": ["parameters"]}),
    new_code_cell("print(f'{label}: checking threshold {threshold}')"),
    new_code_cell("def check(t):\n    if t > 2:\n        raise ValueError(f'threshold {t} is too high')\n\ncheck(threshold)"),
    new_code_cell("print('never runs')"),
]


def stream(name, text):
    return new_output("stream", name=name, text=text)


# Written by hand: what other tools store (raw `\r` and backspaces).
RAW_STREAMS = [
    new_code_cell(
        "# outputs as stored by a tool that keeps terminal controls",
        outputs=[
            stream("stdout", "downloading   0%\rdownloading  50%\rdownloading 100%\ndone\n"),
            stream("stdout", "typo\b\b\bext fixed\n"),
            stream("stderr", "\x1b[33mwarning:\x1b[0m careful\n"),
        ],
        execution_count=1,
    ),
]

HOSTILE_HTML = [
    "<script>document.title='pwned-script'</script><p>after script</p>",
    "<img src=x onerror=\"document.title='pwned-onerror'\">",
    "<a href=\"javascript:document.title='pwned-link'\">a javascript: link</a>",
    "<svg onload=\"document.title='pwned-svg'\"><circle r=\"5\"/></svg>",
    "<iframe src=\"javascript:parent.document.title='pwned-iframe'\"></iframe><p>after iframe</p>",
    "<div style=\"width: expression(document.title='pwned-css'); background: url(javascript:alert(1))\">css expression</div>",
    "<form action=\"javascript:alert(1)\"><input type=submit></form>",
    "<object data=\"javascript:alert(1)\"></object><embed src=\"javascript:alert(1)\">",
    "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">data link</a>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<style>body{background:url(https://example.org/track.png)}</style><p>after style</p>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
]
HOSTILE = [
    new_markdown_cell(
        "# Hostile\n\n<script>document.title='pwned-md-script'</script>\n\n"
        "<img src=x onerror=\"document.title='pwned-md-img'\">\n\n"
        "[md js link](javascript:alert(1))\n\n<iframe src=\"https://example.org/\"></iframe>\n"
    ),
    new_code_cell(
        "# display(HTML(...)) of each sample",
        outputs=[
            new_output("display_data", data={"text/html": h, "text/plain": "<HTML>"}) for h in HOSTILE_HTML
        ]
        + [
            new_output(
                "display_data",
                data={"image/svg+xml": "<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"><script>alert(2)</script></svg>"},
            ),
            new_output("display_data", data={"text/markdown": "<script>alert(3)</script>[x](javascript:alert(4))"}),
        ],
        execution_count=1,
    ),
]


def main():
    nbexec = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, cells, args, expect in [
            ("streams", STREAMS, [], 0),
            ("rich", RICH, [], 0),
            ("markdown", MARKDOWN, [], 0),
            ("failed", FAILED, ["-p", "threshold", "5", "-p", "label", "nightly"], 1),
        ]:
            nb = new_notebook(cells=cells)
            nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
            src = os.path.join(tmp, name + ".ipynb")
            nbformat.write(nb, src)
            dst = os.path.join(OUT, name + ".ipynb")
            done = subprocess.run([nbexec, "run", src, dst, "--no-record", "--no-progress-bar", *args], input=b"")
            if done.returncode != expect:
                sys.exit(f"{name}: nbexec exited {done.returncode}, expected {expect}")
    for name, cells in [("raw-streams", RAW_STREAMS), ("hostile", HOSTILE)]:
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, os.path.join(OUT, name + ".ipynb"))


if __name__ == "__main__":
    main()
