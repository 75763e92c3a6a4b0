#!/usr/bin/env bash
# The whole test suite: lint, type check, then every test against the real
# services (PostgreSQL, S3 servers over HTTP, servers on loopback).
#
# PostgreSQL is a throwaway cluster of the suite's own (scripts/test-postgres.sh:
# own data directory, socket directory and port), removed when the run ends,
# however it ends; a PostgreSQL the machine runs is neither used nor touched.
# Set VAULTWATCH_TEST_POSTGRES_URL to run against a server of your choosing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --dev
scripts/test-services.sh
echo "== ruff" && .venv/bin/ruff check src tests bench
echo "== mypy" && .venv/bin/mypy
if [ -z "${VAULTWATCH_TEST_POSTGRES_URL:-}" ]; then
  pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/vaultwatch-pg.XXXXXX")
  trap 'scripts/test-postgres.sh stop "$pg_dir" || true; rm -rf "$pg_dir"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  echo "== postgresql"
  VAULTWATCH_TEST_POSTGRES_URL=$(VAULTWATCH_PG_OWNER_PID=$$ scripts/test-postgres.sh start "$pg_dir") || {
    echo "test.sh: could not start the tests' PostgreSQL (the reason is above)" >&2
    exit 1
  }
  export VAULTWATCH_TEST_POSTGRES_URL
fi
echo "== pytest" && .venv/bin/pytest "$@"
