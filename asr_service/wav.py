"""Audio files as a client sends them: 16-bit mono PCM and its rate (numpy + soundfile, no torch).

The golden-set gate reads its clips with this so a clip is judged on exactly the bytes the
streaming client (``python -m asr_client``, which imports it too) would send.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class WavReadError(ValueError):
    """The file is missing or not audio that libsndfile can read."""


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """→ (int16 mono samples, sample rate). Several channels are averaged."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise WavReadError(f"cannot read audio file {path}: {error}") from None
    mono = data.mean(axis=1)
    return (np.clip(mono, -1.0, 32767 / 32768) * 32768).round().astype("<i2"), int(rate)
