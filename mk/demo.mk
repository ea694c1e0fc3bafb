# The local rehearsal of the whole loop (issue #7).
.PHONY: demo
demo: ## The whole event-driven rollout loop on this machine (moto + real server + real Lambdas)
	$(call not_done,7)
