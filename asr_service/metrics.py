"""Service metrics: one Prometheus registry per server, plus the CloudWatch EMF line.

Prometheus (``/metrics`` with ``Accept: text/plain``) is for scrapers and dashboards; the EMF
line written on stdout every ``EMF_INTERVAL_S`` is how ECS autoscaling sees ``ActiveStreams``
without any agent: awslogs ships stdout, CloudWatch extracts the metrics from the JSON.
"""

from __future__ import annotations

import collections
import json
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
_LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

EMF_NAMESPACE = "EzSpeech/ASR"


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.started_at = time.time()
        self.sessions_active = Gauge("asr_sessions_active", "Open WebSocket sessions", registry=r)
        self.sessions_total = Counter("asr_sessions", "Sessions accepted", registry=r)
        self.sessions_rejected = Counter(
            "asr_sessions_rejected", "Sessions refused or cut, by reason", ["reason"], registry=r
        )
        self.requests = Counter("asr_requests", "Audio messages received", registry=r)
        self.audio_seconds = Counter("asr_audio_seconds", "Seconds of audio recognised", registry=r)
        self.batch_size = Histogram(
            "asr_batch_size", "Streams per batched forward", buckets=_BATCH_BUCKETS, registry=r
        )
        self.inference_seconds = Histogram(
            "asr_inference_seconds",
            "Time of one batched forward + decode",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.partial_latency = Histogram(
            "asr_partial_latency_seconds",
            "Audio chunk complete at the server → partial sent",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.final_latency = Histogram(
            "asr_final_latency_seconds",
            "End of speech (endpoint chunk or eof) at the server → final sent",
            buckets=_LATENCY_BUCKETS,
            registry=r,
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
        # Rolling window for the JSON view and the benchmark (histogram quantiles are too coarse).
        self._lag_window: collections.deque[tuple[float, float]] = collections.deque(maxlen=6000)
        # EMF reports deltas per interval.
        self._emf_last_rejected = 0.0
        self._emf_last_audio = 0.0
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

    def rejected_total(self) -> float:
        return sum(
            s.value for m in self.sessions_rejected.collect() for s in m.samples if s.name.endswith("_total")
        )

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)

    def emf_line(self, service_name: str, now: float | None = None) -> str:
        """This interval's CloudWatch Embedded Metric Format records, one per line; counters are deltas.

        The first line is the service's (``ActiveStreams`` ... by ``ServiceName``: what the scaling
        policy follows); then one line per named client that was active in the interval
        (``ClientSessions``, ``ClientActiveStreams``, ``ClientRejectedSessions`` by ``ServiceName``
        and ``Client``). awslogs makes each line its own log event, so each is its own EMF record.
        """
        return "\n".join(self.emf_records(service_name, now))

    def emf_records(self, service_name: str, now: float | None = None) -> list[str]:
        timestamp = int((now if now is not None else time.time()) * 1000)
        records = [self._service_record(service_name, timestamp)]
        clients, self._emf_clients = self._emf_clients, {}
        for metric in self.client_sessions_active.collect():
            for sample in metric.samples:
                if sample.value > 0:
                    clients.setdefault(sample.labels["client"], [0, 0])
        for client in sorted(clients):
            accepted, rejected = clients[client]
            records.append(
                json.dumps(
                    {
                        "_aws": {
                            "Timestamp": timestamp,
                            "CloudWatchMetrics": [
                                {
                                    "Namespace": EMF_NAMESPACE,
                                    "Dimensions": [["ServiceName", "Client"]],
                                    "Metrics": [
                                        {"Name": "ClientSessions", "Unit": "Count"},
                                        {"Name": "ClientActiveStreams", "Unit": "Count"},
                                        {"Name": "ClientRejectedSessions", "Unit": "Count"},
                                    ],
                                }
                            ],
                        },
                        "ServiceName": service_name,
                        "Client": client,
                        "ClientSessions": accepted,
                        "ClientActiveStreams": int(
                            self.client_sessions_active.labels(client=client)._value.get()
                        ),
                        "ClientRejectedSessions": rejected,
                    },
                    separators=(",", ":"),
                )
            )
        return records

    def _service_record(self, service_name: str, timestamp: int) -> str:
        rejected = self.rejected_total()
        audio = self.audio_seconds._value.get()
        record: dict[str, Any] = {
            "_aws": {
                "Timestamp": timestamp,
                "CloudWatchMetrics": [
                    {
                        "Namespace": EMF_NAMESPACE,
                        "Dimensions": [["ServiceName"]],
                        "Metrics": [
                            {"Name": "ActiveStreams", "Unit": "Count"},
                            {"Name": "RejectedSessions", "Unit": "Count"},
                            {"Name": "AudioSecondsProcessed", "Unit": "Seconds"},
                        ],
                    }
                ],
            },
            "ServiceName": service_name,
            "ActiveStreams": int(self.sessions_active._value.get()),
            "RejectedSessions": int(rejected - self._emf_last_rejected),
            "AudioSecondsProcessed": round(audio - self._emf_last_audio, 3),
        }
        self._emf_last_rejected = rejected
        self._emf_last_audio = audio
        return json.dumps(record, separators=(",", ":"))
