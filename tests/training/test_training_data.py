"""The demo model's data pipeline: seeded sentences, held-out separation, audio, metrics."""

from __future__ import annotations

import io

import numpy as np
import pytest

from ops.progress import progress
from training import data, synth, text
from training.augment import augment, colored_noise
from training.metrics import edit_distance, error_rates
from training.train import encode_text, make_batches


def test_sentences_are_seeded_and_distinct() -> None:
    first = text.generate(200, seed=5)
    assert first == text.generate(200, seed=5)
    assert first != text.generate(200, seed=6)
    assert len(set(first)) == 200
    for sentence in first:
        assert sentence == text.normalize(sentence)
        encode_text(sentence)  # every character is in the model's vocabulary


def test_held_out_sentences_never_reach_training() -> None:
    spec = data.DataSpec(train_sentences=3000, test_sentences=300)
    held_out = data.test_sentences(spec)
    train = data.train_sentences(spec)
    assert len(train) == 3000 and not set(train) & set(held_out)
    with pytest.raises(RuntimeError, match="leaked"):
        data.check_disjoint([*train, held_out[0]], held_out)


def test_clip_sentences_are_held_out() -> None:
    spec = data.DataSpec()
    clips = data.clip_sentences(spec)
    assert set(clips) <= set(data.test_sentences(spec))
    assert all(len(s.split()) >= 7 for s in clips)


def test_plurals() -> None:
    assert [text.plural(n) for n in ["box", "baby", "key", "knife", "leaf", "child", "potato"]] == [
        "boxes", "babies", "keys", "knives", "leaves", "children", "potatoes",
    ]  # fmt: skip


def test_espeak_speaks_at_16khz() -> None:
    audio = synth.synthesize("hello there", synth.Voice("en-us", "m3", 160, 50))
    assert audio.dtype == np.float32
    assert 0.4 < audio.size / synth.SAMPLE_RATE < 2.5
    assert np.abs(audio).max() > 0.05


def test_augmentation_is_seeded_and_sets_a_level() -> None:
    speech = (np.sin(np.arange(16000) / 5.0) * 10000).astype(np.int16)
    a = augment(speech, np.random.default_rng(3))
    b = augment(speech, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert a.size >= speech.size
    rms_db = 20 * np.log10(np.sqrt(np.mean(a**2)))
    assert -45 < rms_db < -10


def test_colored_noise_has_unit_rms_and_tilt() -> None:
    rng = np.random.default_rng(0)
    white, brown = colored_noise(20000, rng, 0.0), colored_noise(20000, rng, 2.0)
    assert np.sqrt(np.mean(white**2)) == pytest.approx(1.0, rel=1e-3)
    # Brown noise is dominated by low frequencies: neighbouring samples are strongly correlated.
    assert (
        np.corrcoef(brown[:-1], brown[1:])[0, 1] > 0.9 > abs(np.corrcoef(white[:-1], white[1:])[0, 1]) + 0.5
    )


def test_error_rates() -> None:
    assert edit_distance("kitten", "sitting") == 3
    wer, cer = error_rates(["the cat sat", "a dog"], ["the cat sat", "a dig ran"])
    assert wer == pytest.approx(2 / 5)
    assert cer == pytest.approx(5 / 16)


def test_batches_respect_the_padded_size_and_cover_everything() -> None:
    import random

    lengths = [random.Random(i).randint(8000, 80000) for i in range(500)]
    batches = make_batches(lengths, batch_seconds=20.0, rng=random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(500))
    for batch in batches:
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 20.0 * 16000


class _FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "log"])
def test_synthesis_reports_every_utterance(terminal: bool) -> None:
    texts = ["one two", "three four", "five six"]
    out = _FakeTerminal() if terminal else io.StringIO()
    with progress(len(texts), "synthesize test", unit="utt", stream=out) as report:
        corpus = synth.build_corpus(texts, seed=3, workers=1, batch=2, report=report)
    assert len(corpus.audio) == 3
    shown = out.getvalue()
    if terminal:  # a tqdm bar that ends at 3/3 utterances with a rate
        assert "\r" in shown and "3/3" in shown and "utt/s" in shown and "100%" in shown
    else:  # two plain lines
        assert shown.splitlines()[0] == "synthesize test: 3 utt ..."
        assert shown.splitlines()[1].startswith("synthesize test: done, 3 utt in ")
        assert len(shown.splitlines()) == 2
