"""Open-vocabulary data: sources in one role each, test sentences never in training text, lexicon."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.open_vocab import data, normalize, sources
from training.open_vocab.evaluate import align, confusions
from training.train import encode_text

installed = all(Path(f).is_file() for s in sources.SOURCES for f in s.files)
needs_sources = pytest.mark.skipif(not installed, reason="make open-vocab-deps installs the text sources")


def test_sources_have_one_role_and_pinned_versions() -> None:
    assert {s.role for s in sources.SOURCES} == {"train", "test", "lexicon"}
    assert len({s.package for s in sources.SOURCES}) == len(sources.SOURCES)
    for source in sources.SOURCES:
        assert source.version and source.licence
    sources.check_roles(data.TRAIN_SOURCES, data.TEST_SOURCES)
    with pytest.raises(RuntimeError, match="share a source"):
        sources.check_roles((sources.WORDNET,), (sources.FORTUNES, sources.WORDNET))


def test_pinned_versions_match_the_make_stamp() -> None:
    makefile = (data.grammar_data.REPO / "mk" / "open_vocab.mk").read_text()
    for source in sources.SOURCES:
        assert f"{source.package}={source.version}" in makefile


@needs_sources
def test_test_sentences_are_seeded_and_never_in_training_or_dev_text() -> None:
    spec = data.OpenSpec()
    test = data.test_sentences(spec)
    assert test == data.test_sentences(spec) and len(set(test)) == spec.test_sentences
    training = set(data.lm_sentences(spec)) | set(data.train_sentences(spec)) | set(data.dev_sentences())
    assert not set(test) & training
    assert not set(data.dev_sentences()) & set(data.lm_sentences(spec))
    for sentence in test:
        assert data.TEST_MIN_WORDS <= len(sentence.split()) <= data.TEST_MAX_WORDS
        assert normalize.normalize_sentence(sentence) == sentence
        encode_text(sentence)
    with pytest.raises(data.LeakError, match="occur in training"):
        data.check_disjoint(test, [*data.lm_sentences(spec), test[3]])


@needs_sources
def test_training_mix_and_lexicon() -> None:
    spec = data.OpenSpec(open_train=500, grammar_train=100)
    train = data.train_sentences(spec)
    assert len(train) == 600 and train == data.train_sentences(spec)
    grammar = set(data.grammar_train_sentences(spec))
    assert len(grammar & set(train)) == 100
    words = data.lexicon_words(data.OpenSpec())
    assert len(words) > 50000 and words == sorted(set(words))
    lexicon = set(words)
    for sentence in data.lm_sentences(spec)[:2000]:
        assert set(sentence.split()) <= lexicon  # the LM never sees a word outside the lexicon
    assert {"the", "weather", "tomorrow", "children", "football"} <= lexicon


@needs_sources
def test_source_readers_give_prose() -> None:
    examples = list(sources.wordnet_examples())
    assert len(examples) > 40000
    cookies = list(sources.fortune_texts())
    assert len(cookies) > 3000 and not any(c.lstrip().startswith("--") for c in cookies)
    assert all(w == w.lower() for w in list(sources.word_list())[:1000])


def test_confusions_count_substitutions_deletions_insertions() -> None:
    assert align(["the", "cold", "wind"], ["the", "old", "wind", "blows"]) == [("cold", "old"), ("", "blows")]
    assert align(["a", "b", "c"], ["a", "c"]) == [("b", "")]
    found = confusions(["the cold wind", "a cold day"], ["the old wind", "a old day"])
    assert found[0] == ("cold", "old", 2)


def test_open_model_card_puts_both_test_sets_in_one_table(tmp_path: Path) -> None:
    from training.open_vocab.model_card import render_open

    row = {
        "wer": 0.1, "cer": 0.05, "lexicon_wer": 0.2, "greedy_wer": 0.3, "sentence_accuracy": 0.5,
        "utterances": 150, "oov_rate": 0.01, "confusions": [["of", "", 3]],
    }  # fmt: skip
    open_eval = {
        "m.pt": {
            "lexicon_correction": False,
            "sets": {
                name: row
                for name in ("open / en-us default", "open / varied voices", "grammar / varied voices")
            },
        }
    }
    result = {
        "wer": 0.02, "cer": 0.01, "sentence_accuracy": 0.9, "rtf_1_thread": 0.01, "utterances": 400,
        "clips": [],
    }  # fmt: skip
    meta = {
        "train_utterances": 30000, "open_data": {"open_train": 24000, "grammar_train": 6000},
        "lexicon_words": 88000, "lm_ngrams": [1, 2, 3], "text_sources": data.source_versions(),
    }  # fmt: skip
    card = render_open(tmp_path / "m.pt", meta, result, open_eval, "ab" * 32, 10**7, [])
    assert card.count("| m.pt |") == 3
    assert "make demo-model`" in card and "24000 WordNet 3.0 example sentences" in card
    assert "broad lexicon of 88000 words" in card and "of → ∅ ×3" in card
    assert card.index("## Results on both test sets") < card.index("## Grammar set in detail")
