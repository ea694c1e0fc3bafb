"""Adding up worker processes' metrics (asr_service/workers/aggregate.py) and choosing WORKERS."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from asr_service.settings import Settings, SettingsError, load_settings, resolve_workers
from asr_service.workers.aggregate import AutoscalingDeltas, Snapshot, merge_json, merge_prometheus


def _worker_text(sessions: int, latencies: list[float], ready: float = 1.0) -> str:
    registry = CollectorRegistry()
    Gauge("asr_sessions_active", "open", registry=registry).set(sessions)
    rejected = Counter("asr_sessions_rejected", "refused", ["reason"], registry=registry)
    rejected.labels(reason="max_sessions").inc(sessions)
    histogram = Histogram("asr_partial_latency_seconds", "lat", buckets=(0.1, 0.5), registry=registry)
    for value in latencies:
        histogram.observe(value)
    Gauge("asr_ready", "ready", registry=registry).set(ready)
    Info("asr_engine", "engine", registry=registry).info({"device": "cpu"})
    return generate_latest(registry).decode()


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_prometheus_counters_gauges_and_histogram_buckets_are_summed():
    merged = _samples(merge_prometheus([_worker_text(2, [0.05, 0.3]), _worker_text(3, [0.05, 0.9])]))
    assert merged[("asr_sessions_active", ())] == 5
    assert merged[("asr_sessions_rejected_total", (("reason", "max_sessions"),))] == 5
    assert merged[("asr_partial_latency_seconds_bucket", (("le", "0.1"),))] == 2
    assert merged[("asr_partial_latency_seconds_bucket", (("le", "0.5"),))] == 3
    assert merged[("asr_partial_latency_seconds_bucket", (("le", "+Inf"),))] == 4
    assert merged[("asr_partial_latency_seconds_count", ())] == 4
    assert merged[("asr_partial_latency_seconds_sum", ())] == pytest.approx(1.3)
    assert merged[("asr_engine_info", (("device", "cpu"),))] == 1  # the same info, not 2


def test_prometheus_readiness_is_the_tasks_not_a_sum():
    texts = [_worker_text(0, [], ready=1.0), _worker_text(0, [], ready=1.0)]
    assert _samples(merge_prometheus(texts, ready=False))[("asr_ready", ())] == 0
    assert _samples(merge_prometheus(texts, ready=True))[("asr_ready", ())] == 1


def test_json_sums_counts_and_keeps_the_worst_loop_lag():
    first = {"request_count": 3, "active_sessions": 1, "audio_seconds": 1.5, "device": "cpu"}
    second = {"request_count": 4, "active_sessions": 2, "audio_seconds": 2.25, "device": "cpu"}
    first["event_loop_lag"] = {"p50_ms": 1.0, "p99_ms": 9.0, "max_ms": 12.0, "samples": 10}
    second["event_loop_lag"] = {"p50_ms": 2.0, "p99_ms": 4.0, "max_ms": 20.0, "samples": 5}
    merged = merge_json([first, second])
    assert merged["request_count"] == 7 and merged["active_sessions"] == 3
    assert merged["audio_seconds"] == 3.75 and merged["device"] == "cpu"
    assert merged["event_loop_lag"] == {"p50_ms": 2.0, "p99_ms": 9.0, "max_ms": 20.0, "samples": 15}


def _snapshot(active: int, rejected: float, audio: float) -> Snapshot:
    return Snapshot({}, "", active, rejected, audio)


def test_autoscaling_deltas_survive_a_replaced_worker():
    deltas = AutoscalingDeltas()
    assert deltas.interval({0: _snapshot(2, 1, 10.0), 1: _snapshot(3, 0, 20.0)}) == (5, 1, 30.0)
    # worker generation 1 died; generation 2 replaced it and starts from zero
    assert deltas.interval({0: _snapshot(1, 1, 15.0), 2: _snapshot(1, 2, 4.0)}) == (2, 2, 9.0)


def test_snapshot_travels_as_a_message():
    snapshot = Snapshot({"a": 1}, "text", 2, 3.0, 4.5)
    assert Snapshot.from_message(snapshot.to_message()) == snapshot


@pytest.mark.parametrize("value", ["0", "-1", "two", "257", ""])
def test_workers_setting_is_auto_or_a_count(value):
    if value == "":  # empty means unset: the default
        assert load_settings([], {"WORKERS": value}).workers == "auto"
        return
    with pytest.raises(SettingsError, match="workers"):
        load_settings(["--workers", value], {})


def test_auto_workers_is_one_per_usable_core_on_cpu_and_one_on_cuda():
    import os

    cores = len(os.sched_getaffinity(0))
    assert resolve_workers(Settings(device="cpu"), lambda: True) == cores
    assert resolve_workers(Settings(device="auto"), lambda: False) == cores
    assert resolve_workers(Settings(device="auto"), lambda: True) == 1
    assert resolve_workers(Settings(device="cuda:0"), lambda: True) == 1
    assert resolve_workers(Settings(device="cuda", workers="3"), lambda: True) == 3
