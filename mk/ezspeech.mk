# Serving existing EzSpeech checkpoints (issue #8).
.PHONY: convert-ezspeech
convert-ezspeech: ## Convert an EzSpeech CKPT=... TOKENIZER=... into OUT=... (safe format)
	$(call not_done,8)
