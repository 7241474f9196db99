#!/usr/bin/env bash
# Installs what is missing (first run only), then runs the demo: embedded Redis Stack, simulated
# BLISS session, exporter on http://127.0.0.1:9811/metrics. Ctrl-C stops it all.
# `scripts/demo.sh --data-model legacy`: a BLISS 1.x session instead (published by blissdata 0.3.1).
set -euo pipefail
cd "$(dirname "$0")/.."
case " $* " in
  *" --data-model legacy "*|*" --data-model=legacy "*) scripts/bootstrap.sh --legacy ;;
  *) scripts/bootstrap.sh ;;
esac
exec .venv/bin/bliss-exporter demo "$@"
