# Terraform core stack, Dockerfile, image (issues #6, #9).
.PHONY: lint-tf lint-docker tf-plan tf-apply build push
lint-tf: tools-venv
	$(call not_done,6)
lint-docker: tools-venv
	$(call not_done,6)
tf-plan: ## terraform init + plan for ENV (needs Terraform and AWS credentials)
	$(call not_done,6)
tf-apply: ## terraform apply for ENV
	$(call not_done,6)
build: ## docker build the service image, tagged with the git revision
	$(call not_done,6)
push: ## Log in to ECR and push the image
	$(call not_done,6)
