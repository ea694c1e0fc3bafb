# The event-driven automation: Lambdas + SAM.
#
# .venv-sam holds aws-sam-cli (requirements/sam.txt) on a Python 3.12 interpreter, so `sam build`
# builds the python3.12 functions and layer without a container. It is created on first use.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_PYTHON ?= python3.12
SAM_HASH := $(shell cat requirements/sam.txt 2>/dev/null | sha256sum | cut -c1-16)
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_HASH)
SAM_TRANSLATED := build/sam/template.json
ENV ?= dev

$(SAM_STAMP):
	@echo ">> creating $(SAM_VENV) (aws-sam-cli on Python 3.12)"
	@[ -x $(SAM_VENV)/bin/python ] || PYENV_VERSION=3.11.7:3.12.1 $(SAM_PYTHON) -m venv $(SAM_VENV)
	@$(SAM_VENV)/bin/python -m pip install -q --upgrade pip >/dev/null
	@$(SAM_VENV)/bin/python -m pip install -q -r requirements/sam.txt
	@$(SAM) --version
	@rm -f $(SAM_VENV)/.installed-*; touch $@

.PHONY: sam-venv lint-sam sam-validate sam-build sam-deploy check-env
sam-venv: $(SAM_STAMP) ## Create/refresh .venv-sam (aws-sam-cli on Python 3.12)

check-env:
	@case "$(ENV)" in dev|prod) ;; *) echo "ENV must be dev or prod, got '$(ENV)'" >&2; exit 2;; esac

sam-validate: venv ## Translate template.yaml with aws-sam-translator and cfn-lint both forms
	$(PY) scripts/sam_translate.py template.yaml $(SAM_TRANSLATED)
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/cfn-lint $(SAM_TRANSLATED)

lint-sam: sam-validate tools-venv ## sam-validate + checkov on template.yaml (accepted findings skipped inline)
	$(TOOLS_VENV)/bin/checkov -f template.yaml --framework cloudformation --skip-download --quiet --compact

sam-build: sam-venv ## sam build (functions + shared layer, python3.12/arm64) into .aws-sam/
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM) build --template template.yaml

sam-deploy: check-env sam-build ## sam deploy --config-env $(ENV) (ENV=dev|prod; needs AWS credentials)
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM) deploy --config-env $(ENV)

# ---------------------------------------------------------------------------- models
.PHONY: upload-model rollout-model rollback-model model-status
upload-model: venv ## Upload MODEL=path (default: the demo model) with sha256 metadata (ENV=dev or BUCKET=, KEY=; GOLDEN=dir [GOLDEN_MAX_WER=0.1]: its golden set)
	@[ -n "$(MODEL)" ] || { echo "usage: make upload-model MODEL=path/to/model.pt [ENV=dev|BUCKET=name] [KEY=models/name.pt] [GOLDEN=dir|s3://...?versionId=V] [GOLDEN_MAX_WER=0.1]" >&2; exit 2; }
	$(PY) -m ops.upload_model "$(MODEL)" $(if $(BUCKET),--bucket "$(BUCKET)",--env "$(ENV)") $(if $(KEY),--key "$(KEY)") \
		$(if $(GOLDEN),--golden "$(GOLDEN)") $(if $(GOLDEN_MAX_WER),--golden-max-wer "$(GOLDEN_MAX_WER)")

rollout-model: venv ## Manual promote: roll out KEY=models/x.pt [VERSION=id] on ENV (same code as the Lambda)
	@[ -n "$(KEY)" ] || { echo "usage: make rollout-model KEY=models/name.pt [VERSION=s3-version-id] [ENV=dev]" >&2; exit 2; }
	$(PY) -m ops.rollout promote --env "$(ENV)" --key "$(KEY)" $(if $(VERSION),--version-id "$(VERSION)")

rollback-model: venv ## Manual rollback to the previous model on ENV (or to KEY=... VERSION=...)
	$(PY) -m ops.rollout rollback --env "$(ENV)" $(if $(KEY),--key "$(KEY)") $(if $(VERSION),--version-id "$(VERSION)")

model-status: venv ## Which task-definition revision and model the service on ENV runs now
	$(PY) -m ops.rollout status --env "$(ENV)"
