"""Which strategy serves a model: a plain choice from the kind the model declares."""

from __future__ import annotations

import torch

from asr_service.decoding.growing_window import GrowingWindowStrategy
from asr_service.decoding.strategy import DecodeStrategy
from asr_service.decoding.streaming import StreamingStrategy
from asr_service.model.interface import AcousticModel


def strategy_for(model: AcousticModel, device: torch.device) -> DecodeStrategy:
    """``streaming = True`` → ``streaming``; a full-context model → ``growing-window``.

    Every model of the interface declares one of the two kinds, so every model is served; a third
    strategy for full-context models (``FULL_CONTEXT_STRATEGY``) adds a parameter here.
    """
    if model.streaming:
        return StreamingStrategy(model, device)
    return GrowingWindowStrategy(model, device)
