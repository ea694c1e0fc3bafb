"""A full-context fake model whose text shows whether a strategy cut words: one token per loud
region, naming the region's length in frames (shared by the growing-window and chunked tests)."""

from __future__ import annotations

import numpy as np
import torch

from asr_service.engine import BatchingEngine
from asr_service.model.ctc import tokens_to_text
from tests.asr_service.helpers import Collector

RATE = 16000
FRAME = 1280  # 80 ms, like EzSpeech's ×8 subsampled 10 ms frames


class RegionModel(torch.nn.Module):
    """Full-context fake: one token per loud region, naming the region's length in frames.

    A decoder that looked at chunks alone would see regions cut at chunk edges and name them
    wrongly, so the text tells whether words were cut.
    """

    streaming = False
    sample_rate = RATE
    chunk_samples = 2 * FRAME  # 0.16 s: regions span several chunks; windows start on the frame grid
    lookahead_samples = 0
    frame_shift_s = FRAME / RATE
    blank_id = 12

    def __init__(self) -> None:
        super().__init__()
        self.tokens = [*(f"▁r{k}" for k in range(1, 13)), "<blank>"]
        self.calls: list[list[int]] = []  # the lengths of every forward_full

    def num_frames(self, num_samples: int) -> int:
        return num_samples // FRAME

    def initial_state(self, batch_size, device):
        return ()

    def stream_step(self, audio, state):
        raise NotImplementedError

    def forward_full(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append(lengths.tolist())
        frames = [self.num_frames(int(n)) for n in lengths]
        width = max(frames)
        best = torch.full((len(frames), width), self.blank_id)
        for row, count in enumerate(frames):
            pieces = audio[row, : count * FRAME].reshape(count, FRAME)
            loud = [*(pieces.pow(2).mean(dim=1).sqrt() > 0.05).tolist(), False]
            start = None
            for frame, is_loud in enumerate(loud):
                if is_loud and start is None:
                    start = frame
                elif not is_loud and start is not None:
                    best[row, (start + frame) // 2] = min(frame - start, 12) - 1
                    start = None
        log_probs = torch.log_softmax(torch.nn.functional.one_hot(best, len(self.tokens)).float() * 20, -1)
        return log_probs, torch.tensor(frames)


def regions(*spec: tuple[float, float]) -> np.ndarray:
    """(loud seconds, quiet seconds) pairs -> audio."""
    parts = []
    for loud, quiet in spec:
        t = np.arange(round(loud * RATE)) / RATE
        parts += [0.3 * np.sin(2 * np.pi * 300 * t), np.zeros(round(quiet * RATE))]
    return np.concatenate(parts).astype(np.float32)


def whole_decode(model: RegionModel, audio: np.ndarray) -> str:
    log_probs, lengths = model.forward_full(torch.from_numpy(audio)[None], torch.tensor([audio.size]))
    best = log_probs[0, : lengths[0]].argmax(-1).tolist()
    return tokens_to_text([t for t in best if t != model.blank_id], model.tokens)


def run(engine: BatchingEngine, audio: np.ndarray, piece: int = 1000) -> Collector:
    collector = Collector()
    stream = engine.open_stream(collector)
    samples = torch.from_numpy(audio)
    for offset in range(0, len(samples), piece):
        stream.feed(samples[offset : offset + piece])
    stream.finish()
    assert collector.done.wait(20)
    return collector


def run_together(engine: BatchingEngine, audios: list[np.ndarray], piece: int = 1600) -> list[Collector]:
    """Several streams fed piece by piece in turn, then finished; waits for every stream's end.

    Each round of pieces is fed under the engine's lock (a re-entrant condition), so the engine
    sees every stream's piece of a round at once and windows that fall due in the same round are
    batched together however the machine schedules the threads. Without it a loaded machine let
    the engine take one stream's window before the next stream's piece arrived, and nothing was
    ever batched."""
    collectors = [Collector() for _ in audios]
    streams = [engine.open_stream(c) for c in collectors]
    for offset in range(0, max(a.size for a in audios), piece):
        with engine._cond:
            for stream, audio in zip(streams, audios, strict=True):
                if offset < audio.size:
                    stream.feed(torch.from_numpy(audio[offset : offset + piece]))
    for stream in streams:
        stream.finish()
    assert all(c.done.wait(20) for c in collectors)
    return collectors
