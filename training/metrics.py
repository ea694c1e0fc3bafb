"""Word and character error rates: the implementation lives in ``asr_service.model.wer`` (the
serving container's golden-set gate needs it, and the image ships only ``asr_service/``)."""

from __future__ import annotations

from asr_service.model.wer import edit_distance, error_rates

__all__ = ["edit_distance", "error_rates"]
