# Two commands on a fresh machine: `make demo` runs the service, `make test` runs every test.
# `make demo` installs only what Vaultwatch needs to run; test, lint and bench add the dev tools.
# Demo options: make demo ARGS="--port 9443 --dir /tmp/demo"
.PHONY: demo test lint bench venv dev-venv lock

venv:
	@scripts/bootstrap.sh

dev-venv:
	@scripts/bootstrap.sh --dev

demo: venv
	.venv/bin/vaultwatch demo $(ARGS)

test:
	scripts/test.sh

lint: dev-venv
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

bench: dev-venv
	.venv/bin/python -m bench.backup_bench

lock:
	scripts/lock.sh
