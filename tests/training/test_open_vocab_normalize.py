"""The open-vocabulary text normaliser: numbers, abbreviations, acronyms, sentence splitting."""

from __future__ import annotations

import pytest

from training.open_vocab import normalize
from training.train import encode_text


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (21, "twenty one"),
        (100, "one hundred"),
        (342, "three hundred forty two"),
        (9999, "nine thousand nine hundred ninety nine"),
    ],
)
def test_number_words_spell_cardinals(value: int, words: str) -> None:
    assert normalize.number_words(value) == words


def test_years_and_ordinals_read_as_spoken() -> None:
    assert normalize.year_words(1984) == "nineteen eighty four"
    assert normalize.year_words(1900) == "nineteen hundred"
    assert normalize.year_words(1905) == "nineteen oh five"
    assert normalize.year_words(2005) == "two thousand five"
    assert normalize.ordinal_words(1) == "first"
    assert normalize.ordinal_words(22) == "twenty second"
    assert normalize.ordinal_words(40) == "fortieth"
    assert normalize.ordinal_words(12) == "twelfth"


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("The 3 dogs ran home.", "the three dogs ran home"),
        ("In 1984 we met on the 3rd floor.", "in nineteen eighty four we met on the third floor"),
        ("Dr. Smith and Mrs. Jones went to St. Louis.", "doctor smith and missus jones went to saint louis"),
        ("Bring fruit, e.g. apples & pears!", "bring fruit for example apples and pears"),
        ("It's a well-known fact, isn't it?", "it's a well known fact isn't it"),
        ("\u201cDon\u2019t panic,\u201d she said.", "don't panic she said"),
        ("The caf\u00e9 serves cr\u00e8me br\u00fbl\u00e9e", "the cafe serves creme brulee"),
        ("'Tis the dogs' dinner", "tis the dogs dinner"),
        ("and/or the up-to-date list", "and or the up to date list"),
    ],
)
def test_normalize_sentence_writes_the_model_alphabet(raw: str, spoken: str) -> None:
    out = normalize.normalize_sentence(raw)
    assert out == spoken
    encode_text(out)  # every character is one of the model's tokens


@pytest.mark.parametrize(
    "raw",
    [
        "It costs $5 today.",  # currency
        "About 10% of people.",  # percent
        "We meet at 4:30 sharp.",  # time
        "Pi is 3.14 or so.",  # decimal
        "There were 1,000 of them.",  # grouped digits
        "The NASA launch was late.",  # acronym: spelled or read?
        "He moved to the U.S. last year.",  # dotted acronym
        "x = y + 1",  # code
        "Ein Wort \u00fcber \u4e2d\u6587",  # non-latin script
        "He was born in 123456 BC",  # too large a number to read one way
    ],
)
def test_normalize_sentence_drops_what_cannot_be_read_one_way(raw: str) -> None:
    assert normalize.normalize_sentence(raw) is None


def test_split_sentences_respects_abbreviations_and_initials() -> None:
    text = "Dr. Who arrived. He said hi!  Then J. Smith left? Yes. 3 men stayed."
    assert normalize.split_sentences(text) == [
        "Dr. Who arrived.",
        "He said hi!",
        "Then J. Smith left?",
        "Yes.",
        "3 men stayed.",
    ]


def test_sentences_keep_only_clip_sized_ones() -> None:
    texts = [
        "Too short. This one has five words. Word " + " ".join(["word"] * 25) + ".",
        "The cat sat on the mat today.",
    ]
    out = list(normalize.sentences(texts, min_words=5, max_words=20))
    assert out == ["this one has five words", "the cat sat on the mat today"]
