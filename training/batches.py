"""Augmented training batches, prepared one step ahead in a helper process.

Augmentation is numpy work that would otherwise stall the training step; a forked helper
prepares the next batches while the model trains on the current one. Each batch is augmented
with its own seed, so the result does not depend on which process made it.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from multiprocessing.pool import AsyncResult

import numpy as np

from training.augment import augment

# The corpus the helper reads; set before the fork so the child shares the parent's memory.
_AUDIO: list[np.ndarray] = []

Batch = tuple[np.ndarray, np.ndarray]  # audio [B, N] float32, lengths [B] int64


def prepare(ids: list[int], seed: int) -> Batch:
    rng = np.random.default_rng(seed)
    audios = [augment(_AUDIO[i], rng) for i in ids]
    lengths = np.array([a.size for a in audios], dtype=np.int64)
    batch = np.zeros((len(audios), int(lengths.max())), np.float32)
    for row, audio in enumerate(audios):
        batch[row, : audio.size] = audio
    return batch, lengths


def _prepare_job(job: tuple[list[int], int]) -> Batch:
    return prepare(*job)


class Prefetcher:
    """``iterate(jobs)`` yields prepared batches in order, keeping ``depth`` in flight."""

    def __init__(self, audio: list[np.ndarray], depth: int = 3) -> None:
        global _AUDIO
        _AUDIO = audio
        self.depth = depth
        self._pool = multiprocessing.get_context("fork").Pool(1)

    def iterate(self, jobs: Iterable[tuple[list[int], int]]) -> Iterator[Batch]:
        pending: deque[AsyncResult[Batch]] = deque()
        for job in jobs:
            pending.append(self._pool.apply_async(_prepare_job, (job,)))
            if len(pending) >= self.depth:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()
