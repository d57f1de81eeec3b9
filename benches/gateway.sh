#!/usr/bin/env bash
# Remote-kernel benchmark: nbexec against papermill's Python API with Jupyter
# Server's GatewayKernelManager, both through the same Jupyter Kernel Gateway 3.0.1
# on 127.0.0.1 without a token (papermill's path cannot send one on the WebSocket).
# Workloads: 1 trivial cell (latency) and 1,000 trivial cells. Prints the median wall
# time of each tool over the rounds, whole process for both (what a user waits for),
# papermill's in-process time of execute_notebook beside it, and the ratios against
# the targets of issue 16 (nbexec at most 0.7 x papermill).
#
# Usage: benches/gateway.sh [--rounds N] [--nbexec PATH]
#   --rounds N     rounds per tool and workload, interleaved (default 3)
#   --nbexec PATH  the nbexec binary (default: $CARGO_TARGET_DIR or ./target, release
#                  if built, else debug; say which in the results)
# Provisions .venv-gateway (scripts/venv.sh gateway) and its own papermill
# environment benches/.work/gateway-venv (papermill 2.7.0, jupyter_server 2.21.1,
# ipykernel 7.4.0) on the first run. Everything it writes is under benches/.work.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=3
nbexec=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --nbexec) nbexec=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
target=${CARGO_TARGET_DIR:-$root/target}
if [ -z "$nbexec" ]; then
  if [ -x "$target/release/nbexec" ]; then nbexec=$target/release/nbexec; else nbexec=$target/debug/nbexec; fi
fi
[ -x "$nbexec" ] || { echo "bench: no nbexec at $nbexec: build it first" >&2; exit 2; }

scripts/venv.sh gateway
work=$root/benches/.work
venv=$work/gateway-venv
stamp=$venv/.nbexec-bench-gateway-1
if [ ! -f "$stamp" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    papermill==2.7.0 jupyter_server==2.21.1 ipykernel==7.4.0
  touch "$stamp"
fi
mkdir -p "$work/gateway"
cd "$work/gateway"

"$venv/bin/python" - <<'EOF'
import json
def nb(n):
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
              "outputs": [], "source": f"x = {i}"} for i in range(n)]
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
            "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
for n in (1, 1000):
    json.dump(nb(n), open(f"cells{n}.ipynb", "w"))
EOF

port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
"$root/.venv-gateway/bin/jupyter-kernelgateway" --KernelGatewayApp.ip=127.0.0.1 \
  --KernelGatewayApp.port="$port" --KernelGatewayApp.port_retries=0 \
  --JupyterWebsocketPersonality.list_kernels=True > kg.log 2>&1 &
kg=$!
trap 'kill $kg 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('$url/api')" 2>/dev/null; then break; fi
  sleep 0.2
done

cat > pm.py <<'EOF'
import sys, time
t0 = time.perf_counter()
import papermill as pm
pm.execute_notebook(sys.argv[1], sys.argv[2], kernel_name="python3", progress_bar=False,
                    kernel_manager_class="jupyter_server.gateway.managers.GatewayKernelManager")
print(f"{time.perf_counter() - t0:.3f}", file=sys.stderr)
EOF

now() { date +%s.%N; }
declare -A times
for n in 1 1000; do
  for r in $(seq 1 "$rounds"); do
    t=$(now); "$nbexec" run "cells$n.ipynb" out-nbexec.ipynb --gateway-url "$url" 2>/dev/null
    times[nbexec-$n]+="$(echo "$(now) - $t" | bc) "
    t=$(now); inproc=$(JUPYTER_GATEWAY_URL=$url "$venv/bin/python" pm.py "cells$n.ipynb" out-pm.ipynb 2>&1 >/dev/null | tail -1)
    times[pm-$n]+="$(echo "$(now) - $t" | bc) "
    times[pmin-$n]+="$inproc "
    last() { echo "$1" | awk '{print $NF}'; }
    echo "bench: cells$n round $r: nbexec $(last "${times[nbexec-$n]}") s, papermill $(last "${times[pm-$n]}") s" >&2
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "nbexec: $nbexec; $rounds rounds; Kernel Gateway 3.0.1 at $url (no token)"
printf '%-12s %12s %16s %22s %10s\n' workload "nbexec s" "papermill s" "papermill in-proc s" ratio
for n in 1 1000; do
  a=$(echo "${times[nbexec-$n]}" | median); b=$(echo "${times[pm-$n]}" | median); c=$(echo "${times[pmin-$n]}" | median)
  ratio=$(echo "scale=3; $a / $b" | bc)
  verdict=$(echo "$ratio <= 0.7" | bc)
  printf '%-12s %12.3f %16.3f %22.3f %10s %s\n' "cells$n" "$a" "$b" "$c" "$ratio" "$([ "$verdict" = 1 ] && echo 'met (<= 0.7)' || echo 'missed (> 0.7)')"
done
curl_check=$("$venv/bin/python" -c "import urllib.request,json; print(len(json.load(urllib.request.urlopen('$url/api/kernels'))))" 2>/dev/null || echo "?")
echo "kernels left on the gateway: $curl_check"
