"""Interpolated modified Kneser-Ney n-gram estimation (Chen & Goodman 1998), written here.

``estimate(sentences, words, order=3)`` → :class:`asr_service.model.ngram_lm.NgramLm`, the form the
checkpoint stores and the native decoder reads as ARPA.

- Highest order: raw counts. Lower orders: continuation counts (how many different words precede
  the n-gram), except n-grams that start with ``<s>``, which nothing can precede: raw counts.
- Three discounts per order from its counts-of-counts (D1, D2, D3+); the discounted mass of a
  context is shared out by the next lower order; the unigrams interpolate with a uniform
  distribution over the lexicon and ``</s>``, so every lexicon word, seen in the text or only in
  the word list, has a probability.
- ARPA form: a listed n-gram carries its interpolated probability; the back-off weight of each
  context is computed by normalisation, (1 - Σ P(listed | h)) / (1 - Σ P_lower(listed | h')),
  which equals the interpolation weight without pruning and keeps every distribution summing to
  one after it.
- Pruning: highest-order n-grams seen fewer than ``min_count`` times are dropped (their mass goes
  to the back-off), which is what keeps a checkpoint small.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import torch

from asr_service.model.ngram_lm import NgramLm

Gram = tuple[int, ...]


def _discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """Modified KN discounts D1, D2, D3+ from counts-of-counts (Chen & Goodman's estimates)."""
    of = Counter(c for c in counts if c <= 4)
    n1, n2, n3, n4 = (of.get(i, 0) for i in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:
        return 0.5, 1.0, 1.5  # too little data for the estimates: conventional values
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    # Keep each discount inside (0, its count]: degenerate count-of-counts must not flip signs.
    return tuple(min(max(v, 0.05), float(i + 1)) for i, v in enumerate(d))  # type: ignore[return-value]


def ngram_counts(sentences: Iterable[Sequence[int]], boundary: int, order: int) -> list[Counter[Gram]]:
    """Adjusted counts per order (index 0 = unigrams): raw at the top order and for n-grams that
    start with ``<s>``, continuation counts elsewhere."""
    raw: list[Counter[Gram]] = [Counter() for _ in range(order)]
    for sentence in sentences:
        seq = (boundary, *sentence, boundary)
        for n in range(1, order + 1):
            for i in range(len(seq) - n + 1):
                gram = seq[i : i + n]
                if n == 1 and i == 0:
                    continue  # <s> is never predicted
                raw[n - 1][gram] += 1
    adjusted: list[Counter[Gram]] = [Counter() for _ in range(order)]
    adjusted[-1] = raw[-1]
    for n in range(order - 1, 0, -1):
        continuation: Counter[Gram] = Counter()
        for gram in raw[n]:  # one word longer than order n: each is one distinct left extension
            continuation[gram[1:]] += 1
        target: Counter[Gram] = Counter()
        for gram, count in raw[n - 1].items():
            starts_sentence = n > 1 and gram[0] == boundary
            target[gram] = count if starts_sentence else continuation.get(gram, 0) or count
        adjusted[n - 1] = target
    return adjusted


def estimate(
    sentences: Iterable[Sequence[int]],
    words: Sequence[str],
    order: int = 3,
    min_count: int = 2,
    background: Sequence[float] | None = None,
    background_weight: float = 0.0,
) -> NgramLm:
    """Modified KN ``order``-gram over ``words`` (ids index it; ``len(words)`` is the boundary).

    ``background`` (one probability per word, summing to one) is mixed into the unigram level
    with ``background_weight``: P1(w) = (1 - λ) P_KN(w) + λ P_bg(w). Every higher order rests on
    the unigrams (interpolation, then back-off weights by normalisation), so a word frequency list
    of general English corrects the training text's genre where its contexts are unseen."""
    if order < 1:
        raise ValueError("order must be at least 1")
    if background is not None:
        if len(background) != len(words):
            raise ValueError(f"background has {len(background)} probabilities for {len(words)} words")
        if not 0.0 <= background_weight < 1.0:
            raise ValueError("background_weight must be in [0, 1)")
        if abs(math.fsum(background) - 1.0) > 1e-6 or min(background) < 0.0:
            raise ValueError("background must be a probability distribution over the words")
    boundary = len(words)
    vocab = boundary + 1  # predictable: every word and </s>
    counts = ngram_counts(sentences, boundary, order)

    # Interpolated probabilities of every seen n-gram, order by order.
    probs: list[dict[Gram, float]] = []
    for n in range(1, order + 1):
        table = counts[n - 1]
        d1, d2, d3 = _discounts(table.values())
        totals: dict[Gram, int] = defaultdict(int)
        types: dict[Gram, list[int]] = defaultdict(lambda: [0, 0, 0])
        for gram, c in table.items():
            h = gram[:-1]
            totals[h] += c
            types[h][min(c, 3) - 1] += 1
        gamma = {h: (d1 * t[0] + d2 * t[1] + d3 * t[2]) / totals[h] for h, t in types.items()}
        current: dict[Gram, float] = {}
        for gram, c in table.items():
            h = gram[:-1]
            discount = d1 if c == 1 else d2 if c == 2 else d3
            lower = probs[n - 2][gram[1:]] if n > 1 else 1.0 / vocab
            current[gram] = max(c - discount, 0.0) / totals[h] + gamma[h] * lower
        if n == 1:
            gamma0 = gamma[()]
            for w in range(vocab):
                current.setdefault((w,), gamma0 / vocab)
            if background is not None and background_weight > 0.0:
                lam = background_weight
                for w in range(vocab):  # </s> (the last id) has no background probability
                    bg = background[w] if w < boundary else 0.0
                    current[(w,)] = (1.0 - lam) * current[(w,)] + lam * bg
        probs.append(current)

    # Prune the top order, then set back-off weights by normalisation (module doc).
    if order > 1 and min_count > 1:
        top = counts[-1]
        probs[-1] = {g: p for g, p in probs[-1].items() if top[g] >= min_count}
    backoffs: list[dict[Gram, float]] = [dict() for _ in range(order)]

    def lower_prob(context: Gram, word: int) -> float:
        """Back-off model probability of ``word`` after ``context`` from the listed tables."""
        penalty = 1.0
        while True:
            p = probs[len(context)].get((*context, word))
            if p is not None:
                return penalty * p
            penalty *= backoffs[len(context) - 1].get(context, 1.0)
            context = context[1:]

    for n in range(2, order + 1):
        listed: dict[Gram, list[int]] = defaultdict(list)
        for gram in probs[n - 1]:
            listed[gram[:-1]].append(gram[-1])
        for h, followers in listed.items():
            seen = sum(probs[n - 1][(*h, w)] for w in followers)
            lower = sum(lower_prob(h[1:], w) for w in followers)
            numerator, denominator = 1.0 - seen, 1.0 - lower
            weight = numerator / denominator if numerator > 1e-12 and denominator > 1e-12 else 1e-12
            backoffs[n - 2][h] = weight

    tables = []
    for n in range(1, order + 1):
        grams = sorted(probs[n - 1])
        ids = torch.tensor(grams, dtype=torch.int64).reshape(-1, n)
        prob = torch.tensor([math.log10(probs[n - 1][g]) for g in grams], dtype=torch.float64)
        back = torch.tensor(
            [math.log10(backoffs[n - 1].get(g, 1.0)) if n < order else 0.0 for g in grams],
            dtype=torch.float64,
        )
        tables.append((ids, prob, back))
    return NgramLm(words, tables)
