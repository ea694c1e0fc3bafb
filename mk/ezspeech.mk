# Serving existing EzSpeech checkpoints, and the small EzSpeech-layout model trained here.
.PHONY: convert-ezspeech bench-ezspeech bench-chunked-geometry bench-ezspeech-rtf ezspeech-small-model gpu-check-files
# EzSpeech files carry their training config as pickled objects: reading them is opt-in.
ALLOW_PICKLE ?=
# The small ctc_sc-layout Conformer trained on the synthetic corpus (tests, bench-ezspeech).
EZSPEECH_SMALL_DIR := build/ezspeech-small
EZSPEECH_SMALL_MODEL := asr_service/model_files/ezspeech-small/ctc_sc_small.pt
##@ model
convert-ezspeech: venv ## Convert an EzSpeech CKPT=... TOKENIZER=... into OUT=... (safe format; ALLOW_PICKLE=1 for .ckpt files)
	@[ -n "$(CKPT)" ] && [ -n "$(TOKENIZER)" ] && [ -n "$(OUT)" ] || \
		{ echo "usage: make convert-ezspeech CKPT=last.ckpt TOKENIZER=bpe.model OUT=model.pt [ALLOW_PICKLE=1]" >&2; exit 2; }
	$(PY) -m ezspeech_convert "$(CKPT)" --tokenizer "$(TOKENIZER)" --out "$(OUT)" $(if $(ALLOW_PICKLE),--allow-pickle) \
		|| { rc=$$?; [ -n "$(ALLOW_PICKLE)" ] || echo "(make: pass ALLOW_PICKLE=1 to read a file with pickled objects)" >&2; exit $$rc; }

# The exact recipe of $(EZSPEECH_SMALL_MODEL): train in EzSpeech's own checkpoint layout
# (last.ckpt + tokenizer.model, what an EzSpeech user has), then take the user's path in.
ezspeech-small-model: venv system-deps ## Re-train the small ctc_sc-layout Conformer (synthetic speech; 40-minute budget, synthesis included) and convert it
	nice -n 5 $(PY) -m training.ezspeech_small --out-dir $(EZSPEECH_SMALL_DIR) $(TRAIN_ARGS)
	$(MAKE) convert-ezspeech CKPT=$(EZSPEECH_SMALL_DIR)/last.ckpt TOKENIZER=$(EZSPEECH_SMALL_DIR)/tokenizer.model \
		OUT=$(EZSPEECH_SMALL_MODEL)
	cp $(EZSPEECH_SMALL_DIR)/train-summary.json $(dir $(EZSPEECH_SMALL_MODEL))train-summary.json

##@ test
bench-ezspeech: venv system-deps ## chunked vs growing-window vs whole-utterance: WER, CPU per audio second, eof → final, full-size streams per core
	nice -n 5 $(PY) -m bench.ezspeech_strategies --json bench/results/ezspeech/strategies.json $(BENCH_ARGS)

bench-chunked-geometry: venv system-deps ## chunked window geometries (left + chunk + right) on the development sentences: WER against CPU per audio second
	nice -n 5 $(PY) -m bench.chunked_geometry --json bench/results/ezspeech/chunked-geometry.json $(BENCH_ARGS)

bench-ezspeech-rtf: venv ## Parameter count + real-time factor of the 12-layer EzSpeech model on DEVICE=cpu|cuda
	$(PY) bench/ezspeech_rtf.py --device $(or $(DEVICE),cpu) $(BENCH_ARGS)

# What bench/gpu_check.sh needs on a GPU machine that has no network and no espeak-ng: wheels of
# the service's pure dependencies for its python (GPU_PY_VERSION), held-out audio, the tokenizer.
GPU_FILES := build/gpu
GPU_PY_VERSION ?= 3.12
GPU_WHEELS := websockets structlog soundfile cffi pycparser
gpu-check-files: venv system-deps ## Prepare build/gpu for bench/gpu_check.sh (EzSpeech full-size checks on a GPU machine without network)
	rm -rf $(GPU_FILES)/whl && mkdir -p $(GPU_FILES)/whl
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PY_VERSION) --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		--platform manylinux1_x86_64 -d $(GPU_FILES)/whl \
		$$(grep -E '^($(subst $() ,|,$(GPU_WHEELS)))==' requirements/constraints.txt)
	$(PY) -m bench.ezspeech_precision --write-audio $(GPU_FILES)/heldout.npz --sentences 100
	$(PY) -m bench.ezspeech_full_model --tokenizer-only $(GPU_FILES)/tokenizer.model
