"""Log-mel feature extraction as EzSpeech's ``ctc_sc`` config computes it.

The pipeline (from the config and the published description of its preprocessor): pre-emphasis,
centred STFT with a symmetric Hann window, power spectrum, slaney mel filterbank, natural log with
an additive guard, then per-utterance mean/variance normalisation of every mel bin over the valid
frames. The window and the filterbank are buffers named exactly as in EzSpeech's state dict
(``preprocessor.featurizer.window`` / ``.fb``), so a converted checkpoint brings its own copies and
the numbers match the training code bit for bit where it matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torchaudio.functional as audio_functional
from torch import nn

from asr_service.model.dataclass_io import dataclass_from_mapping

#: Added to the standard deviation before dividing (EzSpeech's ``CONSTANT``).
_STD_EPSILON = 1e-5


@dataclass(frozen=True)
class FilterbankSettings:
    """EzSpeech's log-mel filterbank with pre-emphasis and per-utterance normalisation
    (``FilterbankFeatures``); stored as the checkpoint's ``features`` field."""

    sample_rate: int = 16000
    window_size: float = 0.025
    window_stride: float = 0.01
    n_fft: int = 512
    features: int = 80
    preemph: float = 0.97
    normalize: str = "per_feature"
    log_zero_guard_value: float = 2.0**-24
    mag_power: float = 2.0
    lowfreq: float = 0.0
    highfreq: float | None = None

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.features <= 0:
            raise ValueError("sample_rate, n_fft and features must be positive")
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError(f"window of {self.win_length} samples does not fit n_fft={self.n_fft}")
        if self.hop_length <= 0:
            raise ValueError("window_stride must be at least one sample")
        if self.normalize not in ("per_feature", "none"):
            raise ValueError(f"unsupported feature normalisation {self.normalize!r}")

    @property
    def win_length(self) -> int:
        return int(self.window_size * self.sample_rate)

    @property
    def hop_length(self) -> int:
        return int(self.window_stride * self.sample_rate)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FilterbankSettings:
        return dataclass_from_mapping(cls, values, "feature settings")


class FilterbankFeatures(nn.Module):
    """Audio [B, N] in [-1, 1] -> normalised log-mel features [B, n_mels, T] and frame counts."""

    window: torch.Tensor
    fb: torch.Tensor

    def __init__(self, settings: FilterbankSettings) -> None:
        super().__init__()
        self.settings = settings
        highfreq = settings.highfreq or settings.sample_rate / 2
        # Built on the CPU even when the module is created under another default device: the
        # filterbank code indexes with boolean masks, which "meta" tensors cannot do, and on
        # "meta" these two calls would pull in seconds of lazy imports.
        with torch.device("cpu"):
            window = torch.hann_window(settings.win_length, periodic=False)
            mel = audio_functional.melscale_fbanks(
                settings.n_fft // 2 + 1,
                settings.lowfreq,
                highfreq,
                settings.features,
                settings.sample_rate,
                norm="slaney",
                mel_scale="slaney",
            )
        device = torch.empty(0).device  # the device the module is being created on
        self.register_buffer("window", window.to(device))
        self.register_buffer("fb", mel.T.unsqueeze(0).contiguous().to(device))

    def num_frames(self, num_samples: int) -> int:
        # Centred STFT: n_fft // 2 samples of padding on each side.
        return num_samples // self.settings.hop_length + 1

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths, self.settings.hop_length, rounding_mode="floor") + 1

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frame_lengths = self.frame_lengths(lengths)
        if audio.shape[0] > 1 and bool((lengths < audio.shape[1]).any()):
            # The centred STFT reflects each signal at its own end; computing a padded batch in one
            # go would see the padding instead, so shorter signals are featurised one by one.
            feats = [
                self._features(audio[i : i + 1, : int(n)], lengths[i : i + 1]) for i, n in enumerate(lengths)
            ]
            width = max(f.shape[-1] for f in feats)
            return torch.cat([nn.functional.pad(f, (0, width - f.shape[-1])) for f in feats]), frame_lengths
        return self._features(audio, lengths), frame_lengths

    def _features(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        s = self.settings
        frame_lengths = self.frame_lengths(lengths)
        audio = audio.float()
        # Reflect padding needs more samples than half an FFT; silence beyond the real audio is
        # masked out below, so padding a very short input with zeros changes nothing visible.
        min_samples = s.n_fft // 2 + 1
        if audio.shape[1] < min_samples:
            audio = nn.functional.pad(audio, (0, min_samples - audio.shape[1]))
        if s.preemph:
            audio = torch.cat((audio[:, :1], audio[:, 1:] - s.preemph * audio[:, :-1]), dim=1)
        spectrum = torch.stft(
            audio,
            n_fft=s.n_fft,
            hop_length=s.hop_length,
            win_length=s.win_length,
            window=self.window.float(),
            center=True,
            return_complex=True,
        )
        power = spectrum.abs()
        if s.mag_power != 1.0:
            power = power.pow(s.mag_power)
        mel = torch.matmul(self.fb.float(), power)
        feats = torch.log(mel + s.log_zero_guard_value)

        valid = torch.arange(feats.shape[-1], device=feats.device)[None, :] < frame_lengths[:, None]
        valid = valid.unsqueeze(1)
        if s.normalize == "per_feature":
            count = frame_lengths.clamp(min=1).to(feats.dtype)[:, None]
            mean = torch.where(valid, feats, 0.0).sum(dim=2) / count
            centred = torch.where(valid, feats - mean.unsqueeze(2), 0.0)
            # Unbiased estimate, like the training code; a one-frame input would divide by zero.
            std = torch.sqrt(centred.pow(2).sum(dim=2) / (count - 1.0).clamp(min=1.0)) + _STD_EPSILON
            feats = (feats - mean.unsqueeze(2)) / std.unsqueeze(2)
        return feats.masked_fill(~valid, 0.0)
