"""Log-mel features that can be computed chunk by chunk with exactly the same result.

The STFT runs with ``center=False``: frame ``i`` covers samples ``[i*hop - context, i*hop + hop)``
where ``context = n_fft - hop``. A stream therefore only has to carry the last ``context`` samples
of the previous chunk, and the whole-utterance path prepends ``context`` zeros, which is exactly
what a fresh stream starts with. No per-utterance normalisation (it would need the future): the
model normalises with fixed statistics measured on training data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torchaudio

from asr_service.model.dataclass_io import dataclass_from_mapping


@dataclass(frozen=True)
class LogMelSettings:
    """The shipped streaming model's chunk-exact log-mel (``LogMel``); stored verbatim in the
    checkpoint's ``features`` field."""

    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 20.0
    f_max: float = 7600.0
    #: Added before the log so digital silence (padding) stays finite.
    log_floor: float = 1e-6

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_mels <= 0:
            raise ValueError("sample_rate and n_mels must be positive")
        if not 0 < self.hop_length <= self.n_fft:
            raise ValueError(
                f"hop_length must be in (0, n_fft]; got {self.hop_length} with n_fft {self.n_fft}"
            )
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2; got {self.f_min}, {self.f_max}")
        if self.log_floor <= 0:
            raise ValueError("log_floor must be positive")

    @property
    def context_samples(self) -> int:
        """Samples of the previous chunk that the next chunk's first frame still needs."""
        return self.n_fft - self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogMelSettings:
        return dataclass_from_mapping(cls, data, "feature settings")


class LogMel(torch.nn.Module):
    """``audio [B, N]`` → log-mel ``[B, frames, n_mels]`` with ``frames = 1 + (N - n_fft) // hop``."""

    def __init__(self, settings: LogMelSettings) -> None:
        super().__init__()
        self.settings = settings
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=settings.sample_rate,
            n_fft=settings.n_fft,
            win_length=settings.n_fft,
            hop_length=settings.hop_length,
            f_min=settings.f_min,
            f_max=settings.f_max,
            n_mels=settings.n_mels,
            center=False,
            power=2.0,
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = self.mel(audio)  # [B, n_mels, frames]
        return torch.log(spec + self.settings.log_floor).transpose(1, 2)
