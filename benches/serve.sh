#!/usr/bin/env bash
# nbexec serve benchmark (performance spec, second round), against papermill measured
# in the same run:
#  (a) submit->COMPLETED of a 1-cell notebook through HTTP (executeNotebook, then the
#      job's events stream), warm kernel pool, 30 submissions 1 s apart: the median,
#      against one `papermill` run of the same notebook (whole process; median of 3).
#      Target <= 1/10.
#  (b) 200 submissions at once, until all are finished, against a sequential papermill
#      loop over the same 200 runs: papermill runs --pm-runs times (default 10) and is
#      scaled to 200 (said in the table). Target <= 0.3.
#  (c) GET /admin/notebooks/jobs?f=json with 10,000 jobs in the registry (the jobs of
#      (a) and (b), copied): median latency over 50 requests (target < 20 ms), and the
#      server process's RSS when idle (target < 30 MB), after a restart with those jobs
#      and again after the requests. The warm kernels are processes of their own and
#      are not counted.
# Defaults: the server's --workers (one per core) and --max-queue 1000; executeNotebook
# is called as ArcGIS clients call it (f=json, itemId; updatePortalItem defaults to true).
#
# Usage: benches/serve.sh [--nbexec PATH] [--pm-runs N] [--submissions N]
#   --nbexec PATH     the nbexec binary (default: $CARGO_TARGET_DIR or ./target,
#                     release if built, else debug; the table says which)
# Uses the project's .venv (papermill 2.7.0, ipykernel; scripts/venv.sh test makes it
# if it is missing). Everything it writes is under benches/.work/serve.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
nbexec=""
pm_runs=10
burst_n=200
while [ $# -gt 0 ]; do
  case "$1" in
    --nbexec) nbexec=$2; shift 2 ;;
    --pm-runs) pm_runs=$2; shift 2 ;;
    --submissions) burst_n=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
target=${CARGO_TARGET_DIR:-$root/target}
if [ -z "$nbexec" ]; then
  if [ -x "$target/release/nbexec" ]; then nbexec=$target/release/nbexec; else nbexec=$target/debug/nbexec; fi
fi
[ -x "$nbexec" ] || { echo "bench: no nbexec at $nbexec: build it first" >&2; exit 2; }
[ -x "$root/.venv/bin/papermill" ] || scripts/venv.sh test
export VIRTUAL_ENV=$root/.venv
export PATH=$root/.venv/bin:$PATH
py=$root/.venv/bin/python
client=$root/benches/serve_client.py

work=$root/benches/.work/serve
rm -rf "$work"
mkdir -p "$work"
cd "$work"
state=$work/state
mkdir -m 700 "$state"
"$py" - <<'PY'
import json
nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "c0", "metadata": {},
                 "outputs": [], "source": "x = 1 + 1\nprint(x)"}],
      "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
      "nbformat": 4, "nbformat_minor": 5}
json.dump(nb, open("one-cell.ipynb", "w"))
PY
item=$("$nbexec" items add one-cell.ipynb --state-dir "$state" --title one-cell | tail -1)

server=""
start_server() {
  : > serve.out
  "$nbexec" serve --bind 127.0.0.1:0 --state-dir "$state" --max-queue 1000 > serve.out 2> serve.err &
  server=$!
  for _ in $(seq 1 300); do
    if grep -q 'listening on' serve.out 2>/dev/null; then break; fi
    sleep 0.1
  done
  url=$(sed -n 's/^nbexec serve: listening on //p' serve.out | head -1)
  [ -n "$url" ] || { echo "bench: nbexec serve did not start:" >&2; cat serve.err >&2; exit 2; }
}
stop_server() {
  if [ -n "$server" ]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
trap stop_server EXIT
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { "$py" -c "import json,sys; print(json.load(sys.stdin)$1)"; }

echo "bench: load before: $(uptime)" >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# Papermill, the peer: one run of the same notebook, 3 times, and the loop for (b).
pm_times=""
for r in 1 2 3; do
  t=$(now); papermill --no-progress-bar one-cell.ipynb pm-out.ipynb -k python3 >/dev/null 2>&1
  pm_times+="$(echo "$(now) - $t" | bc) "
done
pm_one=$(echo "$pm_times" | median)
echo "bench: papermill 1-cell: $pm_times" >&2

start_server
sleep 3   # the warm pool starts its kernels
echo "bench: (a) 30 submissions 1 s apart at $url" >&2
a=$("$py" "$client" latency "$url" "$item" 30 1.0)
a_median=$(echo "$a" | field '["median"]')
a_status=$(echo "$a" | field '["statuses"]')
a_queued=$(echo "$a" | field '["median_queued"]')
a_run=$(echo "$a" | field '["median_start_to_end"]')

echo "bench: (b) $burst_n submissions at once" >&2
b=$("$py" "$client" burst "$url" "$item" "$burst_n")
b_total=$(echo "$b" | field '["total"]')
b_done=$(echo "$b" | field '["finished"]')
b_status=$(echo "$b" | field '["statuses"]')

t=$(now)
for r in $(seq 1 "$pm_runs"); do
  papermill --no-progress-bar one-cell.ipynb pm-out.ipynb -k python3 >/dev/null 2>&1
done
pm_loop=$(echo "($(now) - $t) * $burst_n / $pm_runs" | bc -l)

stop_server
echo "bench: (c) seeding the registry to 10,000 jobs" >&2
seeded=$("$py" "$client" seed "$state" 10000 | field '["jobs"]')
start_server
sleep 3
rss_idle=$(rss_kb "$server")
c=$("$py" "$client" list "$url" 50)
c_median=$(echo "$c" | field '["median_ms"]')
c_count=$(echo "$c" | field '["jobs_in_answer"]')
c_bytes=$(echo "$c" | field '["bytes"]')
sleep 2
rss_after=$(rss_kb "$server")
stop_server
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

ratio() { echo "scale=3; $1 / $2" | bc -l; }
verdict() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo met; else echo missed; fi; }
echo
echo "nbexec: $nbexec; papermill $(papermill --version 2>/dev/null | head -1 | awk '{print $1}'); $(nproc) cores"
echo "load average (1/5/15 min) before: $load_before; after: $load_after"
printf '%-58s %12s %14s %8s  %s\n' measurement nbexec papermill ratio target
printf '%-58s %11.3fs %13.3fs %8s  %s\n' "(a) submit->COMPLETED, 1 cell, median of 30 ($a_status)" "$a_median" "$pm_one" \
  "$(ratio "$a_median" "$pm_one")" "<= 0.1: $(verdict "$a_median <= $pm_one * 0.1")"
echo "    the server's record, medians: queued $a_queued s, start to end $a_run s"
printf '%-58s %11.3fs %13.3fs %8s  %s\n' "(b) $burst_n at once, all finished ($b_done, $b_status)" "$b_total" "$pm_loop" \
  "$(ratio "$b_total" "$pm_loop")" "<= 0.3: $(verdict "$b_total <= $pm_loop * 0.3")"
echo "    papermill loop: $pm_runs sequential runs, scaled to $burst_n"
printf '%-58s %10.2fms %14s %8s  %s\n' "(c) GET jobs?f=json, $seeded jobs ($c_count in answer, $c_bytes B), median of 50" "$c_median" - - \
  "< 20 ms: $(verdict "$c_median < 20")"
printf '%-58s %10.1fMB %14s %8s  %s\n' "(c) server RSS idle, after restart with $seeded jobs" "$(echo "$rss_idle / 1024" | bc -l)" - - \
  "< 30 MB: $(verdict "$rss_idle < 30 * 1024")"
printf '%-58s %10.1fMB %14s %8s  %s\n' "(c) server RSS idle, after the 50 list requests" "$(echo "$rss_after / 1024" | bc -l)" - - \
  "< 30 MB: $(verdict "$rss_after < 30 * 1024")"
