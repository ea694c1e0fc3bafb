"""Serving full-context models (``streaming = False``, e.g. EzSpeech's Conformer) as streams.

Strategy ``growing-window``: each stream keeps the audio of its open segment, and the model
re-decodes that whole window with ``forward_full`` as it grows, so every hypothesis (partial or
final) is a whole-utterance decode of the segment so far. No word is ever split at a chunk
boundary, because chunks are never decoded on their own (EzSpeech's own server decoded each
one-second chunk alone and cut words there).

- **When to re-decode.** Not on every chunk: a decode of a w-second window costs c(w), so a
  stream is re-decoded once the audio that arrived since its last decode is at least
  ``cost_factor × c`` (and one chunk). On a GPU c is milliseconds and partials refresh every chunk;
  on a CPU the refresh interval stretches with the window, which keeps the extra compute per
  stream bounded (≤ 1/cost_factor of real time) instead of growing with the square of the window.
  At end of stream the window is always decoded, so the final covers all the audio.
- **Endpointing.** The engine closes a segment when the latest decode ends in
  ``endpoint_silence_s`` of frames without tokens; the next window starts where that decode ended.
- **Length cap.** A window longer than ``max_window_s`` is cut at the middle of the longest run
  of blank frames in its older part (a pause, as far as the model can tell): the text before the
  cut becomes a final (the decoder asks for it with ``cut_requested()``), the audio after it
  starts the next window. Windows with no text at all
  keep only their last second.
- **Batching.** All streams due in one engine step are decoded in one padded batch; the model
  gives a padded sequence exactly the result it gets alone, so batching never changes text.

The last chunk of a stream is trimmed to its real samples (``StepItem.valid_samples``) before it
joins the window: zero padding would shift the per-utterance feature normalisation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from asr_service.decoding.results import Partial, Segment
from asr_service.decoding.strategy import StepItem
from asr_service.model.ctc import WORD_BOUNDARY, tokens_to_text
from asr_service.model.interface import AcousticModel

STRATEGY_NAME = "growing-window"


@dataclass(frozen=True)
class GrowingWindowSettings:
    #: Longest window ever re-decoded; longer segments are cut at a pause.
    max_window_s: float = 16.0
    #: Re-decode once new audio >= cost_factor × the stream's last decode time.
    cost_factor: float = 2.0
    #: Audio kept from a window without any text (context for a word that starts right after).
    idle_keep_s: float = 1.0
    #: The forced cut is searched in the window's first ``cut_search_fraction``.
    cut_search_fraction: float = 0.75

    def __post_init__(self) -> None:
        if self.max_window_s <= 1.0 or self.cost_factor < 0 or self.idle_keep_s < 0:
            raise ValueError("max_window_s must exceed 1 s; cost_factor and idle_keep_s must be >= 0")
        if not 0.1 <= self.cut_search_fraction <= 1.0:
            raise ValueError("cut_search_fraction must be in [0.1, 1]")


@dataclass
class _Hypothesis:
    """Greedy CTC result of one window decode, in window frames."""

    frames: int = 0
    #: (token id, frame, posterior) of each emitted token.
    emitted: list[tuple[int, int, float]] = field(default_factory=list)
    #: Best token per frame (kept for choosing a cut point).
    best: list[int] = field(default_factory=list)


class GrowingWindowDecoder:
    """One stream's open-segment window and its latest hypothesis (a ``StreamDecoder``)."""

    def __init__(self, strategy: GrowingWindowStrategy) -> None:
        self._strategy = strategy
        self._window: list[torch.Tensor] = []
        self.window_samples = 0
        self.window_start = 0  # stream sample where the window begins
        self.new_samples = 0  # samples appended since the last decode
        self.last_cost_s = 0.0
        self.decodes = 0
        self._hyp = _Hypothesis()
        self._segment_id = 0
        self._cut_frame: int | None = None  # set when the window must be cut before growing on

    # ---- fed by the strategy
    def append(self, samples: torch.Tensor) -> None:
        if samples.numel():
            self._window.append(samples)
            self.window_samples += samples.numel()
            self.new_samples += samples.numel()

    def window(self) -> torch.Tensor:
        if len(self._window) > 1:
            self._window = [torch.cat(self._window)]
        return self._window[0] if self._window else torch.zeros(0)

    def accept(self, log_probs: torch.Tensor, cost_s: float) -> None:
        """log_probs: [T, V] of the whole current window."""
        best_logp, best = log_probs.float().max(dim=-1)
        hyp = _Hypothesis(frames=log_probs.shape[0], best=best.tolist())
        previous = None
        for frame, (token, prob) in enumerate(zip(hyp.best, best_logp.exp().tolist(), strict=True)):
            if token != self._strategy.blank_id and token != previous:
                hyp.emitted.append((token, frame, prob))
            previous = token
        self._hyp = hyp
        self.new_samples = 0
        self.last_cost_s = cost_s
        self.decodes += 1
        self._plan_cut()

    # ---- StreamDecoder interface (read by the engine)
    def current(self) -> Partial:
        shift = self._strategy.frame_shift_s
        offset = self.window_start / self._strategy.sample_rate
        emitted = self._speech_tokens()
        start = emitted[0][1] * shift if emitted else 0.0
        return Partial(
            self._segment_id, self._text(emitted), offset + start, offset + self._hyp.frames * shift
        )

    def trailing_silence_s(self) -> float:
        emitted = self._speech_tokens()
        last = emitted[-1][1] + 1 if emitted else 0
        return (self._hyp.frames - last) * self._strategy.frame_shift_s

    def cut_requested(self) -> bool:
        return self._cut_frame is not None  # the window hit its length cap (see _plan_cut)

    def finalize(self, reason: str) -> Segment:
        cut = self._cut_frame if reason != "eof" else None
        emitted = self._hyp.emitted if cut is None else [e for e in self._hyp.emitted if e[1] < cut]
        end_frame = self._hyp.frames if cut is None else cut
        segment = self._segment(emitted, end_frame, reason)
        decoded = (
            self._frame_to_sample(end_frame) if cut is not None else self.window_samples - self.new_samples
        )
        self._drop_front(decoded)
        if cut is not None:
            self.new_samples = self.window_samples  # the rest of the window: decode it next step
        self._hyp = _Hypothesis()
        self._cut_frame = None
        self._segment_id += 1
        return segment

    # ---- internals
    def _speech_tokens(self) -> list[tuple[int, int, float]]:
        boundary = self._strategy.boundary_ids
        return [e for e in self._hyp.emitted if e[0] not in boundary]

    def _text(self, emitted: Sequence[tuple[int, int, float]]) -> str:
        return tokens_to_text((token for token, _f, _p in emitted), self._strategy.tokens)

    def _segment(self, emitted: list[tuple[int, int, float]], end_frame: int, reason: str) -> Segment:
        shift = self._strategy.frame_shift_s
        offset = self.window_start / self._strategy.sample_rate
        start = emitted[0][1] if emitted else 0
        end = emitted[-1][1] + 1 if emitted else end_frame
        confidence = sum(p for _t, _f, p in emitted) / len(emitted) if emitted else 0.0
        return Segment(
            self._segment_id,
            self._text(emitted),
            round(offset + start * shift, 3),
            round(offset + end * shift, 3),
            confidence,
            reason,
        )

    def _frame_to_sample(self, frame: int) -> int:
        return min(
            self.window_samples, round(frame * self._strategy.frame_shift_s * self._strategy.sample_rate)
        )

    def _drop_front(self, samples: int) -> None:
        samples = max(0, min(samples, self.window_samples))
        if samples:
            rest = self.window()[samples:]
            self._window = [rest] if rest.numel() else []
            self.window_samples -= samples
            self.window_start += samples
            self.new_samples = min(self.new_samples, self.window_samples)

    def _plan_cut(self) -> None:
        """After a decode: trim text-free windows; choose a cut point for over-long ones."""
        settings = self._strategy.settings
        rate = self._strategy.sample_rate
        if not self._hyp.emitted:
            keep = int(settings.idle_keep_s * rate)
            if self.window_samples > keep:
                dropped = self.window_samples - keep
                self._drop_front(dropped)
                self._hyp = _Hypothesis()  # frames no longer line up with the window
            return
        if self.window_samples < settings.max_window_s * rate:
            return
        blank = self._strategy.blank_id
        limit = max(1, int(self._hyp.frames * settings.cut_search_fraction))
        best_len, best_mid, run_start = 0, limit, None
        for frame, token in enumerate([*self._hyp.best[:limit], -1]):
            if token == blank and run_start is None:
                run_start = frame
            elif token != blank and run_start is not None:
                # Longest pause wins; among equals the latest, so each cut commits more text.
                if frame - run_start >= best_len and run_start > 0:
                    best_len, best_mid = frame - run_start, (run_start + frame) // 2
                run_start = None
        self._cut_frame = best_mid


class GrowingWindowStrategy:
    """The engine's ``DecodeStrategy`` for ``streaming = False`` models."""

    name = STRATEGY_NAME

    def __init__(
        self, model: AcousticModel, device: torch.device, settings: GrowingWindowSettings | None = None
    ) -> None:
        if model.streaming:
            raise ValueError("the growing-window strategy is for full-context models")
        self.model = model
        self.device = device
        self.settings = settings or GrowingWindowSettings()
        self.sample_rate = int(model.sample_rate)
        self.chunk_samples = int(model.chunk_samples)
        self.frame_shift_s = float(model.frame_shift_s)
        self.tokens = list(model.tokens)
        self.blank_id = int(model.blank_id)
        self.boundary_ids = {i for i, t in enumerate(self.tokens) if t == WORD_BOUNDARY}
        # Totals for benchmarks and logs.
        self.decodes = 0
        self.decoded_audio_s = 0.0
        self.compute_s = 0.0

    def new_decoder(self) -> GrowingWindowDecoder:
        return GrowingWindowDecoder(self)

    def warm_up(self, batch_size: int) -> None:
        audio = torch.zeros(batch_size, self.sample_rate, device=self.device)
        lengths = torch.full((batch_size,), self.sample_rate, device=self.device)
        with torch.inference_mode():
            self.model.forward_full(audio, lengths)

    def is_due(self, decoder: GrowingWindowDecoder, last: bool) -> bool:
        if last:
            return decoder.new_samples > 0 or decoder.decodes == 0
        interval = max(self.chunk_samples, self.settings.cost_factor * decoder.last_cost_s * self.sample_rate)
        return decoder.new_samples >= interval

    def step(self, items: Sequence[StepItem]) -> None:
        due: list[GrowingWindowDecoder] = []
        for item in items:
            decoder = item.decoder
            if not isinstance(decoder, GrowingWindowDecoder):
                raise TypeError("GrowingWindowStrategy got a decoder it did not create")
            valid = item.audio.numel() if item.valid_samples is None else item.valid_samples
            decoder.append(item.audio[:valid].float().cpu())
            # Only the stream's last step forces a decode: a file sent at once (eof already said)
            # must not be re-decoded per chunk.
            if self.is_due(decoder, last=item.last):
                due.append(decoder)
        if due:
            self.decode(due)

    def decode(self, decoders: Sequence[GrowingWindowDecoder]) -> None:
        """One padded forward over the windows of ``decoders``."""
        windows = [d.window() for d in decoders]
        lengths = torch.tensor([max(1, w.numel()) for w in windows])
        batch = torch.zeros(len(windows), int(lengths.max()))
        for row, window in enumerate(windows):
            batch[row, : window.numel()] = window
        started = time.perf_counter()
        with torch.inference_mode():
            log_probs, frames = self.model.forward_full(batch.to(self.device), lengths.to(self.device))
        log_probs, frames = log_probs.cpu(), frames.cpu()
        cost = time.perf_counter() - started
        self.decodes += len(decoders)
        self.decoded_audio_s += float(lengths.sum()) / self.sample_rate
        self.compute_s += cost
        for row, decoder in enumerate(decoders):
            count = int(frames[row]) if windows[row].numel() else 0
            decoder.accept(log_probs[row, :count], cost / len(decoders))
