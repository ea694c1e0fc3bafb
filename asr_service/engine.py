"""The batching inference engine: every stream's audio, one batched forward, in a worker thread.

Sessions (on the event loop) call :meth:`EngineStream.feed` / :meth:`EngineStream.finish`; a
single worker thread gathers the streams that have a full chunk waiting, runs ONE batched model
step for all of them, decodes, and hands each stream a :class:`StreamUpdate` through the
thread-safe ``deliver`` callback the session gave. The event loop never runs the model.

Batching works for any model of ``asr_service.model.interface``: a stream's state is a tuple of
tensors with the batch at dim 0, so the engine concatenates the states of the streams in a batch,
steps once and splits them again. Each stream contributes at most one chunk per batch, in order,
so a stream decoded alone or inside a batch sees exactly the same computation.

How a chunk turns into text is the job of a decoding strategy (``asr_service.decoding``), chosen
from the model's declared kind by ``strategy_for``; this module is the batching loop only. It
tells the strategy what only it knows (which step is a stream's last, how much of a chunk is real
audio) and turns the decoders' hypotheses into partials, endpoint finals and eof finals.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable

import torch

from asr_service.decoding.chunked import ChunkedSettings
from asr_service.decoding.results import Segment, StreamUpdate
from asr_service.decoding.selection import DEFAULT_FULL_CONTEXT_STRATEGY, strategy_for
from asr_service.decoding.strategy import DecodeStrategy, StepItem, StreamDecoder
from asr_service.logging_setup import get_logger
from asr_service.model.interface import AcousticModel

log = get_logger(component="engine")


class UnsupportedModelError(RuntimeError):
    """The model cannot run here (e.g. it asks for CUDA on a machine without it)."""


class EngineClosedError(RuntimeError):
    """The engine was stopped."""


Deliver = Callable[[StreamUpdate], None]


def deliver_to_queue(queue: asyncio.Queue[StreamUpdate]) -> Deliver:
    """A ``Deliver`` that hands updates from the engine thread to ``queue`` on the running loop.

    Call it on the event loop. Once that loop is closed nobody is listening, so updates are dropped.
    """
    loop = asyncio.get_running_loop()

    def deliver(update: StreamUpdate) -> None:  # runs in the engine thread
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, update)

    return deliver


# ---------------------------------------------------------------------------- the engine
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UnsupportedModelError(f"DEVICE={name} but CUDA is not available on this machine")
    return device


class EngineStream:
    """One client stream inside the engine. feed/finish/cancel are called from the event loop."""

    def __init__(
        self, engine: BatchingEngine, stream_id: int, decoder: StreamDecoder, deliver: Deliver
    ) -> None:
        self._engine = engine
        self.stream_id = stream_id
        self.decoder = decoder
        self.deliver = deliver
        self._chunk = engine.chunk_samples
        # Guarded by engine._cond:
        self._pending: collections.deque[torch.Tensor] = collections.deque()
        self._pending_samples = 0
        self._ready_times: collections.deque[float] = collections.deque()
        self._real_samples = 0  # real (non-padding) samples received
        self._consumed_samples = 0
        self.finished = False
        self.cancelled = False
        self.last_partial_text = ""
        self.last_chunk_valid = 0  # real samples in the chunk _take_chunk returned last

    @property
    def consumed_samples(self) -> int:
        return min(self._consumed_samples, self._real_samples)

    @property
    def backlog_s(self) -> float:
        return self._pending_samples / self._engine.sample_rate

    def feed(self, samples: torch.Tensor) -> None:
        if samples.numel() == 0:
            return
        with self._engine._cond:
            if self.finished or self.cancelled:
                raise EngineClosedError("stream already finished")
            before = self._pending_samples // self._chunk
            self._pending.append(samples.to(torch.float32).reshape(-1))
            self._pending_samples += samples.numel()
            self._real_samples += samples.numel()
            now = time.monotonic()
            self._ready_times.extend([now] * (self._pending_samples // self._chunk - before))
            self._engine._cond.notify()

    def finish(self) -> None:
        """End of audio: decode what is left, send the last final, then ``done``."""
        with self._engine._cond:
            if self.finished or self.cancelled:
                return
            self.finished = True
            pad = self._engine.lookahead_samples
            rest = (self._pending_samples + pad) % self._chunk
            pad += (self._chunk - rest) % self._chunk
            if pad:
                self._pending.append(torch.zeros(pad))
                self._pending_samples += pad
            now = time.monotonic()
            missing = self._pending_samples // self._chunk - len(self._ready_times)
            self._ready_times.extend([now] * missing)
            if self._pending_samples == 0:
                self._ready_times.append(now)  # an empty final step still reports done
            self._engine._cond.notify()

    def cancel(self) -> None:
        """The client went away: drop the stream without decoding the rest."""
        with self._engine._cond:
            self.cancelled = True
            self._pending.clear()
            self._pending_samples = 0
            self._ready_times.clear()
            self._engine._cond.notify()  # so an idle worker drops it now, not at the next batch

    # ---- worker side (called with engine._cond held)
    def _has_work(self) -> bool:
        return not self.cancelled and (
            self._pending_samples >= self._chunk or (self.finished and bool(self._ready_times))
        )

    def _take_chunk(self) -> tuple[torch.Tensor, float, bool]:
        """Next chunk, when its audio was complete, whether it is the stream's last step."""
        ready_at = self._ready_times.popleft()
        if self._pending_samples == 0:
            self.last_chunk_valid = 0
            return torch.zeros(self._chunk), ready_at, True
        pieces, need = [], self._chunk
        while need:
            head = self._pending[0]
            if head.numel() <= need:
                pieces.append(self._pending.popleft())
                need -= head.numel()
            else:
                pieces.append(head[:need])
                self._pending[0] = head[need:]
                need = 0
        self._pending_samples -= self._chunk
        self._consumed_samples += self._chunk
        self.last_chunk_valid = max(
            0, min(self._chunk, self._real_samples - (self._consumed_samples - self._chunk))
        )
        last = self.finished and self._pending_samples == 0
        return torch.cat(pieces), ready_at, last


class BatchingEngine:
    """Owns the model, the worker thread and the set of open streams."""

    def __init__(
        self,
        model: AcousticModel,
        device: torch.device,
        *,
        max_batch_size: int = 32,
        max_wait_s: float = 0.05,
        endpoint_silence_s: float = 0.6,
        on_batch: Callable[[int, float], None] | None = None,
        strategy: DecodeStrategy | None = None,
        full_context_strategy: str = DEFAULT_FULL_CONTEXT_STRATEGY,
        chunked_settings: ChunkedSettings | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.strategy = (
            strategy
            if strategy is not None
            else strategy_for(model, device, full_context_strategy, chunked_settings)
        )
        self.sample_rate = int(model.sample_rate)
        self.chunk_samples = int(model.chunk_samples)
        self.lookahead_samples = int(model.lookahead_samples)
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.endpoint_silence_s = endpoint_silence_s
        self._on_batch = on_batch
        self._cond = threading.Condition()
        self._streams: dict[int, EngineStream] = {}
        self._next_id = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches_run = 0

    @property
    def strategy_name(self) -> str:
        return self.strategy.name

    @property
    def chunk_duration_s(self) -> float:
        return self.chunk_samples / self.sample_rate

    def warm_up(self) -> None:
        """Run the shapes the engine will use once, so the first client does not pay for it."""
        for size in sorted({1, min(self.max_batch_size, 4), self.max_batch_size}):
            self.strategy.warm_up(size)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="asr-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def open_stream(self, deliver: Deliver) -> EngineStream:
        with self._cond:
            if self._stopping:
                raise EngineClosedError("engine is stopped")
            stream = EngineStream(self, self._next_id, self.strategy.new_decoder(), deliver)
            self._streams[stream.stream_id] = stream
            self._next_id += 1
            return stream

    @property
    def open_streams(self) -> int:
        with self._cond:
            return len(self._streams)

    # ---- worker thread
    def _ready(self) -> list[EngineStream]:
        ready = [s for s in self._streams.values() if s._has_work()]
        ready.sort(key=lambda s: s._ready_times[0])  # oldest waiting chunk first (fairness)
        return ready

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._cond:
                self._drop_cancelled()
                ready = self._ready()
                while not ready and not self._stopping:
                    self._cond.wait()
                    self._drop_cancelled()
                    ready = self._ready()
                if self._stopping:
                    return
                # Give streams whose chunk is about to complete a moment to join the batch; the
                # oldest waiting chunk bounds the wait, so it adds at most max_wait_s of latency.
                deadline = ready[0]._ready_times[0] + self._batch_wait_s()
                while len(ready) < self.max_batch_size and not self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                    self._drop_cancelled()
                    ready = self._ready() or ready
                batch = ready[: self.max_batch_size]
                work = [(stream, *stream._take_chunk()) for stream in batch if stream._has_work()]
            if work:
                self._step(work)

    def _batch_wait_s(self) -> float:
        """How long a batch may wait for more streams (called with ``_cond`` held).

        A batched step costs little more than a single one (the demo model on one CPU thread:
        about 9 ms for 1 stream, 18 ms for 8, 42 ms for 32), so a busy engine that steps as soon
        as one chunk is ready burns a core on small batches. Waiting pays only when more chunks
        are due inside the window: with S open streams, about S x wait / chunk duration of them.
        Below one expected arrival (a handful of streams) the batch goes at once, so a quiet
        server adds no latency.
        """
        expected = len(self._streams) * self.max_wait_s / self.chunk_duration_s
        return self.max_wait_s if expected >= 1.0 else 0.0

    def _drop_cancelled(self) -> None:
        for stream_id in [i for i, s in self._streams.items() if s.cancelled]:
            del self._streams[stream_id]

    def _step(self, work: list[tuple[EngineStream, torch.Tensor, float, bool]]) -> None:
        items = [
            StepItem(
                stream.decoder,
                audio,
                self.model.num_frames(stream._real_samples) if stream.finished else None,
                stream.last_chunk_valid,
                last,
            )
            for stream, audio, _ready_at, last in work
        ]
        started = time.perf_counter()
        try:
            self.strategy.step(items)
        except Exception:
            log.exception("engine_step_failed", batch_size=len(work))
            for stream, *_rest in work:
                self._close(stream)
                stream.deliver(StreamUpdate(stream.consumed_samples, 0.0, error="inference_failed"))
            return
        elapsed = time.perf_counter() - started
        self.batches_run += 1
        if self._on_batch is not None:
            self._on_batch(len(work), elapsed)
        share = elapsed / len(work)
        for stream, _audio, ready_at, last in work:
            stream.deliver(self._update_for(stream, ready_at, last, share))
            if last:
                self._close(stream)

    def _update_for(
        self, stream: EngineStream, ready_at: float, last: bool, compute_s: float
    ) -> StreamUpdate:
        decoder = stream.decoder
        current = decoder.current()
        finals: list[Segment] = []
        partial = None
        if last:
            finals.append(decoder.finalize("eof"))
        elif current.text and (
            decoder.cut_requested() or decoder.trailing_silence_s() >= self.endpoint_silence_s
        ):
            finals.append(decoder.finalize("endpoint"))
            stream.last_partial_text = ""
        elif current.text != stream.last_partial_text:
            partial = current
            stream.last_partial_text = current.text
        return StreamUpdate(stream.consumed_samples, ready_at, partial, tuple(finals), last, None, compute_s)

    def _close(self, stream: EngineStream) -> None:
        with self._cond:
            self._streams.pop(stream.stream_id, None)
