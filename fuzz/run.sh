#!/usr/bin/env bash
# Runs the read_write fuzz target, seeded with the format crate's corpus notebooks.
# Usage: fuzz/run.sh [SECONDS]   (default 600). Needs `cargo install cargo-fuzz`.
# libFuzzer needs nightly-only rustc flags; RUSTC_BOOTSTRAP=1 lets stable pass them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-600}
cd "$here"
mkdir -p corpus/read_write
RUSTC_BOOTSTRAP=1 cargo +stable fuzz run read_write corpus/read_write \
  ../crates/nbexec-format/tests/corpus/canonical ../crates/nbexec-format/tests/corpus/raw \
  -- -dict=read_write.dict -max_len=65536 -timeout=10 -max_total_time="$seconds" -print_final_stats=1
