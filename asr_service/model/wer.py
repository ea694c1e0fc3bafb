"""Word and character error rates (Levenshtein distance over words / characters).

Shared by training (``training.metrics`` re-exports these) and the serving container's golden-set
gate (``asr_service.golden``): the image ships only ``asr_service/``, so the one implementation
lives here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_NOT_WORD = re.compile(r"[^\w' ]+")


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Substitutions + deletions + insertions turning ``ref`` into ``hyp``."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i]
        for j, h in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def error_rates(refs: Sequence[str], hyps: Sequence[str]) -> tuple[float, float]:
    """Corpus WER and CER: total edits / total reference words (characters, spaces included)."""
    if len(refs) != len(hyps):
        raise ValueError("refs and hyps differ in length")
    word_edits = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps, strict=True))
    char_edits = sum(edit_distance(list(r), list(h)) for r, h in zip(refs, hyps, strict=True))
    words = sum(len(r.split()) for r in refs)
    chars = sum(len(r) for r in refs)
    return word_edits / max(1, words), char_edits / max(1, chars)


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation: a reference written "Hello, world." scores against a
    model that emits "hello world" on what it recognised, not on how it was typed."""
    return _NOT_WORD.sub(" ", text.lower().replace("-", " ")).split()
