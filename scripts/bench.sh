#!/usr/bin/env bash
# Whole-run benchmark: nbexec against papermill, papermill with per-cell saving off
# and nbclient, on workloads it generates (1 to 5,000 cells, 12 MB of output, a 50 MB
# notebook, a failing notebook, 50 parameterised runs), interleaved, 3 rounds.
# Prints a table (median wall s, min-max, peak MB, ratios), nbexec's per-cell slope,
# and the targets of shared/spec/performance.md, each met or missed.
#
# Usage: scripts/bench.sh [--quick] [--rounds N] [--only WORKLOAD,...] [--json FILE] [--no-build]
#   --quick       about a minute: 1 cell, 100 cells, failing, 200 x 50 KB; 1 round
#   --rounds N    rounds per tool and workload (default 3; 1 with --quick)
#   --only W,...  workloads: cell1 cells100 cells1000 cells5000 out200x50k big50mb
#                 failing params50 io-image io-text
#   --json FILE   results as JSON (default benches/.work/results.json)
#   --no-build    use the nbexec already built in the target dir
# The full run takes about 20-25 minutes (papermill's default runs once on 1,000
# cells and on 50 MB, and never on 5,000 cells: ~43 minutes per the spec).
#
# Builds nbexec in release (./target, or $CARGO_TARGET_DIR), and provisions its own
# Python environment benches/.work/venv (papermill 2.7.0, nbclient 0.11.0, ipykernel
# 7.4.0 from PyPI) on the first run. Every tool runs on that venv's python3 kernel.
# Everything it writes is under benches/.work (gitignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

build=1
args=()
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$a") ;;
  esac
done

target=${CARGO_TARGET_DIR:-$root/target}
if [ "$build" = 1 ]; then
  echo "bench: building nbexec (release) in $target" >&2
  cargo build --release --locked --bin nbexec
fi
nbexec="$target/release/nbexec"
[ -x "$nbexec" ] || { echo "bench: no nbexec binary at $nbexec" >&2; exit 2; }

venv="$root/benches/.work/venv"
pins=(papermill==2.7.0 nbclient==0.11.0 ipykernel==7.4.0)
if [ ! -x "$venv/bin/python" ]; then
  echo "bench: creating $venv" >&2
  mkdir -p "$root/benches/.work"
  "${PYTHON:-python3}" -m venv "$venv"
fi
if ! "$venv/bin/python" - "${pins[@]}" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
EOF
then
  echo "bench: installing ${pins[*]} into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
fi

exec "$venv/bin/python" "$root/benches/harness/run.py" --nbexec "$nbexec" --venv "$venv" ${args[@]+"${args[@]}"}
