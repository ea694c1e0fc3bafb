"""The demo model's data: seeded train/held-out sentence sets, their audio, and the demo clips.

The held-out sentences are drawn first, from their own seed, and the training sentences are drawn
with those excluded; :func:`check_disjoint` verifies it again on the final lists. The demo clips
(``tests/data/clips``) are the first held-out sentences spoken by fixed voices, chosen before
training.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ops.progress import progress
from training import synth, text

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "build" / "demo-data"
CLIPS_DIR = REPO / "tests" / "data" / "clips"

TEST_SEED = 20261126
TRAIN_SEED = 1234
#: Development sentences: tune the decoder's LM weight and word bonus on these, never on the
#: held-out test set. Disjoint from both train and test.
DEV_SEED = 4242
DEV_SENTENCES = 300

#: Demo clips: (file name, voice). They speak held-out sentences 0..3. Fixed before training.
CLIP_VOICES: list[tuple[str, synth.Voice]] = [
    ("clip1_en-us_m3.wav", synth.Voice("en-us", "m3", 160, 50)),
    ("clip2_en_f2.wav", synth.Voice("en", "f2", 150, 60)),
    ("clip3_en-gb-x-rp_m1.wav", synth.Voice("en-gb-x-rp", "m1", 170, 40)),
    ("clip4_en-us_f4.wav", synth.Voice("en-us", "f4", 155, 55)),
]

TWO_SENTENCE_CLIP = "clip5_two_sentences.wav"


@dataclass(frozen=True)
class DataSpec:
    train_sentences: int = 30000
    test_sentences: int = 400
    train_seed: int = TRAIN_SEED
    test_seed: int = TEST_SEED

    def key(self, part: str) -> str:
        blob = json.dumps({"part": part, **asdict(self), "voices": synth.VARIANTS, "base": synth.BASE_VOICES})
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_sentences(spec: DataSpec) -> list[str]:
    return text.generate(spec.test_sentences, seed=spec.test_seed)


def train_sentences(spec: DataSpec) -> list[str]:
    held_out = test_sentences(spec)
    train = text.generate(spec.train_sentences, seed=spec.train_seed, exclude=held_out)
    check_disjoint(train, held_out)
    return train


def dev_sentences(spec: DataSpec) -> list[str]:
    held_out = test_sentences(spec)
    dev = text.generate(DEV_SENTENCES, seed=DEV_SEED, exclude=[*held_out, *train_sentences(spec)])
    check_disjoint(dev, held_out)
    return dev


def check_disjoint(train: list[str], held_out: list[str]) -> None:
    overlap = set(train) & set(held_out)
    if overlap:
        raise RuntimeError(f"{len(overlap)} held-out sentences leaked into training, e.g. {min(overlap)!r}")


def corpus(part: str, spec: DataSpec, workers: int = 2, log: bool = True) -> synth.Corpus:
    """The synthesized ``train``, ``test`` or ``dev`` corpus, from the cache when it matches ``spec``."""
    key = spec.key(part) if part != "dev" else spec.key(f"dev-{DEV_SEED}-{DEV_SENTENCES}")
    directory = DATA_DIR / f"{part}-{key}"
    if (directory / "index.json").exists():
        return synth.Corpus.load(directory)
    sentences = {"train": train_sentences, "test": test_sentences, "dev": dev_sentences}[part](spec)
    seed = {"train": spec.train_seed, "test": spec.test_seed, "dev": DEV_SEED}[part]
    if log:
        # A bar on a terminal; in a log, a start and an end line (count, time, rate).
        with progress(
            len(sentences), f"synthesize {part} ({workers} workers)", unit="utt", stream=sys.stdout
        ) as report:
            built = synth.build_corpus(sentences, seed=seed + 1, workers=workers, report=report)
    else:
        built = synth.build_corpus(sentences, seed=seed + 1, workers=workers)
    built.save(directory)
    return built


def clip_sentences(spec: DataSpec) -> list[str]:
    """Held-out sentences for the clips: the first ones with at least 7 words (fixed rule)."""
    return [s for s in test_sentences(spec) if len(s.split()) >= 7][: len(CLIP_VOICES) + 1]


def _clip_audio(sentence: str, voice: synth.Voice) -> np.ndarray:
    audio = synth.synthesize(sentence, voice)
    # Clean speech at a moderate level (-20 dBFS RMS).
    return audio / (np.sqrt(np.mean(audio**2)) + 1e-9) * 0.1


def write_clips(spec: DataSpec, directory: Path = CLIPS_DIR) -> dict[str, str]:
    """Speak held-out sentences with the clip voices; write 16 kHz WAVs + transcripts.json.

    The last clip holds two sentences (two voices) with a 1.2 s pause, for segmentation tests.
    """
    directory.mkdir(parents=True, exist_ok=True)
    sentences = clip_sentences(spec)
    pad = np.zeros(int(0.3 * synth.SAMPLE_RATE), np.float32)
    transcripts: dict[str, str] = {}
    for (name, voice), sentence in zip(CLIP_VOICES, sentences, strict=False):
        audio = np.concatenate([pad, _clip_audio(sentence, voice), pad])
        sf.write(directory / name, np.clip(audio, -1, 1), synth.SAMPLE_RATE, subtype="PCM_16")
        transcripts[name] = sentence
    first, second = sentences[len(CLIP_VOICES)], sentences[0]
    pause = np.zeros(int(1.2 * synth.SAMPLE_RATE), np.float32)
    audio = np.concatenate(
        [pad, _clip_audio(first, CLIP_VOICES[1][1]), pause, _clip_audio(second, CLIP_VOICES[2][1]), pad]
    )
    sf.write(directory / TWO_SENTENCE_CLIP, np.clip(audio, -1, 1), synth.SAMPLE_RATE, subtype="PCM_16")
    transcripts[TWO_SENTENCE_CLIP] = f"{first} {second}"
    (directory / "transcripts.json").write_text(json.dumps(transcripts, indent=2) + "\n")
    return transcripts
