"""Transcribe a whole recording through the streaming path, exactly as the server feeds a stream.

Used by ``make eval``, the tests and anyone who wants text from a file without a server: audio is
cut into ``chunk_samples`` chunks, ``lookahead_samples`` zeros are appended at end of stream (then
zeros up to a whole chunk), each chunk goes through ``stream_step`` with carried state, and frames
past ``num_frames(len(audio))`` are dropped before the incremental decoder sees them. A model
loaded with a lexicon (``model.lexicon``, see ``checkpoint.load_checkpoint``) gets word correction,
and one that also ships a word LM (``model.word_decoder``) gets the beam-search second pass on finals.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from asr_service.decoding.results import Segment
from asr_service.model.ctc import IncrementalGreedyDecoder
from asr_service.model.interface import AcousticModel


def stream_blocks(model: AcousticModel, audio: torch.Tensor) -> Iterator[torch.Tensor]:
    """Float audio [N] at ``model.sample_rate`` → successive log-prob blocks [T, V] from
    ``stream_step``, the last ones trimmed so that ``num_frames(N)`` frames come out in all."""
    if audio.dim() != 1:
        raise ValueError(f"expected mono audio [N], got {tuple(audio.shape)}")
    device = model.initial_state(1, torch.device("cpu"))[0].device
    padded_len = audio.numel() + model.lookahead_samples
    padded_len += (-padded_len) % model.chunk_samples
    padded = torch.zeros(1, padded_len, device=device)
    padded[0, : audio.numel()] = audio.to(device=device, dtype=torch.float32)
    state = model.initial_state(1, device)
    remaining = model.num_frames(audio.numel())
    with torch.inference_mode():
        for start in range(0, padded_len, model.chunk_samples):
            out, state = model.stream_step(padded[:, start : start + model.chunk_samples], state)
            block = out[0, :remaining]
            remaining -= block.shape[0]
            if block.shape[0]:
                yield block


def stream_log_probs(model: AcousticModel, audio: torch.Tensor) -> torch.Tensor:
    """All of :func:`stream_blocks` joined: log-probs [num_frames(N), V]."""
    return torch.cat(list(stream_blocks(model, audio)))


def transcribe_segments(
    model: AcousticModel, audio: torch.Tensor, min_silence_s: float | None = None
) -> list[Segment]:
    """Streaming transcription, cut at silences of ``min_silence_s`` (None: one segment)."""
    decoder = IncrementalGreedyDecoder(
        model.tokens,
        model.blank_id,
        model.frame_shift_s,
        lexicon=getattr(model, "lexicon", None),
        word_decoder=getattr(model, "word_decoder", None),
    )
    segments: list[Segment] = []
    for block in stream_blocks(model, audio):
        decoder.accept(block)
        if (
            min_silence_s is not None
            and decoder.has_speech
            and decoder.trailing_silence_s >= min_silence_s
            and (segment := decoder.finalize(len(segments), "endpoint"))
        ):
            segments.append(segment)
    if last := decoder.finalize(len(segments), "eof"):
        segments.append(last)
    return segments


def transcribe(model: AcousticModel, audio: torch.Tensor) -> str:
    """The whole recording's text through the streaming path."""
    return " ".join(segment.text for segment in transcribe_segments(model, audio))
