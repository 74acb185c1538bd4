# The README's first two commands: `make up` (stand the platform up) and `make test` (offline suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The suite's own venv: the kit, the cloud stacks' providers, a real MLflow server... none of which may
# land in .venv, where each Pulumi package is a plugin the engine downloads before the first `up`.
TEST_VENV := .venv-test
TEST_BIN := $(TEST_VENV)/bin
STACK ?= local
OUT ?= plan

.PHONY: up test lint plan bench bench-envtest upstream-charts test-upstream envtest gitea test-envtest clean help

help:
	@echo "make up      stand the platform up (needs Docker for a local kind cluster, or a kube context)"
	@echo "make test    create .venv-test, install pinned dependencies, check layers, lint, types, run the offline suite"
	@echo "make plan    write the desired platform of STACK=$(STACK) to OUT=$(OUT)/ (offline)"
	@echo "make bench   print how long 'cd4ml plan' and the smoke suite take, and what the laptop stack costs (MLflow measured)"
	@echo "make test-upstream  pull the pinned upstream charts (internet) and render them with the kit's values"
	@echo "make envtest        build a Kubernetes control plane, kwok, the Pulumi CLI and the kit's providers from the"
	@echo "                    Go module proxy into ~/.cache/cd4ml/envtest (an hour, once; never in CI)"
	@echo "make test-envtest   the kit's up/down through the real engine against that control plane"

$(BIN)/cd4ml: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

# The tests also need a real MLflow server and the cloud providers (requirements-test.txt), which
# running the platform on a laptop does not.
$(TEST_VENV)/.test-deps: requirements.txt requirements-cloud.txt requirements-test.txt pyproject.toml
	$(PYTHON) -m venv $(TEST_VENV)
	$(TEST_BIN)/python -m pip install --quiet --upgrade pip
	$(TEST_BIN)/python -m pip install --quiet -r requirements-test.txt
	$(TEST_BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

# Checkov and np-guard's network-config-analyzer are CLI checkers whose pinned dependencies clash with
# the kit's (PyYAML, packaging...): each gets its own venv, which the tests call (tests/tools/).
TOOLS := $(TEST_VENV)/tools
$(TOOLS)/%/.installed: tests/tools/%.txt
	$(PYTHON) -m venv $(TOOLS)/$*
	$(TOOLS)/$*/bin/python -m pip install --quiet -r $<
	@touch $@

# Headless Chromium shows the handout pages as a person sees them (tests/test_handout_page.py): Debian's
# package, installed once (as root, or with sudo).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'

up: $(BIN)/cd4ml
	$(BIN)/cd4ml up --stack $(STACK)

# The layer contracts (import-linter), ruff and mypy (strict on the config and the platform model),
# all configured in pyproject.toml: seconds, before the suite.
lint: $(TEST_VENV)/.test-deps
	$(TEST_BIN)/lint-imports
	$(TEST_BIN)/ruff check .
	$(TEST_BIN)/mypy

# The envtest scenarios (a real control plane, minutes each) run with `make test-envtest`, never here.
# Two workers, each test file whole on one (its module fixtures, e.g. a fault matrix run ahead, start once);
# each worker starts its own session MLflow. TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
test: lint $(TEST_VENV)/.test-deps $(TOOLS)/checkov/.installed $(TOOLS)/nca/.installed $(CHROMIUM)
	CD4ML_TOOLS=$(TOOLS) CD4ML_REQUIRE_TOOLS=1 $(TEST_BIN)/python -m pytest -m "not envtest" -n $(TEST_WORKERS) --dist loadfile

plan: $(BIN)/cd4ml
	$(BIN)/cd4ml plan --stack $(STACK) --out $(OUT)

bench: $(TEST_VENV)/.test-deps
	$(TEST_BIN)/python tests/benchmarks/plan_time.py
	$(TEST_BIN)/python tests/benchmarks/smoke_time.py
	$(TEST_BIN)/python tests/benchmarks/laptop_cost.py

upstream-charts: $(BIN)/cd4ml
	$(BIN)/python tests/fetch_upstream_charts.py .upstream-charts

test-upstream: upstream-charts $(TEST_VENV)/.test-deps
	$(TEST_BIN)/python -m pytest tests/test_upstream_charts.py --upstream-charts .upstream-charts

envtest:
	bash tests/envtest/build.sh

gitea:  # the real Gitea tests/test_gitea_server.py runs (Go module proxy, ~5 min)
	bash tests/gitea/build.sh

# With CD4ML_UPSTREAM_CHARTS=DIR (`cd4ml charts --pull DIR`), the scenarios with upstream services run too.
test-envtest: $(BIN)/cd4ml $(TEST_VENV)/.test-deps
	$(TEST_BIN)/python -m pytest -m envtest tests/test_envtest_lifecycle.py -v -s

bench-envtest: $(BIN)/cd4ml $(TEST_VENV)/.test-deps
	$(TEST_BIN)/python tests/benchmarks/envtest_lifecycle.py

clean:
	rm -rf $(VENV) $(TEST_VENV) $(OUT) .pytest_cache .upstream-charts
