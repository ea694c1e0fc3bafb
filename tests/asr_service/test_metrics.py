"""Metrics: the EMF lines CloudWatch reads (autoscaling contract, latency, GPU, rejects by reason)."""

from __future__ import annotations

import json

import pytest

from asr_service.emf import EMF_MAX_VALUES, EMF_NAMESPACE, IntervalSample, emf_values
from asr_service.gpu_probe import GpuSample, TorchCudaProbe
from asr_service.metrics import ServiceMetrics, current_value
from tests.asr_service.fakes import word_audio
from tests.asr_service.helpers import http_get, wait_until
from tests.asr_service.wsclient import stream_native


class FakeGpu:
    def __init__(self, sample: GpuSample | None) -> None:
        self.value = sample

    def sample(self) -> GpuSample | None:
        return self.value


NO_GPU = FakeGpu(None)
A10G = GpuSample(
    device="cuda:0",
    memory_used_bytes=6 * 2**30,
    memory_total_bytes=24 * 2**30,
    torch_reserved_bytes=5 * 2**30,
    utilization_percent=37.0,
)


def _directive(record):
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == EMF_NAMESPACE
    return directive


def _by_metric(records, name):
    return [r for r in records if any(m["Name"] == name for m in _directive(r)["Metrics"])]


def test_emf_line_reports_active_streams_and_deltas():
    metrics = ServiceMetrics(gpu_probe=NO_GPU)
    metrics.sessions_active.set(3)
    metrics.reject("max_sessions")
    metrics.reject("unauthorized")
    metrics.audio_seconds.inc(12.5)
    first = json.loads(metrics.emf_line("asr-dev", now=1700000000.0))
    assert first["_aws"]["Timestamp"] == 1700000000000
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == EMF_NAMESPACE == "EzSpeech/ASR"
    assert directive["Dimensions"] == [["ServiceName"]]
    assert {m["Name"] for m in directive["Metrics"]} == {
        "ActiveStreams",
        "RejectedSessions",
        "AudioSecondsProcessed",
    }
    assert (first["ServiceName"], first["ActiveStreams"], first["RejectedSessions"]) == ("asr-dev", 3, 2)
    assert first["AudioSecondsProcessed"] == 12.5
    metrics.audio_seconds.inc(1.0)
    second = json.loads(metrics.emf_line("asr-dev"))
    assert (second["RejectedSessions"], second["AudioSecondsProcessed"], second["ActiveStreams"]) == (
        0,
        1.0,
        3,
    )


def test_the_autoscaling_record_is_unchanged_and_first_whatever_else_is_written():
    plain = ServiceMetrics(gpu_probe=NO_GPU)
    busy = ServiceMetrics(gpu_probe=FakeGpu(A10G))
    for metrics in (plain, busy):
        metrics.sessions_active.set(5)
    busy.final_latency.observe(0.2)
    busy.reject("draining")
    expected = json.loads(plain.emf_line("svc", now=1.0))
    lines = busy.emf_lines("svc", now=1.0).splitlines()
    first = json.loads(lines[0])
    first["RejectedSessions"] = 0  # the only field that differs: busy refused one session
    assert first == expected
    assert len(lines) == 3  # autoscaling, performance, one reason


def test_latency_goes_out_as_millisecond_distributions_once_per_interval():
    metrics = ServiceMetrics(gpu_probe=NO_GPU)
    metrics.info.info({"decode_strategy": "streaming", "device": "cpu"})
    for seconds in (0.040, 0.020, 0.030):
        metrics.partial_latency.observe(seconds)
    metrics.final_latency.observe(0.120)
    metrics.batch_size.observe(8)
    metrics.inference_seconds.observe(0.0125)
    records = metrics.emf_records("svc", now=2.0)
    (performance,) = _by_metric(records, "PartialLatency")
    directive = _directive(performance)
    assert directive["Dimensions"] == [["ServiceName"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "PartialLatency": "Milliseconds",
        "FinalLatency": "Milliseconds",
        "EngineStepTime": "Milliseconds",
        "EngineBatchSize": "Count",
    }
    assert performance["PartialLatency"] == [20.0, 30.0, 40.0]  # every value, not an average
    assert performance["FinalLatency"] == [120.0]
    assert performance["EngineStepTime"] == [12.5] and performance["EngineBatchSize"] == [8.0]
    assert (performance["DecodeStrategy"], performance["Device"]) == ("streaming", "cpu")
    # The Prometheus histograms count the same observations.
    assert b"asr_partial_latency_seconds_count 3.0" in metrics.prometheus_text()
    # The next interval starts empty: nothing observed, no performance record at all.
    assert not _by_metric(metrics.emf_records("svc", now=62.0), "PartialLatency")


def test_a_busy_interval_is_cut_to_100_values_that_keep_its_percentiles():
    values = [i / 1000 for i in range(1, 10001)]  # 1 ms .. 10 s, evenly
    sent = emf_values(values, scale=1000.0)
    assert len(sent) == EMF_MAX_VALUES == 100
    assert sent == sorted(sent)

    def percentile(xs, q):
        return sorted(xs)[int(q * len(xs))]

    for q in (0.5, 0.95, 0.99):
        assert percentile(sent, q) == pytest.approx(percentile(values, q) * 1000, rel=0.01)


def test_interval_sample_stays_bounded_and_uniform_under_heavy_load():
    sample = IntervalSample(capacity=1000, seed=7)
    for i in range(100_000):
        sample.add(float(i))
    kept = sample.drain()
    assert len(kept) == 1000
    # A uniform sample of 0..99999: its median lands near 50000, not at the start or the end.
    assert 40_000 < sorted(kept)[500] < 60_000
    assert sample.drain() == []


def test_rejections_are_reported_per_reason_as_deltas():
    metrics = ServiceMetrics(gpu_probe=NO_GPU)
    metrics.reject("max_sessions")
    metrics.reject("max_sessions")
    metrics.reject("unauthorized")
    records = _by_metric(metrics.emf_records("svc", now=1.0), "RejectedSessions")
    by_reason = {r["Reason"]: r for r in records if "Reason" in r}
    assert {k: v["RejectedSessions"] for k, v in by_reason.items()} == {"max_sessions": 2, "unauthorized": 1}
    assert all(_directive(r)["Dimensions"] == [["ServiceName", "Reason"]] for r in by_reason.values())
    metrics.reject("unauthorized")
    again = _by_metric(metrics.emf_records("svc", now=61.0), "RejectedSessions")
    assert {r["Reason"]: r["RejectedSessions"] for r in again if "Reason" in r} == {
        "max_sessions": 0,
        "unauthorized": 1,
    }


def test_gpu_metrics_are_absent_without_a_gpu():
    metrics = ServiceMetrics(gpu_probe=NO_GPU)
    assert len(metrics.emf_records("svc")) == 1  # nothing observed, no GPU: the autoscaling line only
    assert b"asr_gpu" not in metrics.prometheus_text()


def test_gpu_memory_and_utilisation_are_reported_with_a_gpu():
    metrics = ServiceMetrics(gpu_probe=FakeGpu(A10G))
    (performance,) = _by_metric(metrics.emf_records("svc"), "GpuUtilization")
    units = {m["Name"]: m["Unit"] for m in _directive(performance)["Metrics"]}
    assert units == {
        "GpuMemoryUsed": "Megabytes",
        "GpuMemoryUtilization": "Percent",
        "GpuUtilization": "Percent",
    }
    assert (performance["GpuMemoryUsed"], performance["GpuMemoryUtilization"]) == (6144.0, 25.0)
    assert performance["GpuUtilization"] == 37.0 and performance["Device"] == "cuda:0"
    text = metrics.prometheus_text().decode()
    assert 'asr_gpu_memory_used_bytes{device="cuda:0"} 6.442450944e+09' in text
    assert 'asr_gpu_utilization_ratio{device="cuda:0"} 0.37' in text


def test_gpu_without_nvml_still_reports_memory():
    no_nvml = GpuSample("cuda:0", 2**30, 2**32, 2**29, utilization_percent=None)
    metrics = ServiceMetrics(gpu_probe=FakeGpu(no_nvml))
    (performance,) = _by_metric(metrics.emf_records("svc"), "GpuMemoryUsed")
    assert "GpuUtilization" not in performance
    assert b"asr_gpu_utilization_ratio" not in metrics.prometheus_text()


def test_a_process_that_never_touched_cuda_reports_no_gpu():
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        pytest.skip("CUDA was initialised by an earlier test in this process")
    assert TorchCudaProbe().sample() is None


@pytest.mark.gpu
def test_the_torch_probe_reads_the_gpu_this_process_uses():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    block = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")  # 256 MiB held by torch
    sample = TorchCudaProbe().sample()
    assert sample is not None and sample.device.startswith("cuda:")
    assert sample.torch_reserved_bytes >= block.numel()
    assert block.numel() <= sample.memory_used_bytes <= sample.memory_total_bytes
    assert sample.utilization_percent is None or 0 <= sample.utilization_percent <= 100


def test_loop_lag_summary_percentiles():
    metrics = ServiceMetrics()
    assert metrics.loop_lag_summary()["samples"] == 0
    for ms in range(1, 101):
        metrics.observe_loop_lag(ms / 1000)
    summary = metrics.loop_lag_summary()
    assert summary["samples"] == 100 and summary["max_ms"] == 100.0
    assert summary["p50_ms"] == 51.0 and summary["p99_ms"] == 100.0


def test_emf_is_written_on_stdout_by_the_running_server(start_server, capfd):
    server = start_server(emf_interval_s=0.2)
    stream_native(server.url, word_audio("ab"))
    out: list[str] = []

    def partials_reported() -> bool:
        # The writer flushes every 0.2 s: wait until both partials' latencies are on stdout.
        out.extend(line for line in capfd.readouterr().out.splitlines() if line.startswith('{"_aws"'))
        return sum(len(json.loads(line).get("PartialLatency", [])) for line in out) >= 2

    wait_until(partials_reported)
    lines = [json.loads(line) for line in out]
    assert lines and lines[0]["ServiceName"] == server.settings.service_name
    performance = [r for r in lines if "PartialLatency" in r]
    assert performance, "the session's partials reach CloudWatch"
    # Two partials ("a", "a b") went out, each measured once, in milliseconds.
    assert sum(len(r["PartialLatency"]) for r in performance) == 2
    assert all(0 <= v < 5000 for r in performance for v in r["PartialLatency"])
    assert performance[0]["DecodeStrategy"] == "streaming"
    assert http_get(server.health_port, "/health")[0] == 200


def test_current_value_reads_counters_gauges_and_label_children():
    metrics = ServiceMetrics()
    metrics.audio_seconds.inc(2.5)
    metrics.sessions_active.inc(3)
    metrics.reject("max_sessions")
    assert current_value(metrics.audio_seconds) == 2.5
    assert current_value(metrics.sessions_active) == 3
    assert current_value(metrics.sessions_rejected.labels(reason="max_sessions")) == 1
    with pytest.raises(ValueError, match="labels"):
        current_value(metrics.sessions_rejected)  # which reason? a labelled parent has no one value
