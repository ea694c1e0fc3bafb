"""Serving full-context models (``streaming = False``) at a cost per audio second that does not
grow with the utterance: strategy ``chunked``.

Each stream is cut into fixed steps of ``chunk_s`` seconds. Step *k* is decoded inside one window
of ``left_s + chunk_s + right_s`` seconds (less at the start and end of the stream): the model
sees context on both sides, and only the encoder frames whose centres fall inside the step's own
``chunk_s`` are kept. Those frames join one continuous per-stream frame sequence, and the stream's
text is the CTC collapse of its best path.

- **Why no word is split or duplicated at a step boundary.** The kept regions tile the stream's
  frame grid exactly (windows start on frame boundaries, so window frame *j* is stream frame
  ``start/frame + j``, the same grid a whole-utterance decode has), each frame is kept from exactly
  one window, and the collapse runs over the joined sequence with the previous frame's best token
  carried across the boundary. A token whose frames straddle the boundary is therefore emitted
  once; a token is never emitted from an overlap twice, because overlaps are never kept twice.
  What could still differ from a whole-utterance decode is the model's own judgement near a
  window edge: the right context is there so that the kept frames are never at an edge.
- **Partials.** After each decode the window's frames past the kept region (decoded with less
  right context) are a tentative tail: the partial is the committed text plus that tail, so it
  covers all audio decoded so far. A window is decoded once ``chunk_s + right_s`` of audio past the
  step's start has arrived: partials refresh once per step. The first window would therefore come
  only after ``chunk_s + right_s``; so once ``chunk_s`` has arrived, what is there is decoded once
  as a *preview*: all tail, nothing committed. The first partial comes one step in.
- **Finals.** At ``eof`` every remaining step is decoded in the same engine step (the last window
  just ends early), so the final comes one decode after ``eof``. A stream that ends within one
  window of its start (and before any endpoint) is instead decoded once more as a whole at
  ``eof``: short utterances get exactly the whole-utterance result, at the cost of one window.
  Endpointing counts silence from the last *committed* speech token to the end of the latest
  window; the segment closes at the committed frontier, so every token belongs to exactly one
  segment. Segments are cuts in the token sequence, not in the audio: the windows run on across
  them, with their left context.
- **Bounded state and cost.** A stream holds at most ``left_s + chunk_s + right_s`` (+ one engine
  chunk) of audio; every decode costs the same; compute per audio second is
  ``cost(window) / chunk_s`` for any stream length.
- **Feature normalisation.** EzSpeech normalises features per utterance; here each window is an
  "utterance", so statistics come from the window's few seconds (the model was trained on
  utterances of that length). A stream shorter than one window is decoded exactly as a whole.
- **Batching.** All windows due in one engine step go through one padded ``forward_full``; the
  model gives a padded sequence the result it gets alone (``tests/asr_service``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from asr_service.decoding.results import Partial, Segment
from asr_service.decoding.strategy import StepItem
from asr_service.model.ctc import WORD_BOUNDARY, tokens_to_text
from asr_service.model.interface import AcousticModel

STRATEGY_NAME = "chunked"


@dataclass(frozen=True)
class ChunkedSettings:
    """Window geometry in seconds. Each must be a whole number of the model's output frames
    (checked against the model by :class:`ChunkedStrategy`; 80 ms for EzSpeech's ``ctc_sc``)."""

    #: Audio committed per decode (the step); partials refresh this often.
    chunk_s: float = 1.6
    #: Context before the step: acoustic context and per-window feature statistics. 1.6 s, not
    #: 2.4: on the development sentences it costs no accuracy (WER within 1 point) and the window
    #: is a sixth cheaper (``python -m bench.chunked_geometry``, README).
    left_s: float = 1.6
    #: Context after the step: what the model must hear before its frames are final. 1.2 s, not
    #: 0.8: with the 40-minute small model, on the development sentences, it brings chunked WER
    #: to within 0.1 point of whole-utterance on sentences (0.8: +0.6) and below it on 20 s
    #: streams (-2.8; 0.8: +0.2), for a tenth more compute (``bench.chunked_geometry``, README).
    right_s: float = 1.2
    #: A segment longer than this is cut at the next word boundary even without a pause.
    max_segment_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("chunk_s", "left_s", "right_s", "max_segment_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"chunked {name} must be a number of seconds, got {value!r}")
        if self.chunk_s <= 0:
            raise ValueError(f"chunked chunk_s must be > 0, got {self.chunk_s}")
        if self.left_s < 0 or self.right_s < 0:
            raise ValueError(f"chunked left_s and right_s must be >= 0, got {self.left_s}, {self.right_s}")
        if self.left_s + self.chunk_s + self.right_s > 60:
            raise ValueError(
                "a chunked window (left_s + chunk_s + right_s) longer than 60 s is not bounded cost"
            )
        if self.max_segment_s < self.chunk_s:
            raise ValueError(
                f"max_segment_s ({self.max_segment_s}) must be at least chunk_s ({self.chunk_s})"
            )

    @property
    def window_s(self) -> float:
        return self.left_s + self.chunk_s + self.right_s

    def frames(self, frame_shift_s: float) -> tuple[int, int, int]:
        """(left, chunk, right) in model output frames; ValueError if one is not whole."""
        out = []
        for name in ("left_s", "chunk_s", "right_s"):
            value = getattr(self, name) / frame_shift_s
            if abs(value - round(value)) > 1e-6:
                raise ValueError(
                    f"chunked {name}={getattr(self, name)} is not a multiple of the model's "
                    f"{frame_shift_s * 1000:g} ms output frame"
                )
            out.append(round(value))
        return out[0], out[1], out[2]


class ChunkedDecoder:
    """One stream: its recent audio, the committed best path and the tentative tail
    (a ``StreamDecoder``)."""

    def __init__(self, strategy: ChunkedStrategy) -> None:
        self._s = strategy
        self._audio = torch.zeros(0)
        self.audio_start = 0  # stream sample of self._audio[0]; always a frame boundary
        self.received = 0  # stream samples received (real audio only)
        self.step_start = 0  # stream frame where the next step to decode begins
        self.finished = False
        # Committed: (token, stream frame, posterior) of each emitted token of the open segment.
        self._segment_tokens: list[tuple[int, int, float]] = []
        self._segment_id = 0
        self._segment_start = 0  # stream frame
        self._previous = -1  # best token of the last committed frame (collapse across windows)
        self._last_speech_frame = -1  # stream frame of the last committed speech token
        # Tentative tail of the latest window: its tokens, and the stream frame where it ends.
        self._tail: list[tuple[int, int, float]] = []
        self.decoded_to = 0  # stream frame where the latest window ended
        self.decodes = 0
        self._redecode_whole = False  # the due window is the whole stream, decoded again at eof
        # The first full window needs chunk + right context of audio (2.8 s by default): one
        # earlier decode of what has arrived after one step gives the first partial in time and
        # commits nothing (the preview).
        self._previewed = False
        self._preview = False

    # ---- fed by the strategy
    def append(self, samples: torch.Tensor) -> None:
        if samples.numel():
            self._audio = torch.cat([self._audio, samples])
            self.received += samples.numel()
            self._trim()  # the stream may have just outgrown one window

    def due_window(self) -> tuple[int, int] | None:
        """(start, end) stream samples of the next window to decode, once its audio is here: the
        step and its whole right context, or, after ``eof``, whatever is left of the stream."""
        s = self._s
        start = max(0, self.step_start - s.left_frames) * s.frame_samples
        end = (self.step_start + s.chunk_frames + s.right_frames) * s.frame_samples
        if self.received >= end:
            self._previewed = True  # the first real window is here: no preview needed
            return start, end
        if not self.finished:
            if not self._previewed and self.received >= s.chunk_frames * s.frame_samples:
                self._previewed = self._preview = True
                return 0, self.received
            return None
        total = s.model_frames(self.received) if self.received else 0
        if self.step_start >= total:
            return None
        if self.received <= start:  # nothing real left to hear: the stream ends on this frame
            self.step_start = total
            return None
        if self._fits_one_window():
            # The whole stream is still here and no longer than one window: its final is one
            # whole-utterance decode (no dearer than the last window would be).
            self._redecode_whole = True
            return 0, self.received
        return start, self.received

    def _may_fit_one_window(self) -> bool:
        """No segment closed yet and at most ``window_s`` of audio so far."""
        s = self._s
        window_samples = (s.left_frames + s.chunk_frames + s.right_frames) * s.frame_samples
        return self._segment_id == 0 and self.received <= window_samples

    def _fits_one_window(self) -> bool:
        """The whole stream is still buffered and no longer than one window."""
        return self.audio_start == 0 and self._may_fit_one_window()

    def window_audio(self, start: int, end: int) -> torch.Tensor:
        return self._audio[start - self.audio_start : end - self.audio_start]

    def accept(self, log_probs: torch.Tensor, window_start: int, window_end: int) -> None:
        """log_probs [T, V]: the model's output for audio [window_start, window_end)."""
        s = self._s
        if self._redecode_whole:
            # Replace what earlier windows committed: this window is the whole stream.
            self._redecode_whole = False
            self.step_start, self._segment_tokens, self._previous = 0, [], -1
            self._last_speech_frame = -1
        preview, self._preview = self._preview, False
        first = window_start // s.frame_samples  # stream frame of window frame 0
        keep_from = self.step_start - first
        last_window = self.finished and window_end >= self.received
        if preview:
            keep_to = keep_from  # nothing is final without its right context: all of it is tail
        elif last_window:
            keep_to = log_probs.shape[0]
        else:
            keep_to = min(log_probs.shape[0], keep_from + s.chunk_frames)
        best_logp, best = log_probs.float().max(dim=-1)
        best_ids, posteriors = best.tolist(), best_logp.exp().tolist()
        previous = self._previous
        for j in range(keep_from, keep_to):
            token = best_ids[j]
            if token != s.blank_id and token != previous:
                self._segment_tokens.append((token, first + j, posteriors[j]))
                if token not in s.boundary_ids:
                    self._last_speech_frame = first + j
            previous = token
        self._previous = previous
        # The tail: the rest of this window, collapsed on from the committed frontier.
        self._tail = []
        for j in range(keep_to, log_probs.shape[0]):
            token = best_ids[j]
            if token != s.blank_id and token != previous:
                self._tail.append((token, first + j, posteriors[j]))
            previous = token
        self.step_start = first + keep_to
        self.decoded_to = first + log_probs.shape[0]
        self.decodes += 1
        self._trim()

    def _trim(self) -> None:
        """Keep only the audio the next window can reach back to, and the whole stream while it
        may still fit one window (for its whole-utterance final; no more than a window either way)."""
        s = self._s
        drop = max(0, self.step_start - s.left_frames) * s.frame_samples - self.audio_start
        if drop > 0 and not self._may_fit_one_window():
            self._audio = self._audio[drop:]
            self.audio_start += drop

    @property
    def buffered_samples(self) -> int:
        return int(self._audio.numel())

    # ---- StreamDecoder interface (read by the engine)
    def current(self) -> Partial:
        shift = self._s.frame_shift_s
        emitted = self._speech(self._segment_tokens + self._tail)
        start = emitted[0][1] if emitted else self._segment_start
        return Partial(
            self._segment_id,
            self._text(self._segment_tokens + self._tail),
            round(start * shift, 3),
            round(max(self.decoded_to, start) * shift, 3),
        )

    def trailing_silence_s(self) -> float:
        if self._speech(self._tail) or self._last_speech_frame < self._segment_start:
            return 0.0  # speech still in the tentative tail, or none yet in this segment
        return (self.decoded_to - self._last_speech_frame - 1) * self._s.frame_shift_s

    def cut_requested(self) -> bool:
        """A segment over ``max_segment_s`` closes at a word boundary: the committed frontier is
        past the last speech token and the next token (if any) starts a word."""
        s = self._s
        if (self.step_start - self._segment_start) * s.frame_shift_s < s.settings.max_segment_s:
            return False
        if not self._speech(self._segment_tokens) or self._previous not in (s.blank_id, *s.boundary_ids):
            return False
        return not self._tail or s.tokens[self._tail[0][0]].startswith(WORD_BOUNDARY)

    def finalize(self, reason: str) -> Segment:
        shift = self._s.frame_shift_s
        tokens = self._segment_tokens
        emitted = self._speech(tokens)
        if emitted:
            start, end = emitted[0][1], emitted[-1][1] + 1
            confidence = sum(p for _t, _f, p in emitted) / len(emitted)
        else:
            start = end = self.step_start
            confidence = 0.0
        segment = Segment(
            self._segment_id,
            self._text(tokens),
            round(start * shift, 3),
            round(end * shift, 3),
            confidence,
            reason,
        )
        self._segment_id += 1
        self._segment_tokens = []
        self._segment_start = self.step_start
        return segment

    # ---- internals
    def _speech(self, tokens: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
        return [e for e in tokens if e[0] not in self._s.boundary_ids]

    def _text(self, tokens: list[tuple[int, int, float]]) -> str:
        return tokens_to_text((t for t, _f, _p in tokens), self._s.tokens)


class ChunkedStrategy:
    """The engine's ``DecodeStrategy`` for full-context models at bounded cost."""

    name = STRATEGY_NAME

    def __init__(
        self, model: AcousticModel, device: torch.device, settings: ChunkedSettings | None = None
    ) -> None:
        if model.streaming:
            raise ValueError("the chunked strategy is for full-context models")
        self.model = model
        self.device = device
        self.settings = settings or ChunkedSettings()
        self.sample_rate = int(model.sample_rate)
        self.frame_shift_s = float(model.frame_shift_s)
        frame_samples = self.frame_shift_s * self.sample_rate
        if abs(frame_samples - round(frame_samples)) > 1e-6:
            raise ValueError(
                f"the model's output frame ({self.frame_shift_s} s) is not a whole number of samples"
            )
        self.frame_samples = round(frame_samples)
        self.left_frames, self.chunk_frames, self.right_frames = self.settings.frames(self.frame_shift_s)
        self.tokens = list(model.tokens)
        self.blank_id = int(model.blank_id)
        self.boundary_ids = {i for i, t in enumerate(self.tokens) if t == WORD_BOUNDARY}
        # On a GPU every forward has one of a few shapes: rows padded to a power of two (capped at
        # the largest warmed-up batch) and samples to one whole window, all run at warm-up. cuDNN
        # chooses (in half precision seemingly compiles) kernels per input shape; with the batch size and
        # window length of every engine step new, that host work kept an H200 serving float16 from
        # keeping 600 streams in real time (p95 partial 4.7 s; float32: 0.2 s). On a CPU padding
        # is paid in full, so the CPU decodes exact shapes.
        self.fixed_shapes = device.type == "cuda"
        self.window_samples = (self.left_frames + self.chunk_frames + self.right_frames) * self.frame_samples
        self.max_rows = 1
        # Totals for benchmarks and logs.
        self.decodes = 0
        self.decoded_audio_s = 0.0
        self.compute_s = 0.0

    def model_frames(self, samples: int) -> int:
        return int(self.model.num_frames(samples))

    def new_decoder(self) -> ChunkedDecoder:
        return ChunkedDecoder(self)

    def warm_up(self, batch_size: int) -> None:
        self.max_rows = max(self.max_rows, batch_size)
        sizes = [batch_size]
        if self.fixed_shapes:  # every shape decode() can use up to this batch size
            sizes = sorted({min(1 << k, batch_size) for k in range(batch_size.bit_length() + 1)})
        for rows in sizes:
            audio = torch.zeros(rows, self.window_samples, device=self.device)
            lengths = torch.full((rows,), self.window_samples, device=self.device)
            with torch.inference_mode():
                self.model.forward_full(audio, lengths)

    def padded_rows(self, rows: int) -> int:
        """Rows of the forward for ``rows`` windows: the next power of two, capped at the largest
        warmed-up batch (never fewer than ``rows``)."""
        if not self.fixed_shapes:
            return rows
        return max(rows, min(1 << (rows - 1).bit_length(), self.max_rows))

    def step(self, items: Sequence[StepItem]) -> None:
        decoders: list[ChunkedDecoder] = []
        for item in items:
            decoder = item.decoder
            if not isinstance(decoder, ChunkedDecoder):
                raise TypeError("ChunkedStrategy got a decoder it did not create")
            valid = item.audio.numel() if item.valid_samples is None else item.valid_samples
            decoder.append(item.audio[:valid].float().cpu())
            if item.last:
                decoder.finished = True
            decoders.append(decoder)
        # Usually one window per stream; a stream whose step is shorter than an engine chunk, or
        # the last step of a stream, may have several due: decode rounds until none is.
        while True:
            due = [(d, w) for d in decoders if (w := d.due_window()) is not None]
            if not due:
                return
            self.decode(due)

    def decode(self, due: Sequence[tuple[ChunkedDecoder, tuple[int, int]]]) -> None:
        """One padded forward over one window of each decoder."""
        windows = [decoder.window_audio(start, end) for decoder, (start, end) in due]
        sizes = [max(1, w.numel()) for w in windows]
        samples = max(max(sizes), self.window_samples if self.fixed_shapes else 0)
        batch = torch.zeros(len(windows), samples)
        for row, window in enumerate(windows):
            batch[row, : window.numel()] = window
        # Padding rows (fixed shapes) are silence made on the device, so they cost no host copy
        # or transfer; their output is never read.
        padding = self.padded_rows(len(windows)) - len(windows)
        lengths = torch.tensor(sizes + [samples] * padding)
        started = time.perf_counter()
        with torch.inference_mode():
            audio = batch.to(self.device)
            if padding:
                audio = torch.cat([audio, audio.new_zeros(padding, samples)])
            log_probs, frames = self.model.forward_full(audio, lengths.to(self.device))
        log_probs, frames = log_probs[: len(due)].cpu(), frames[: len(due)].cpu()
        self.compute_s += time.perf_counter() - started
        self.decodes += len(due)
        self.decoded_audio_s += float(lengths[: len(due)].sum()) / self.sample_rate
        for row, (decoder, (start, end)) in enumerate(due):
            decoder.accept(log_probs[row, : int(frames[row])], start, end)
