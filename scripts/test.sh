#!/usr/bin/env bash
# The test suite: provisions the local Python (ipykernel and the oracles the tests
# compare against, and a Kernel Gateway in .venv-gateway) on the way, then runs
# every test of the workspace.
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/venv.sh test
# Jupyter Kernel Gateway in its own environment, for tests/gateway.rs (remote kernels).
scripts/venv.sh gateway
# Headless Chromium (Debian's package), for the report page tests.
scripts/chromium.sh
# Tests find the kernel through the project's own environment, never one installed by hand.
export VIRTUAL_ENV="$root/.venv"
export PATH="$root/.venv/bin:$PATH"
# The default features include `remote` (object stores, HTTP, Jupyter's Contents API),
# so this one build runs the storage tests too (against moto_server and jupyter-server
# on loopback, which they start themselves).
cargo test --workspace --locked --no-fail-fast "$@"
# A build without `remote` names the feature when given a URL: only the root package
# and the crates whose features change are rebuilt for this, not the workspace.
cargo test -p nbexec --locked --no-default-features --test storage
