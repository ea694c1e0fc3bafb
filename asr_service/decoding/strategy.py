"""The seam between the batching engine and a decoding strategy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from asr_service.decoding.results import Partial, Segment


class StreamDecoder(Protocol):
    """Per-stream decoding state owned by a strategy."""

    def current(self) -> Partial:
        """The open segment's hypothesis."""
        ...

    def trailing_silence_s(self) -> float:
        """Seconds since the last emitted token of the open segment (endpointing)."""
        ...

    def cut_requested(self) -> bool:
        """The strategy must close the open segment now, whatever the silence (e.g. a window
        that reached its length cap). The engine then finalizes with reason ``endpoint``."""
        ...

    def finalize(self, reason: str) -> Segment:
        """Close the open segment and start the next one."""
        ...


@dataclass
class StepItem:
    decoder: StreamDecoder
    audio: torch.Tensor  # [chunk_samples] float32, zero-padded past the end of stream
    total_frames: int | None  # once the stream is finished: frames its real audio makes in all
    valid_samples: int | None = None  # real samples at the start of `audio` (None: all of it)
    #: The stream's last step: the engine knows it (its queue is empty and the client said eof).
    last: bool = False


class DecodeStrategy(Protocol):
    #: Reported in ``/metrics`` (``decode_strategy``).
    name: str

    def new_decoder(self) -> StreamDecoder: ...

    def warm_up(self, batch_size: int) -> None: ...

    def step(self, items: Sequence[StepItem]) -> None:
        """Advance every item's decoder by its chunk, with as few model calls as possible."""
        ...
