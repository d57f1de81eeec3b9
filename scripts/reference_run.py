"""Runs one notebook through the reference tool nbexec is compared against.

Usage: python reference_run.py nbclient|papermill INPUT OUTPUT CWD [--allow-errors] [--timeout S]

nbclient runs with its defaults (timing recorded, widget state stored), the way its own
test suite runs its notebooks; papermill runs through its command line, in this process
(exec), so that a signal sent to this pid (a Ctrl-C) reaches papermill itself. The exit
code is papermill's, or 0 for nbclient whatever the notebook did: the executed notebook
is the result (papermill writes it on failure).
"""

import os
import sys


def main():
    tool, src, dst, cwd = sys.argv[1:5]
    rest = sys.argv[5:]
    allow_errors = "--allow-errors" in rest
    # A bound on every cell, so that a wedged reference run cannot hang the tests.
    timeout = 300
    interrupt = False
    if "--timeout" in rest:
        timeout = int(rest[rest.index("--timeout") + 1])
        interrupt = True
    if tool == "papermill":
        cmd = [sys.executable, "-m", "papermill", src, dst, "-k", "python3", "--cwd", cwd]
        cmd += ["--execution-timeout", str(timeout)]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, cmd)
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(src, as_version=4)
    opts = {"kernel_name": "python3", "allow_errors": allow_errors, "resources": {"metadata": {"path": cwd}}}
    opts.update(timeout=timeout, interrupt_on_timeout=interrupt)
    client = NotebookClient(nb, **opts)
    try:
        client.execute()
    except Exception as error:  # the executed notebook is the result either way
        print(f"{type(error).__name__}", file=sys.stderr)
    nbformat.write(nb, dst)


if __name__ == "__main__":
    main()
