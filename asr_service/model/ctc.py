"""Greedy CTC decoding: whole utterances, and an incremental per-stream decoder for the engine.

Token text follows the sentencepiece convention: "▁" marks a word boundary (a whole token for the
character vocabulary, a prefix for sentencepiece pieces), so one rule turns ids into text.

Confidence of a segment (``Segment.confidence``) is the mean, over the segment's non-blank frames
(frames whose best token is not the blank), of that best token's posterior probability. A frame
that emits or repeats a token counts; blank frames, which dominate any CTC output, do not, so the
number reflects how sure the model was about what it wrote, in (0, 1].

Lexicon (optional): a closed-vocabulary model (the shipped demo) can carry its word list in the
checkpoint. Greedy CTC spells words letter by letter and sometimes misspells them; with a
:class:`Lexicon`, each finished word that is not in the list is replaced by the nearest listed word
when that is within a small edit distance (otherwise it is kept as spelled). The word still being
spoken (the last one of a partial) is left as decoded until the segment is finalized.

Word decoder (optional): a checkpoint that also ships a word language model gets a second pass at
each final: the segment's log-probs go through a lexicon-constrained beam search
(``asr_service.model.lexicon_beam``) whose words replace the greedy text. Partials stay greedy;
confidence and token ids stay those of the greedy path.

Phoneme models: a word decoder built from a pronunciation table (``pronounced = True``) means
the model writes phonemes, which are not text. Then the word search writes every text: finals as
above, and partials too, from the segment's frames so far. A search that can run incrementally
(``open_stream``: the native one) is fed block by block, so a partial costs only the new frames;
otherwise the whole segment is searched again when frames were added. A segment in which the
search finds no word has no text.

Times: frame ``i`` is reported at ``i * frame_shift_s`` from the start of the stream. A causal CTC
model emits a token shortly after it was spoken (the shipped model at most a few frames), so
segment times are late by about that much.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import torch

from asr_service.decoding.results import Segment

WORD_BOUNDARY = "▁"


def tokens_to_text(ids: Iterable[int], tokens: Sequence[str]) -> str:
    """Concatenate token texts, turn word-boundary marks into spaces, normalise spaces."""
    text = "".join(tokens[i] for i in ids).replace(WORD_BOUNDARY, " ")
    return " ".join(text.split())


def collapse(best: Iterable[int], blank_id: int, previous: int | None = None) -> list[int]:
    """CTC collapse of a best-path id sequence: drop repeats, then blanks."""
    out: list[int] = []
    for token in best:
        if token != previous and token != blank_id:
            out.append(token)
        previous = token
    return out


def greedy_decode(
    log_probs: torch.Tensor, tokens: Sequence[str], blank_id: int, length: int | None = None
) -> str:
    """Best-path decoding of one utterance: ``log_probs`` [T, V] (first ``length`` frames)."""
    if log_probs.dim() != 2:
        raise ValueError(f"greedy_decode wants log-probs [T, V], got {tuple(log_probs.shape)}")
    frames = log_probs if length is None else log_probs[:length]
    return tokens_to_text(collapse(frames.argmax(dim=-1).tolist(), blank_id), tokens)


def greedy_decode_batch(
    log_probs: torch.Tensor, lengths: torch.Tensor, tokens: Sequence[str], blank_id: int
) -> list[str]:
    """``log_probs`` [B, T, V] with ``lengths`` [B] frames → one text per utterance."""
    best = log_probs.argmax(dim=-1).tolist()
    return [
        tokens_to_text(collapse(row[:n], blank_id), tokens)
        for row, n in zip(best, lengths.tolist(), strict=True)
    ]


_VOWELS = frozenset("aeiouy")


def _spelling_distance(a: str, b: str, cutoff: float = float("inf")) -> float:
    """Levenshtein distance where swapping one vowel for another costs 0.5: a model that spells
    by ear mostly confuses vowels ("hevy" for "heavy"), so those are the cheaper mistakes.

    Above ``cutoff`` the exact value does not matter (``inf`` may be returned as soon as it is sure):
    no step lowers the cost, so a row's minimum bounds the distance from below. Partials correct
    every word the model spells anew against the whole word list, which made this loop a visible
    share of the server's CPU under load.
    """
    previous = [float(j) for j in range(len(b) + 1)]
    for i, ca in enumerate(a, start=1):
        current = [float(i)]
        for j, cb in enumerate(b, start=1):
            if ca == cb:
                substitute = 0.0
            elif ca in _VOWELS and cb in _VOWELS:
                substitute = 0.5
            else:
                substitute = 1.0
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + substitute))
        if min(current) > cutoff:
            return float("inf")
        previous = current
    return previous[-1]


class Lexicon:
    """A closed word list; :meth:`correct` snaps a misspelled word to its nearest listed word."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = frozenset(w for w in words if w)
        if not self.words:
            raise ValueError("a lexicon needs at least one word")
        self._by_length: dict[int, list[str]] = {}
        for word in sorted(self.words):
            self._by_length.setdefault(len(word), []).append(word)
        self._cache: dict[str, str] = {}

    @staticmethod
    def max_edits(word: str) -> int:
        """How far a spelling may be from a listed word and still be snapped to it."""
        return max(1, (len(word) * 2 + 2) // 5)

    def correct(self, word: str) -> str:
        """``word`` if listed, else the nearest listed word within :meth:`max_edits`, else ``word``."""
        if word in self.words:
            return word
        found = self._cache.get(word)
        if found is None:
            found = self._nearest(word)
            if len(self._cache) < 65536:  # bounded: a stream of garbage must not grow memory
                self._cache[word] = found
        return found

    def _nearest(self, word: str) -> str:
        limit = self.max_edits(word)
        best, best_key = word, (float(limit) + 0.25, 1)
        for length in range(len(word) - limit, len(word) + limit + 1):
            for candidate in self._by_length.get(length, ()):
                # Candidates farther than the best so far are given up early (same result).
                distance = _spelling_distance(word, candidate, best_key[0])
                # Ties go to the candidate sharing the first letter, then alphabetical (sorted lists).
                key: tuple[float, int] = (distance, 0 if candidate[:1] == word[:1] else 1)
                if key < best_key:
                    best, best_key = candidate, key
        return best

    def correct_text(self, text: str, last_word_complete: bool = True) -> str:
        words = text.split()
        done = words if last_word_complete else words[:-1]
        fixed = [self.correct(w) for w in done]
        return " ".join(fixed if last_word_complete else [*fixed, *words[-1:]])


class WordDecoder(Protocol):
    """Second-pass decoding of a whole segment (``lexicon_beam.LexiconBeamDecoder``). A decoder
    with ``pronounced = True`` finds words by pronunciation (module doc: phoneme models)."""

    def decode(self, log_probs: torch.Tensor) -> str | None: ...


def _pronounced(word_decoder: WordDecoder | None) -> bool:
    return bool(getattr(word_decoder, "pronounced", False))


class WordStream(Protocol):
    """An incremental word search over one stream's segments (``native_lexicon.NativeWordStream``)."""

    def step(self, log_probs: torch.Tensor) -> None: ...
    def best(self) -> str | None: ...
    def finish(self) -> str | None: ...


class IncrementalGreedyDecoder:
    """Greedy CTC over a stream: feed log-prob blocks, read the partial text, cut segments.

    Decoding a stream block by block gives the same tokens as :func:`greedy_decode` over the
    concatenated blocks; ``finalize`` only decides where one segment ends and the next begins.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        blank_id: int,
        frame_shift_s: float,
        lexicon: Lexicon | None = None,
        word_decoder: WordDecoder | None = None,
    ) -> None:
        if not 0 <= blank_id < len(tokens):
            raise ValueError(f"blank_id {blank_id} is outside the {len(tokens)}-token vocabulary")
        if frame_shift_s <= 0:
            raise ValueError("frame_shift_s must be positive")
        self.tokens = list(tokens)
        self.blank_id = blank_id
        self.frame_shift_s = frame_shift_s
        self.lexicon = lexicon
        self.word_decoder = word_decoder
        #: The tokens are phonemes: only the word search writes text (module doc).
        self.pronounced = _pronounced(word_decoder)
        opener = getattr(word_decoder, "open_stream", None) if self.pronounced else None
        self._word_stream: WordStream | None = opener() if opener is not None else None
        # Tokens that are not speech for endpointing: the blank and a bare word boundary.
        self._silent_ids = {blank_id} | {i for i, t in enumerate(self.tokens) if t == WORD_BOUNDARY}
        self._frames_seen = 0
        self._previous: int | None = None  # best token of the last frame (CTC repeat rule)
        self._last_speech_frame = -1
        self._reset_segment()

    def _reset_segment(self) -> None:
        self._ids: list[int] = []
        self._first_frame: int | None = None
        self._last_frame = -1
        self._prob_sum = 0.0
        self._prob_frames = 0
        #: The segment's log-prob blocks, kept only for a word decoder's second pass.
        self._blocks: list[torch.Tensor] = []
        #: (frames searched, text) of the last partial search of a phoneme model.
        self._searched: tuple[int, str] = (-1, "")
        self._segment_has_speech = False  # a speech token (not blank, not "▁") in this segment

    # ------------------------------------------------------------------ feeding
    def accept(self, log_probs: torch.Tensor) -> None:
        """Take the next block of frames: log-probs [T, V] for this stream only."""
        if log_probs.dim() != 2 or log_probs.shape[1] != len(self.tokens):
            raise ValueError(f"accept wants log-probs [T, {len(self.tokens)}], got {tuple(log_probs.shape)}")
        if self._word_stream is not None:
            self._word_stream.step(log_probs)
        elif self.word_decoder is not None:
            self._blocks.append(log_probs.detach().float().cpu())
        best_logp, best = log_probs.detach().float().max(dim=-1)
        probs = best_logp.exp().tolist()
        for offset, (token, prob) in enumerate(zip(best.tolist(), probs, strict=True)):
            frame = self._frames_seen + offset
            if token != self.blank_id:
                if self._first_frame is None:
                    self._first_frame = frame
                self._last_frame = frame
                self._prob_sum += prob
                self._prob_frames += 1
                if token != self._previous:
                    self._ids.append(token)
                if token not in self._silent_ids:
                    self._last_speech_frame = frame
                    self._segment_has_speech = True
            self._previous = token
        self._frames_seen += len(probs)

    # ------------------------------------------------------------------ reading
    @property
    def frames_seen(self) -> int:
        return self._frames_seen

    @property
    def partial_text(self) -> str:
        """Text of the current (not yet finalized) segment."""
        if self.pronounced:
            return self._searched_text()
        text = tokens_to_text(self._ids, self.tokens)
        if self.lexicon is None:
            return text
        return self.lexicon.correct_text(text, last_word_complete=False)

    def _searched_text(self) -> str:
        """The word search over the segment so far (a phoneme model's partial), run once per block."""
        if not self._ids or self.word_decoder is None:
            return ""
        if self._frames_seen != self._searched[0]:  # once per new block, however often it is read
            if self._word_stream is not None:
                found = self._word_stream.best()
            else:
                found = self.word_decoder.decode(torch.cat(self._blocks))
            self._searched = (self._frames_seen, found or "")
        return self._searched[1]

    @property
    def has_speech(self) -> bool:
        """Whether the current segment has any text (for a phoneme model: any phoneme, so that
        the endpointer does not run a word search on every silence check)."""
        if self.pronounced:
            return self._segment_has_speech
        return bool(self.partial_text)

    @property
    def trailing_silence_frames(self) -> int:
        """Frames since the last frame whose best token was speech (not blank, not a bare "▁")."""
        return self._frames_seen - (self._last_speech_frame + 1)

    @property
    def trailing_silence_s(self) -> float:
        return self.trailing_silence_frames * self.frame_shift_s

    # ------------------------------------------------------------------ cutting
    def finalize(self, segment_id: int = 0, reason: str = "eof") -> Segment | None:
        """Close the current segment and start a new one; None when it holds no text.
        ``segment_id`` and ``reason`` are the caller's numbering and why it cut here."""
        text = tokens_to_text(self._ids, self.tokens)
        if self._word_stream is not None:
            # Always close the stream's search (a silent segment too): the next segment starts clean.
            found = self._word_stream.finish()
            text = (found or "") if text else ""
        elif text and self.word_decoder is not None and self._blocks:
            # None when no lexicon words fit at all; then the greedy text stands (a phoneme
            # model's greedy text is phonemes, not words: then the segment has no text).
            fallback = "" if self.pronounced else text
            text = self.word_decoder.decode(torch.cat(self._blocks)) or fallback
        if self.lexicon is not None:
            text = self.lexicon.correct_text(text)
        first, last = self._first_frame, self._last_frame
        confidence = self._prob_sum / self._prob_frames if self._prob_frames else 0.0
        self._reset_segment()
        if not text or first is None:
            return None
        return Segment(
            segment_id=segment_id,
            text=text,
            start_s=round(first * self.frame_shift_s, 3),
            end_s=round((last + 1) * self.frame_shift_s, 3),
            confidence=confidence,
            reason=reason,
        )
