# Terraform core stack, Dockerfile, image build and push.
#
#   make lint-tf lint-docker                      static checks (part of `make lint` / `make test`)
#   make tf-plan ENV=dev   make tf-apply ENV=dev  Terraform, one workspace per ENV, env/<ENV>.tfvars
#   make build             make push ENV=dev      image tagged with the git revision, pushed to ECR
#   make ecs-redeploy ENV=dev                     restart the service's tasks (e.g. after the first push)
.PHONY: lint-tf lint-docker tf-init tf-plan tf-apply build push ecs-redeploy

# nginx-light: tests/infra/test_dockerfile_compose.py runs the with-nginx proxy config for real.
APT_PACKAGES += nginx-light

ENV ?= dev
PROJECT ?= ezspeech
TF_DIR := terraform
TERRAFORM ?= terraform
# A local provider directory lets lint-tf validate offline; without one, init downloads the provider.
TF_PLUGIN_DIR ?= $(firstword $(wildcard /opt/tf-plugins))
TF_ARGS ?=
CHECKOV_OFFLINE := BC_SKIP_MAPPING=TRUE $(TOOLS_VENV)/bin/checkov --quiet --compact --skip-download
HADOLINT := $(TOOLS_VENV)/bin/hadolint

DOCKER ?= docker
IMAGE_NAME ?= ezspeech/asr-server
# Recursive (=) so git runs only for the targets that use them. "-dirty" when what goes into the
# image differs from the commit: such a tag is never pushed (ECR tags are immutable).
GIT_REVISION = $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
IMAGE_INPUTS := Dockerfile .dockerignore asr_service requirements/service.txt requirements/constraints.txt
GIT_DIRTY = $(if $(shell git status --porcelain -- $(IMAGE_INPUTS) 2>/dev/null),-dirty,)
IMAGE_TAG ?= $(GIT_REVISION)$(GIT_DIRTY)

define require_clean_tag
	@case "$(IMAGE_TAG)" in *-dirty) echo "IMAGE_TAG=$(IMAGE_TAG): commit the image inputs first (ECR tags are immutable), or pass IMAGE_TAG=<a pushed tag>" >&2; exit 1;; esac
endef
define require_env
	@case "$(ENV)" in dev|prod) ;; *) echo "ENV must be dev or prod, got '$(ENV)'" >&2; exit 1;; esac
endef
define require_tool
	@command -v $(1) >/dev/null || { echo "make $@ needs '$(1)' on PATH ($(2))" >&2; exit 1; }
endef

# ---------------------------------------------------------------------------- static checks
lint-tf: tools-venv ## checkov over terraform/ (+ terraform fmt -check and validate when terraform is installed)
	$(CHECKOV_OFFLINE) -d $(TF_DIR) --framework terraform
	@if ! command -v $(TERRAFORM) >/dev/null; then \
		echo ">> terraform not installed: fmt/validate skipped (run them where Terraform is available)"; exit 0; fi; \
	export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1; \
	$(TERRAFORM) fmt -check -recursive -diff $(TF_DIR); \
	work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT; \
	tar -C $(TF_DIR) --exclude=.terraform --exclude=.terraform.lock.hcl --exclude='*.tfstate*' -cf - . | tar -C "$$work" -xf -; \
	$(TERRAFORM) -chdir="$$work" init -backend=false -input=false -no-color \
		$(if $(TF_PLUGIN_DIR),-plugin-dir=$(TF_PLUGIN_DIR)) >/dev/null; \
	$(TERRAFORM) -chdir="$$work" validate -no-color

lint-docker: tools-venv ## hadolint + checkov over the Dockerfile
	$(HADOLINT) Dockerfile
	$(CHECKOV_OFFLINE) -f Dockerfile --framework dockerfile

# ---------------------------------------------------------------------------- terraform
tf-init:
	$(call require_tool,$(TERRAFORM),https://developer.hashicorp.com/terraform/install)
	$(call require_env)
	$(TERRAFORM) -chdir=$(TF_DIR) init -input=false
	$(TERRAFORM) -chdir=$(TF_DIR) workspace select -or-create=true $(ENV)

tf-plan: tf-init ## terraform plan for ENV=dev|prod (needs Terraform and AWS credentials)
	$(TERRAFORM) -chdir=$(TF_DIR) plan -input=false -var-file=env/$(ENV).tfvars \
		-var image_tag=$(IMAGE_TAG) -out=.terraform/$(ENV).tfplan $(TF_ARGS)

tf-apply: tf-init ## terraform apply for ENV=dev|prod (asks for confirmation; image_tag = the git revision)
	$(call require_clean_tag)
	$(TERRAFORM) -chdir=$(TF_DIR) apply -var-file=env/$(ENV).tfvars -var image_tag=$(IMAGE_TAG) $(TF_ARGS)

# ---------------------------------------------------------------------------- image
build: ## docker build the service image, tagged with the git revision (DOCKER=podman works too)
	$(call require_tool,$(DOCKER),or set DOCKER=podman)
	$(DOCKER) build --platform linux/amd64 \
		--label org.opencontainers.image.revision=$(GIT_REVISION) \
		--label org.opencontainers.image.title=asr-server \
		-t $(IMAGE_NAME):$(IMAGE_TAG) .
	@echo ">> built $(IMAGE_NAME):$(IMAGE_TAG)"

push: ## Log in to ECR and push the git-revision image to the ENV=dev|prod repository
	$(call require_tool,$(DOCKER),or set DOCKER=podman)
	$(call require_tool,aws,the AWS CLI v2)
	$(call require_env)
	$(call require_clean_tag)
	@url="$${ECR_URL:-}"; \
	if [ -z "$$url" ]; then \
		url=$$(aws ssm get-parameter --name /$(PROJECT)/$(ENV)/ecr-repository-url --query Parameter.Value --output text); fi; \
	registry="$${url%%/*}"; region=$$(echo "$$registry" | cut -d. -f4); \
	echo ">> docker login $$registry"; \
	aws ecr get-login-password --region "$$region" | $(DOCKER) login --username AWS --password-stdin "$$registry"; \
	$(DOCKER) tag $(IMAGE_NAME):$(IMAGE_TAG) "$$url:$(IMAGE_TAG)"; \
	$(DOCKER) push "$$url:$(IMAGE_TAG)"; \
	echo ">> pushed $$url:$(IMAGE_TAG)"

ecs-redeploy: ## Start fresh tasks of the service's current task definition (ENV=dev|prod)
	$(call require_tool,aws,the AWS CLI v2)
	$(call require_env)
	@cluster=$$(aws ssm get-parameter --name /$(PROJECT)/$(ENV)/cluster-name --query Parameter.Value --output text); \
	service=$$(aws ssm get-parameter --name /$(PROJECT)/$(ENV)/service-name --query Parameter.Value --output text); \
	aws ecs update-service --cluster "$$cluster" --service "$$service" --force-new-deployment \
		--query 'service.deployments[0].[id,rolloutState]' --output text
