"""Phoneme targets for the open-vocabulary model (issue #20): what espeak-ng said, word by word.

The letter model has to guess English spelling from sound. espeak-ng is rule-based, so the
phonemes behind every training utterance are known exactly; a model trained on them only has to
hear, and the word search (a pronunciation lexicon + word LM) does the spelling.

A target is the sentence as its own voice's accent phonemizes it *in context* (``-x`` of the
whole sentence: reduced function words, linking), one pronunciation per input word, joined by
"▁". espeak-ng sometimes joins words ("in the" -> ``I n D @2``, "out of" -> ``aU t# @ v``) or, rarely,
splits one; :func:`align` maps its words back onto the input words by edit distance against the
words spoken alone, so every input word gets its own in-context pronunciation and every word
boundary gets its "▁" (the word search needs one between any two words).

Voice variants, speed, pitch and word gap do not change the phonemes, only the accent does
(checked with espeak-ng 1.51: ``en-us+m3``/``+klatt``/``-s 195 -g 2`` print the same as ``en-us``),
so phonemization runs once per accent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from asr_service.model.ctc import WORD_BOUNDARY
from asr_service.model.wer import edit_distance
from training import synth
from training.open_vocab.phonemes import Pronunciation, isolated, phonemize

BLANK = "<blank>"
#: Input words one espeak-ng word may cover (a join), and espeak-ng words one input word may
#: become (a split). Larger groups were not seen in the development text.
MAX_JOIN = 3
MAX_SPLIT = 2
CACHE_VERSION = 1


def _joined(parts: Sequence[Pronunciation]) -> Pronunciation:
    return tuple(p for part in parts for p in part)


def _split(spoken: Pronunciation, alone: Sequence[Pronunciation]) -> list[Pronunciation]:
    """Cut one espeak-ng word into ``len(alone)`` non-empty pieces, each closest to its word alone."""
    count, size = len(alone), len(spoken)
    if count == 1:
        return [spoken]
    if size < count:  # cannot give every word a phoneme: keep the isolated forms
        return list(alone)
    # best[k][i]: cost of the first k words covering spoken[:i]; back[k][i]: where word k starts.
    inf = float("inf")
    best = [[inf] * (size + 1) for _ in range(count + 1)]
    back = [[0] * (size + 1) for _ in range(count + 1)]
    best[0][0] = 0.0
    for k in range(1, count + 1):
        for i in range(k, size - (count - k) + 1):
            for start in range(k - 1, i):
                if best[k - 1][start] == inf:
                    continue
                cost = best[k - 1][start] + edit_distance(spoken[start:i], alone[k - 1])
                if cost < best[k][i]:
                    best[k][i], back[k][i] = cost, start
    pieces: list[Pronunciation] = []
    end = size
    for k in range(count, 0, -1):
        start = back[k][end]
        pieces.append(spoken[start:end])
        end = start
    return pieces[::-1]


def align(alone: Sequence[Pronunciation], spoken: Sequence[Pronunciation]) -> list[Pronunciation]:
    """One in-context pronunciation per input word (``alone``: the input words spoken alone;
    ``spoken``: espeak-ng's words for the whole sentence)."""
    words, heard = len(alone), len(spoken)
    if words == heard:
        return list(spoken)
    inf = float("inf")
    # best[i][j]: cost of matching input words [:i] with espeak-ng words [:j].
    best = [[inf] * (heard + 1) for _ in range(words + 1)]
    back: dict[tuple[int, int], tuple[int, int]] = {}
    best[0][0] = 0.0
    for i in range(words + 1):
        for j in range(heard + 1):
            if best[i][j] == inf:
                continue
            steps = [(m, 1) for m in range(1, MAX_JOIN + 1)] + [(1, n) for n in range(2, MAX_SPLIT + 1)]
            for m, n in steps:
                if i + m > words or j + n > heard:
                    continue
                cost = best[i][j] + edit_distance(_joined(spoken[j : j + n]), _joined(alone[i : i + m]))
                if cost < best[i + m][j + n]:
                    best[i + m][j + n] = cost
                    back[(i + m, j + n)] = (i, j)
    if best[words][heard] == inf:
        return list(alone)
    groups: list[tuple[int, int, int, int]] = []
    i, j = words, heard
    while (i, j) != (0, 0):
        pi, pj = back[(i, j)]
        groups.append((pi, i, pj, j))
        i, j = pi, pj
    out: list[Pronunciation] = []
    for wi, wj, si, sj in reversed(groups):
        out.extend(_split(_joined(spoken[si:sj]), alone[wi:wj]))
    return out


def sentence_pronunciations(sentences: Sequence[str], accent: str) -> list[list[Pronunciation]]:
    """Every sentence as ``accent`` speaks it, one pronunciation per input word."""
    alone = isolated([w for s in sentences for w in s.split()], accent)
    spoken = phonemize(list(sentences), accent)
    return [align([alone[w] for w in s.split()], said) for s, said in zip(sentences, spoken, strict=True)]


def _cache_key(texts: Sequence[str], accents: Sequence[str]) -> str:
    blob = json.dumps([CACHE_VERSION, _espeak_version(), list(texts), list(accents)])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@cache
def _espeak_version() -> str:
    return synth.espeak_version()


def targets_for(
    texts: Sequence[str], voices: Sequence[synth.Voice], cache_dir: Path | None = None
) -> list[list[Pronunciation]]:
    """Per utterance, its words' in-context pronunciations in the accent of the voice that spoke
    it; cached as JSON under ``cache_dir`` (the same texts and accents give the same file)."""
    accents = [v.voice for v in voices]
    path = cache_dir / f"phonemes-{_cache_key(texts, accents)}.json" if cache_dir is not None else None
    if path is not None and path.exists():
        stored = json.loads(path.read_text())
        return [[tuple(word) for word in sentence] for sentence in stored]
    out: list[list[Pronunciation]] = [[] for _ in texts]
    for accent in sorted(set(accents)):
        rows = [i for i, a in enumerate(accents) if a == accent]
        for row, words in zip(rows, sentence_pronunciations([texts[i] for i in rows], accent), strict=True):
            out[row] = words
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out))
    return out


def phoneme_tokens(targets: Sequence[Sequence[Pronunciation]]) -> list[str]:
    """The model's vocabulary: blank, the word boundary, then every phoneme seen, sorted."""
    symbols = {p for sentence in targets for word in sentence for p in word}
    return [BLANK, WORD_BOUNDARY, *sorted(symbols)]


def encode(words: Sequence[Pronunciation], tokens: Sequence[str]) -> list[int]:
    """Token ids of one target: the words' phonemes with "▁" between words."""
    index = {t: i for i, t in enumerate(tokens)}
    ids: list[int] = []
    for n, word in enumerate(words):
        if n:
            ids.append(index[WORD_BOUNDARY])
        ids.extend(index[p] for p in word)
    return ids


def as_text(ids: Sequence[int], tokens: Sequence[str]) -> str:
    """Ids as words of phonemes (phonemes joined by "_"), for logs and phoneme error rates."""
    words: list[list[str]] = [[]]
    for i in ids:
        if tokens[i] == WORD_BOUNDARY:
            words.append([])
        elif tokens[i] != BLANK:
            words[-1].append(tokens[i])
    return " ".join("_".join(w) for w in words if w)


def phoneme_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> tuple[float, float]:
    """(word-pronunciation error rate, phoneme error rate) of :func:`as_text` strings."""
    if len(refs) != len(hyps):
        raise ValueError("refs and hyps differ in length")
    words = sum(len(r.split()) for r in refs)
    phones = sum(len(r.replace(" ", "_").split("_")) for r in refs)
    word_edits = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps, strict=True))
    phone_edits = sum(
        edit_distance(r.replace(" ", "_").split("_"), [p for p in h.replace(" ", "_").split("_") if p])
        for r, h in zip(refs, hyps, strict=True)
    )
    return word_edits / max(1, words), phone_edits / max(1, phones)
