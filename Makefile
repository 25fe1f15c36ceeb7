# Every target bootstraps .venv on its own: a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SB := $(BIN)/syncbridge
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: venv demo test lint format migrate worker mocks serve bench drills clean

venv: $(STAMP)

$(STAMP): pyproject.toml plugins/customer/pyproject.toml plugins/invoice/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e plugins/customer -e plugins/invoice
	touch $(STAMP)

demo: venv
	$(SB) demo

test: lint
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: venv
	$(SB) migrate

worker: venv
	$(SB) worker

mocks: venv
	$(SB) mocks serve

serve: venv
	$(SB) serve

# Every figure of docs/performance.md, measured again (30-40 minutes; docs/perf/run.sh).
bench: venv
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	docs/perf/run.sh

drills: venv
	$(BIN)/python -m pytest -q -m processes

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache syncbridge.db syncbridge.db-*
