#!/usr/bin/env bash
# Installs what is missing (first run only), then runs the demo: embedded Redis Stack, simulated
# BLISS session, exporter on http://127.0.0.1:9811/metrics. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/bliss-exporter demo "$@"
