#!/usr/bin/env bash
# The whole test suite: lint, type check, then every test against the real
# services (PostgreSQL, an S3 endpoint over HTTP, servers on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --dev
scripts/test-services.sh
echo "== ruff" && .venv/bin/ruff check src tests bench
echo "== mypy" && .venv/bin/mypy
echo "== pytest" && .venv/bin/pytest "$@"
