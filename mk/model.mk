# The streaming model and the shipped demo model.
# `make demo-model` is the exact recipe that produced asr_service/model_files/demo/demo.pt: the
# open-vocabulary phoneme recipe of mk/open_vocab.mk (`demo-model-open`) written over the shipped
# file and its card. `make demo-model-grammar` is the earlier recipe (letters, the template grammar
# only, its word list and a bigram LM), kept for comparison: it writes GRAMMAR_MODEL.
DEMO_MODEL := asr_service/model_files/demo/demo.pt
GRAMMAR_MODEL ?= build/candidate/demo-grammar.pt
MODEL ?= $(DEMO_MODEL)
##@ model
.PHONY: demo-model demo-model-grammar eval demo-clips
demo-model: ## Re-train the shipped demo model from scratch (open vocabulary, phoneme targets; ~85 min on 2 cores)
	$(MAKE) demo-model-open OPEN_MODEL=$(DEMO_MODEL)

demo-model-grammar: venv system-deps ## The earlier grammar-only letter model, into GRAMMAR_MODEL (~80 min on 2 cores)
	@mkdir -p build/demo-train && date +%s > build/demo-train/started-at
	nice -n 2 $(PY) -m training.train --output $(GRAMMAR_MODEL)
	$(PY) -m training.lexicon --model $(GRAMMAR_MODEL) --json build/demo-train/decoder-tuning.json
	$(PY) -m training.evaluate --model $(GRAMMAR_MODEL) --json build/demo-train/eval.json
	$(PY) -m training.model_card --model $(GRAMMAR_MODEL) --eval build/demo-train/eval.json \
		--started-at $$(cat build/demo-train/started-at)

eval: venv system-deps ## WER/CER of MODEL (default: the demo model) on held-out sentences, streaming path
	$(PY) -m training.evaluate --model $(MODEL)

demo-clips: venv system-deps ## Re-create tests/data/clips (held-out sentences, fixed voices)
	$(PY) -m training.clips
