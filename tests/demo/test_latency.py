"""demo.latency: the p50/p95 `make demo` prints are read from the server's own histograms."""

from __future__ import annotations

import math

import pytest

from asr_service.metrics import ServiceMetrics
from demo.latency import histogram_quantile, latency_summaries


def test_latency_is_read_from_the_prometheus_text_the_server_serves():
    metrics = ServiceMetrics()
    for _ in range(10):
        metrics.partial_latency.observe(0.030)  # bucket (0.025, 0.05]
    metrics.final_latency.observe(0.120)  # bucket (0.1, 0.15]
    summaries = latency_summaries(metrics.prometheus_text().decode())
    partial, final = summaries["partial"], summaries["final"]
    assert (partial.count, final.count) == (10, 1)
    assert partial.mean_ms == pytest.approx(30.0) and final.mean_ms == pytest.approx(120.0)
    # Linear within the bucket, as Prometheus' histogram_quantile: 25 + 25 * 5/10, 25 + 25 * 9.5/10.
    assert partial.p50_ms == pytest.approx(37.5) and partial.p95_ms == pytest.approx(48.75)
    assert final.p50_ms == pytest.approx(125.0)
    assert str(final) == "1 event, 120.0 ms"
    assert str(partial) == "10 events, mean 30.0 ms, p50 ≈ 37.5 ms, p95 ≈ 48.8 ms"


def test_nothing_measured_reads_as_such():
    summaries = latency_summaries(ServiceMetrics().prometheus_text().decode())
    assert summaries["partial"].count == 0 and str(summaries["partial"]) == "no events measured"


def test_quantile_beyond_the_last_bucket_is_the_last_finite_bound():
    assert histogram_quantile(0.95, [(0.5, 0.0), (5.0, 0.0), (math.inf, 4.0)]) == 5.0
    assert math.isnan(histogram_quantile(0.5, [(0.5, 0.0), (math.inf, 0.0)]))
