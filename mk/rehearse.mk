# Rehearse the real deployment on moto: terraform/ applied for dev and prod against a
# moto server, its wiring checked against what SAM and the ops CLIs read, a second plan that must
# be empty, destroy. The overlay (moto endpoints + every moto gap) is demo/infra/moto_override.tf.
# `make test` runs it through tests/infra/test_rehearse_infra.py.
.PHONY: rehearse-infra

##@ test
rehearse-infra: venv ## terraform apply → wiring checks → empty plan → destroy, dev + prod, on moto (~2-3.5 min)
	$(call require_tool,$(TERRAFORM),https://developer.hashicorp.com/terraform/install)
	$(PY) -m demo.infra.rehearse $(foreach env,$(REHEARSE_ENVS),--env $(env))

REHEARSE_ENVS ?= dev prod
