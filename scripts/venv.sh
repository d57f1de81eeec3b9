#!/usr/bin/env bash
# Provision the project's local Python environment (.venv) with what the given
# requirements file lists, once; later calls are a no-op while it is complete.
# Usage: scripts/venv.sh [kernel|test|gateway|enterprise-gateway]   (default: test)
# `gateway` goes into .venv-gateway (Jupyter Kernel Gateway), `enterprise-gateway`
# into .venv-enterprise-gateway (for the opt-in NBEXEC_GATEWAY=enterprise test run),
# each kept apart from the oracles so its server stack never pins theirs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:-test}
req="$root/scripts/requirements-$kind.txt"
venv="$root/.venv"
case $kind in gateway|enterprise-gateway) venv="$root/.venv-$kind" ;; esac
stamp="$venv/.nbexec-$kind-$(sha256sum "$req" "$root/scripts/requirements-kernel.txt" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then exit 0; fi
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "nbexec: $python is missing or older than 3.11 (ipykernel 7.4 needs 3.11); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "nbexec: creating $venv" >&2
  "$python" -m venv "$venv"
fi
echo "nbexec: installing $(basename "$req") into $venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
touch "$stamp"
