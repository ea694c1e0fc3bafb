"""CTC prefix beam search restricted to a lexicon, scored with a word bigram LM.

Greedy CTC reads each frame's best token and spells words letter by letter; on a weak stretch of
audio it can drop a short word or misspell it into a different one ("near" → "eat"). When a
segment is final, this search reconsiders the whole segment: it keeps the ``beam`` best
*prefixes* (words so far + the letters of the word being spelled), sums the CTC probability of
every alignment of each prefix, allows only letters that continue some lexicon word, and adds
``lm_weight`` × log P(word | previous word) + ``word_bonus`` when a word ends. The result is
always a sequence of lexicon words.

Tokens are either single letters (plus the "▁" word boundary), and a word is spelled by its
letters; or, for a model that writes phonemes, any strings, and ``pronunciations`` says how each
word is spoken (one or more token sequences; words that sound alike share one, and the LM picks).
Inside the search every token is one character of a "spelling" string (a letter stands for itself,
a phoneme for a private-use character), so both cases run the same loop. The search runs once per
finalized segment (in the engine's worker thread, not the event loop); for a letter model
partial results stay greedy, for a phoneme model partials come from this search too
(``ctc.IncrementalGreedyDecoder``).

Alignment details: "▁" at the start of a word (after another "▁" or at the start) is treated
like a blank, so a run of boundary frames does not create empty words. A word may also end
without any "▁" (the next letter starts the next word) at a cost of ``missing_space_penalty``,
because a fast speaker's word gap can be shorter than one model frame.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from asr_service.model.ngram_lm import NgramLm
from asr_service.model.word_lm import BigramLm

NEG_INF = float("-inf")
WORD_BOUNDARY = "▁"
#: The most prefixes this search keeps when a checkpoint asks for more (its beam was tuned for
#: the native search): its cost grows with the beam, and for a phoneme model it searches the
#: whole segment again at every partial. On the phoneme demo model's development sentences:
#: beam 24 costs 20 ms per audio second (grammar WER 6.3 %), 96 costs 79 ms (3.4 %), so at 96
#: a 4-second segment's partial takes longer than the 300 ms of audio between partials.
PYTHON_MAX_BEAM = 24


def _log_add(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


#: First private-use code point: phoneme token ``i`` is ``chr(PRIVATE_USE + i)`` in a spelling.
PRIVATE_USE = 0xE000

#: Hypothesis key: (words so far, letters of the word being spelled) → [p_blank, p_nonblank, lm].
Key = tuple[tuple[int, ...], str]
Beams = dict[Key, list[float]]


def _score(item: tuple[Key, list[float]]) -> float:
    p_b, p_nb, lm = item[1]
    return _log_add(p_b, p_nb) + lm


def partial_adder(grown: Beams) -> Callable[..., None]:
    """``add(key, lm, p_b=..., p_nb=...)``: merge one more alignment's probability into ``grown``."""

    def add(key: Key, lm: float, p_b: float = NEG_INF, p_nb: float = NEG_INF) -> None:
        slot = grown.get(key)
        if slot is None:
            grown[key] = [p_b, p_nb, lm]
        else:
            slot[0] = _log_add(slot[0], p_b)
            slot[1] = _log_add(slot[1], p_nb)

    return add


@dataclass(frozen=True)
class BeamSettings:
    beam: int = 12
    lm_weight: float = 0.8
    word_bonus: float = 1.0
    missing_space_penalty: float = -4.0
    #: Tokens whose frame log-probability is below this are not considered at that frame.
    token_floor: float = -10.0
    #: The native search only: hypotheses this far (natural log) behind the best are dropped.
    #: 15 was picked with the letter models; a phoneme model's 88k-word search is tuned by
    #: ``training.open_vocab.attach`` (a wider beam under a tighter threshold: better and cheaper).
    beam_threshold: float = 15.0

    def __post_init__(self) -> None:
        # Read back from checkpoints: a hostile or broken value must fail at load, not mid-stream.
        if not isinstance(self.beam, int) or not 1 <= self.beam <= 256:
            raise ValueError(f"beam must be an integer in 1..256, got {self.beam!r}")
        for name in ("lm_weight", "word_bonus", "missing_space_penalty", "token_floor", "beam_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.beam_threshold <= 0:
            raise ValueError(f"beam_threshold must be positive, got {self.beam_threshold!r}")


#: Words one spelling (a pronunciation) may stand for: flashlight's trie keeps at most six labels
#: per node and drops the rest with a console message, so both searches keep the same six: the
#: ones the LM finds likeliest (a phoneme model's homophones; no letter model has any).
MAX_WORDS_PER_SPELLING = 6


def word_spellings(
    tokens: Sequence[str],
    blank_id: int,
    words: Sequence[str],
    pronunciations: Mapping[str, Sequence[Sequence[str]]] | None = None,
    rank: Callable[[int], float] | None = None,
) -> list[tuple[int, list[int]]]:
    """(word id, token ids) for every way the model can write each word: its letters (a letter
    model), or each of its pronunciations (a phoneme model). Words or pronunciations that use a
    token the model does not have are left out: the model can never write them. Beyond
    ``MAX_WORDS_PER_SPELLING`` words per spelling, those with the lowest ``rank`` are left out."""
    space_id = list(tokens).index(WORD_BOUNDARY)
    index = {t: i for i, t in enumerate(tokens) if i not in (blank_id, space_id)}
    found: list[tuple[int, list[int]]] = []
    for word_id, word in enumerate(words):
        ways = [list(word)] if pronunciations is None else pronunciations.get(word, ())
        for way in ways:
            if way and all(symbol in index for symbol in way):
                found.append((word_id, [index[symbol] for symbol in way]))
    if rank is not None:
        found.sort(key=lambda pair: -rank(pair[0]))
    kept: list[tuple[int, list[int]]] = []
    per_spelling: dict[tuple[int, ...], int] = {}
    for word_id, ids in found:
        key = tuple(ids)
        if per_spelling.get(key, 0) < MAX_WORDS_PER_SPELLING:
            per_spelling[key] = per_spelling.get(key, 0) + 1
            kept.append((word_id, ids))
    return kept


class LexiconBeamDecoder:
    """Decode one segment's log-probs [T, V] into lexicon words (see module doc)."""

    name = "python"

    def __init__(
        self,
        tokens: Sequence[str],
        blank_id: int,
        words: Sequence[str],
        lm: BigramLm | NgramLm | None = None,
        settings: BeamSettings | None = None,
        pronunciations: Mapping[str, Sequence[Sequence[str]]] | None = None,
    ) -> None:
        self.settings = settings or BeamSettings()
        self.blank_id = blank_id
        try:
            self.space_id = list(tokens).index(WORD_BOUNDARY)
        except ValueError:
            raise ValueError("a lexicon beam search needs a word-boundary token '▁'") from None
        #: Whether words are found by how they sound (a phoneme model) rather than spelled.
        self.pronounced = pronunciations is not None
        self.letters: dict[int, str] = {}
        for token_id, token in enumerate(tokens):
            if token_id in (blank_id, self.space_id):
                continue
            if self.pronounced:
                self.letters[token_id] = chr(PRIVATE_USE + token_id)
                continue
            if len(token) != 1:
                raise ValueError(f"lexicon beam search supports single-character tokens, found {token!r}")
            self.letters[token_id] = token
        self.letter_ids = {ch: i for i, ch in self.letters.items()}
        self.lm = lm
        self.words = list(words)
        if lm is not None and lm.words != list(words):
            raise ValueError("the word LM was built over a different word list")
        #: Spelling (one character per token) -> the words written or spoken that way.
        self.spelled: dict[str, list[int]] = {}
        self.boundary = len(self.words)
        # Which homophones to keep beyond the cap: the likeliest at a sentence start, as the
        # native search ranks them (its trie scores are the same P(word | <s>)).
        likely = (lambda w: self._lm_log_prob(lm, (), w)) if lm is not None else None
        for word_id, token_ids in word_spellings(tokens, blank_id, self.words, pronunciations, likely):
            spelling = "".join(self.letters[i] for i in token_ids)
            self.spelled.setdefault(spelling, []).append(word_id)
        self.prefixes: set[str] = set()
        for spelling in self.spelled:
            self.prefixes.update(spelling[:n] for n in range(1, len(spelling) + 1))

    def _lm_log_prob(self, lm: BigramLm | NgramLm, words: tuple[int, ...], word: int) -> float:
        # An n-gram LM sees the whole sentence so far; the bigram LM the previous word.
        if isinstance(lm, NgramLm):
            return lm.history_log_prob(words, word)
        return lm.log_prob(words[-1] if words else self.boundary, word)

    def _word_score(self, words: tuple[int, ...], word: int) -> float:
        if self.lm is None:
            return self.settings.word_bonus
        return self.settings.lm_weight * self._lm_log_prob(self.lm, words, word) + self.settings.word_bonus

    def _end_score(self, words: tuple[int, ...]) -> float:
        if self.lm is None:
            return 0.0
        return self.settings.lm_weight * self._lm_log_prob(self.lm, words, self.boundary)

    def decode(self, log_probs: torch.Tensor) -> str | None:
        """Best lexicon word sequence for ``log_probs`` [T, V]; None when the best path holds no
        word (nothing in the lexicon fits what greedy heard: the caller keeps the greedy text)."""
        if log_probs.dim() != 2:
            raise ValueError(f"decode wants log-probs [T, V], got {tuple(log_probs.shape)}")
        cfg = self.settings
        blank, space = self.blank_id, self.space_id
        beams: Beams = {((), ""): [0.0, NEG_INF, 0.0]}
        rows = log_probs.detach().float().cpu().tolist()
        for row in rows:
            letters = [(i, ch) for i, ch in self.letters.items() if row[i] > cfg.token_floor]
            space_ok = row[space] > cfg.token_floor
            grown: Beams = {}
            add = partial_adder(grown)

            for (words, partial), (p_b, p_nb, lm) in beams.items():
                total = _log_add(p_b, p_nb)
                key = (words, partial)
                add(key, lm, p_b=total + row[blank])
                # The words this spelling completes: one for letters, homophones for phonemes.
                completes = self.spelled.get(partial, ()) if partial else ()
                if not partial:
                    if space_ok:
                        add(key, lm, p_b=total + row[space])
                else:
                    # Repeating the last letter's token without a blank collapses into it.
                    add(key, lm, p_nb=p_nb + row[self.letter_ids[partial[-1]]])
                    if space_ok:
                        for complete in completes:
                            add(
                                ((*words, complete), ""),
                                lm + self._word_score(words, complete),
                                p_b=total + row[space],
                            )
                for token_id, ch in letters:
                    source = p_b if partial and ch == partial[-1] else total
                    extended = partial + ch
                    if extended in self.prefixes:
                        add((words, extended), lm, p_nb=source + row[token_id])
                    if ch in self.prefixes:
                        for complete in completes:
                            add(
                                ((*words, complete), ch),
                                lm + self._word_score(words, complete) + cfg.missing_space_penalty,
                                p_nb=source + row[token_id],
                            )
            beams = dict(heapq.nlargest(cfg.beam, grown.items(), key=_score))

        best_score, best_words = NEG_INF, None
        for (words, partial), (p_b, p_nb, lm) in beams.items():
            score = _log_add(p_b, p_nb) + lm
            endings = [(words, score)]
            if partial:
                endings = [
                    ((*words, complete), score + self._word_score(words, complete))
                    for complete in self.spelled.get(partial, ())
                ]
            for ended, ended_score in endings:
                total_score = ended_score + self._end_score(ended)
                if total_score > best_score:
                    best_score, best_words = total_score, ended
        if not best_words:
            return None
        return " ".join(self.words[i] for i in best_words)
