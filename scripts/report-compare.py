"""Compares nbexec's HTML reports with `jupyter nbconvert --to html` structurally.

For every notebook given (files, or directories searched for *.ipynb), renders it with
`nbexec render` and with nbconvert (lab template, the remove-input/-output/-cell tags
honoured as nbexec does), then checks: the same cells in the same order (type and
input text), the same outputs per cell in the same order, the same MIME type chosen
for each output, and the same text once tags are stripped. Text is compared with
whitespace collapsed, the heading anchors' pilcrow dropped and terminal controls
(`\\r`, backspace) applied, as a browser shows them; script and style element content is
not text. Known, deliberate differences are reported separately and do not fail:
JavaScript and widget outputs (nbexec shows a note instead of running them).

Usage: python scripts/report-compare.py [--nbexec BIN] [--json OUT] PATH...
Exit status: 0 when every notebook matches, 1 otherwise.
"""

import argparse
import html.parser
import json
import os
import re
import subprocess
import sys
import tempfile
import time

INTERACTIVE = {"application/javascript", "application/vnd.jupyter.widget-view+json"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def terminal(text):
    lines = []
    for line in text.split("\n"):
        line = line[:-1] if line.endswith("\r") else line
        line = line.rsplit("\r", 1)[-1]
        out = []
        for ch in line:
            if ch == "\b":
                if out:
                    out.pop()
            else:
                out.append(ch)
        lines.append("".join(out))
    return "\n".join(lines)


def norm(text):
    """Text as compared: pilcrows dropped and no whitespace at all (where markup puts
    line breaks between block elements differs, and a browser lays blocks out anyway)."""
    text = text.replace("\u00b6", "")
    return re.sub(r"\s+", "", text)


class Structure(html.parser.HTMLParser):
    """Cells (`jp-Cell`), their input text, markdown text and outputs (`jp-OutputArea-output`)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cells = []
        self.stack = []  # (tag, roles)
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        roles = set()
        if tag in ("script", "style"):
            self.skip += 1
            roles.add("skip")
        if tag == "div" and "jp-Cell" in classes:
            kind = "code" if "jp-CodeCell" in classes else "markdown" if "jp-MarkdownCell" in classes else "raw"
            self.cells.append({"type": kind, "input": [], "markdown": [], "outputs": []})
            roles.add("cell")
        if self.cells and "jp-InputArea-editor" in classes:
            roles.add("input")
        if self.cells and "jp-RenderedMarkdown" in classes and "jp-OutputArea-output" not in classes:
            roles.add("markdown")
        if self.cells and "jp-OutputArea-output" in classes:
            mime = a.get("data-mime-type")
            self.cells[-1]["outputs"].append({"mime": mime, "text": []})
            roles.add("output")
        if tag == "img" and self.cells and self.cells[-1]["outputs"] and self.inside("output"):
            out = self.cells[-1]["outputs"][-1]
            m = re.match(r"data:([^;,]+)", a.get("src") or "")
            if m and out["mime"] is None:
                out["mime"] = m.group(1)
        if tag not in VOID:
            self.stack.append((tag, roles))

    def handle_startendtag(self, tag, attrs):
        # `<br/>`, `<img .../>`: an element with no content and no end tag.
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def inside(self, role):
        return any(role in r for _, r in self.stack)

    def handle_endtag(self, tag):
        while self.stack:
            t, roles = self.stack.pop()
            if "skip" in roles:
                self.skip -= 1
            if t == tag:
                break

    def handle_data(self, data):
        if self.skip or not self.cells:
            return
        cell = self.cells[-1]
        if self.inside("output"):
            cell["outputs"][-1]["text"].append(data)
        elif self.inside("input"):
            cell["input"].append(data)
        elif self.inside("markdown"):
            cell["markdown"].append(data)


def structure(path):
    p = Structure()
    with open(path, encoding="utf-8", newline="") as f:
        p.feed(f.read())
    cells = []
    for c in p.cells:
        cells.append(
            {
                "type": c["type"],
                "input": norm("".join(c["input"])),
                "markdown": norm("".join(c["markdown"])),
                "outputs": [
                    {"mime": o["mime"], "text": norm("".join(o["text"])), "terminal": norm(terminal("".join(o["text"])))}
                    for o in c["outputs"]
                ],
            }
        )
    return cells


def compare(ours, theirs):
    """Returns (problems, notes): differences that fail, and deliberate ones."""
    problems, notes = [], []
    if [c["type"] for c in ours] != [c["type"] for c in theirs]:
        problems.append(
            f"cells differ: nbexec {[c['type'] for c in ours]} vs nbconvert {[c['type'] for c in theirs]}"
        )
        return problems, notes
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a["input"] != b["input"]:
            problems.append(f"cell {i}: input text differs: {a['input'][:80]!r} vs {b['input'][:80]!r}")
        if a["markdown"] != b["markdown"]:
            problems.append(f"cell {i}: markdown text differs:\n  nbexec:    {a['markdown'][:300]!r}\n  nbconvert: {b['markdown'][:300]!r}")
        oa = [o for o in a["outputs"]]
        ob = [o for o in b["outputs"]]
        if [o["mime"] for o in oa] != [o["mime"] for o in ob]:
            problems.append(f"cell {i}: output MIME types differ: {[o['mime'] for o in oa]} vs {[o['mime'] for o in ob]}")
            continue
        for j, (x, y) in enumerate(zip(oa, ob)):
            if x["text"] == y["text"]:
                continue
            if x["text"] == y["terminal"]:
                notes.append(f"cell {i} output {j} ({x['mime']}): carriage returns/backspaces applied (nbconvert shows every overwritten line)")
                continue
            if x["mime"] in INTERACTIVE:
                notes.append(f"cell {i} output {j} ({x['mime']}): shown as a note, not run")
                continue
            problems.append(f"cell {i} output {j} ({x['mime']}): text differs:\n  nbexec:    {x['text'][:300]!r}\n  nbconvert: {y['text'][:300]!r}")
    return problems, notes


NBCONVERT_TAGS = [
    "--TagRemovePreprocessor.enabled=True",
    "--TagRemovePreprocessor.remove_cell_tags=remove-cell",
    "--TagRemovePreprocessor.remove_input_tags=remove-input",
    "--TagRemovePreprocessor.remove_all_outputs_tags=remove-output",
]


def run_one(nb, nbexec, tmp):
    base = os.path.splitext(os.path.basename(nb))[0]
    ours = os.path.join(tmp, base + ".nbexec.html")
    theirs_dir = os.path.join(tmp, "nbconvert")
    t0 = time.perf_counter()
    mine = subprocess.run([nbexec, "render", nb, "-o", ours], capture_output=True, text=True)
    t1 = time.perf_counter()
    other = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", "--log-level=ERROR", *NBCONVERT_TAGS,
         "--output-dir", theirs_dir, "--output", base + ".nbconvert", nb],
        capture_output=True, text=True,
    )
    t2 = time.perf_counter()
    result = {"notebook": nb, "cells": 0, "outputs": 0, "problems": [], "notes": [],
              "nbexec_s": round(t1 - t0, 3), "nbconvert_s": round(t2 - t1, 3)}
    if other.returncode != 0:
        # Not a notebook nbconvert can read: nothing to compare against.
        last = (other.stderr.strip().splitlines() or ["?"])[-1]
        result["skipped"] = f"nbconvert failed: {last[:200]}"
        if mine.returncode != 0:
            result["notes"].append("nbexec refused it too: " + mine.stderr.strip()[:200])
        return result
    if mine.returncode != 0:
        result["problems"].append("nbexec render failed: " + mine.stderr.strip()[:300])
        return result
    theirs = os.path.join(theirs_dir, base + ".nbconvert.html")
    a, b = structure(ours), structure(theirs)
    problems, notes = compare(a, b)
    result.update(cells=len(a), outputs=sum(len(c["outputs"]) for c in a), problems=problems, notes=notes)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nbexec", default="nbexec")
    ap.add_argument("--json")
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args()
    notebooks = []
    for p in args.paths:
        if os.path.isdir(p):
            for d, _, files in os.walk(p):
                notebooks += [os.path.join(d, f) for f in sorted(files) if f.endswith(".ipynb")]
        else:
            notebooks.append(p)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for nb in sorted(notebooks):
            r = run_one(nb, args.nbexec, tmp)
            results.append(r)
            verdict = "skipped" if r.get("skipped") else "same" if not r["problems"] else "DIFFERENT"
            print(f"{verdict:9} {r['cells']:4} cells {r['outputs']:4} outputs  {nb}")
            for p in r["problems"]:
                print("    " + p)
            if r.get("skipped"):
                print("    " + r["skipped"])
            for n in r["notes"]:
                print("    note: " + n)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    bad = [r for r in results if r["problems"]]
    skipped = [r for r in results if r.get("skipped")]
    compared = len(results) - len(skipped)
    print(f"{compared - len(bad)}/{compared} notebooks match nbconvert"
          + (f" ({len(skipped)} skipped: nbconvert could not convert them)" if skipped else ""))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
