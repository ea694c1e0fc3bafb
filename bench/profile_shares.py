"""Where the server's CPU goes, from py-spy's collapsed stacks (``py-spy record --native
--format raw``).

Each sample is one stack of one thread that py-spy found running, in any process of the server
(the supervisor and its workers). A sample whose innermost frames wait (a thread taking the
interpreter lock back after torch released it, a lock, a condition) is counted apart as
waiting, not CPU. Any other sample counts for the first category that one of its frames
matches, from the innermost frame outwards; frames of libraries that only do work for their
caller (torch, numpy, the standard library, the interpreter's C code) match nothing, so a torch
layer counts for the model code that called it and ``json.dumps`` for the protocol module that
called it. The cyclic garbage collector is its own category: it runs wherever an allocation
happens to trigger it.

Why ``--native`` and not ``--nonblocking``: without pausing the process py-spy cannot tell a
thread sleeping in the event loop's ``epoll_wait`` from one running, and a quarter of the
samples of a busy server landed on ``Runner.run`` that way; with native stacks those turned out
to be waits and a garbage collector that ran on 10 % of the samples.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# (category, path fragments). Order matters only when one frame could match two; it cannot.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("garbage collector", ("gc_collect",)),
    (
        "decoding",
        (
            "asr_service/decoding/",
            "asr_service/model/ctc.py",
            "asr_service/model/lexicon_beam.py",
            "asr_service/model/native_lexicon.py",
            "asr_service/model/word_lm.py",
            "flashlight",
            "torchaudio/models/decoder",
        ),
    ),
    (
        "model forward",
        (
            "asr_service/model/streaming_ctc.py",
            "asr_service/model/features.py",
            "asr_service/model/interface.py",
            "asr_service/ezspeech/",
        ),
    ),
    ("websocket", ("websockets/",)),
    (
        "session/protocol",
        (
            "asr_service/session.py",
            "asr_service/protocol.py",
            "asr_service/seed_protocol.py",
            "asr_service/audio.py",
            "asr_service/connection.py",
            "asr_service/admission.py",
            "asr_service/auth.py",
        ),
    ),
    ("engine batching", ("asr_service/engine.py",)),
    ("metrics/logging", ("prometheus_client/", "structlog/", "asr_service/metrics.py", "asr_service/emf.py")),
    # Not "asr_service/workers/": worker.py's module frames sit at the bottom of every worker stack.
    (
        "supervisor and hand-off",
        (
            "asr_service/workers/supervisor.py",
            "asr_service/workers/channel.py",
            "asr_service/workers/aggregate.py",
            "WorkerServer.",
            "HandedConnection.",
        ),
    ),
)
OTHER = "other (event loop, ...)"
WAITING = "waiting (not CPU)"
# Innermost frames of a thread that is blocked, not computing.
_WAITS = ("take_gil", "pthread_cond_timedwait", "pthread_cond_wait", "PyThread_acquire_lock", "epoll_wait")
_WAIT_DEPTH = 4
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*):\d+\)$")


@dataclass(frozen=True)
class Profile:
    samples: int  # CPU samples (waiting ones are not in it)
    by_category: dict[str, int]
    other_leaves: list[tuple[str, int]]  # the busiest innermost frames left in OTHER
    waiting: int = 0

    def share(self, category: str) -> float:
        """Share of the CPU samples."""
        return self.by_category.get(category, 0) / self.samples if self.samples else 0.0

    def table(self) -> str:
        lines = ["| where | share of server CPU samples |", "|---|---|"]
        for category in [name for name, _ in CATEGORIES] + [OTHER]:
            lines.append(f"| {category} | {100 * self.share(category):.1f} % |")
        lines.append(f"| (CPU samples; waiting samples left out) | {self.samples}; {self.waiting} |")
        return "\n".join(lines)


def category_of(frames: list[str]) -> str:
    """``frames`` outermost first, as py-spy writes them."""
    if any(wait in frame for frame in frames[-_WAIT_DEPTH:] for wait in _WAITS):
        return WAITING
    for frame in reversed(frames):
        for category, fragments in CATEGORIES:
            if any(fragment in frame for fragment in fragments):
                return category
    return OTHER


def parse_line(line: str) -> tuple[list[str], int] | None:
    """One collapsed stack: ``frame;frame;... count``; process lines are not frames."""
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if not stack or not count.isdigit():
        return None
    frames = [f for f in stack.split(";") if not f.startswith("process ") and ("(" in f)]
    return frames, int(count)


def classify(lines: Iterable[str]) -> Profile:
    by_category: Counter[str] = Counter()
    other: Counter[str] = Counter()
    waiting = 0
    for line in lines:
        parsed = parse_line(line)
        if parsed is None:
            continue
        frames, count = parsed
        category = category_of(frames)
        if category == WAITING:
            waiting += count
            continue
        by_category[category] += count
        if category == OTHER:
            match = _FRAME.match(frames[-1]) if frames else None
            leaf = f"{match['function']} ({match['file']})" if match else (frames[-1] if frames else "-")
            other[leaf] += count
    return Profile(sum(by_category.values()), dict(by_category), other.most_common(5), waiting)
