# asr_service: the container's program (issue #3) and its model (issue #4).
.PHONY: serve bench demo-model eval
serve: ## Run the ASR server locally on the shipped demo model (ws :8765, http :8080)
	$(call not_done,3)
bench: ## Load-test a real local server: concurrent streams vs latency table
	$(call not_done,3)
demo-model: ## Re-train the shipped demo model from scratch (espeak-ng synthetic speech)
	$(call not_done,4)
eval: ## WER/CER of a checkpoint on the held-out sentences, through the streaming path
	$(call not_done,4)
