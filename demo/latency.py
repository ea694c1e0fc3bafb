"""Read a task's recognition latency back from its Prometheus ``/metrics`` text.

The server observes every partial and final latency into histograms; p50/p95 are estimated from
the buckets the way Prometheus' ``histogram_quantile`` does (linear within the bucket), so the
demo shows what a scraper would, not numbers of its own making.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

HISTOGRAMS = {"partial": "asr_partial_latency_seconds", "final": "asr_final_latency_seconds"}


@dataclass(frozen=True)
class LatencySummary:
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float

    def __str__(self) -> str:
        if not self.count:
            return "no events measured"
        if self.count == 1:  # the bucket estimate of one value says less than the value itself
            return f"1 event, {self.mean_ms:.1f} ms"
        return (
            f"{self.count} events, mean {self.mean_ms:.1f} ms, "
            f"p50 ≈ {self.p50_ms:.1f} ms, p95 ≈ {self.p95_ms:.1f} ms"
        )


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """``buckets``: (upper bound, cumulative count), ascending, ending with +Inf."""
    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if math.isinf(upper):  # beyond the last finite bound: that bound is all we know
                return lower
            if cumulative == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (cumulative - below)
        lower, below = upper, cumulative
    return lower


def latency_summaries(prometheus_text: str) -> dict[str, LatencySummary]:
    found: dict[str, LatencySummary] = {}
    for family in text_string_to_metric_families(prometheus_text):
        kind = next((k for k, name in HISTOGRAMS.items() if name == family.name), None)
        if kind is None:
            continue
        buckets = sorted(
            (float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")
        )
        count = next(s.value for s in family.samples if s.name.endswith("_count"))
        total = next(s.value for s in family.samples if s.name.endswith("_sum"))
        found[kind] = LatencySummary(
            count=int(count),
            mean_ms=1000 * total / count if count else math.nan,
            p50_ms=1000 * histogram_quantile(0.5, buckets),
            p95_ms=1000 * histogram_quantile(0.95, buckets),
        )
    return found
