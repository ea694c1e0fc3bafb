"""Open-vocabulary data: sources in one role each, test sentences never in training text, lexicon."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.open_vocab import data, normalize, sources
from training.open_vocab.evaluate import align, confusions
from training.train import encode_text

installed = all(sources.installed(s) for s in sources.SOURCES)
needs_sources = pytest.mark.skipif(not installed, reason="make open-vocab-deps installs the text sources")


def test_sources_have_one_role_and_pinned_versions() -> None:
    assert {s.role for s in sources.SOURCES} == {"train", "test", "lexicon", "lm", "dev"}
    assert len({s.package for s in sources.SOURCES}) == len(sources.SOURCES)
    for source in sources.SOURCES:
        assert source.version and source.licence
    sources.check_roles(data.TRAIN_SOURCES, data.TEST_SOURCES)
    with pytest.raises(RuntimeError, match="share a source"):
        sources.check_roles((sources.WORDNET,), (sources.FORTUNES, sources.WORDNET))


def test_pinned_versions_match_where_they_are_installed() -> None:
    makefile = (data.grammar_data.REPO / "mk" / "open_vocab.mk").read_text()
    requirements = (data.grammar_data.REPO / "requirements" / "dev.txt").read_text().splitlines()
    pins = {
        "apt": lambda s: f"{s.package}={s.version}" in makefile,
        "npm": lambda s: f"{s.package}@{s.version}" in makefile,
        "pip": lambda s: f"{s.package}=={s.version}" in requirements,
    }
    for source in sources.SOURCES:
        assert pins[source.installer](source), source.name


def test_a_missing_source_names_the_command_that_installs_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sources, "TEXT_DIR", tmp_path)
    with pytest.raises(sources.SourceMissingError, match=r"make open-vocab-deps.*datasets-sotu@0\.2\.3"):
        list(sources.sotu_addresses())
    absent = sources.Source(
        "x", "not-a-package", "1.0", "none", "dev", ("data",), "pip", "no_such_module_here"
    )
    with pytest.raises(sources.SourceMissingError, match=r"make venv.*not-a-package==1\.0"):
        sources.require(absent)


def test_address_and_conversation_readers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = tmp_path / "node_modules" / sources.SOTU.package
    (folder / "data").mkdir(parents=True)
    (folder / "package.json").write_text('{"version": "0.2.3"}')
    for year, text in [(1899, "An old address."), (1901, "A new one. It's short."), (2001, "The latest.")]:
        (folder / "data" / f"{year}_someone.json").write_text(
            f'{{"year": {year}, "name": "x", "text": "{text}"}}'
        )
    (folder / "data" / "1901_someone.txt").write_text("the same address as plain text: not read twice")
    monkeypatch.setattr(sources, "TEXT_DIR", tmp_path)
    assert list(sources.sotu_addresses()) == ["A new one. It's short.", "The latest."]
    assert sources.installed_version(sources.SOTU) == "0.2.3"

    talk = tmp_path / "talk"
    talk.mkdir()
    (talk / "a.yml").write_text("categories:\n- x\nconversations:\n- - Hello there\n  - Hi, how are you?\n")
    (talk / "b.yml").write_text("categories:\n- y\n")  # a file without conversations
    chat = sources.Source("c", "chatterbot-corpus", "1.3.3", "BSD", "dev", (str(talk),))
    assert list(sources.conversation_lines(chat)) == ["Hello there", "Hi, how are you?"]


@needs_sources
def test_test_sentences_are_seeded_and_never_in_training_or_dev_text() -> None:
    spec = data.OpenSpec()
    test = data.test_sentences(spec)
    assert test == data.test_sentences(spec) and len(set(test)) == spec.test_sentences
    conversation = set(data.conversation_dev_sentences(spec))
    training = set(data.lm_sentences(spec)) | set(data.train_sentences(spec)) | set(data.dev_sentences())
    assert not set(test) & (training | conversation)
    assert not (set(data.dev_sentences()) | conversation) & set(data.lm_sentences(spec))
    # The LM text holds more than the training text, and what it adds is never a sentence of the
    # test source (the few WordNet examples that are also fortunes are out of the test pool).
    added = set(data.lm_sentences(spec)) - set(data.text_sentences(spec))
    assert len(added) > 10000
    assert not added & set(data._fortune_sentences())
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
    for sentence in data.lm_sentences(spec)[:2000] + data.lm_sentences(spec)[-2000:]:
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
