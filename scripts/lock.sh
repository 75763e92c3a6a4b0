#!/usr/bin/env bash
# Regenerates requirements.lock from pyproject.toml in a throwaway venv, and
# from it requirements-runtime.lock (the runtime subset, same pins).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
"$tmp/venv/bin/pip" install -q -e ".[dev]"
{ echo "# Pinned versions of every runtime and test dependency; regenerate with scripts/lock.sh"
  "$tmp/venv/bin/pip" freeze --exclude-editable; } > requirements.lock
"$tmp/venv/bin/python" scripts/runtime_lock.py > requirements-runtime.lock
rm -rf "$tmp"
echo "requirements.lock and requirements-runtime.lock updated"
