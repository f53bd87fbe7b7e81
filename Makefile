# GridWatch: the commands people and CI share.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-fast check bench clean

setup: $(VENV)/.installed
	@bash scripts/setup-system.sh
	@$(BIN)/gridwatch stack fetch-kafka

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

## The main job: local stack + simulated storm, ending in stored series and a summary.
demo: setup
	$(BIN)/gridwatch demo

## Every test: unit, integration (real services on free ports), e2e (slow, marked).
test: setup
	$(BIN)/pytest

## Unit tests only (seconds).
test-fast: setup
	$(BIN)/pytest tests/unit -q

check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/gridwatch bench all --json var/bench.json

clean:
	-$(BIN)/gridwatch stack down
	rm -rf var
