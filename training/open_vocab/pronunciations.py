"""The pronunciation table of a phoneme model (issue #20): how each lexicon word can sound.

A word's pronunciations are

- the word spoken alone, in every accent the recipe speaks (``synth.BASE_VOICES``: they differ,
  e.g. en-029 says ``d`` where en-us says ``D``), and
- the in-context forms the training targets hold (``phoneme_targets``: "the" is ``D @2`` before a
  consonant, "of" is ``V v`` in "of the"), kept when seen at least ``MIN_CONTEXT_COUNT`` times, so
  that one odd alignment does not add a pronunciation.

Words that sound alike share pronunciations ("their"/"there"); the word LM tells them apart.
Phonemizing ~88k words in 8 accents takes several minutes, so the isolated forms are cached per
(accent, word list, espeak-ng version) under ``build/open-vocab``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from training import synth
from training.open_vocab import data
from training.open_vocab.phoneme_targets import targets_for
from training.open_vocab.phonemes import Pronunciation, isolated

MIN_CONTEXT_COUNT = 2
CACHE_VERSION = 1
Table = dict[str, set[Pronunciation]]


def _isolated_job(job: tuple[list[str], str]) -> dict[str, Pronunciation]:
    words, accent = job
    return isolated(words, accent)


def isolated_forms(
    words: Sequence[str], accents: Sequence[str], cache_dir: Path | None = data.CACHE_DIR, workers: int = 2
) -> dict[str, dict[str, Pronunciation]]:
    """accent -> word -> the word spoken alone (cached per accent)."""
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, synth.espeak_version(), list(words)]).encode())
    key = digest.hexdigest()[:16]
    out: dict[str, dict[str, Pronunciation]] = {}
    missing = []
    for accent in accents:
        path = cache_dir / f"alone-{accent}-{key}.json" if cache_dir is not None else None
        if path is not None and path.exists():
            out[accent] = {w: tuple(p) for w, p in json.loads(path.read_text()).items()}
        else:
            missing.append(accent)
    jobs = [(list(words), accent) for accent in missing]
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs) or 1))) as pool:
        for accent, forms in zip(missing, pool.map(_isolated_job, jobs), strict=True):
            out[accent] = forms
            if cache_dir is not None:
                cache_dir.mkdir(parents=True, exist_ok=True)
                (cache_dir / f"alone-{accent}-{key}.json").write_text(json.dumps(forms))
    return out


def context_forms(
    texts: Sequence[str], targets: Sequence[Sequence[Pronunciation]], min_count: int = MIN_CONTEXT_COUNT
) -> Table:
    """word -> the in-context pronunciations seen at least ``min_count`` times in ``targets``."""
    counted: Counter[tuple[str, Pronunciation]] = Counter()
    for text, words in zip(texts, targets, strict=True):
        counted.update(zip(text.split(), words, strict=True))
    table: Table = {}
    for (word, form), count in counted.items():
        if count >= min_count and form:
            table.setdefault(word, set()).add(form)
    return table


def build_table(words: Sequence[str], alone: dict[str, dict[str, Pronunciation]], in_context: Table) -> Table:
    """Every lexicon word's pronunciations: alone in each accent, plus its in-context forms."""
    table: Table = {w: set() for w in words}
    for by_word in alone.values():
        for word, form in by_word.items():
            if word in table and form:
                table[word].add(form)
    for word, seen in in_context.items():
        if word in table:
            table[word] |= seen
    return {w: forms for w, forms in table.items() if forms}


def training_context(spec: data.OpenSpec) -> Table:
    """In-context forms from the recipe's training targets (the same cached file training wrote;
    the voices are re-drawn from the corpus seed with ``synth.draw_voices``, as the corpus drew them)."""
    texts = data.train_sentences(spec)
    voices = synth.draw_voices(len(texts), spec.train_seed + 1)  # data._build's corpus seed
    return context_forms(texts, targets_for(texts, voices, data.CACHE_DIR))


def lexicon_table(words: Sequence[str], spec: data.OpenSpec, workers: int = 2) -> Table:
    """The recipe's table over ``words`` (the broad lexicon)."""
    alone = isolated_forms(words, synth.BASE_VOICES, workers=workers)
    return build_table(words, alone, training_context(spec))


def stats(table: Table, tokens: Iterable[str]) -> dict[str, int]:
    """How big the table is, and how many forms use a phoneme the model cannot write."""
    known = set(tokens)
    forms = [form for ways in table.values() for form in ways]
    return {
        "words": len(table),
        "pronunciations": len(forms),
        "unwritable": sum(not set(form) <= known for form in forms),
    }
