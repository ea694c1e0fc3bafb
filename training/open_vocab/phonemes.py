"""espeak-ng's own phonemes for text: the groundwork for phoneme targets (issue #20, next step).

    python -m training.open_vocab.phonemes [--sentences 300] [--voice en-us]

The letter model has to guess English spelling from sound; espeak-ng is rule-based, so the
phonemes it speaks for any text are known exactly (``espeak-ng -q -x --sep=_``). This module
reads them: per input line, the words as lists of phoneme symbols, stress and pause marks dropped.
Nothing serves phoneme models yet; the command prints how far words spoken alone are from the same
words spoken in sentences (``docs/open-vocab-baseline.md``), which decides how a pronunciation
lexicon must be built: from the sentence-level phonemes, with in-context variants per word.

Phonemes depend on the voice's accent (en-us and en-gb-x-rp differ), so a recipe must phonemize
each sentence with the voice that spoke it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from asr_service.model.wer import edit_distance
from training import synth

#: Marks in ``-x`` output that are not phonemes: primary/secondary stress, unstressed, syllable
#: word-joining and hiatus (";") marks; ``_:`` is a pause (written as an empty "_" plus ":").
_MARKS = re.compile(r"[',%=;]")
_PAUSE = re.compile(r"_?:_?:|^:|_:$")

Pronunciation = tuple[str, ...]


class PhonemizeError(RuntimeError):
    """espeak-ng failed or its output does not line up with the input lines."""


def parse_line(raw: str) -> list[Pronunciation]:
    """One line of ``espeak-ng -x --sep=_`` output -> its words as phoneme tuples."""
    words = []
    for word in raw.split():
        symbols = [s for s in _MARKS.sub("", _PAUSE.sub("", word)).split("_") if s and s != ":"]
        if symbols:
            words.append(tuple(symbols))
    return words


def phonemize(lines: Sequence[str], voice: str = "en-us") -> list[list[Pronunciation]]:
    """Each line's words as espeak-ng speaks them (one process for all lines)."""
    if any("\n" in line or not line.strip() for line in lines):
        raise PhonemizeError("lines must be non-empty and hold no newline")
    if not lines:
        return []
    try:
        result = subprocess.run(  # noqa: S603  # fixed argv; the text goes through stdin
            [synth.espeak_binary(), "-q", "-x", "--sep=_", "-v", voice],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise PhonemizeError(f"espeak-ng failed: {exc}") from exc
    out = [line for line in result.stdout.splitlines() if line.strip()]
    if len(out) != len(lines):
        raise PhonemizeError(f"espeak-ng gave {len(out)} lines for {len(lines)}")
    return [parse_line(line) for line in out]


def isolated(words: Sequence[str], voice: str = "en-us") -> dict[str, Pronunciation]:
    """Each distinct word spoken alone (the parts of a word espeak-ng splits are joined)."""
    unique = sorted(set(words))
    return {
        w: tuple(p for part in parsed for p in part)
        for w, parsed in zip(unique, phonemize(unique, voice), strict=True)
    }


@dataclass(frozen=True)
class ContextReport:
    sentences: int
    identical: int  # sentences whose phonemes equal their words' isolated pronunciations joined
    phonemes: int
    phoneme_edits: int
    merged: int  # sentences where espeak joined words (fewer words out than in)
    symbols: int  # distinct phoneme symbols seen
    variants: Counter[tuple[str, Pronunciation, Pronunciation]]  # (word, alone, in context)

    @property
    def edit_rate(self) -> float:
        return self.phoneme_edits / self.phonemes if self.phonemes else 0.0


def context_report(sentences: Sequence[str], voice: str = "en-us") -> ContextReport:
    """Compare each sentence's phonemes with its words' isolated pronunciations."""
    alone = isolated([w for s in sentences for w in s.split()], voice)
    identical = phonemes = edits = merged = 0
    inventory: set[str] = set()
    variants: Counter[tuple[str, Pronunciation, Pronunciation]] = Counter()
    for sentence, spoken in zip(sentences, phonemize(sentences, voice), strict=True):
        heard = [p for word in spoken for p in word]
        joined = [p for w in sentence.split() for p in alone[w]]
        inventory.update(heard)
        distance = edit_distance(heard, joined)
        identical += distance == 0
        phonemes += len(heard)
        edits += distance
        if len(spoken) != len(sentence.split()):
            merged += 1
            continue
        for word, pronunciation in zip(sentence.split(), spoken, strict=True):
            if pronunciation != alone[word]:
                variants[(word, alone[word], pronunciation)] += 1
    return ContextReport(len(sentences), identical, phonemes, edits, merged, len(inventory), variants)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=300, help="open development sentences (WordNet)")
    parser.add_argument("--voice", default="en-us")
    args = parser.parse_args(argv)
    from training.open_vocab import data

    report = context_report(data.dev_sentences()[: args.sentences], args.voice)
    print(
        f"{report.sentences} sentences, voice {args.voice}: {report.symbols} phoneme symbols; "
        f"words spoken alone reproduce the sentence exactly in {report.identical}; "
        f"{report.edit_rate:.1%} of phonemes differ; espeak merged words in {report.merged}"
    )
    for (word, alone, heard), count in report.variants.most_common(10):
        print(f"  {word}: {' '.join(alone)} alone, {' '.join(heard)} in a sentence ×{count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
