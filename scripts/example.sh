#!/usr/bin/env bash
# The main job: runs the example notebook with a string, a number, a date and an Esri
# FeatureSet as parameters, on a real Python kernel provisioned on the way, and shows
# what it printed. The executed notebook is written to target/example/output.ipynb.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/venv.sh kernel
export VIRTUAL_ENV="$root/.venv"
cargo build --release --locked --quiet
mkdir -p target/example
exec target/release/nbexec run fixtures/example.ipynb target/example/output.ipynb \
  -p city "Redlands" \
  -p min_area 2.5 \
  -p report_date 2026-11-22T09:30:00Z \
  -f fixtures/example-params.json \
  --log-output "$@"
