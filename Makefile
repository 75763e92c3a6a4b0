# Two commands on a fresh machine: `make demo` runs the service, `make test` runs every test.
.PHONY: demo test lint bench venv lock

venv:
	@scripts/bootstrap.sh

demo: venv
	.venv/bin/vaultwatch demo

test:
	scripts/test.sh

lint: venv
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

bench: venv
	.venv/bin/python -m bench.backup_bench

lock:
	scripts/lock.sh
