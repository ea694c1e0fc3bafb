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
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from asr_service.emf import RecordedHistogram, dump, emf_values, millis, new_record
from asr_service.gpu_probe import GpuCollector, GpuProbe, TorchCudaProbe

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
_LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def current_value(metric: Counter | Gauge) -> float:
    """The value of an unlabelled counter or gauge, or of one ``labels(...)`` child, read through
    the public ``collect()`` (what the exposition reads), not the client's private ``_value``."""
    for family in metric.collect():
        for sample in family.samples:
            if sample.labels:  # a labelled parent: one series per label value, no single value
                break
            if sample.name in (family.name, f"{family.name}_total"):
                return float(sample.value)
    raise ValueError(f"{metric!r} has no single value (a labelled metric needs .labels(...))")


def autoscaling_record(
    service_name: str, timestamp: int, active_streams: int, rejected: int, audio_seconds: float
) -> dict[str, Any]:
    """The autoscaling record (the DESIGN.md contract): open streams now, refusals and audio seconds
    since the last record. One shape for the single process and for a task of worker processes."""
    record = new_record(
        timestamp,
        [["ServiceName"]],
        [("ActiveStreams", "Count"), ("RejectedSessions", "Count"), ("AudioSecondsProcessed", "Seconds")],
    )
    record.update(
        {
            "ServiceName": service_name,
            "ActiveStreams": active_streams,
            "RejectedSessions": rejected,
            "AudioSecondsProcessed": round(audio_seconds, 3),
        }
    )
    return record


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
        r.register(GpuCollector(self.gpu_probe))
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

    def engine_info(self) -> dict[str, str]:
        """The labels last set on ``info`` (model, device, decode strategy); empty before."""
        for family in self.info.collect():
            for sample in family.samples:
                return dict(sample.labels)
        return {}

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)

    def emf_line(self, service_name: str, now: float | None = None) -> str:
        """The autoscaling record (the DESIGN.md contract); counters are reported as deltas."""
        return dump(self._autoscaling_record(service_name, millis(now)))

    def emf_lines(self, service_name: str, now: float | None = None) -> str:
        """Every record of one interval, one JSON document per line (what the server writes)."""
        return "\n".join(dump(record) for record in self.emf_records(service_name, now))

    def emf_records(self, service_name: str, now: float | None = None) -> list[dict[str, Any]]:
        timestamp = millis(now)
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
            record = new_record(
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
                        current_value(self.client_sessions_active.labels(client=client))
                    ),
                    "ClientRejectedSessions": rejected,
                }
            )
            records.append(record)
        return records

    def _autoscaling_record(self, service_name: str, timestamp: int) -> dict[str, Any]:
        rejected = self.rejected_total()
        audio = current_value(self.audio_seconds)
        record = autoscaling_record(
            service_name,
            timestamp,
            int(current_value(self.sessions_active)),
            int(rejected - self._emf_last_rejected),
            audio - self._emf_last_audio,
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
        record = new_record(timestamp, [["ServiceName"]], units)
        engine = self.engine_info()
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
            record = new_record(timestamp, [["ServiceName", "Reason"]], [("RejectedSessions", "Count")])
            delta = total - self._emf_last_by_reason.get(reason, 0.0)
            record.update({"ServiceName": service_name, "Reason": reason, "RejectedSessions": int(delta)})
            self._emf_last_by_reason[reason] = total
            records.append(record)
        return records
