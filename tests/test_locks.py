"""The lock files: requirements-runtime.lock is exactly the runtime part of requirements.lock."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _runtime_lock_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "runtime_lock", ROOT / "scripts" / "runtime_lock.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins(text: str) -> set[str]:
    return {line for line in text.splitlines() if line.strip() and not line.startswith("#")}


def test_runtime_lock_is_the_runtime_closure_of_the_full_lock() -> None:
    script = _runtime_lock_script()
    full = (ROOT / "requirements.lock").read_text()
    expected = script.runtime_lock(full, (ROOT / "pyproject.toml").read_text())
    actual = (ROOT / "requirements-runtime.lock").read_text()
    assert actual == expected, (
        "requirements-runtime.lock is out of date: run `make lock`, or "
        "`.venv/bin/python scripts/runtime_lock.py > requirements-runtime.lock`"
    )
    runtime = _pins(actual)
    assert runtime <= _pins(full)  # the same pins, never other versions
    names = {line.split("==")[0].lower() for line in runtime}
    assert {"fastapi", "sqlalchemy", "cryptography", "pysnmp"} <= names  # what the service runs on
    assert not {"pytest", "ruff", "mypy", "moto", "playwright", "hypothesis"} & names  # dev only
