"""CPU accounting for the bench, from /proc: a process tree's CPU time (the server and its worker
processes) and how busy the whole machine was (server + load generator + anything else)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant (a supervisor and its workers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = _stat_fields(member)
        except OSError:  # exited meanwhile
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def tree_status_mb(pid: int, field: str) -> float:
    """A /proc/<pid>/status memory field (``VmHWM:``, ``VmRSS:``) summed over the tree, in MiB."""
    total = 0
    for member in process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in lines if line.startswith(field)), 0)
    return total / 1024


@dataclass(frozen=True)
class MachineTicks:
    """The aggregate ``cpu`` line of /proc/stat: busy and total jiffies over all cores."""

    busy: int
    total: int

    @classmethod
    def now(cls) -> MachineTicks:
        with open("/proc/stat") as stat:  # noqa: PTH123 - one line of a procfs file
            values = [int(v) for v in stat.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal (guest time is already in user)
        idle = values[3] + values[4]
        total = sum(values[:8])
        return cls(total - idle, total)

    def busy_percent_since(self, start: MachineTicks) -> float:
        """Busy share of all cores between ``start`` and this reading (100 = every core busy)."""
        elapsed = self.total - start.total
        return 100.0 * (self.busy - start.busy) / elapsed if elapsed > 0 else 0.0
