# The two commands a new user needs (see README): `make demo` and `make test`.
# Each creates the virtual environment it needs; nothing is installed by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck unit scenarios validate clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Main job. Until the embedded runtime lands: every shipped policy scenario, then one case that
# climbs the whole escalation ladder to Ombudsman RI, printed decision by decision.
demo: setup
	$(BIN)/lapor validate workflows/ policies/
	$(BIN)/lapor test policies/tests/
	$(BIN)/lapor simulate policies/tests/completion-lapse-climbs-ladder-to-ombudsman.yaml

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check engine workers

typecheck: setup
	$(BIN)/mypy --strict engine

validate: setup
	$(BIN)/lapor validate workflows/ policies/

scenarios: setup
	$(BIN)/lapor test policies/tests/

unit: setup
	$(BIN)/pytest -q

test: lint typecheck validate scenarios unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
