"""The contract between acoustic models and the serving engine.

The engine (``asr_service.engine``) knows models only through :class:`AcousticModel`; the
checkpoint loader (``asr_service.model.checkpoint``) builds them through the architecture
registry below, so a new architecture (the shipped streaming model, EzSpeech's Conformer, ...)
plugs in by registering a builder under the ``arch`` name stored in its checkpoint.

Streaming state is a tuple of tensors whose first dimension is the batch. That one rule lets the
engine batch any mix of streams: concatenate each tensor along dim 0, run one step, split again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import torch

StreamState = tuple[torch.Tensor, ...]


@runtime_checkable
class AcousticModel(Protocol):
    """What the engine needs from a model. Implementations are ``torch.nn.Module`` subclasses."""

    #: Input sample rate in Hz; the engine resamples client audio to it.
    sample_rate: int
    #: Samples consumed by one ``stream_step`` (at most 320 ms of audio).
    chunk_samples: int
    #: Zeros the engine appends at end of stream so look-ahead frames are emitted.
    lookahead_samples: int
    #: Seconds of audio per output frame (for segment offsets).
    frame_shift_s: float
    #: Output vocabulary: index -> token text ("▁" marks a word start for sentencepiece-style tokens).
    tokens: list[str]
    blank_id: int
    #: True when ``stream_step`` carries state exactly; False for full-context models
    #: (the engine then uses a re-decoding strategy instead of ``stream_step``).
    streaming: bool

    def initial_state(self, batch_size: int, device: torch.device) -> StreamState: ...

    def stream_step(self, audio: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """audio: float32 [B, chunk_samples] in [-1, 1]. Returns CTC log-probs [B, T, V] and the
        new state. T is the same for every call (frames per chunk)."""
        ...

    def forward_full(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole-utterance forward: audio [B, N], lengths [B] (samples) -> log-probs [B, T, V],
        output lengths [B] (frames)."""
        ...

    def num_frames(self, num_samples: int) -> int:
        """Output frames that ``num_samples`` of real audio produce (trims padding at eof)."""
        ...


#: A builder turns (hparams, feature settings, tokens) into a model with random weights;
#: the loader then fills it from the checkpoint's state dict.
ModelBuilder = Callable[[Mapping[str, Any], Mapping[str, Any], list[str]], torch.nn.Module]

_ARCHITECTURES: dict[str, ModelBuilder] = {}


def register_architecture(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: make ``name`` (the checkpoint's ``arch`` field) buildable by the loader."""

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if name in _ARCHITECTURES and _ARCHITECTURES[name] is not builder:
            raise ValueError(f"architecture {name!r} is already registered")
        _ARCHITECTURES[name] = builder
        return builder

    return decorate


def architecture_builder(name: str) -> ModelBuilder:
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(_ARCHITECTURES)) or "none"
        raise KeyError(f"unknown model architecture {name!r} (known: {known})") from None
