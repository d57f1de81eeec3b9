#!/usr/bin/env bash
# Opt-in end-to-end check (not part of CI): the real ArcGIS API for Python drives
# `nbexec serve --portal --tls-self-signed`. Builds its own .venv-arcgis (arcgis 2.4.4,
# about 1 GB, minutes to install; once), makes a users file and a notebook item, starts
# the server on an ephemeral loopback port, runs scripts/arcgis-client.py, prints the
# job JSON, and exits non-zero on any failure. The server is stopped on the way out.
# Usage: scripts/arcgis-client.sh        (NBEXEC=/path/to/nbexec to skip the cargo build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

venv="$root/.venv-arcgis"
req="$root/scripts/requirements-arcgis.txt"
stamp="$venv/.nbexec-arcgis-$(sha256sum "$req" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  python=${PYTHON:-python3}
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "arcgis-client: $python is missing or older than 3.11 (arcgis 2.4.4 needs 3.11+); set PYTHON" >&2
    exit 2
  fi
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  echo "arcgis-client: installing $(basename "$req") into $venv (large; log in $venv/install.log)" >&2
  "$venv/bin/python" -m pip install --disable-pip-version-check -r "$req" >"$venv/install.log" 2>&1 \
    || { tail -20 "$venv/install.log" >&2; exit 1; }
  touch "$stamp"
fi

# The kernel the server runs notebooks on: the project's own environment.
[ -x "$root/.venv/bin/python" ] || scripts/venv.sh kernel
export VIRTUAL_ENV="$root/.venv" PATH="$root/.venv/bin:$PATH"

bin=${NBEXEC:-}
if [ -z "$bin" ]; then
  cargo build --quiet --bin nbexec
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/nbexec"
fi

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

password="pw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$password" > "$work/password"
chmod 600 "$work/password"
"$bin" users add alice --role user -f "$work/users.json" < "$work/password"

cat > "$work/hello.ipynb" <<'NB'
{
 "cells": [
  {"cell_type": "code", "execution_count": null, "id": "params", "metadata": {"tags": ["parameters"]}, "outputs": [], "source": ["x = 0"]},
  {"cell_type": "code", "execution_count": null, "id": "show", "metadata": {}, "outputs": [], "source": ["print('x is', x)"]}
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
NB
item=$("$bin" items add "$work/hello.ipynb" --title "arcgis client check" --owner alice --state-dir "$work/state")

"$bin" serve --bind 127.0.0.1:0 --state-dir "$work/state" --users "$work/users.json" \
  --portal --tls-self-signed --workers 1 > "$work/serve.out" 2> "$work/serve.err" &
server_pid=$!
url=
for _ in $(seq 1 600); do
  url=$(sed -n 's/^nbexec serve: listening on //p' "$work/serve.out" | head -1)
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "arcgis-client: the server did not start:" >&2
  cat "$work/serve.err" >&2
  exit 1
fi
portal="${url%/admin}/portal"
echo "arcgis-client: server at $url (portal $portal), item $item" >&2

status=0
"$venv/bin/python" "$root/scripts/arcgis-client.py" --portal "$portal" --user alice \
  --password-file "$work/password" --item "$item" || status=$?
if [ "$status" -ne 0 ]; then
  echo "arcgis-client: FAILED (exit $status); server log:" >&2
  cat "$work/serve.err" >&2
fi
exit "$status"
