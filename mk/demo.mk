# The local rehearsal of the whole loop (issue #7) and EzSpeech conversion (issue #8).
.PHONY: demo convert-ezspeech
demo: ## The whole event-driven rollout loop on this machine (moto + real server + real Lambdas)
	$(call not_done,7)
convert-ezspeech: ## Convert an EzSpeech CKPT=... TOKENIZER=... into OUT=... (safe format)
	$(call not_done,8)
