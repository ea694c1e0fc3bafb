"""Synthetic speech with espeak-ng: many voices, variants, speeds and pitches, resampled to 16 kHz.

Each utterance gets a seeded random voice setting, so the same (sentence list, seed) always yields
the same audio. Audio is stored as int16 shards (``numpy.savez``, no pickle) plus a JSON index.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from ops.progress import Progress

SAMPLE_RATE = 16000

#: espeak-ng English voices (accents).
BASE_VOICES = [
    "en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
]  # fmt: skip
#: espeak-ng voice variants (speaker timbre). Whisper/croak-like novelty variants are left out.
VARIANTS = [
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
    "klatt3", "klatt4", "Andy", "Annie", "aunty", "belinda", "benjamin", "caleb", "david", "ed",
    "edward", "john", "linda", "max", "Michael", "paul", "quincy", "rob", "robert", "steph", "travis",
    "victor", "zac", "grandma", "grandpa", "norbert", "shelby", "Alex", "Alicia", "Andrea", "Gene",
    "Lee", "Mike", "adam", "anika",
]  # fmt: skip


@dataclass(frozen=True)
class Voice:
    """One espeak-ng setting: voice+variant, words per minute, pitch (0-99), gap between words."""

    voice: str
    variant: str
    speed: int
    pitch: int
    word_gap: int = 0

    def args(self) -> list[str]:
        return [
            "-v", f"{self.voice}+{self.variant}", "-s", str(self.speed), "-p", str(self.pitch),
            "-g", str(self.word_gap),
        ]  # fmt: skip


def random_voice(rng: random.Random) -> Voice:
    return Voice(
        voice=rng.choice(BASE_VOICES),
        variant=rng.choice(VARIANTS),
        speed=rng.randint(125, 195),
        pitch=rng.randint(25, 75),
        word_gap=rng.choice([0, 0, 0, 1, 2]),
    )


def draw_voices(count: int, seed: int) -> list[Voice]:
    """The seeded voices :func:`build_corpus` gives ``count`` utterances (one per utterance, in order)."""
    rng = random.Random(seed)
    return [random_voice(rng) for _ in range(count)]


def espeak_binary() -> str:
    found = shutil.which("espeak-ng")
    if not found:
        raise RuntimeError("espeak-ng is not installed (make system-deps installs it)")
    return found


def espeak_version() -> str:
    try:
        result = subprocess.run(  # noqa: S603
            [espeak_binary(), "--version"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError, RuntimeError):
        return "unknown"
    return result.stdout.strip()


def synthesize(text: str, voice: Voice) -> np.ndarray:
    """Speak ``text``; return float32 mono audio at 16 kHz."""
    # The text is one argv entry (no shell); a leading "-" cannot become an option because the
    # sentences come from our own grammar (lower-case letters, apostrophes, spaces).
    result = subprocess.run(  # noqa: S603
        [espeak_binary(), *voice.args(), "--stdout", text], capture_output=True, check=True, timeout=60
    )
    audio, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    tensor = torchaudio.functional.resample(torch.from_numpy(audio), rate, SAMPLE_RATE)
    return tensor.numpy()


def _synthesize_batch(job: tuple[list[str], list[Voice]]) -> list[np.ndarray]:
    torch.set_num_threads(1)
    texts, voices = job
    out = []
    for text, voice in zip(texts, voices, strict=True):
        audio = synthesize(text, voice)
        # Peak-normalise to int16; level is randomised later by augmentation.
        peak = float(np.abs(audio).max()) or 1.0
        out.append(np.round(audio / peak * 0.9 * 32767).astype(np.int16))
    return out


@dataclass
class Corpus:
    """Utterances held in memory: int16 audio, transcripts and the voice that spoke each."""

    audio: list[np.ndarray]
    texts: list[str]
    voices: list[Voice]

    def seconds(self) -> float:
        return sum(a.size for a in self.audio) / SAMPLE_RATE

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        offsets = np.cumsum([0] + [a.size for a in self.audio]).astype(np.int64)
        flat = np.concatenate(self.audio) if self.audio else np.zeros(0, np.int16)
        np.savez(directory / "audio.npz", audio=flat, offsets=offsets)
        index = [{"text": t, "voice": asdict(v)} for t, v in zip(self.texts, self.voices, strict=True)]
        (directory / "index.json").write_text(json.dumps(index, indent=0))

    @classmethod
    def load(cls, directory: Path) -> Corpus:
        with np.load(directory / "audio.npz", allow_pickle=False) as data:
            flat, offsets = data["audio"], data["offsets"]
        index = json.loads((directory / "index.json").read_text())
        audio = [flat[offsets[i] : offsets[i + 1]] for i in range(len(index))]
        return cls(audio, [e["text"] for e in index], [Voice(**e["voice"]) for e in index])


def build_corpus(
    texts: Sequence[str], seed: int, workers: int = 2, batch: int = 64, report: Progress | None = None
) -> Corpus:
    """Synthesize every text with a seeded random voice, ``workers`` processes in parallel.

    ``report`` hears of every finished batch (utterances), in order.
    """
    voices = draw_voices(len(texts), seed)
    jobs = [(list(texts[i : i + batch]), voices[i : i + batch]) for i in range(0, len(texts), batch)]
    audio: list[np.ndarray] = []
    if workers <= 1:
        chunks: Iterable[list[np.ndarray]] = map(_synthesize_batch, jobs)
        audio = _collect(chunks, report)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            audio = _collect(pool.map(_synthesize_batch, jobs), report)
    return Corpus(audio, list(texts), voices)


def _collect(chunks: Iterable[list[np.ndarray]], report: Progress | None) -> list[np.ndarray]:
    audio: list[np.ndarray] = []
    for chunk in chunks:
        audio.extend(chunk)
        if report is not None:
            report.update(len(chunk))
    return audio
