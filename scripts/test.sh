#!/usr/bin/env bash
# Installs what is missing (first run only), then lints (ruff) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
.venv/bin/ruff check --quiet exporter tests benchmarks
exec .venv/bin/python -m pytest "$@"
