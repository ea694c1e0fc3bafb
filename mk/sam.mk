# The event-driven automation: Lambdas + SAM (issue #5).
.PHONY: lint-sam sam-validate sam-build sam-deploy
lint-sam: venv
	@[ -f template.yaml ] || { echo "template.yaml is missing (issue #5)" >&2; exit 1; }
	$(VENV)/bin/cfn-lint template.yaml
sam-validate: ## Translate template.yaml with aws-sam-translator and cfn-lint both forms
	$(call not_done,5)
sam-build: ## sam build with a python3.12 interpreter
	$(call not_done,5)
sam-deploy: ## sam deploy --config-env $(ENV) (ENV=dev|prod)
	$(call not_done,5)
.PHONY: upload-model
upload-model: ## Upload MODEL=path to the models bucket with its sha256 metadata
	$(call not_done,5)
