#!/usr/bin/env bash
# Installs what is missing (first run only), lints (ruff), type-checks (mypy), then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
.venv/bin/ruff check --quiet exporter tests benchmarks
.venv/bin/mypy --no-error-summary  # what and how strictly: [tool.mypy] in pyproject.toml
exec .venv/bin/python -m pytest "$@"
