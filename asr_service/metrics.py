"""Service metrics: one Prometheus registry per server, plus the CloudWatch EMF lines.

Prometheus (``/metrics`` with ``Accept: text/plain``) is for scrapers and dashboards; the EMF
lines written on stdout every ``EMF_INTERVAL_S`` are how CloudWatch sees the service without any
agent: awslogs ships stdout, CloudWatch extracts the metrics from the JSON. Each interval writes

1. the autoscaling record (``ActiveStreams``, ``RejectedSessions``, ``AudioSecondsProcessed``,
   dimension ``ServiceName``): the contract Terraform's target tracking reads, kept exactly as it
   was, on its own line;
2. the performance record (latency, engine batch size and step time, GPU), when it has anything
   to say: distributions go out as EMF value arrays so CloudWatch computes real percentiles
   across tasks (p50/p95 on the dashboard and the latency alarm), never averages;
3. one ``RejectedSessions`` record per refusal reason, dimension ``ServiceName`` + ``Reason``.

The README's "Metrics" table documents every name and unit; ``tests/infra/test_dashboard.py``
reads the names from :meth:`ServiceMetrics.emf_records`, so a dashboard widget cannot show a
metric that nothing writes.
"""

from __future__ import annotations

import collections
import json
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
_LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

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


# ---------------------------------------------------------------------------- GPU
@dataclass(frozen=True)
class GpuSample:
    device: str
    memory_used_bytes: int  # the whole device, every process (what runs out first)
    memory_total_bytes: int
    torch_reserved_bytes: int  # this process's CUDA caching allocator
    utilization_percent: float | None  # NVML; None where NVML cannot be read

    @property
    def memory_used_percent(self) -> float:
        return 100.0 * self.memory_used_bytes / self.memory_total_bytes if self.memory_total_bytes else 0.0


class GpuProbe(Protocol):
    def sample(self) -> GpuSample | None: ...


class TorchCudaProbe:
    """The GPU this process computes on, through torch.cuda; None when it uses none.

    Only a process that has initialised CUDA reports: a CPU task, or ``DEVICE=cpu`` on a GPU
    host, reports nothing, and the GPU metrics are absent rather than zero. Utilisation comes
    from NVML (torch.cuda.utilization reads it through nvidia-ml-py); memory from the CUDA
    runtime, so it is there even where NVML is not.
    """

    def sample(self) -> GpuSample | None:
        import torch  # the server has it loaded already; the import keeps this module light

        if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
            return None
        index = torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        utilization: float | None
        try:
            utilization = float(torch.cuda.utilization(index))
        except Exception:  # no nvidia-ml-py, no NVML in the container: memory still reports
            utilization = None
        return GpuSample(
            device=f"cuda:{index}",
            memory_used_bytes=int(total - free),
            memory_total_bytes=int(total),
            torch_reserved_bytes=int(torch.cuda.memory_reserved(index)),
            utilization_percent=utilization,
        )


class _GpuCollector(Collector):
    """Prometheus gauges read at scrape time; no sample, no series."""

    def __init__(self, probe: GpuProbe) -> None:
        self._probe = probe

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sample = self._probe.sample()
        if sample is None:
            return
        labels = ["device"]
        families: list[tuple[str, str, float]] = [
            (
                "asr_gpu_memory_used_bytes",
                "GPU memory in use on the device (all processes)",
                sample.memory_used_bytes,
            ),
            ("asr_gpu_memory_total_bytes", "GPU memory of the device", sample.memory_total_bytes),
            (
                "asr_gpu_torch_reserved_bytes",
                "GPU memory held by this process's torch allocator",
                sample.torch_reserved_bytes,
            ),
        ]
        if sample.utilization_percent is not None:
            families.append(
                (
                    "asr_gpu_utilization_ratio",
                    "GPU busy share over NVML's last sample period (0-1)",
                    sample.utilization_percent / 100,
                )
            )
        for name, documentation, value in families:
            family = GaugeMetricFamily(name, documentation, labels=labels)
            family.add_metric([sample.device], float(value))
            yield family


# ---------------------------------------------------------------------------- the service's metrics
class ServiceMetrics:
    def __init__(self, gpu_probe: GpuProbe | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.started_at = time.time()
        self.gpu_probe: GpuProbe = gpu_probe or TorchCudaProbe()
        self.sessions_active = Gauge("asr_sessions_active", "Open WebSocket sessions", registry=r)
        self.sessions_total = Counter("asr_sessions", "Sessions accepted", registry=r)
        self.sessions_rejected = Counter(
            "asr_sessions_rejected", "Sessions refused or cut, by reason", ["reason"], registry=r
        )
        self.requests = Counter("asr_requests", "Audio messages received", registry=r)
        self.audio_seconds = Counter("asr_audio_seconds", "Seconds of audio recognised", registry=r)
        self.batch_size = RecordedHistogram(
            Histogram("asr_batch_size", "Streams per batched forward", buckets=_BATCH_BUCKETS, registry=r)
        )
        self.inference_seconds = RecordedHistogram(
            Histogram(
                "asr_inference_seconds",
                "Time of one batched forward + decode (the engine step)",
                buckets=_LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.partial_latency = RecordedHistogram(
            Histogram(
                "asr_partial_latency_seconds",
                "Audio chunk complete at the server → partial sent",
                buckets=_LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.final_latency = RecordedHistogram(
            Histogram(
                "asr_final_latency_seconds",
                "End of speech (endpoint chunk or eof) at the server → final sent",
                buckets=_LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.loop_lag = Histogram(
            "asr_event_loop_lag_seconds", "Event-loop scheduling delay", buckets=_LAG_BUCKETS, registry=r
        )
        # Per named client (AUTH_TOKENS): the label values come from the client table, never from
        # what a caller sent, so their number is bounded and no credential can become a label.
        self.client_sessions = Counter(
            "asr_client_sessions", "Sessions accepted, by client", ["client"], registry=r
        )
        self.client_sessions_active = Gauge(
            "asr_client_sessions_active", "Open sessions, by client", ["client"], registry=r
        )
        self.client_sessions_rejected = Counter(
            "asr_client_sessions_rejected",
            "Sessions of an authenticated client refused, by client and reason",
            ["client", "reason"],
            registry=r,
        )
        self.ready = Gauge("asr_ready", "1 when /ready answers 200", registry=r)
        self.info = Info("asr_engine", "Model and decode strategy", registry=r)
        r.register(_GpuCollector(self.gpu_probe))
        # Rolling window for the JSON view and the benchmark (histogram quantiles are too coarse).
        self._lag_window: collections.deque[tuple[float, float]] = collections.deque(maxlen=6000)
        # EMF reports deltas per interval.
        self._emf_last_rejected = 0.0
        self._emf_last_audio = 0.0
        self._emf_last_by_reason: dict[str, float] = {}
        # Per-client activity since the last EMF record: name → [accepted, rejected].
        self._emf_clients: dict[str, list[int]] = {}

    # -------------------------------------------------------------- event-loop lag
    def observe_loop_lag(self, lag_s: float) -> None:
        self.loop_lag.observe(lag_s)
        self._lag_window.append((time.monotonic(), lag_s))

    def loop_lag_summary(self, window_s: float = 60.0) -> dict[str, float]:
        cutoff = time.monotonic() - window_s
        values = sorted(lag for at, lag in self._lag_window if at >= cutoff)
        if not values:
            return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "samples": 0}

        def pick(q: float) -> float:
            return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 3)

        return {
            "p50_ms": pick(0.5),
            "p99_ms": pick(0.99),
            "max_ms": round(values[-1] * 1000, 3),
            "samples": len(values),
        }

    # -------------------------------------------------------------- views
    def reject(self, reason: str, client: str | None = None) -> None:
        self.sessions_rejected.labels(reason=reason).inc()
        if client is not None:
            self.client_sessions_rejected.labels(client=client, reason=reason).inc()
            self._emf_clients.setdefault(client, [0, 0])[1] += 1

    def client_admitted(self, client: str) -> None:
        self.client_sessions.labels(client=client).inc()
        self.client_sessions_active.labels(client=client).inc()
        self._emf_clients.setdefault(client, [0, 0])[0] += 1

    def client_closed(self, client: str | None) -> None:
        if client is not None:
            self.client_sessions_active.labels(client=client).dec()

    def rejected_by_reason(self) -> dict[str, float]:
        return {
            s.labels["reason"]: s.value
            for m in self.sessions_rejected.collect()
            for s in m.samples
            if s.name.endswith("_total")
        }

    def rejected_total(self) -> float:
        return sum(self.rejected_by_reason().values())

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)

    def emf_line(self, service_name: str, now: float | None = None) -> str:
        """The autoscaling record (the DESIGN.md contract); counters are reported as deltas."""
        return _dump(self._autoscaling_record(service_name, _millis(now)))

    def emf_lines(self, service_name: str, now: float | None = None) -> str:
        """Every record of one interval, one JSON document per line (what the server writes)."""
        return "\n".join(_dump(record) for record in self.emf_records(service_name, now))

    def emf_records(self, service_name: str, now: float | None = None) -> list[dict[str, Any]]:
        timestamp = _millis(now)
        records = [self._autoscaling_record(service_name, timestamp)]
        performance = self._performance_record(service_name, timestamp)
        if performance is not None:
            records.append(performance)
        records.extend(self._reject_records(service_name, timestamp))
        records.extend(self._client_records(service_name, timestamp))
        return records

    def _client_records(self, service_name: str, timestamp: int) -> list[dict[str, Any]]:
        """One record per named client active in the interval, by ``ServiceName`` and ``Client``."""
        clients, self._emf_clients = self._emf_clients, {}
        for metric in self.client_sessions_active.collect():
            for sample in metric.samples:
                if sample.value > 0:
                    clients.setdefault(sample.labels["client"], [0, 0])
        records = []
        for client in sorted(clients):
            accepted, rejected = clients[client]
            record = _record(
                timestamp,
                [["ServiceName", "Client"]],
                [
                    ("ClientSessions", "Count"),
                    ("ClientActiveStreams", "Count"),
                    ("ClientRejectedSessions", "Count"),
                ],
            )
            record.update(
                {
                    "ServiceName": service_name,
                    "Client": client,
                    "ClientSessions": accepted,
                    "ClientActiveStreams": int(
                        self.client_sessions_active.labels(client=client)._value.get()
                    ),
                    "ClientRejectedSessions": rejected,
                }
            )
            records.append(record)
        return records

    def _autoscaling_record(self, service_name: str, timestamp: int) -> dict[str, Any]:
        rejected = self.rejected_total()
        audio = self.audio_seconds._value.get()
        record = _record(
            timestamp,
            [["ServiceName"]],
            [("ActiveStreams", "Count"), ("RejectedSessions", "Count"), ("AudioSecondsProcessed", "Seconds")],
        )
        record.update(
            {
                "ServiceName": service_name,
                "ActiveStreams": int(self.sessions_active._value.get()),
                "RejectedSessions": int(rejected - self._emf_last_rejected),
                "AudioSecondsProcessed": round(audio - self._emf_last_audio, 3),
            }
        )
        self._emf_last_rejected = rejected
        self._emf_last_audio = audio
        return record

    def _performance_record(self, service_name: str, timestamp: int) -> dict[str, Any] | None:
        values: dict[str, Any] = {}
        units: list[tuple[str, str]] = []
        distributions = (
            ("PartialLatency", self.partial_latency, 1000.0, "Milliseconds"),
            ("FinalLatency", self.final_latency, 1000.0, "Milliseconds"),
            ("EngineStepTime", self.inference_seconds, 1000.0, "Milliseconds"),
            ("EngineBatchSize", self.batch_size, 1.0, "Count"),
        )
        for name, histogram, scale, unit in distributions:
            observed = histogram.interval.drain()
            if observed:  # an empty array is not a valid EMF value: no value, no datapoint
                values[name] = emf_values(observed, scale)
                units.append((name, unit))
        gpu = self.gpu_probe.sample()
        if gpu is not None:
            values["GpuMemoryUsed"] = round(gpu.memory_used_bytes / 2**20, 1)
            values["GpuMemoryUtilization"] = round(gpu.memory_used_percent, 1)
            units += [("GpuMemoryUsed", "Megabytes"), ("GpuMemoryUtilization", "Percent")]
            if gpu.utilization_percent is not None:
                values["GpuUtilization"] = gpu.utilization_percent
                units.append(("GpuUtilization", "Percent"))
        if not units:
            return None
        record = _record(timestamp, [["ServiceName"]], units)
        engine = self.info._value
        # Properties, not dimensions: searchable in Logs Insights, no extra metric series.
        record.update(
            {
                "ServiceName": service_name,
                "DecodeStrategy": engine.get("decode_strategy", ""),
                "Device": gpu.device if gpu is not None else engine.get("device", ""),
                **values,
            }
        )
        return record

    def _reject_records(self, service_name: str, timestamp: int) -> list[dict[str, Any]]:
        records = []
        for reason, total in sorted(self.rejected_by_reason().items()):
            record = _record(timestamp, [["ServiceName", "Reason"]], [("RejectedSessions", "Count")])
            delta = total - self._emf_last_by_reason.get(reason, 0.0)
            record.update({"ServiceName": service_name, "Reason": reason, "RejectedSessions": int(delta)})
            self._emf_last_by_reason[reason] = total
            records.append(record)
        return records


def _millis(now: float | None) -> int:
    return int((now if now is not None else time.time()) * 1000)


def _record(timestamp: int, dimensions: list[list[str]], metrics: list[tuple[str, str]]) -> dict[str, Any]:
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


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))
