#!/usr/bin/env bash
# Runs one fuzz target, seeded from the repository's own test data.
# Usage: fuzz/run.sh [TARGET] [SECONDS]   (defaults: read_write, 600)
#        fuzz/run.sh SECONDS              (read_write, as before)
# Targets: read_write, params_json, params_yaml, esri_featureset, wire_decode.
# Needs `cargo install cargo-fuzz`. libFuzzer needs nightly-only rustc flags;
# RUSTC_BOOTSTRAP=1 lets stable pass them. Extra libFuzzer flags: FUZZ_ARGS="-jobs=1 ...".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=read_write
if [[ $# -gt 0 && ! $1 =~ ^[0-9]+$ ]]; then
  target=$1
  shift
fi
seconds=${1:-600}
cd "$here"
case "$target" in
  read_write)
    seeds=(../crates/nbexec-format/tests/corpus/canonical ../crates/nbexec-format/tests/corpus/raw)
    flags=(-dict=read_write.dict -max_len=65536)
    ;;
  params_json | params_yaml)
    seeds=("seeds/$target")
    flags=(-dict="dicts/$target.dict" -max_len=16384)
    ;;
  wire_decode)
    seeds=(seeds/wire_decode)
    flags=(-dict=dicts/wire_decode.dict -max_len=65536)
    ;;
  esri_featureset)
    seeds=(seeds/esri_featureset)
    # Large enough for thousands of rings: ring assignment must stay fast.
    flags=(-dict=dicts/esri_featureset.dict -max_len=262144)
    ;;
  *)
    echo "unknown target '$target' (read_write, params_json, params_yaml, esri_featureset, wire_decode)" >&2
    exit 2
    ;;
esac
mkdir -p "corpus/$target"
# shellcheck disable=SC2086
RUSTC_BOOTSTRAP=1 cargo +stable fuzz run "$target" "corpus/$target" "${seeds[@]}" \
  -- "${flags[@]}" -timeout=10 -max_total_time="$seconds" -print_final_stats=1 ${FUZZ_ARGS:-}
