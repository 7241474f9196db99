#!/usr/bin/env bash
# Installs what is missing (first run only), then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
exec .venv/bin/python -m pytest "$@"
