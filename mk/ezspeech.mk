# Serving existing EzSpeech checkpoints.
.PHONY: convert-ezspeech bench-ezspeech
# EzSpeech files carry their training config as pickled objects: reading them is opt-in.
ALLOW_PICKLE ?=
convert-ezspeech: venv ## Convert an EzSpeech CKPT=... TOKENIZER=... into OUT=... (safe format; ALLOW_PICKLE=1 for .ckpt files)
	@[ -n "$(CKPT)" ] && [ -n "$(TOKENIZER)" ] && [ -n "$(OUT)" ] || \
		{ echo "usage: make convert-ezspeech CKPT=last.ckpt TOKENIZER=bpe.model OUT=model.pt [ALLOW_PICKLE=1]" >&2; exit 2; }
	$(PY) -m asr_service.convert "$(CKPT)" --tokenizer "$(TOKENIZER)" --out "$(OUT)" $(if $(ALLOW_PICKLE),--allow-pickle) \
		|| { rc=$$?; [ -n "$(ALLOW_PICKLE)" ] || echo "(make: pass ALLOW_PICKLE=1 to read a file with pickled objects)" >&2; exit $$rc; }

bench-ezspeech: venv ## Parameter count + real-time factor of the 12-layer EzSpeech model on DEVICE=cpu|cuda
	$(PY) bench/ezspeech_rtf.py --device $(or $(DEVICE),cpu) $(BENCH_ARGS)
