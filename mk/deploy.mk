# Ship a new container image: the code counterpart of `make upload-model`.
#
#   make build push ENV=dev                 the image, tagged with the git revision, into ECR
#   make deploy-image ENV=dev TAG=<tag>     a new task-definition revision with only the image
#                                           changed, rolled out like a model (refused when the tag
#                                           is not in ECR or its scan has findings >= HIGH)
.PHONY: deploy-image

##@ deploy
deploy-image: venv ## Roll image TAG (default: the git revision) out to ENV's service; model pin, secrets, settings kept
	$(call require_env)
	$(PY) -m ops.deploy_image --env "$(ENV)" --tag "$(or $(TAG),$(IMAGE_TAG))" $(DEPLOY_IMAGE_ARGS)
