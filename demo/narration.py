"""How the demo talks: numbered steps with a short why, then indented facts.

The narrated demo prints as it goes; the end-to-end test keeps the lines in memory and shows
them only when it fails, so both run exactly the same flow.
"""

from __future__ import annotations

import sys
import textwrap
from typing import TextIO

WIDTH = 100


class Narrator:
    def __init__(self, out: TextIO | None = sys.stdout) -> None:
        self.out = out
        self.lines: list[str] = []

    def _emit(self, text: str) -> None:
        self.lines.append(text)
        if self.out is not None:
            print(text, file=self.out, flush=True)

    def step(self, number: int, title: str, why: str) -> None:
        self._emit("")
        self._emit(f"── {number}. {title} " + "─" * max(3, WIDTH - len(title) - 8))
        for line in textwrap.wrap(why, WIDTH - 3, break_on_hyphens=False):
            self._emit(f"   {line}")

    def say(self, text: str) -> None:
        for line in textwrap.wrap(text, WIDTH - 5, subsequent_indent="  ", break_on_hyphens=False) or [""]:
            self._emit(f"   • {line}" if not line.startswith("  ") else f"     {line.strip()}")

    def fact(self, label: str, value: object) -> None:
        self._emit(f"     {label:<26} {value}")

    def block(self, lines: list[str], prefix: str = "     │ ") -> None:
        for line in lines:
            self._emit(f"{prefix}{line}")

    def transcript(self, label: str, text: str) -> None:
        self._emit(f'     {label:<26} "{text}"')
