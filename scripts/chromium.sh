#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium for the report tests (page loads with no
# network request and no console error, screenshots). Idempotent: nothing to do when
# `chromium` is already there. Needs root (apt-get), as on the project's machines and CI.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
echo "nbexec: installing chromium for the report tests" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
