# The two commands a new user needs: `make run` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8400

.PHONY: run test install install-test lint bench bench-sizing clean

# Runtime install: the package and its pinned dependencies in a local virtualenv.
$(VENV)/.installed-runtime: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e .
	touch $@

install: $(VENV)/.installed-runtime

# Authorization server + guard + demo MCP server, SQLite under ./.mcpward/.
run: install
	$(VENV)/bin/mcpward serve --demo --host $(HOST) --port $(PORT)

# Installs everything the tests need (Debian packages, npm packages, dev tools), then runs them all.
install-test:
	scripts/install-test-deps.sh

# Lint and type-check first (seconds, and the cheapest failure), then the tests.
test: install-test
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The Python dev tools alone (ruff, mypy), for `make lint` on a machine without the rest;
# the same stamp scripts/install-test-deps.sh keeps, so neither reinstalls after the other.
$(VENV)/.installed-test: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	touch $@ $(VENV)/.installed-runtime

# The quality gates, over the code, the tests, the benchmarks and the shipped plugins:
# ruff (lint and format) and mypy in strict mode (files as in pyproject's [tool.mypy]).
LINT_PATHS := src tests bench security scripts
lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

bench: install-test
	$(PY) bench/token_endpoint.py
	$(PY) bench/guard.py
	$(PY) bench/dpop.py
	$(PY) bench/sizing.py

# The README's sizing table alone (about 8 minutes).
bench-sizing: install-test
	$(PY) bench/sizing.py

clean:
	rm -rf $(VENV) .mcpward .pytest_cache .mypy_cache .ruff_cache
