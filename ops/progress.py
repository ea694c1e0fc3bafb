"""Progress for long operator commands: a tqdm bar on a terminal, a few plain lines elsewhere.

On a terminal (the stream is a TTY) the bar shows done/total, rate and time left. In CI logs and
pipes a redraw-per-update bar is noise, so the same calls print one line when the work starts and
one when it ends (size, time, rate), and nothing in between. Progress goes to stderr: stdout keeps
the commands' machine-readable output (upload-model's JSON line).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

from tqdm import tqdm


class Progress(Protocol):
    def update(self, amount: int) -> None: ...

    def write(self, line: str) -> None:
        """A log line that does not break the bar."""
        ...


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def human(amount: float, unit: str) -> str:
    if unit != "B":
        return f"{amount:,.0f} {unit}"
    for prefix in ("", "Ki", "Mi", "Gi"):
        if abs(amount) < 1024 or prefix == "Gi":
            return f"{amount:.1f} {prefix}B" if prefix else f"{amount:.0f} B"
        amount /= 1024
    raise AssertionError("unreachable")


class _Bar:
    def __init__(self, bar: tqdm) -> None:
        self._bar = bar

    def update(self, amount: int) -> None:
        self._bar.update(amount)

    def write(self, line: str) -> None:
        self._bar.write(line, file=self._bar.fp)


class _Lines:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.done = 0

    def update(self, amount: int) -> None:
        self.done += amount

    def write(self, line: str) -> None:
        print(line, file=self._stream, flush=True)


@contextmanager
def progress(
    total: int, description: str, *, unit: str = "B", stream: TextIO | None = None
) -> Iterator[Progress]:
    """Report ``total`` units of work; ``update`` as they complete."""
    out = stream if stream is not None else sys.stderr
    if is_terminal(out):
        with tqdm(
            total=total,
            desc=description,
            unit=unit,
            unit_scale=unit == "B",
            unit_divisor=1024,
            file=out,
            dynamic_ncols=True,
            mininterval=0.2,
            leave=True,
        ) as bar:
            yield _Bar(bar)
        return
    lines = _Lines(out)
    started = time.monotonic()
    lines.write(f"{description}: {human(total, unit)} ...")
    yield lines
    elapsed = max(time.monotonic() - started, 1e-6)
    rate = human(lines.done / elapsed, unit)
    lines.write(f"{description}: done, {human(lines.done, unit)} in {elapsed:.1f} s ({rate}/s)")
