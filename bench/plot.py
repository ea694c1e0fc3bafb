"""Plot benchmark results: latency p50/p95 and the real-time share against concurrent streams.

    python -m bench.plot RESULT.json [RESULT.json ...] [--out plot.png] [--title TEXT]

One line per configuration: results with the same machine, server arguments (worker count
included) and stream length are one sweep, even when it was run as several ``make bench`` calls
(a later file's step replaces an earlier one at the same stream count). ``make bench`` writes the
plot of its own run next to its Markdown; ``make bench-plot RESULTS="..."`` plots any files.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display needed (CI, containers)
import matplotlib.pyplot as plt  # after use("Agg"): the backend must be chosen first
from matplotlib.ticker import FuncFormatter


@dataclass
class Series:
    label: str
    target_ms: float
    steps: dict[int, dict[str, Any]] = field(default_factory=dict)

    def sorted_steps(self) -> list[dict[str, Any]]:
        return [self.steps[n] for n in sorted(self.steps)]


def describe(result: dict[str, Any]) -> str:
    """A short label: the machine's CPUs (GPU when the server ran on cuda), then server args."""
    server_args = list(result["args"].get("server_args") or [])
    cpus = re.match(r"(\d+) CPUs", result["machine"])
    where = f"{cpus.group(1)} vCPU" if cpus else result["machine"].split(",")[0]
    if "cuda" in server_args:
        where = f"GPU, {where}"
    flags = " ".join(server_args) if server_args else "defaults"
    return f"{where}: {flags}"


def group(results: list[dict[str, Any]]) -> list[Series]:
    series: dict[tuple[str, str, float], Series] = {}
    for result in results:
        args = result["args"]
        key = (result["machine"], json.dumps(args.get("server_args") or []), float(args.get("seconds", 0)))
        entry = series.setdefault(key, Series(describe(result), float(args.get("target_ms", 300.0))))
        for step in result["steps"]:
            entry.steps[int(step["streams"])] = step
    labels = [s.label for s in series.values()]
    for s in series.values():  # same label, different machine or stream length: say which
        if labels.count(s.label) > 1:
            s.label += f" ({len(s.steps)} steps)"
    return list(series.values())


def realtime_percent(step: dict[str, Any]) -> float:
    return 100.0 * step["realtime_streams"] / step["streams"]


def plot(results: list[dict[str, Any]], out: Path, title: str | None = None) -> Path:
    series = group(results)
    figure, (partial, final, realtime) = plt.subplots(1, 3, figsize=(15, 5.2), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, entry in enumerate(series):
        color = colors[index % len(colors)]
        steps = entry.sorted_steps()
        streams = [s["streams"] for s in steps]
        for axis, metric in ((partial, "partial"), (final, "final")):
            axis.plot(
                streams, [s[f"{metric}_p95_ms"] for s in steps], "o-", color=color, label=f"{entry.label} p95"
            )
            axis.plot(
                streams,
                [s[f"{metric}_p50_ms"] for s in steps],
                "o--",
                color=color,
                alpha=0.6,
                label=f"{entry.label} p50",
            )
        realtime.plot(streams, [realtime_percent(s) for s in steps], "o-", color=color, label=entry.label)
    targets = sorted({s.target_ms for s in series})
    for target in targets:
        partial.axhline(target, color="grey", linestyle=":", linewidth=1)
        partial.annotate(
            f"target {target:g} ms",
            (0.01, target),
            xycoords=("axes fraction", "data"),
            va="bottom",
            fontsize=8,
            color="grey",
        )
    for axis, name in ((partial, "Partial latency (ms)"), (final, "Final latency after eof (ms)")):
        axis.set_yscale("log")
        axis.set_ylabel(name)
        axis.set_title(name.replace(" (ms)", ": p95 solid, p50 dashed"))
    realtime.set_ylabel("streams that kept real time (%)")
    realtime.set_title("Real-time share")
    realtime.set_ylim(-5, 105)
    for axis in (partial, final, realtime):
        axis.set_xscale("log")
        axis.set_xlabel("concurrent streams")
        axis.grid(True, which="both", alpha=0.3)
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))  # 10, not 10^1
    handles, labels = realtime.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 2), fontsize=9)
    if title:
        figure.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="bench/results/*.json files")
    parser.add_argument("--out", type=Path, help="PNG to write (default: next to the last result)")
    parser.add_argument("--title", help="figure title")
    args = parser.parse_args(argv)
    try:
        results = [json.loads(path.read_text()) for path in args.results]
    except (OSError, ValueError) as error:
        print(f"bench-plot: {error}", file=sys.stderr)
        return 1
    out = args.out or args.results[-1].with_suffix(".png")
    print(f"written: {plot(results, out, args.title)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
