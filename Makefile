# The README's first two commands: `make up` (stand the platform up) and `make test` (offline suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= local
OUT ?= plan

.PHONY: up test plan bench upstream-charts test-upstream clean help

help:
	@echo "make up      stand the platform up (needs Docker for a local kind cluster, or a kube context)"
	@echo "make test    create .venv, install pinned dependencies, run the offline test suite"
	@echo "make plan    write the desired platform of STACK=$(STACK) to OUT=$(OUT)/ (offline)"
	@echo "make bench   print how long 'cd4ml plan' takes"
	@echo "make test-upstream  pull the pinned upstream charts (internet) and render them with the kit's values"

$(BIN)/cd4ml: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

up: $(BIN)/cd4ml
	$(BIN)/cd4ml up --stack $(STACK)

test: $(BIN)/cd4ml
	$(BIN)/python -m pytest

plan: $(BIN)/cd4ml
	$(BIN)/cd4ml plan --stack $(STACK) --out $(OUT)

bench: $(BIN)/cd4ml
	$(BIN)/python tests/benchmarks/plan_time.py

upstream-charts: $(BIN)/cd4ml
	$(BIN)/python tests/fetch_upstream_charts.py .upstream-charts

test-upstream: upstream-charts
	$(BIN)/python -m pytest tests/test_upstream_charts.py --upstream-charts .upstream-charts

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .upstream-charts
