"""A word bigram language model for closed-vocabulary models (the shipped demo).

Stored in the checkpoint next to the lexicon as counts, not probabilities, so the file stays a
plain dict of a tensor (``weights_only`` loading) and the smoothing can change without retraining::

    "word_lm": {"type": "word-bigram", "bigrams": int64 tensor [N, 3]}

Each row is ``(previous, next, count)``; word ids index the checkpoint's sorted ``lexicon``, and id
``len(lexicon)`` is the sentence boundary (``<s>`` as a previous word, ``</s>`` as a next one).

Smoothing is interpolated Kneser-Ney for bigrams: a seen pair gets its discounted count, and the
discount's mass is shared out by each word's *continuation* probability (how many different words
it follows), add-one smoothed so that every lexicon word keeps a non-zero probability.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

LM_TYPE = "word-bigram"
DISCOUNT = 0.75


class WordLmError(ValueError):
    """The stored LM does not fit the lexicon it came with."""


class BigramLm:
    """Kneser-Ney smoothed bigram log-probabilities over a fixed word list."""

    def __init__(self, words: Sequence[str], bigrams: Iterable[tuple[int, int, int]]) -> None:
        self.words = list(words)
        self.boundary = len(self.words)
        self.index = {w: i for i, w in enumerate(self.words)}
        size = self.boundary + 1
        self._pairs: dict[tuple[int, int], int] = {}
        context_total: Counter[int] = Counter()
        context_types: Counter[int] = Counter()
        continuation: Counter[int] = Counter()
        for previous, following, count in bigrams:
            if not (0 <= previous < size and 0 <= following < size) or count <= 0:
                raise WordLmError(f"bigram ({previous}, {following}, {count}) is outside {size} word ids")
            if (previous, following) in self._pairs:
                raise WordLmError(f"bigram ({previous}, {following}) is listed twice")
            self._pairs[(previous, following)] = count
            context_total[previous] += count
            context_types[previous] += 1
            continuation[following] += 1
        total_types = sum(continuation.values())
        # Add-one over the continuation counts: a word never seen after anything is still possible.
        self._continuation = [(continuation[w] + 1) / (total_types + size) for w in range(size)]
        self._context_total = context_total
        self._backoff = {
            v: DISCOUNT * context_types[v] / total for v, total in context_total.items() if total > 0
        }
        self._cache: dict[tuple[int, int], float] = {}

    def log_prob(self, previous: int, following: int) -> float:
        """Natural-log P(following | previous); both are word ids (``boundary`` for <s> / </s>)."""
        key = (previous, following)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        total = self._context_total.get(previous, 0)
        if total == 0:
            prob = self._continuation[following]
        else:
            seen = max(self._pairs.get(key, 0) - DISCOUNT, 0.0) / total
            prob = seen + self._backoff[previous] * self._continuation[following]
        value = math.log(prob)
        self._cache[key] = value
        return value

    # ------------------------------------------------- the parts of the smoothing (ARPA export)
    def continuation_log_prob(self, word: int) -> float:
        """Natural-log lower-order probability of ``word``: what an unseen context backs off to."""
        return math.log(self._continuation[word])

    def backoff_log_weight(self, previous: int) -> float | None:
        """Natural log of the mass ``previous`` shares out to the lower order; None for a context
        never seen (it uses the lower order as it is)."""
        weight = self._backoff.get(previous)
        return None if weight is None else math.log(weight)

    def seen_pairs(self) -> list[tuple[int, int]]:
        """Every (previous, next) pair with a count, sorted."""
        return sorted(self._pairs)

    def sentence_log_prob(self, sentence: str) -> float:
        """Log-probability of a whole sentence of lexicon words (for tests and tools)."""
        ids = [self.index[w] for w in sentence.split()]
        history = [self.boundary, *ids]
        return sum(self.log_prob(p, n) for p, n in zip(history, [*ids, self.boundary], strict=True))

    # ---------------------------------------------------------------- storage
    def to_payload(self) -> dict[str, object]:
        rows = sorted((p, n, c) for (p, n), c in self._pairs.items())
        return {"type": LM_TYPE, "bigrams": torch.tensor(rows, dtype=torch.int64).reshape(-1, 3)}

    @classmethod
    def from_payload(cls, payload: object, words: Sequence[str]) -> BigramLm:
        """Rebuild from a checkpoint's ``word_lm`` entry; :class:`WordLmError` says what is wrong."""
        if not isinstance(payload, dict) or payload.get("type") != LM_TYPE:
            raise WordLmError(f"'word_lm' must be a dict with type {LM_TYPE!r}")
        table = payload.get("bigrams")
        if not isinstance(table, torch.Tensor) or table.dim() != 2 or table.shape[1] != 3:
            raise WordLmError("'word_lm.bigrams' must be an integer tensor [N, 3]")
        if table.is_floating_point() or table.is_complex():
            raise WordLmError("'word_lm.bigrams' must hold integers")
        rows = [(int(p), int(n), int(c)) for p, n, c in table.tolist()]
        return cls(words, rows)

    @classmethod
    def train(cls, words: Sequence[str], sentences: Iterable[str]) -> BigramLm:
        """Count bigrams (with sentence boundaries) over sentences made of ``words``."""
        index = {w: i for i, w in enumerate(words)}
        boundary = len(index)
        counts: Counter[tuple[int, int]] = Counter()
        for sentence in sentences:
            try:
                ids = [index[w] for w in sentence.split()]
            except KeyError as exc:
                missing = exc.args[0]
                raise WordLmError(f"training sentence has a word outside the lexicon: {missing!r}") from None
            history = [boundary, *ids]
            counts.update(zip(history, [*ids, boundary], strict=True))
        return cls(words, ((p, n, c) for (p, n), c in counts.items()))
