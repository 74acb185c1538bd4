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
	@echo "make bench   print how long 'cd4ml plan' and the smoke suite take, and what the laptop stack costs (MLflow measured)"
	@echo "make test-upstream  pull the pinned upstream charts (internet) and render them with the kit's values"

$(BIN)/cd4ml: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

# The tests also need a real MLflow server (requirements-test.txt), which running the platform does not.
$(VENV)/.test-deps: $(BIN)/cd4ml requirements-test.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	@touch $@

# Checkov and np-guard's network-config-analyzer are CLI checkers whose pinned dependencies clash with
# the kit's (PyYAML, packaging...): each gets its own venv, which the tests call (tests/tools/).
TOOLS := $(VENV)/tools
$(TOOLS)/%/.installed: tests/tools/%.txt
	$(PYTHON) -m venv $(TOOLS)/$*
	$(TOOLS)/$*/bin/python -m pip install --quiet -r $<
	@touch $@

up: $(BIN)/cd4ml
	$(BIN)/cd4ml up --stack $(STACK)

test: $(VENV)/.test-deps $(TOOLS)/checkov/.installed $(TOOLS)/nca/.installed
	CD4ML_TOOLS=$(TOOLS) CD4ML_REQUIRE_TOOLS=1 $(BIN)/python -m pytest

plan: $(BIN)/cd4ml
	$(BIN)/cd4ml plan --stack $(STACK) --out $(OUT)

bench: $(VENV)/.test-deps
	$(BIN)/python tests/benchmarks/plan_time.py
	$(BIN)/python tests/benchmarks/smoke_time.py
	$(BIN)/python tests/benchmarks/laptop_cost.py

upstream-charts: $(BIN)/cd4ml
	$(BIN)/python tests/fetch_upstream_charts.py .upstream-charts

test-upstream: upstream-charts $(VENV)/.test-deps
	$(BIN)/python -m pytest tests/test_upstream_charts.py --upstream-charts .upstream-charts

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .upstream-charts
