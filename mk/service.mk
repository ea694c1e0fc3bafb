# asr_service: the container's program (issue #3).
.PHONY: serve bench
serve: ## Run the ASR server locally on the shipped demo model (ws :8765, http :8080)
	$(call not_done,3)
bench: ## Load-test a real local server: concurrent streams vs latency table
	$(call not_done,3)
