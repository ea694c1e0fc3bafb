"""Phoneme targets (training.open_vocab.phoneme_targets) and the pronunciation table built from
them (training.open_vocab.pronunciations): one in-context pronunciation per word, a "▁" at every
word boundary even where espeak-ng joins words, and a table that finds every word by its sound."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr_service.model.ctc import WORD_BOUNDARY
from training import synth
from training.open_vocab import phoneme_targets as pt
from training.open_vocab import pronunciations


def test_words_espeak_joins_get_one_pronunciation_each() -> None:
    alone = [("I", "n"), ("D", "i:"), ("h", "aU", "s")]
    # espeak-ng said "in the" as one word, and reduced "the".
    spoken = [("I", "n", "D", "@2"), ("h", "aU", "s")]
    assert pt.align(alone, spoken) == [("I", "n"), ("D", "@2"), ("h", "aU", "s")]


def test_a_word_espeak_splits_is_joined_back() -> None:
    alone = [("b", "i:", "b", "i:", "s", "i:"), ("n", "j", "u:", "z")]
    spoken = [("b", "i:", "b", "i:"), ("s", "i:"), ("n", "j", "u:", "z")]
    assert pt.align(alone, spoken) == [("b", "i:", "b", "i:", "s", "i:"), ("n", "j", "u:", "z")]


def test_words_that_line_up_keep_their_in_context_form() -> None:
    alone = [("eI",), ("k", "a", "t")]
    assert pt.align(alone, [("a#",), ("k", "a", "t")]) == [("a#",), ("k", "a", "t")]


def test_real_sentences_get_one_pronunciation_per_word_and_merges_are_undone() -> None:
    sentences = ["the cat sat in the house", "a lot of the time"]
    for accent in ("en-us", "en-029"):
        said = pt.sentence_pronunciations(sentences, accent)
        for sentence, words in zip(sentences, said, strict=True):
            assert len(words) == len(sentence.split()) and all(words)
    # "in the": espeak-ng joins them; the target still separates them.
    words = pt.sentence_pronunciations(["in the house"], "en-us")[0]
    assert words[0] == ("I", "n") and words[1][0] == "D"


def test_targets_follow_each_voices_accent_and_are_cached(tmp_path: Path) -> None:
    texts = ["the other three", "the other three"]
    voices = [synth.Voice("en-us", "m3", 150, 50), synth.Voice("en-029", "f2", 150, 50)]
    first = pt.targets_for(texts, voices, tmp_path)
    assert first[0][0][0] == "D" and first[1][0][0] == "d"  # en-029 says "th" as "d"
    assert len(list(tmp_path.glob("phonemes-*.json"))) == 1
    assert pt.targets_for(texts, voices, tmp_path) == first


def test_encoding_puts_a_boundary_between_words_only() -> None:
    targets = [[("D", "@2"), ("k", "a", "t")]]
    tokens = pt.phoneme_tokens(targets)
    assert tokens[:2] == [pt.BLANK, WORD_BOUNDARY]
    ids = pt.encode(targets[0], tokens)
    assert [tokens[i] for i in ids] == ["D", "@2", WORD_BOUNDARY, "k", "a", "t"]
    assert pt.as_text(ids, tokens) == "D_@2 k_a_t"


def test_phoneme_error_rate_counts_phonemes_and_words() -> None:
    word_rate, phone_rate = pt.phoneme_error_rate(["D_@2 k_a_t"], ["D_@2 k_a_p"])
    assert word_rate == pytest.approx(0.5) and phone_rate == pytest.approx(1 / 5)
    assert pt.phoneme_error_rate(["D_@2 k_a_t"], [""]) == (1.0, 1.0)


def test_the_table_holds_each_accent_and_frequent_in_context_forms_only() -> None:
    alone: dict[str, dict[str, tuple[str, ...]]] = {
        "en-us": {"the": ("D", "i:"), "cat": ("k", "a", "t")},
        "en-029": {"the": ("d", "i:")},
    }
    texts = ["the cat", "the cat", "the dog"]
    targets = [[("D", "@2"), ("k", "a", "t")], [("D", "@2"), ("k", "a", "t")], [("D", "@"), ("d", "0", "g")]]
    in_context = pronunciations.context_forms(texts, targets)
    table = pronunciations.build_table(["the", "cat", "mat"], alone, in_context)
    assert table["the"] == {("D", "i:"), ("d", "i:"), ("D", "@2")}  # ("D", "@") was seen once only
    assert table["cat"] == {("k", "a", "t")}
    assert "mat" not in table  # no pronunciation known: the search can never return it
    assert pronunciations.stats(table, ["D", "i:", "d", "@2", "k", "a", "t"])["unwritable"] == 0
    assert pronunciations.stats(table, ["D", "i:", "k", "a", "t"])["unwritable"] == 2
