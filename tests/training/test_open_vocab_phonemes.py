"""espeak-ng's phonemes for text (training.open_vocab.phonemes): what a phoneme lexicon is built from."""

from __future__ import annotations

import pytest

from training.open_vocab.phonemes import PhonemizeError, context_report, parse_line, phonemize


def test_stress_and_pause_marks_are_not_phonemes() -> None:
    assert parse_line("D_@2 w_'E_D_3 k_'oU_l_d__:__: a_n_d") == [
        ("D", "@2"),
        ("w", "E", "D", "3"),
        ("k", "oU", "l", "d"),
        ("a", "n", "d"),
    ]


def test_one_pronunciation_per_input_line() -> None:
    assert phonemize(["cat", "a cat", "a"]) == [[("k", "a", "t")], [("a#",), ("k", "a", "t")], [("eI",)]]


@pytest.mark.parametrize("lines", [["cat", ""], ["a\ncat"]])
def test_empty_lines_or_newlines_are_refused(lines: list[str]) -> None:
    with pytest.raises(PhonemizeError, match="non-empty"):
        phonemize(lines)


def test_words_spoken_in_a_sentence_differ_from_words_spoken_alone() -> None:
    report = context_report(["a cat", "a cat sat on the mat", "cat"])
    assert report.sentences == 3 and report.identical == 1  # only "cat" sounds as it does alone
    assert report.merged == 1  # espeak joins "on the"
    assert report.variants[("a", ("eI",), ("a#",))] == 1  # counted where the words line up
    assert 0 < report.edit_rate < 0.5
