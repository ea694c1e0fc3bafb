"""CloudWatch Embedded Metric Format: the record shape, and the per-interval value samples.

``ServiceMetrics`` (``asr_service.metrics``) decides which records an interval writes; this module
knows how an EMF record looks and how a distribution travels in one (at most ``EMF_MAX_VALUES``
values, quantiles beyond that).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import Histogram

EMF_NAMESPACE = "EzSpeech/ASR"
# CloudWatch accepts at most 100 values for one metric in one EMF record.
EMF_MAX_VALUES = 100
# Values kept per metric per interval (a uniform sample when more arrive): enough for stable
# percentiles, bounded memory whatever the load.
_RESERVOIR_SIZE = 4096


# ---------------------------------------------------------------------------- distributions
class IntervalSample:
    """A uniform random sample (reservoir) of the values observed since the last drain.

    Thread-safe: the engine thread and the event loop both observe.
    """

    def __init__(self, capacity: int = _RESERVOIR_SIZE, seed: int | None = None) -> None:
        self._capacity = capacity
        self._values: list[float] = []
        self._seen = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._seen += 1
            if len(self._values) < self._capacity:
                self._values.append(value)
                return
            slot = self._random.randrange(self._seen)
            if slot < self._capacity:
                self._values[slot] = value

    def drain(self) -> list[float]:
        with self._lock:
            values, self._values, self._seen = self._values, [], 0
        return values


def emf_values(values: Iterable[float], scale: float = 1.0, digits: int = 3) -> list[float]:
    """At most ``EMF_MAX_VALUES`` values that keep the distribution's shape.

    Up to 100 values go out as they are. Beyond that, the 100 evenly spaced quantiles stand for
    them: the interval's percentiles survive and the record stays within CloudWatch's limit. The
    price: such an interval weighs as 100 values in percentiles taken across tasks and minutes.
    Target tracking keeps the load per task even, so busy tasks weigh alike; a nearly idle task
    next to busy ones weighs a little more than its share.
    """
    ordered = sorted(values)
    count = len(ordered)
    if count > EMF_MAX_VALUES:
        ordered = [ordered[int((i + 0.5) * count / EMF_MAX_VALUES)] for i in range(EMF_MAX_VALUES)]
    return [round(v * scale, digits) for v in ordered]


class RecordedHistogram:
    """A Prometheus histogram that also keeps this EMF interval's values.

    Callers use it like the histogram (``observe``); the session and the engine hook need no
    change to feed CloudWatch.
    """

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.interval = IntervalSample()

    def observe(self, value: float) -> None:
        self.histogram.observe(value)
        self.interval.add(value)


def millis(now: float | None) -> int:
    """EMF timestamps are epoch milliseconds; ``now`` (seconds) lets tests fix the clock."""
    return int((now if now is not None else time.time()) * 1000)


def new_record(timestamp: int, dimensions: list[list[str]], metrics: list[tuple[str, str]]) -> dict[str, Any]:
    """The ``_aws`` metadata of one record; the caller adds the dimension and metric values."""
    return {
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [
                {
                    "Namespace": EMF_NAMESPACE,
                    "Dimensions": dimensions,
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit in metrics],
                }
            ],
        }
    }


def dump(record: dict[str, Any]) -> str:
    """One record as one compact line (awslogs ships each stdout line as one event)."""
    return json.dumps(record, separators=(",", ":"))
