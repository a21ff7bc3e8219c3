# ReturnGuard: `make demo` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV_HOME := build/uv
UV := $(UV_HOME)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced-stamp
# checkov pins an old boto3: it gets its own virtualenv, outside uv.lock
CHECKOV_VERSION := 3.3.30
CHECKOV := build/checkov/bin/checkov
CHECK := $(PY) -m local.prerequisites
# SERVE=1 (or yes/true) keeps the demo's servers up; SERVE=0 or unset does not
SERVING := $(filter 1 yes true,$(SERVE))
SCALE ?= full
# the suite's workers: one per core of the 2-core machines it is budgeted on (tests/conftest.py groups them)
TEST_WORKERS ?= 2

export UV_CACHE_DIR := $(CURDIR)/build/uv-cache
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export JSII_RUNTIME_PACKAGE_CACHE_ROOT := $(CURDIR)/build/jsii-cache
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export AWS_EC2_METADATA_DISABLED := true
export PYTHONDONTWRITEBYTECODE := 1

.DEFAULT_GOAL := help
.PHONY: help setup demo test lint format unit synth bench model cfn-lint clean openapi docs-numbers checkov teardown-check rds-ca

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

$(UV):
	@echo "==> bootstrapping uv $(UV_VERSION) into $(UV_HOME)"
	@$(PYTHON) -m venv $(UV_HOME)
	@$(UV_HOME)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(STAMP): pyproject.toml uv.lock | $(UV)
	@echo "==> installing dependencies into $(VENV) (uv sync --frozen, bytecode compiled once)"
	@# PYTHONDONTWRITEBYTECODE (set here and on some machines) stops Python caching what it compiles, so
	@# without the .pyc files written now every process compiled pandas, boto3, ... again
	@$(UV) sync --frozen --quiet --compile-bytecode
	@touch $@

setup: $(STAMP) ## create .venv with every dependency group from uv.lock (about 2.6 GB under build/ and .venv/)

demo: $(STAMP) ## run the whole local pipeline, serve the model locally and score sample orders (offline); SERVE=1 keeps it up
	@$(PY) -m local.demo $(if $(SERVING),--serve)

test: $(STAMP) lint $(CHECKOV) ## lint, then run the whole test suite on TEST_WORKERS (2) pytest-xdist workers (checkov in build/checkov; installs MariaDB and Chromium with apt-get when missing)
	@$(CHECK) python java node
	@$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

unit: $(STAMP) ## only the fast unit tests
	@$(PY) -m pytest tests/unit -q

lint: $(STAMP) ## ruff, mypy on returnguard/, cfn-lint on cdk.out/ when synthesized (tests/infra runs it too)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@if ls cdk.out/*.template.json >/dev/null 2>&1; then bash scripts/cfn_lint.sh && echo "cfn-lint: clean"; \
	else echo "cfn-lint: no cdk.out yet (make synth); tests/infra/test_cfn_lint.py lints both stages in make test"; fi

cfn-lint: synth ## cfn-lint over the synthesized templates
	@bash scripts/cfn_lint.sh

format: $(STAMP) ## apply ruff's formatting and safe fixes
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

synth: build/model/model.tar.gz ## synthesize every stack into cdk.out/ (offline, no credentials)
	@$(CHECK) python node
	@$(PY) app.py

docs-numbers: $(STAMP) ## after `make demo`: record its run in docs/demo-run.json and render the figures README.md and docs/model.md quote
	@$(PY) -m local.docs_numbers

openapi: $(STAMP) ## regenerate docs/openapi.yaml from returnguard/schemas.py (a test fails when they differ)
	@$(PY) -m returnguard.openapi docs/openapi.yaml

bench: $(STAMP) ## run the benchmarks (SCALE=quick: minutes; full: about 40 min), write build/bench/results.json; UPDATE=1 rewrites benchmarks/results.json
	@$(CHECK) python java
	@$(PY) -m benchmarks.run --scale $(SCALE) $(if $(filter 1 yes true,$(UPDATE)),--out benchmarks/results.json)

teardown-check: $(STAMP) ## after `cdk destroy`: list what of STAGE (dev) still exists and bills, exit 1 if any (PREFIX=, AWS_REGION)
	@$(PY) -m returnguard.aws.teardown --stage $(or $(STAGE),dev) $(if $(PREFIX),--prefix $(PREFIX))

clean: ## remove generated files: cdk.out, build/demo, build/bench, build/model, build/test-cache (keeps .venv and the caches in build/uv*, build/jsii-cache)
	rm -rf cdk.out build/demo build/bench build/model build/test-cache build/assets .pytest_cache

model: $(STAMP) ## train the bootstrap model on synthetic data into build/model/ (what cdk deploy ships), with its payment lane
	@$(PY) -m training.bootstrap
	@$(PY) -m training.payment_bootstrap

build/model/model.tar.gz: | $(STAMP)
	@$(PY) -m training.bootstrap
	@$(PY) -m training.payment_bootstrap


$(CHECKOV):
	@echo "==> installing checkov $(CHECKOV_VERSION) into build/checkov (its own virtualenv: it pins an old boto3)"
	@$(PYTHON) -m venv build/checkov
	@build/checkov/bin/pip install --quiet "checkov==$(CHECKOV_VERSION)" || \
		{ echo "checkov could not be installed (tests/infra/test_checkov.py fails without it)"; exit 1; }

checkov: $(CHECKOV) ## install checkov into build/checkov (make test does this; tests/infra/test_checkov.py runs it)

rds-ca: ## download Amazon RDS's CA bundle into build/rds-ca/ (the blocklist sync verifies its database with it)
	@mkdir -p build/rds-ca
	@curl -fsSL https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem -o build/rds-ca/global-bundle.pem.tmp
	@grep -q "BEGIN CERTIFICATE" build/rds-ca/global-bundle.pem.tmp && mv build/rds-ca/global-bundle.pem.tmp build/rds-ca/global-bundle.pem
	@echo "build/rds-ca/global-bundle.pem: $$(grep -c 'BEGIN CERTIFICATE' build/rds-ca/global-bundle.pem) certificates"
