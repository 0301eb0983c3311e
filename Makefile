# Signoff: `make help` lists the targets.
SHELL := /bin/bash
UV_VERSION := 0.13.9
# uv itself, pinned, in a private venv: nothing is installed outside this folder.
UV := .tools/bin/uv
export UV_LINK_MODE := copy

.PHONY: help install browser oidc-provider run test lint typecheck unit bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## Install uv (if missing) and the locked dependencies into .venv, compiled
	@test -x $(UV) || (python3 -m venv .tools && .tools/bin/pip install --quiet "uv==$(UV_VERSION)")
	@# Bytecode now, not at each start (where __pycache__ cannot be written, every run
	@# would compile what it imports: about a second for `signoff serve`).
	@$(UV) sync --frozen --quiet --compile-bytecode
	@.venv/bin/python -m compileall -q src

run: install ## Start the server on the embedded default (SQLite, example policies, users); PORT=8100 for another port
	$(UV) run --frozen signoff serve $(if $(PORT),--port $(PORT))

browser: ## Install Debian's chromium for the browser tests, if it is missing (needs root)
	@# Playwright drives the system's chromium (its own browser download needs the internet).
	@# apt's output is shown only if it fails. Without chromium the browser tests skip,
	@# or fail under CI=true.
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" != 0 ]; then \
			echo "chromium is missing and only root can install it: the browser tests will skip"; \
		else \
			echo "Installing chromium for the browser tests (apt-get)"; \
			out=$$( { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -q --no-install-recommends chromium; } 2>&1 ) \
				|| { echo "$$out"; exit 1; }; \
		fi; }

oidc-provider: ## Install the test OpenID provider (tests/oidc_provider, npm ci) if node is here and it is missing
	@# The single sign-on tests run a real OpenID provider (oidc-provider, on Node). Without
	@# node or npm they skip, or fail under CI=true.
	@if [ ! -d tests/oidc_provider/node_modules ]; then \
		if command -v npm >/dev/null; then \
			npm ci --prefix tests/oidc_provider --no-audit --no-fund --loglevel=error; \
		else \
			echo "node/npm are missing: the single sign-on tests will skip"; \
		fi; \
	fi

test: install lint typecheck browser oidc-provider ## Install everything and run the whole test suite (SQLite and PostgreSQL) on two workers
	$(UV) run --frozen pytest -q -n 2 --dist loadfile

lint: install ## ruff lint and format check
	$(UV) run --frozen ruff check src tests benchmarks
	$(UV) run --frozen ruff format --check src tests benchmarks

typecheck: install ## mypy --strict on src/
	$(UV) run --frozen mypy

PG_BENCH ?= postgresql+psycopg://postgres@127.0.0.1:5432/signoff_bench

bench: install ## Run every benchmark (SQLite, then PostgreSQL at PG_BENCH) and print its figures: docs/benchmarks.md
	$(UV) run --frozen python benchmarks/run.py --workers 1,2
	$(UV) run --frozen python benchmarks/run.py --database-url $(PG_BENCH) --workers 1,2
	$(UV) run --frozen python benchmarks/mcp_proxy.py
	$(UV) run --frozen python benchmarks/gateway.py
	$(UV) run --frozen python benchmarks/startup.py
	$(UV) run --frozen python benchmarks/audit_verify.py
	$(UV) run --frozen python benchmarks/audit_verify.py --database-url $(PG_BENCH)

clean: ## Remove local state (.venv, .signoff)
	rm -rf .venv .tools .signoff .pytest_cache .mypy_cache .ruff_cache
