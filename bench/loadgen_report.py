"""The load generator's result types and its Markdown table (kept apart from the code that
drives the streams, so result files and the cost table can read them without the driver)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class StepResult:
    streams: int
    partial_p50_ms: float
    partial_p95_ms: float
    final_p50_ms: float
    final_p95_ms: float
    loop_lag_p99_ms: float
    server_cpu_pct: float
    loadgen_cpu_pct: float
    server_rss_mb: float
    max_slip_ms: float
    realtime_streams: int
    partials: int
    errors: list[str]
    #: CPU milliseconds per second of audio streamed (server: summed over its process; loadgen: this
    #: process). Absent in results written before they were measured.
    server_cpu_ms_per_audio_s: float | None = None
    loadgen_cpu_ms_per_audio_s: float | None = None
    #: Busy share of all the machine's cores during the step (server, load generator and anything
    #: else), from /proc/stat; and the server's WORKERS when the bench set it.
    machine_busy_pct: float | None = None
    workers: str | None = None

    def meets(self, target_ms: float) -> bool:
        return self.realtime_streams == self.streams and self.partial_p95_ms <= target_ms


HEADER = (
    "| streams | partial p50 ms | partial p95 ms | final p50 ms | final p95 ms | loop lag p99 ms "
    "| server CPU % | server CPU ms per audio s | loadgen CPU % | loadgen CPU ms per audio s "
    "| server RSS MB | real-time streams | machine busy % |"
)


def table(steps: list[StepResult], target_ms: float) -> str:
    lines = [HEADER, "|" + "---|" * 13]
    for s in steps:
        mark = "" if s.meets(target_ms) else " ✗"
        cells = [
            f"{s.streams}{mark}",
            s.partial_p50_ms,
            s.partial_p95_ms,
            s.final_p50_ms,
            s.final_p95_ms,
            s.loop_lag_p99_ms,
            s.server_cpu_pct,
            "—" if s.server_cpu_ms_per_audio_s is None else s.server_cpu_ms_per_audio_s,
            s.loadgen_cpu_pct,
            "—" if s.loadgen_cpu_ms_per_audio_s is None else s.loadgen_cpu_ms_per_audio_s,
            s.server_rss_mb,
            f"{s.realtime_streams}/{s.streams}",
            "—" if s.machine_busy_pct is None else s.machine_busy_pct,
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def comparison(runs: list[dict[str, Any]], target_ms: float) -> str:
    """Capacity per WORKERS value and what the machine did at that capacity, plus the ratio of
    each capacity to the first run's."""
    lines = [
        "| WORKERS | capacity (streams) | × first | machine busy % at capacity "
        "| server CPU ms per stream-audio-s | loadgen CPU ms per stream-audio-s |",
        "|---|---|---|---|---|---|",
    ]
    base = runs[0]["capacity"]
    for run in runs:
        at = next((s for s in run["steps"] if s.streams == run["capacity"] and s.meets(target_ms)), None)
        ratio = f"{run['capacity'] / base:.2f}" if base else "—"
        cells = [
            run["workers"],
            run["capacity"],
            ratio,
            "—" if at is None else at.machine_busy_pct,
            "—" if at is None else at.server_cpu_ms_per_audio_s,
            "—" if at is None else at.loadgen_cpu_ms_per_audio_s,
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"
