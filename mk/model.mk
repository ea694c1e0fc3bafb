# The streaming model and the shipped demo model (issue #4).
.PHONY: demo-model eval
demo-model: ## Re-train the shipped demo model from scratch (espeak-ng synthetic speech)
	$(call not_done,4)
eval: ## WER/CER of a checkpoint on the held-out sentences, through the streaming path
	$(call not_done,4)
