"""The shipped streaming CTC model: log-mel → frame stacking → causal conv → unidirectional GRU → CTC.

Everything is causal, so carrying three small tensors between chunks gives exactly the computation
of the whole-utterance path (up to float rounding):

* ``audio_tail`` [B, n_fft - hop]: the samples the next chunk's first STFT window still needs;
* ``conv_tail`` [B, conv_kernel - 1, stack * n_mels]: the stacked frames the causal conv still needs;
* ``hidden`` [B, layers, hidden]: the GRU state (batch first, as the engine contract requires).

Look-ahead is a fixed emission delay rather than a peek at future audio: a CTC model trained this
way learns to emit a token up to ``flush_frames`` frames after the sound. To let it do so at end of
stream, each utterance is followed by ``flush_frames`` frames of zeros (``lookahead_samples``), and
those frames belong to the utterance's output (``num_frames`` counts them). Training sees the same
padding, through ``forward_full``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from asr_service.model.dataclass_io import dataclass_from_mapping
from asr_service.model.features import LogMel, LogMelSettings
from asr_service.model.interface import StreamState, register_architecture

ARCH_NAME = "streaming-gru-ctc"

#: Character vocabulary of the demo model. "▁" is the word separator, as in sentencepiece tokens.
CHAR_TOKENS: list[str] = ["<blank>", "▁", "'", *[chr(c) for c in range(ord("a"), ord("z") + 1)]]


@dataclass(frozen=True)
class StreamingGruCtcConfig:
    """Architecture hyper-parameters; stored verbatim in the checkpoint's ``hparams`` field."""

    #: Feature frames stacked into one model frame (3 × 10 ms = 30 ms frames).
    stack: int = 3
    #: Causal conv width in model frames (sees the current and ``conv_kernel - 1`` past frames).
    conv_kernel: int = 3
    hidden: int = 256
    layers: int = 3
    dropout: float = 0.1
    #: Frames of trailing zeros after each utterance, so delayed emissions can come out at eof.
    flush_frames: int = 3
    #: Model frames per ``stream_step`` call (10 × 30 ms = 300 ms chunks).
    chunk_frames: int = 10

    def __post_init__(self) -> None:
        for name in ("stack", "conv_kernel", "hidden", "layers", "chunk_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"hparam {name} must be >= 1")
        if self.flush_frames < 0:
            raise ValueError("hparam flush_frames must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("hparam dropout must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamingGruCtcConfig:
        return dataclass_from_mapping(cls, data, f"hparams for {ARCH_NAME}")


class StreamingGruCtc(nn.Module):
    """Implements :class:`asr_service.model.interface.AcousticModel`."""

    streaming = True
    feat_mean: torch.Tensor
    feat_std: torch.Tensor

    def __init__(
        self,
        config: StreamingGruCtcConfig,
        features: LogMelSettings,
        tokens: list[str],
        blank_id: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= blank_id < len(tokens):
            raise ValueError(f"blank_id {blank_id} is outside the {len(tokens)}-token vocabulary")
        self.config = config
        self.feature_settings = features
        self.tokens = list(tokens)
        self.blank_id = blank_id
        self.sample_rate = features.sample_rate
        self.frame_samples = features.hop_length * config.stack
        self.chunk_samples = self.frame_samples * config.chunk_frames
        self.lookahead_samples = self.frame_samples * config.flush_frames
        self.frame_shift_s = self.frame_samples / features.sample_rate
        if self.chunk_samples > 0.32 * self.sample_rate:
            raise ValueError(f"chunk of {self.chunk_samples} samples is longer than 320 ms")

        self.features = LogMel(features)
        # Fixed normalisation statistics (set from training data; part of the state dict).
        self.register_buffer("feat_mean", torch.zeros(features.n_mels))
        self.register_buffer("feat_std", torch.ones(features.n_mels))
        stacked = features.n_mels * config.stack
        self.conv = nn.Conv1d(stacked, config.hidden, kernel_size=config.conv_kernel)
        self.conv_norm = nn.LayerNorm(config.hidden)
        self.rnn = nn.GRU(
            config.hidden,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden, len(tokens))
        #: Training-only SpecAugment-style masking, off by default (see ``training``).
        self.spec_augment: nn.Module | None = None

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Fix the per-bin log-mel statistics (measured on training data)."""
        with torch.no_grad():
            self.feat_mean.copy_(mean)
            self.feat_std.copy_(std.clamp_min(1e-3))

    # ------------------------------------------------------------------ shared pieces
    def _stacked_features(self, audio_with_context: torch.Tensor) -> torch.Tensor:
        """Audio (already prefixed with the STFT context) → normalised stacked frames [B, T, stack*mels]."""
        feats = (self.features(audio_with_context) - self.feat_mean) / self.feat_std
        if self.training and self.spec_augment is not None:
            feats = self.spec_augment(feats)
        batch, frames, mels = feats.shape
        usable = frames - frames % self.config.stack
        return feats[:, :usable].reshape(batch, usable // self.config.stack, mels * self.config.stack)

    def _encode(
        self, stacked_with_context: torch.Tensor, hidden: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked frames prefixed with ``conv_kernel - 1`` context frames → log-probs, new GRU state."""
        x = self.conv(stacked_with_context.transpose(1, 2)).transpose(1, 2)
        x = self.conv_norm(torch.nn.functional.gelu(x))
        out, h_n = self.rnn(x, hidden)
        return torch.log_softmax(self.head(out), dim=-1), h_n

    # ------------------------------------------------------------------ AcousticModel
    def num_frames(self, num_samples: int) -> int:
        if num_samples < 0:
            raise ValueError("num_samples must be >= 0")
        return num_samples // self.frame_samples + self.config.flush_frames

    def initial_state(self, batch_size: int, device: torch.device) -> StreamState:
        context = self.feature_settings.context_samples
        stacked = self.feature_settings.n_mels * self.config.stack
        return (
            torch.zeros(batch_size, context, device=device),
            torch.zeros(batch_size, self.config.conv_kernel - 1, stacked, device=device),
            torch.zeros(batch_size, self.config.layers, self.config.hidden, device=device),
        )

    def stream_step(self, audio: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        if audio.dim() != 2 or audio.shape[1] != self.chunk_samples:
            raise ValueError(f"stream_step wants audio [B, {self.chunk_samples}], got {tuple(audio.shape)}")
        audio_tail, conv_tail, hidden = state
        context = self.feature_settings.context_samples
        stacked = self._stacked_features(torch.cat([audio_tail, audio], dim=1))
        conv_input = torch.cat([conv_tail, stacked], dim=1)
        log_probs, h_n = self._encode(conv_input, hidden.transpose(0, 1).contiguous())
        keep = self.config.conv_kernel - 1
        new_conv_tail = conv_input[:, conv_input.shape[1] - keep :]
        new_state = (audio[:, audio.shape[1] - context :], new_conv_tail, h_n.transpose(0, 1).contiguous())
        return log_probs, new_state

    def forward_full(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if audio.dim() != 2 or lengths.dim() != 1 or lengths.shape[0] != audio.shape[0]:
            raise ValueError("forward_full wants audio [B, N] and lengths [B]")
        lengths = lengths.to(device=audio.device, dtype=torch.long)
        out_lengths = lengths // self.frame_samples + self.config.flush_frames
        total_frames = int(out_lengths.max().item()) if lengths.numel() else 0
        total_samples = total_frames * self.frame_samples
        # Whatever lies past each utterance's end must be zeros, as in a stream flushed at eof.
        positions = torch.arange(audio.shape[1], device=audio.device)
        audio = torch.where(positions[None, :] < lengths[:, None], audio, audio.new_zeros(()))
        if audio.shape[1] < total_samples:
            audio = torch.nn.functional.pad(audio, (0, total_samples - audio.shape[1]))
        audio = audio[:, :total_samples]
        context = self.feature_settings.context_samples
        stacked = self._stacked_features(torch.nn.functional.pad(audio, (context, 0)))
        conv_input = torch.nn.functional.pad(stacked, (0, 0, self.config.conv_kernel - 1, 0))
        log_probs, _ = self._encode(conv_input, None)
        return log_probs, out_lengths

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_full(audio, lengths)


@register_architecture(ARCH_NAME)
def build_streaming_gru_ctc(
    hparams: Mapping[str, Any], features: Mapping[str, Any], tokens: list[str]
) -> nn.Module:
    """Builder used by the checkpoint loader (random weights; the loader fills them)."""
    return StreamingGruCtc(
        StreamingGruCtcConfig.from_dict(hparams), LogMelSettings.from_dict(features), list(tokens)
    )
