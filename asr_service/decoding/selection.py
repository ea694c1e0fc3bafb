"""Which strategy serves a model: the model's declared kind, and for full-context models the
operator's choice (``FULL_CONTEXT_STRATEGY``)."""

from __future__ import annotations

import torch

from asr_service.decoding import chunked, growing_window
from asr_service.decoding.chunked import ChunkedSettings, ChunkedStrategy
from asr_service.decoding.growing_window import GrowingWindowStrategy
from asr_service.decoding.strategy import DecodeStrategy
from asr_service.decoding.streaming import StreamingStrategy
from asr_service.model.interface import AcousticModel

#: ``FULL_CONTEXT_STRATEGY`` values; the first is the default.
FULL_CONTEXT_STRATEGIES = (chunked.STRATEGY_NAME, growing_window.STRATEGY_NAME)
DEFAULT_FULL_CONTEXT_STRATEGY = chunked.STRATEGY_NAME


def strategy_for(
    model: AcousticModel,
    device: torch.device,
    full_context: str = DEFAULT_FULL_CONTEXT_STRATEGY,
    chunked_settings: ChunkedSettings | None = None,
) -> DecodeStrategy:
    """``streaming = True`` → ``streaming`` (whatever ``full_context`` says: a streaming model
    carries its state exactly and needs neither); a full-context model → ``full_context``:
    ``chunked`` (bounded cost, the default) or ``growing-window``."""
    if full_context not in FULL_CONTEXT_STRATEGIES:
        raise ValueError(
            f"full-context strategy must be one of {', '.join(FULL_CONTEXT_STRATEGIES)}, got {full_context!r}"
        )
    if model.streaming:
        return StreamingStrategy(model, device)
    if full_context == growing_window.STRATEGY_NAME:
        return GrowingWindowStrategy(model, device)
    return ChunkedStrategy(model, device, chunked_settings)
