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
# One build, with the `tls` feature (https gateways) on: tests/gateway_tls.rs needs it,
# and a second build without it would compile the crates above nbexec-gateway twice.
# The feature only adds the https path; `cargo clippy` checks the default build.
cargo test --workspace --locked --no-fail-fast --features nbexec/tls "$@"
# A build without `remote` names the feature when given a URL: only the root package
# and the crates whose features change are rebuilt for this, not the workspace.
cargo test -p nbexec --locked --no-default-features --test storage
