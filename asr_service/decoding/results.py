"""What decoding produces, in one module: finals, partials, and the per-step update a session gets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """A finalized piece of transcript."""

    segment_id: int
    text: str
    start_s: float
    end_s: float
    #: Mean best-token posterior over the segment's non-blank frames (``asr_service.model.ctc``).
    confidence: float
    reason: str  # "endpoint" | "eof"


@dataclass(frozen=True)
class Partial:
    """The open segment's current hypothesis."""

    segment_id: int
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class StreamUpdate:
    """What one engine step did for one stream (delivered to the session, in order)."""

    consumed_samples: int  # model-rate samples of real audio consumed so far
    ready_at: float  # time.monotonic() when this chunk's audio was complete at the server
    partial: Partial | None = None  # set when the current segment's text changed
    finals: tuple[Segment, ...] = ()
    done: bool = False  # last update of a finished stream
    error: str | None = None  # the stream failed and was dropped
    compute_s: float = 0.0  # this stream's share of the batch's inference time
