"""Open-vocabulary sentence sets, lexicon and corpora (audio), all seeded and cached.

- **test**: ``TEST_SENTENCES`` sentences from the ``fortunes`` source (5-15 words), a seeded sample,
  none of which occurs in any training or development text (checked in code), and whose source
  package is used for nothing else (:func:`training.open_vocab.sources.check_roles`).
- **dev** (decoder tuning only): ``DEV_SENTENCES`` WordNet examples, drawn first and kept out of
  the LM text and the training audio, and ``CONVERSATION_DEV`` lines of chatterbot-corpus's
  conversations: out of the training text's genre, as a user's sentences are.
- **training text**: every other WordNet example, plus the grammar's training sentences that
  the recipe speaks (``GRAMMAR_TRAIN``), so the grammar set keeps its LM context.
- **LM text**: the training text plus the State of the Union addresses since 1900 (their
  sentences whose words are all in the lexicon: 16,859 of 17,878), never spoken in training.
- **train audio**: ``OPEN_TRAIN`` WordNet sentences + ``GRAMMAR_TRAIN`` grammar sentences.
- **lexicon**: every word of the training text ∪ the SCOWL word list (lower-case entries) ∪ the
  grammar's vocabulary. Neither test sentences nor the LM-only text add to it (so the
  pronunciation table does not change with the LM text).

Two voice conditions for the test audio: ``default`` (espeak-ng's en-us voice as it comes: no
variant, 175 words/min, pitch 50, which is what a new user hears) and ``varied`` (a seeded random
voice per sentence, as training speaks).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache

import numpy as np

from ops.progress import Progress, progress
from training import data as grammar_data
from training import synth, text
from training.open_vocab import normalize, sources

CACHE_DIR = grammar_data.REPO / "build" / "open-vocab"
TEST_SEED = 20261203
DEV_SEED = 4243
TRAIN_SEED = 1235
TEST_SENTENCES = 150
DEV_SENTENCES = 300
CONVERSATION_DEV = 200
CONVERSATION_SEED = 7
TEST_MIN_WORDS, TEST_MAX_WORDS = 5, 15
OPEN_TRAIN = 24000
GRAMMAR_TRAIN = 6000
#: espeak-ng's en-us voice with nothing changed ("en-us+" with an empty variant is the default).
DEFAULT_VOICE = synth.Voice("en-us", "", 175, 50, 0)
TRAIN_SOURCES = (sources.WORDNET, sources.SOTU, sources.WORDFREQ, sources.CHATTERBOT)
TEST_SOURCES = (sources.FORTUNES,)


@dataclass(frozen=True)
class OpenSpec:
    open_train: int = OPEN_TRAIN
    grammar_train: int = GRAMMAR_TRAIN
    test_sentences: int = TEST_SENTENCES
    train_seed: int = TRAIN_SEED
    test_seed: int = TEST_SEED

    def key(self, part: str) -> str:
        blob = json.dumps(
            {"part": part, **asdict(self), "voices": synth.VARIANTS, "base": synth.BASE_VOICES, "v": 1}
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class LeakError(RuntimeError):
    """A test sentence (or its source) is also in the training or development text."""


@cache
def _wordnet_sentences() -> tuple[str, ...]:
    sources.require(sources.WORDNET)
    return tuple(sorted(set(normalize.sentences(sources.wordnet_examples()))))


@cache
def _fortune_sentences() -> tuple[str, ...]:
    sources.require(sources.FORTUNES)
    found = normalize.sentences(sources.fortune_texts(), TEST_MIN_WORDS, TEST_MAX_WORDS)
    return tuple(sorted(set(found)))


def dev_sentences() -> list[str]:
    pool = list(_wordnet_sentences())
    return random.Random(DEV_SEED).sample(pool, DEV_SENTENCES)


def conversation_dev_sentences(spec: OpenSpec) -> list[str]:
    """A seeded sample of chatterbot-corpus's conversation lines (4-20 words, every word in the
    lexicon: a word the search cannot write would only add the same error to every setting)."""
    lexicon = set(lexicon_words(spec))
    pool = sorted({s for s in normalize.sentences(sources.conversation_lines()) if set(s.split()) <= lexicon})
    return random.Random(CONVERSATION_SEED).sample(pool, min(CONVERSATION_DEV, len(pool)))


def text_sentences(spec: OpenSpec) -> list[str]:
    """The training text: WordNet examples but the dev ones, and the spoken grammar sentences."""
    dev = set(dev_sentences())
    wordnet = [s for s in _wordnet_sentences() if s not in dev]
    return wordnet + grammar_train_sentences(spec)


@cache
def _address_sentences() -> tuple[str, ...]:
    return tuple(normalize.sentences(sources.sotu_addresses()))


def lm_sentences(spec: OpenSpec) -> list[str]:
    """The LM's text: the training text, then the addresses' sentences whose words are all in the
    lexicon. A sentence of the test source's pool or of a development set is left out of it."""
    lexicon = set(lexicon_words(spec))
    held = set(_fortune_sentences()) | set(dev_sentences()) | set(conversation_dev_sentences(spec))
    addresses = [s for s in _address_sentences() if set(s.split()) <= lexicon and s not in held]
    return text_sentences(spec) + addresses


def grammar_train_sentences(spec: OpenSpec) -> list[str]:
    return grammar_data.train_sentences(grammar_data.DataSpec())[: spec.grammar_train]


def train_sentences(spec: OpenSpec) -> list[str]:
    """What the recipe speaks: a seeded sample of the WordNet text plus grammar sentences, mixed."""
    dev = set(dev_sentences())
    wordnet = [s for s in _wordnet_sentences() if s not in dev]
    rng = random.Random(spec.train_seed)
    chosen = rng.sample(wordnet, min(spec.open_train, len(wordnet))) + grammar_train_sentences(spec)
    rng.shuffle(chosen)
    return chosen


def test_sentences(spec: OpenSpec) -> list[str]:
    sources.check_roles(TRAIN_SOURCES, TEST_SOURCES)
    banned = set(_wordnet_sentences())
    pool = [s for s in _fortune_sentences() if s not in banned]
    chosen = random.Random(spec.test_seed).sample(pool, spec.test_sentences)
    check_disjoint(chosen, [*lm_sentences(spec), *dev_sentences(), *conversation_dev_sentences(spec)])
    return chosen


def check_disjoint(test: list[str], training: list[str]) -> None:
    overlap = set(test) & set(training)
    if overlap:
        raise LeakError(f"{len(overlap)} test sentences occur in training text, e.g. {min(overlap)!r}")


def lexicon_words(spec: OpenSpec) -> list[str]:
    return list(_lexicon(spec))


@cache
def _lexicon(spec: OpenSpec) -> tuple[str, ...]:
    words: set[str] = set()
    for sentence in text_sentences(spec):
        words.update(sentence.split())
    sources.require(sources.WORDLIST)
    words.update(sources.word_list())
    words.update(text.vocabulary())
    return tuple(sorted(words))


def source_versions() -> dict[str, dict[str, str]]:
    """Each source's package, pinned and installed version, licence and role (for metadata)."""
    return {
        s.name: {
            "package": s.package,
            "pinned": s.version,
            "installed": sources.installed_version(s) or "missing",
            "licence": s.licence,
            "role": s.role,
        }
        for s in sources.SOURCES
    }


def training_corpora(spec: OpenSpec, workers: int = 2) -> tuple[synth.Corpus, synth.Corpus]:
    """The recipe's training audio and its validation audio (the development sentences), after
    checking that no test sentence is among the training texts."""
    train = corpus("train", spec, workers=workers)
    check_disjoint(test_sentences(spec), train.texts)
    return train, corpus("dev", spec, workers=workers)


def _voices_for(part: str, texts: list[str]) -> list[synth.Voice] | None:
    if part.endswith("default"):
        return [DEFAULT_VOICE] * len(texts)
    return None  # build_corpus draws a seeded random voice per sentence


def corpus(part: str, spec: OpenSpec, workers: int = 2, log: bool = True) -> synth.Corpus:
    """``train``, ``test-default``, ``test-varied``, ``dev`` or ``dev-conversation``, from the cache
    when it matches."""
    makers = {
        "train": (train_sentences, spec.train_seed),
        "test-default": (test_sentences, spec.test_seed),
        "test-varied": (test_sentences, spec.test_seed),
        "dev": (lambda _spec: dev_sentences(), DEV_SEED),
        "dev-conversation": (conversation_dev_sentences, CONVERSATION_SEED),
    }
    make, seed = makers[part]
    directory = CACHE_DIR / f"{part}-{spec.key(part)}"
    if (directory / "index.json").exists():
        return synth.Corpus.load(directory)
    texts = make(spec)
    voices = _voices_for(part, texts)
    if log:
        label = f"synthesize open {part} ({workers} workers)"
        with progress(len(texts), label, unit="utt", stream=sys.stdout) as bar:
            built = _build(texts, seed, voices, workers, bar)
    else:
        built = _build(texts, seed, voices, workers, None)
    built.save(directory)
    return built


def _build(
    texts: list[str], seed: int, voices: list[synth.Voice] | None, workers: int, report: Progress | None
) -> synth.Corpus:
    if voices is None:  # a seeded random voice per sentence, as the training corpus gets
        return synth.build_corpus(texts, seed=seed + 1, workers=workers, report=report)
    batch = 32
    jobs = [(texts[i : i + batch], voices[i : i + batch]) for i in range(0, len(texts), batch)]
    audio: list[np.ndarray] = []
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        for chunk in pool.map(synth._synthesize_batch, jobs):
            audio.extend(chunk)
            if report is not None:
                report.update(len(chunk))
    return synth.Corpus(audio, texts, voices)
