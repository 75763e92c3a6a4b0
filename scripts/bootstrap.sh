#!/usr/bin/env bash
# Creates .venv and installs vaultwatch with its pinned dependencies; a no-op
# when the lock files have not changed since.
#   scripts/bootstrap.sh        runtime dependencies only (requirements-runtime.lock): the demo, bin/vaultwatch
#   scripts/bootstrap.sh --dev  every dependency (requirements.lock): tests, lint, benchmarks
# requirements.lock is the one source of pins; requirements-runtime.lock is its
# runtime subset, generated from it by scripts/lock.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
case "${1:-}" in
  --dev) kind=dev lock=requirements.lock ;;
  "") kind=runtime lock=requirements-runtime.lock ;;
  *) echo "usage: $0 [--dev]" >&2; exit 2 ;;
esac
stamp_for() { echo "$VENV/.lock-$1-$(cat "$2" pyproject.toml | sha256sum | cut -c1-16)"; }
stamp=$(stamp_for "$kind" "$lock")
if [ -f "$stamp" ]; then
  exit 0
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "vaultwatch needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if ! "$PYTHON" -m venv --help >/dev/null 2>&1; then
  echo "installing python3-venv" >&2
  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi
echo "setting up $VENV with the $kind dependencies (pinned by $lock)" >&2
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -r "$lock"
"$VENV/bin/pip" install -q --no-deps -e .
# A stamp says "what this lock pins is installed". The full set includes the
# runtime set, so a dev install stamps both; a runtime install leaves a current
# dev stamp alone (it changed no pin: both locks agree) and drops stale ones.
if [ "$kind" = dev ]; then
  rm -f "$VENV"/.lock-*
  touch "$(stamp_for runtime requirements-runtime.lock)"
else
  rm -f "$VENV"/.lock-runtime-* "$VENV"/.lock-????????????????  # and the one-lock stamp of before
  find "$VENV" -maxdepth 1 -name '.lock-dev-*' ! -path "$(stamp_for dev requirements.lock)" -delete
fi
touch "$stamp"
