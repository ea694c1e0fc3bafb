"""Metrics: the EMF line the autoscaling reads, and the loop-lag summary."""

from __future__ import annotations

import json

from asr_service.metrics import EMF_NAMESPACE, ServiceMetrics


def test_emf_line_reports_active_streams_and_deltas():
    metrics = ServiceMetrics()
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
    import time

    time.sleep(0.5)
    lines = [line for line in capfd.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert lines and json.loads(lines[0])["ServiceName"] == server.settings.service_name
