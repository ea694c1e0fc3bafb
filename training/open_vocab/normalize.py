"""Written English → what the demo model spells: lower-case a-z, apostrophes, single spaces.

Raw text (dictionary examples, quotations) is split into sentences, then each sentence is either
normalised into speakable words or dropped:

- numbers are spelled out when they read one way ("7" → "seven", "1984" → "nineteen eighty four",
  "3rd" → "third"); a sentence with any other digits (decimals, "1,000", "4:30", "$5", "10%",
  phone numbers) is dropped rather than guessed;
- common abbreviations are expanded ("Dr." → "doctor", "e.g." → "for example", "&" → "and");
- a sentence with an acronym (two or more capitals: "NASA", "U.S.") is dropped: espeak-ng may
  spell it letter by letter or read it as a word, so no transcript is safe;
- letters with accents are folded to ASCII ("café" → "cafe"); any other symbol drops the sentence;
- hyphens and slashes separate words ("well-known" → "well known"), quote marks and other
  punctuation go, an apostrophe stays only inside a word ("don't", "o'clock").

:func:`sentences` keeps those with ``min_words``..``max_words`` words: long enough to carry
context, short enough for a speech clip (20 words is about 8 s at espeak-ng's default speed).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator

MIN_WORDS = 4
MAX_WORDS = 20

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}

#: Abbreviation (as written, with its dot) → spoken words. Matched case-sensitively at a word start.
ABBREVIATIONS = {
    "Mr.": "mister",
    "Mrs.": "missus",
    "Ms.": "miz",
    "Dr.": "doctor",
    "Prof.": "professor",
    "St.": "saint",
    "Mt.": "mount",
    "Jr.": "junior",
    "Sr.": "senior",
    "Capt.": "captain",
    "Gen.": "general",
    "Gov.": "governor",
    "Sen.": "senator",
    "Rev.": "reverend",
    "vs.": "versus",
    "etc.": "et cetera",
    "e.g.": "for example",
    "i.e.": "that is",
    "approx.": "approximately",
    "dept.": "department",
    "Jan.": "january",
    "Feb.": "february",
    "Aug.": "august",
    "Sept.": "september",
    "Oct.": "october",
    "Nov.": "november",
    "Dec.": "december",
}
#: Lower-case words ending in a dot that do not end a sentence (besides ABBREVIATIONS).
_NO_SPLIT = {a.lower() for a in ABBREVIATIONS} | {"a.m.", "p.m.", "no.", "ca.", "cf.", "viz.", "fig."}

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ORDINAL = re.compile(r"^(\d+)(st|nd|rd|th)$")
_ACRONYM = re.compile(r"\b[A-Z][A-Z.&]*[A-Z]\b|\b[A-Z]\.[A-Z]\.")
_KEEP = re.compile(r"[^a-z' ]")


def number_words(value: int) -> str:
    """Cardinal words for 0 ≤ value < 1,000,000 ("two hundred and five" is written without "and")."""
    if not 0 <= value < 1_000_000:
        raise ValueError(f"{value} is out of range")
    if value < 20:
        return _ONES[value]
    if value < 100:
        tens, ones = divmod(value, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if value < 1000:
        hundreds, rest = divmod(value, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    thousands, rest = divmod(value, 1000)
    return number_words(thousands) + " thousand" + ("" if rest == 0 else " " + number_words(rest))


def year_words(value: int) -> str:
    """How a year is read: 1984 → "nineteen eighty four", 1900 → "nineteen hundred", 2005 →
    "two thousand five"."""
    if 1100 <= value <= 1999 or 2100 <= value <= 2099:
        high, low = divmod(value, 100)
        if low == 0:
            return number_words(high) + " hundred"
        return number_words(high) + (" oh " + _ONES[low] if low < 10 else " " + number_words(low))
    return number_words(value)


def ordinal_words(value: int) -> str:
    words = number_words(value).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _spell_number(token: str) -> str | None:
    """Words for a number token, or None when it cannot be read one safe way."""
    ordinal = _ORDINAL.match(token)
    if ordinal:
        return ordinal_words(int(ordinal.group(1))) if len(ordinal.group(1)) <= 4 else None
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        return None
    value = int(token)
    if 1100 <= value <= 2099 and len(token) == 4:
        return year_words(value)
    return number_words(value) if value < 10000 else None


def split_sentences(text: str) -> list[str]:
    """Split running text at . ! ? followed by a capital or digit, not after an abbreviation."""
    text = " ".join(text.split())
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start : match.start()].strip()
        last = candidate.split()[-1] if candidate.split() else ""
        # "Dr. Smith", "e.g. Paris", single initials ("J. Smith") do not end a sentence.
        if last.lower() in _NO_SPLIT or re.fullmatch(r"[A-Z]\.", last):
            continue
        pieces.append(candidate)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        pieces.append(tail)
    return pieces


def normalize_sentence(sentence: str) -> str | None:
    """The spoken-form transcript of one sentence, or None when it cannot be read safely."""
    text = unicodedata.normalize("NFKD", sentence)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2014", " -- ")
    if not text.isascii():
        return None
    if _ACRONYM.search(text):
        return None
    for short, spoken in ABBREVIATIONS.items():
        text = re.sub(r"(?<![\w.])" + re.escape(short), " " + spoken + " ", text)
    text = text.replace("&", " and ")
    if re.search(r"[@#$%*+=<>|\\{}~^_]", text):
        return None  # code, prices, percentages, markup: nothing a reader would say one way
    words: list[str] = []
    for raw in re.split(r"[\s/]+|-+", text):
        token = raw.strip("\"'()[],.;:!?")
        if not token:
            continue
        if any(ch.isdigit() for ch in token):
            number = _spell_number(token.replace("'s", "") if token.endswith("'s") else token)
            if number is None:
                return None
            words.extend(number.split())
            continue
        words.append(token)
    out = _KEEP.sub(" ", " ".join(words).lower())
    # Apostrophes only inside words: "'tis" and "dogs'" lose theirs, "don't" keeps it.
    tokens = [t.strip("'") for t in out.split()]
    tokens = [t for t in tokens if t]
    if not tokens:
        return None
    return " ".join(tokens)


def sentences(texts: Iterable[str], min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> Iterator[str]:
    """Normalised sentences of ``min_words``..``max_words`` words from raw ``texts`` (in order,
    duplicates included: callers dedupe where they need to)."""
    for text in texts:
        for piece in split_sentences(text):
            normalised = normalize_sentence(piece)
            if normalised is not None and min_words <= len(normalised.split()) <= max_words:
                yield normalised
