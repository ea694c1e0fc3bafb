"""Strategy ``streaming``: ``model.stream_step`` on the concatenated states of every stream in a
batch, for models whose ``stream_step`` carries state exactly (``streaming = True``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from asr_service.decoding.results import Partial, Segment
from asr_service.decoding.strategy import StepItem
from asr_service.model import ctc
from asr_service.model.interface import AcousticModel, StreamState

STRATEGY_NAME = "streaming"


class CtcStreamDecoder:
    """Segment bookkeeping (ids, reasons, empty eof finals) over the model's incremental greedy
    CTC decoder (``asr_service.model.ctc``), which owns the token rules and confidences."""

    def __init__(
        self,
        tokens: Sequence[str],
        blank_id: int,
        frame_shift_s: float,
        lexicon: ctc.Lexicon | None = None,
        word_decoder: ctc.WordDecoder | None = None,
    ) -> None:
        # A checkpoint may ship a closed word list: finals (and all but the last, still growing
        # word of partials) are snapped to it, and with a word LM finals get a beam-search
        # second pass, exactly as the model's own decoding path does.
        self._ctc = ctc.IncrementalGreedyDecoder(
            tokens, blank_id, frame_shift_s, lexicon=lexicon, word_decoder=word_decoder
        )
        self._shift = frame_shift_s
        self._segment_id = 0
        self._segment_start_frame = 0

    def accept(self, log_probs: torch.Tensor) -> None:
        """log_probs: [T, V] for the next T frames of this stream."""
        if log_probs.shape[0]:
            self._ctc.accept(log_probs)

    @property
    def frames_decoded(self) -> int:
        return self._ctc.frames_seen

    def current(self) -> Partial:
        return Partial(
            self._segment_id,
            self._ctc.partial_text,
            round(self._segment_start_frame * self._shift, 3),
            round(self._ctc.frames_seen * self._shift, 3),
        )

    def trailing_silence_s(self) -> float:
        # Silence counts from the segment start at most (the previous segment's tail is gone).
        since_start = (self._ctc.frames_seen - self._segment_start_frame) * self._shift
        return min(self._ctc.trailing_silence_s, since_start)

    def cut_requested(self) -> bool:
        return False  # state carries across any length: only silence ends a segment

    def finalize(self, reason: str) -> Segment:
        segment = self._ctc.finalize(self._segment_id, reason)
        if segment is None:  # an eof with nothing said still gets its (empty) final
            now = round(self._ctc.frames_seen * self._shift, 3)
            segment = Segment(self._segment_id, "", now, now, 0.0, reason)
        self._segment_id += 1
        self._segment_start_frame = self._ctc.frames_seen
        return segment


class StreamingDecoder(CtcStreamDecoder):
    """A :class:`CtcStreamDecoder` that also holds its stream's model state."""

    def __init__(self, model: AcousticModel, device: torch.device) -> None:
        super().__init__(
            model.tokens,
            model.blank_id,
            model.frame_shift_s,
            lexicon=getattr(model, "lexicon", None),
            word_decoder=getattr(model, "word_decoder", None),
        )
        self.state: StreamState = model.initial_state(1, device)


class StreamingStrategy:
    """The engine's ``DecodeStrategy`` for ``streaming = True`` models."""

    name = STRATEGY_NAME

    def __init__(self, model: AcousticModel, device: torch.device) -> None:
        self.model = model
        self.device = device

    def new_decoder(self) -> StreamingDecoder:
        return StreamingDecoder(self.model, self.device)

    def warm_up(self, batch_size: int) -> None:
        state = self.model.initial_state(batch_size, self.device)
        audio = torch.zeros(batch_size, self.model.chunk_samples, device=self.device)
        with torch.inference_mode():
            self.model.stream_step(audio, state)

    def step(self, items: Sequence[StepItem]) -> None:
        decoders = [item.decoder for item in items]
        if not all(isinstance(d, StreamingDecoder) for d in decoders):
            raise TypeError("StreamingStrategy got a decoder it did not create")
        streams: list[StreamingDecoder] = decoders  # type: ignore[assignment]
        audio = torch.stack([item.audio for item in items]).to(self.device)
        state = tuple(
            torch.cat([stream.state[i] for stream in streams], dim=0) for i in range(len(streams[0].state))
        )
        with torch.inference_mode():
            log_probs, new_state = self.model.stream_step(audio, state)
        log_probs = log_probs.cpu()
        for row, (stream, item) in enumerate(zip(streams, items, strict=True)):
            stream.state = tuple(tensor[row : row + 1] for tensor in new_state)
            frames = log_probs[row]
            if item.total_frames is not None:  # drop frames that only padding produced
                frames = frames[: max(0, item.total_frames - stream.frames_decoded)]
            stream.accept(frames)
