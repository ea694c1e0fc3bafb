# The streaming model and the shipped demo model.
# `make demo-model` is the exact recipe that produced asr_service/model_files/demo/demo.pt:
# synthesize the seeded espeak-ng corpus (build/demo-data, cached), train on the CPU, write the
# checkpoint, attach the grammar's word list (lexicon) and a word bigram LM with beam settings tuned
# on development sentences, evaluate it through the streaming path and write the model card.
DEMO_MODEL := asr_service/model_files/demo/demo.pt
MODEL ?= $(DEMO_MODEL)
##@ model
.PHONY: demo-model eval demo-clips
demo-model: venv system-deps open-vocab-deps ## Re-train the shipped demo model from scratch (espeak-ng speech; ~90 min on 2 cores)
	@mkdir -p build/demo-train && date +%s > build/demo-train/started-at
	nice -n 2 $(PY) -m training.train --output $(DEMO_MODEL)
	$(PY) -m training.lexicon --model $(DEMO_MODEL) --json build/demo-train/decoder-tuning.json
	$(PY) -m training.evaluate --model $(DEMO_MODEL) --json build/demo-train/eval.json
	$(PY) -m training.model_card --model $(DEMO_MODEL) --eval build/demo-train/eval.json \
		--started-at $$(cat build/demo-train/started-at)

eval: venv system-deps ## WER/CER of MODEL (default: the demo model) on held-out sentences, streaming path
	$(PY) -m training.evaluate --model $(MODEL)

demo-clips: venv system-deps ## Re-create tests/data/clips (held-out sentences, fixed voices)
	$(PY) -m training.clips
