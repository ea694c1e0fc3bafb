"""The modified Kneser-Ney estimator, the n-gram checkpoint LM, its ARPA file and both searches."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from asr_service.model.checkpoint import CheckpointFormatError, load_checkpoint, save_checkpoint
from asr_service.model.features import LogMelSettings
from asr_service.model.lexicon_beam import PYTHON_MAX_BEAM, BeamSettings, LexiconBeamDecoder
from asr_service.model.native_lexicon import NativeDecoderError, NativeLexiconDecoder, native_available
from asr_service.model.ngram_lm import NgramLm, NgramLmError
from asr_service.model.streaming_ctc import ARCH_NAME, CHAR_TOKENS, StreamingGruCtc, StreamingGruCtcConfig
from training.open_vocab import kneser_ney

WORDS = sorted(
    ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "rug", "big", "small", "red", "and"]
)
needs_native = pytest.mark.skipif(not native_available(), reason="flashlight-text is not installed")


def _corpus(count: int = 400, seed: int = 3) -> list[list[int]]:
    rng = random.Random(seed)
    index = {w: i for i, w in enumerate(WORDS)}
    out = []
    for _ in range(count):
        words = [rng.choice(["the", "a"]), rng.choice(["big", "small", "red"]), rng.choice(["cat", "dog"])]
        words += [rng.choice(["sat", "ran"]), rng.choice(["on", "under"]), "the", rng.choice(["mat", "rug"])]
        if rng.random() < 0.3:
            words = [*words[:3], "and", "the", rng.choice(["cat", "dog"]), *words[3:]]
        out.append([index[w] for w in words])
    return out


def _lm(min_count: int = 2, order: int = 3, sentences: int = 400) -> NgramLm:
    return kneser_ney.estimate(_corpus(sentences), WORDS, order=order, min_count=min_count)


def _contexts(lm: NgramLm) -> list[tuple[int, ...]]:
    contexts: set[tuple[int, ...]] = {()}
    for ids, _, _ in lm.tables[1:]:
        contexts.update(tuple(row[:-1]) for row in ids.tolist())
    return sorted(contexts)


@pytest.mark.parametrize(("order", "min_count"), [(2, 1), (3, 1), (3, 2), (3, 5)])
def test_every_context_distribution_sums_to_one(order: int, min_count: int) -> None:
    lm = _lm(min_count=min_count, order=order)
    for context in _contexts(lm):
        total = sum(10 ** lm.log10_prob(context, w) for w in range(lm.boundary + 1))
        assert total == pytest.approx(1.0, abs=1e-6), context


def test_pruning_drops_rare_trigrams_and_backoffs_stay_valid() -> None:
    full, pruned = _lm(min_count=1, sentences=60), _lm(min_count=3, sentences=60)
    assert pruned.counts()[:2] == full.counts()[:2] and pruned.counts()[2] < full.counts()[2]
    for _, _, backoff in pruned.tables[:-1]:
        assert bool(torch.isfinite(backoff).all())
        assert float(backoff.max()) <= 1e-9 + math.log10(1e6)  # a weight, not an overflow
    # The sentence the corpus keeps saying beats a scrambled one.
    likely = pruned.sentence_log10_prob("the big cat sat on the mat")
    assert likely > pruned.sentence_log10_prob("mat the on sat cat big the") + 3


def test_unseen_lexicon_words_keep_some_probability() -> None:
    words = [*WORDS, "zebra"]
    index = {w: i for i, w in enumerate(words)}
    sentences = [[index[WORDS[i]] for i in s] for s in _corpus(50)]
    lm = kneser_ney.estimate(sentences, sorted(words), order=3)
    zebra = lm.words.index("zebra")
    assert -8 < lm.log10_prob((lm.boundary,), zebra) < -2


def test_a_background_frequency_list_shifts_the_unigrams_and_keeps_every_distribution_whole() -> None:
    # The corpus never says "rug" after "under the" as often as "mat"; a background list that
    # finds "rug" common must make it likelier wherever the LM backs off to the unigrams.
    background = [1.0 if w == "rug" else 0.1 for w in WORDS]
    background = [b / sum(background) for b in background]
    plain = _lm(min_count=2)
    mixed = kneser_ney.estimate(
        _corpus(400), WORDS, order=3, min_count=2, background=background, background_weight=0.3
    )
    rug = WORDS.index("rug")
    assert mixed.log10_prob((), rug) > plain.log10_prob((), rug)
    for context in _contexts(mixed):
        total = sum(10 ** mixed.log10_prob(context, w) for w in range(mixed.boundary + 1))
        assert total == pytest.approx(1.0, abs=1e-6), context
    # The sentence the corpus keeps saying still wins: the list only moves what the text leaves open.
    assert mixed.sentence_log10_prob("the big cat sat on the mat") > mixed.sentence_log10_prob("mat the on")


@pytest.mark.parametrize(
    ("background", "weight", "message"),
    [
        ([0.5, 0.5], 0.2, "probabilities for"),
        ([1.0 / len(WORDS)] * len(WORDS), 1.0, r"background_weight must be in \[0, 1\)"),
        ([0.2] * len(WORDS), 0.2, "probability distribution"),
    ],
)
def test_a_broken_background_is_refused(background: list[float], weight: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kneser_ney.estimate(_corpus(20), WORDS, background=background, background_weight=weight)


def test_discounts_follow_counts_of_counts() -> None:
    d1, d2, d3 = kneser_ney._discounts([1] * 100 + [2] * 40 + [3] * 20 + [4] * 10)
    assert 0 < d1 < d2 < d3 <= 3
    assert kneser_ney._discounts([1, 1, 2]) == (0.5, 1.0, 1.5)  # too few counts: conventional values


def test_arpa_file_has_the_counts_and_the_boundary_symbols(tmp_path: Path) -> None:
    lm = _lm()
    path = tmp_path / "lm.arpa"
    lm.write_arpa(path)
    text = path.read_text()
    counts = lm.counts()
    assert f"ngram 1={counts[0] + 2}" in text and f"ngram 3={counts[2]}" in text
    unigrams = text.split("\\1-grams:\n")[1].split("\n\n")[0].splitlines()
    assert len(unigrams) == counts[0] + 2
    assert any(ln.startswith("-99\t<s>\t") for ln in unigrams) and "-99\t<unk>" in unigrams
    assert text.rstrip().endswith("\\end\\")


@needs_native
def test_kenlm_reads_the_arpa_and_scores_like_the_tables() -> None:
    lm = _lm()
    decoder = NativeLexiconDecoder(CHAR_TOKENS, 0, WORDS, lm)  # reads back a sample at load
    kenlm = decoder._lm
    index = {w: i for i, w in enumerate(WORDS)}
    state = kenlm.start(False)
    history: list[int] = [lm.boundary]
    for word in ["the", "big", "cat", "sat", "on", "the", "rug"]:
        state, score = kenlm.score(state, index[word])
        assert score == pytest.approx(lm.log10_prob(history, index[word]), abs=1e-4)
        history.append(index[word])
    assert kenlm.finish(state)[1] == pytest.approx(lm.log10_prob(history, lm.boundary), abs=1e-4)


@needs_native
def test_native_decoder_refuses_an_lm_that_scores_differently() -> None:
    lm = _lm()
    decoder = NativeLexiconDecoder(CHAR_TOKENS, 0, WORDS, lm)
    ids, prob, backoff = lm.tables[2]
    shifted = NgramLm(WORDS, [*lm.tables[:2], (ids, prob - 0.5, backoff)])
    # What KenLM loaded (from ``lm``) read back against other tables: the load check says which.
    with pytest.raises(NativeDecoderError, match="does not match the checkpoint's n-gram LM"):
        decoder._check_ngram_lm(decoder._lm, shifted, "test LM")


def test_tables_are_validated() -> None:
    lm = _lm()
    ids, prob, backoff = lm.tables[0]
    with pytest.raises(NgramLmError, match="once"):
        NgramLm(WORDS, [(ids[:-1], prob[:-1], backoff[:-1])])
    with pytest.raises(NgramLmError, match="above 0"):
        NgramLm(WORDS, [(ids, prob.abs() + 0.1, backoff)])
    with pytest.raises(NgramLmError, match="outside"):
        NgramLm(WORDS, [(ids + 5, prob, backoff)])


def _checkpoint(path: Path, lm: NgramLm, settings: BeamSettings | None = None) -> None:
    cfg = StreamingGruCtcConfig(hidden=16, layers=1)
    model = StreamingGruCtc(cfg, LogMelSettings(), CHAR_TOKENS)
    save_checkpoint(
        path,
        arch=ARCH_NAME,
        hparams=cfg.to_dict(),
        features=model.feature_settings.to_dict(),
        tokens=CHAR_TOKENS,
        blank_id=0,
        state_dict=model.state_dict(),
        lexicon=WORDS,
        word_lm=lm,
        decoder_settings=settings,
        lexicon_correction=False,
    )


@pytest.mark.parametrize("kind", ["python", pytest.param("native", marks=needs_native)])
def test_checkpoint_carries_the_ngram_lm_to_either_search(tmp_path: Path, kind: str) -> None:
    lm = _lm()
    path = tmp_path / "m.pt"
    _checkpoint(path, lm, BeamSettings(lm_weight=0.5, word_bonus=1.0))
    loaded = load_checkpoint(path, word_decoder=kind)
    assert loaded.lexicon is None  # the word list serves the search only
    assert loaded.word_decoder is not None and loaded.word_decoder.name == kind
    # Spell "the cat" as clean one-hot frames: the search must find those words.
    spelled = "▁the▁cat▁"
    frames = torch.full((len(spelled) * 2, len(CHAR_TOKENS)), -30.0)
    for i, ch in enumerate(spelled):
        frames[2 * i, CHAR_TOKENS.index(ch)] = 0.0
        frames[2 * i + 1, 0] = 0.0
    assert loaded.word_decoder.decode(frames.log_softmax(-1)) == "the cat"


@needs_native
def test_the_search_threshold_travels_in_the_checkpoint_and_old_ones_keep_the_default(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    _checkpoint(path, _lm(), BeamSettings(beam=96, lm_weight=0.5, word_bonus=0.0, beam_threshold=10.0))
    loaded = load_checkpoint(path, word_decoder="native")
    assert isinstance(loaded.word_decoder, NativeLexiconDecoder)
    assert loaded.word_decoder.settings.beam_threshold == 10.0
    assert loaded.word_decoder._options.beam_threshold == 10.0  # what flashlight prunes with
    # A checkpoint written before the setting existed loads with the threshold it was tuned under.
    raw = torch.load(path, weights_only=True)
    del raw["word_lm"]["decoder"]["beam_threshold"]
    torch.save(raw, path)
    reloaded = load_checkpoint(path, word_decoder="native").word_decoder
    assert isinstance(reloaded, NativeLexiconDecoder)
    assert reloaded.settings.beam_threshold == 15.0


def test_the_python_search_keeps_a_beam_it_can_afford_and_native_the_tuned_one(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    _checkpoint(path, _lm(), BeamSettings(beam=96, lm_weight=0.5, word_bonus=0.0, beam_threshold=10.0))
    python = load_checkpoint(path, word_decoder="python").word_decoder
    assert isinstance(python, LexiconBeamDecoder) and python.settings.beam == PYTHON_MAX_BEAM < 96
    assert python.settings.lm_weight == 0.5  # only the width changes
    if native_available():
        native = load_checkpoint(path, word_decoder="native").word_decoder
        assert isinstance(native, NativeLexiconDecoder) and native.settings.beam == 96


@pytest.mark.parametrize("threshold", [0.0, -1.0, float("nan"), True])
def test_a_bad_search_threshold_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="beam_threshold"):
        BeamSettings(beam_threshold=threshold)


def test_python_search_scores_with_the_whole_history() -> None:
    lm = _lm(min_count=1)
    search = LexiconBeamDecoder(CHAR_TOKENS, 0, WORDS, lm, BeamSettings(lm_weight=1.0, word_bonus=0.0))
    index = {w: i for i, w in enumerate(WORDS)}
    words = (index["the"], index["big"])
    assert search._lm_log_prob(lm, words, index["cat"]) == pytest.approx(
        lm.log10_prob((lm.boundary, *words), index["cat"]) * math.log(10)
    )


def test_a_broken_ngram_payload_fails_the_load(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    _checkpoint(path, _lm())
    raw = torch.load(path, weights_only=True)
    raw["word_lm"]["ngrams"][0]["log10_prob"] = raw["word_lm"]["ngrams"][0]["log10_prob"][:-1]
    torch.save(raw, path)
    with pytest.raises(CheckpointFormatError, match="bad 'word_lm'"):
        load_checkpoint(path, word_decoder="python")
