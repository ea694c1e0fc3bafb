"""A word n-gram back-off LM stored in the checkpoint as tables (open-vocabulary models).

The bigram *counts* of :mod:`asr_service.model.word_lm` suit a closed grammar; a broad LM over tens
of thousands of words is estimated offline (``training.open_vocab.kneser_ney``: modified
Kneser-Ney, pruned) and stored as its ARPA content, one table per order, plain tensors so the file
stays ``weights_only`` loadable::

    "word_lm": {"type": "word-ngram", "order": 3,
                "ngrams": [{"ids": int32 [N1, 1], "log10_prob": float32 [N1], "log10_backoff": float32 [N1]},
                           {"ids": int32 [N2, 2], ...}, {"ids": int32 [N3, 3], ...}],
                "decoder": {...beam settings...}}

Word ids index the checkpoint's sorted ``lexicon``; id ``len(lexicon)`` is the sentence boundary,
``<s>`` in a context position and ``</s>`` as the predicted word (as in the bigram format). Its one
unigram row holds P(</s>) as ``log10_prob`` and the back-off of ``<s>`` as ``log10_backoff``. A
back-off of 0.0 (log10 1) is written for n-grams that are no context. The highest order's
back-offs are ignored.

:meth:`NgramLm.write_arpa` writes the ARPA file the native decoder (KenLM) reads;
:meth:`NgramLm.log10_prob` is the same back-off arithmetic in Python (for the Python search and
for the load check that KenLM read what was stored).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

LM_TYPE = "word-ngram"
LN10 = math.log(10.0)
MAX_ORDER = 5
UNKNOWN = "<unk>"


class NgramLmError(ValueError):
    """The stored n-gram LM is malformed or does not fit the lexicon it came with."""


class NgramLm:
    """Back-off n-gram log-probabilities over a fixed word list (module doc)."""

    def __init__(
        self, words: Sequence[str], tables: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    ) -> None:
        self.words = list(words)
        self.boundary = len(self.words)
        self.order = len(tables)
        if not 1 <= self.order <= MAX_ORDER:
            raise NgramLmError(f"order must be 1..{MAX_ORDER}, got {self.order}")
        size = self.boundary + 1
        self.tables: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for n, (ids, prob, backoff) in enumerate(tables, start=1):
            if ids.dim() != 2 or ids.shape[1] != n or ids.is_floating_point():
                raise NgramLmError(f"order {n}: 'ids' must be an integer tensor [N, {n}]")
            if prob.shape != (ids.shape[0],) or backoff.shape != (ids.shape[0],):
                raise NgramLmError(f"order {n}: log10_prob and log10_backoff must have {ids.shape[0]} rows")
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= size):
                raise NgramLmError(f"order {n}: a word id is outside the {size} ids")
            if not bool(torch.isfinite(prob).all()) or not bool(torch.isfinite(backoff).all()):
                raise NgramLmError(f"order {n}: probabilities must be finite")
            if bool((prob > 1e-6).any()):
                raise NgramLmError(f"order {n}: a log10 probability is above 0")
            self.tables.append((ids.to(torch.int64), prob.to(torch.float64), backoff.to(torch.float64)))
        unigram_ids = self.tables[0][0][:, 0]
        if unigram_ids.numel() != size or set(unigram_ids.tolist()) != set(range(size)):
            raise NgramLmError(
                f"the unigram table must list every lexicon word and the boundary once ({size})"
            )
        self._index: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        if (self.boundary + 1) ** self.order >= 2**63:
            raise NgramLmError(f"{size} words of order {self.order} do not fit 64-bit n-gram keys")

    # ---------------------------------------------------------------- sizes
    def counts(self) -> list[int]:
        return [int(t[0].shape[0]) for t in self.tables]

    # ---------------------------------------------------------------- scoring
    def _lookup(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        # Sorted integer keys per order, built on first use: a few MB where dicts of tuples cost
        # a hundred, and the native decoder needs them only for the load check.
        if self._index is None:
            base = self.boundary + 1
            index = []
            for ids, prob, backoff in self.tables:
                keys = np.zeros(ids.shape[0], dtype=np.int64)
                for column in ids.numpy().T:
                    keys = keys * base + column
                order = np.argsort(keys, kind="stable")
                index.append((keys[order], prob.numpy()[order], backoff.numpy()[order]))
            self._index = index
        return self._index

    def _find(self, gram: tuple[int, ...]) -> tuple[float, float] | None:
        keys, prob, backoff = self._lookup()[len(gram) - 1]
        key = 0
        for word in gram:
            key = key * (self.boundary + 1) + word
        at = int(np.searchsorted(keys, key))
        if at < keys.shape[0] and keys[at] == key:
            return float(prob[at]), float(backoff[at])
        return None

    def log10_prob(self, history: Sequence[int], word: int) -> float:
        """ARPA back-off log10 P(word | history); ``history`` ends with the previous word
        (``boundary`` = ``<s>``), ``word == boundary`` is ``</s>``. Only the last order-1 words count."""
        context = tuple(history[len(history) - (self.order - 1) :]) if self.order > 1 else ()
        penalty = 0.0
        while True:
            entry = self._find((*context, word))
            if entry is not None:
                return penalty + entry[0]
            if not context:
                raise NgramLmError(f"word id {word} has no unigram")
            backoff = self._find(context)
            penalty += backoff[1] if backoff is not None else 0.0
            context = context[1:]

    def history_log_prob(self, words: Sequence[int], word: int) -> float:
        """Natural-log P(word | sentence so far ``words``), the sentence start included."""
        return self.log10_prob((self.boundary, *words), word) * LN10

    def log_prob(self, previous: int, following: int) -> float:
        """Natural-log P(following | previous) with one word of history (the bigram interface)."""
        return self.log10_prob((previous,), following) * LN10

    def sentence_log10_prob(self, sentence: str) -> float:
        ids = [self.words.index(w) for w in sentence.split()]
        total = 0.0
        for i, word in enumerate([*ids, self.boundary]):
            total += self.log10_prob((self.boundary, *ids[:i]), word)
        return total

    # ---------------------------------------------------------------- ARPA
    def write_arpa(self, path: str | Path) -> None:
        """The ARPA file KenLM reads: ``<s>``/``</s>`` for the boundary, ``<unk>`` at -99."""

        def name(word: int, last: bool) -> str:
            if word == self.boundary:
                return "</s>" if last else "<s>"
            return self.words[word]

        counts = self.counts()
        with Path(path).open("w", encoding="utf-8") as out:
            out.write("\n\\data\\\n")
            out.write(f"ngram 1={counts[0] + 2}\n")
            for n, count in enumerate(counts[1:], start=2):
                out.write(f"ngram {n}={count}\n")
            for n, (ids, prob, backoff) in enumerate(self.tables, start=1):
                out.write(f"\n\\{n}-grams:\n")
                has_backoff = n < self.order
                for row, p, b in zip(ids.tolist(), prob.tolist(), backoff.tolist(), strict=True):
                    tail = f"\t{b:.6f}\n" if has_backoff else "\n"
                    if n == 1 and row[0] == self.boundary:
                        out.write(f"{p:.6f}\t</s>\n-99\t<s>{tail}")
                        continue
                    text = " ".join(name(w, i == n - 1) for i, w in enumerate(row))
                    out.write(f"{p:.6f}\t{text}{tail}")
                if n == 1:
                    out.write(f"-99\t{UNKNOWN}\n")
            out.write("\n\\end\\\n")

    # ---------------------------------------------------------------- storage
    def to_payload(self) -> dict[str, object]:
        return {
            "type": LM_TYPE,
            "order": self.order,
            "ngrams": [
                {
                    "ids": ids.to(torch.int32),
                    "log10_prob": prob.to(torch.float32),
                    "log10_backoff": backoff.to(torch.float32),
                }
                for ids, prob, backoff in self.tables
            ],
        }

    @classmethod
    def from_payload(cls, payload: object, words: Sequence[str]) -> NgramLm:
        if not isinstance(payload, dict) or payload.get("type") != LM_TYPE:
            raise NgramLmError(f"'word_lm' must be a dict with type {LM_TYPE!r}")
        ngrams = payload.get("ngrams")
        if not isinstance(ngrams, list) or payload.get("order") != len(ngrams):
            raise NgramLmError("'word_lm.ngrams' must be a list of one table per order")
        tables = []
        for n, table in enumerate(ngrams, start=1):
            if not isinstance(table, dict):
                raise NgramLmError(f"order {n}: table must be a dict")
            parts = [table.get(k) for k in ("ids", "log10_prob", "log10_backoff")]
            if not all(isinstance(p, torch.Tensor) for p in parts):
                raise NgramLmError(f"order {n}: ids, log10_prob and log10_backoff must be tensors")
            tables.append((parts[0], parts[1], parts[2]))
        return cls(words, tables)  # type: ignore[arg-type]
