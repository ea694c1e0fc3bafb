"""One task's metrics from its worker processes' snapshots (no I/O here).

Each worker answers a metrics request with a :class:`Snapshot`: its ``/metrics`` JSON, its
Prometheus text and the three numbers of the autoscaling record. The supervisor adds them up:

- Prometheus: samples with the same name and labels are summed (counters, gauges, histogram
  buckets, ``_count`` and ``_sum``: buckets share their bounds, so a bucket-wise sum is the merged
  histogram); ``_created`` takes the earliest, ``*_info`` and the device-wide GPU gauges (every
  worker sees the same GPU) take the largest, and ``asr_ready`` is the task's readiness.
- JSON: counts and gauges summed, the event-loop lag is the worst worker's, the rest (device,
  model, strategy) is the same in every worker and taken from the first.
- EMF: :class:`AutoscalingDeltas` turns cumulative counters of worker processes, which restart
  from zero when a worker is replaced, into the per-interval deltas the record carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

# Gauges of the device, not of the process: every worker reports the same value.
_DEVICE_WIDE = frozenset(
    {"asr_gpu_memory_used_bytes", "asr_gpu_memory_total_bytes", "asr_gpu_utilization_ratio"}
)
_SUMMED_JSON = ("request_count", "active_sessions", "rejected_sessions", "batches_run")


@dataclass(frozen=True)
class Snapshot:
    """What one worker reports when asked for its metrics."""

    json: dict[str, Any]
    prometheus: str
    active_streams: int
    rejected_total: float
    audio_seconds: float

    def to_message(self) -> dict[str, Any]:
        return {
            "json": self.json,
            "prom": self.prometheus,
            "active": self.active_streams,
            "rejected": self.rejected_total,
            "audio": self.audio_seconds,
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Snapshot:
        return cls(
            dict(message["json"]),
            str(message["prom"]),
            int(message["active"]),
            float(message["rejected"]),
            float(message["audio"]),
        )


# ---------------------------------------------------------------------------- Prometheus
def _combine(name: str, values: list[float]) -> float:
    if name.endswith("_created"):
        return min(values)
    if name.endswith("_info") or name in _DEVICE_WIDE:
        return max(values)
    return sum(values)


def merge_prometheus(texts: Sequence[str], extra: Iterable[Metric] = (), ready: bool | None = None) -> bytes:
    """The exposition of all workers as one process would write it, plus the supervisor's own
    families (``extra``)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                values[family.name] = {}
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                values[family.name].setdefault(key, []).append(float(sample.value))
    merged: list[Metric] = []
    for name, family in families.items():
        for (sample_name, labels), observed in values[name].items():
            value = _combine(name, observed)
            if name == "asr_ready" and ready is not None:
                value = float(ready)
            family.add_sample(sample_name, dict(labels), value)
        merged.append(family)
    merged.extend(extra)
    registry = CollectorRegistry()
    registry.register(_Fixed(merged))
    return generate_latest(registry)


class _Fixed:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


# ---------------------------------------------------------------------------- JSON
def merge_json(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The seed's ``/metrics`` JSON for the whole task (the caller sets ready, draining, uptime)."""
    if not reports:
        return {}
    merged = dict(reports[0])
    for key in _SUMMED_JSON:
        merged[key] = sum(int(report.get(key) or 0) for report in reports)
    merged["audio_seconds"] = round(sum(float(r.get("audio_seconds") or 0.0) for r in reports), 3)
    merged["model_loaded"] = all(bool(r.get("model_loaded")) for r in reports)
    lags = [r["event_loop_lag"] for r in reports if isinstance(r.get("event_loop_lag"), dict)]
    if lags:
        merged["event_loop_lag"] = {
            "p50_ms": max(float(lag["p50_ms"]) for lag in lags),
            "p99_ms": max(float(lag["p99_ms"]) for lag in lags),
            "max_ms": max(float(lag["max_ms"]) for lag in lags),
            "samples": sum(int(lag["samples"]) for lag in lags),
        }
    return merged


# ---------------------------------------------------------------------------- EMF
class AutoscalingDeltas:
    """Per-interval refusals and audio seconds from workers' cumulative counters.

    Workers are keyed by a generation id (a replaced worker is a new id starting at zero), so a
    restart never shows up as a negative delta; a worker that died since the last interval
    contributes what it reported last time it was asked.
    """

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float]] = {}

    def interval(self, snapshots: dict[int, Snapshot]) -> tuple[int, int, float]:
        """(active streams now, refusals, audio seconds) since the previous call."""
        rejected = audio = 0.0
        for generation, snapshot in snapshots.items():
            last_rejected, last_audio = self._last.get(generation, (0.0, 0.0))
            rejected += max(0.0, snapshot.rejected_total - last_rejected)
            audio += max(0.0, snapshot.audio_seconds - last_audio)
        self._last = {g: (s.rejected_total, s.audio_seconds) for g, s in snapshots.items()}
        active = sum(s.active_streams for s in snapshots.values())
        return active, round(rejected), audio
