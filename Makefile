# The two commands a new user needs (see README): `make demo` and `make test`.
# Each creates the virtual environment it needs; nothing is installed by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck unit scenarios validate postgres temporal clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Main job: 20,000 synthetic complaints through the SP4N-LAPOR! workflow on the embedded runtime
# (SQLite file lapor-demo.db), on a virtual clock across the 2026 holidays, then the report.
demo: setup
	$(BIN)/lapor demo

# PostgreSQL server binaries from Debian packages for the runtime tests (started per test session).
postgres:
	sh scripts/ensure-postgres.sh

# The Temporal dev server (built with go install, v1.5.1) and the time-skipping test server (Maven
# Central), cached under ~/.cache/lapor-sla/temporal: minutes the first time, instant after.
temporal:
	sh scripts/temporal-server.sh >/dev/null

# ruff, and the import contracts of pyproject.toml (layers point down, no cycles).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check engine workers
	$(BIN)/lint-imports --no-cache

typecheck: setup
	$(BIN)/mypy --strict engine workers

validate: setup
	$(BIN)/lapor validate workflows/ policies/

scenarios: setup
	$(BIN)/lapor test policies/tests/

unit: setup postgres temporal
	$(BIN)/pytest -q

test: lint typecheck validate scenarios unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
