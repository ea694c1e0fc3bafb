"""The health port: /health, /ready states, /metrics as JSON or Prometheus text."""

from __future__ import annotations

import json
import threading

import pytest

from asr_service.server import StartupError
from tests.asr_service.fakes import word_audio
from tests.asr_service.helpers import TEST_SETTINGS, ServerThread, fake_loader, http_get
from tests.asr_service.wsclient import stream_native


def test_ready_is_503_until_the_model_is_loaded_and_warm_then_200():
    gate = threading.Event()
    inner = fake_loader()

    def slow_loader(settings, device):
        gate.wait(10)
        return inner(settings, device)

    thread = ServerThread(TEST_SETTINGS, slow_loader)
    starter = threading.Thread(target=thread.start)
    starter.start()
    try:
        for _ in range(200):
            if thread.server.health_port:
                break
            threading.Event().wait(0.01)
        assert http_get(thread.health_port, "/health")[0] == 200
        status, _headers, body = http_get(thread.health_port, "/ready")
        assert status == 503 and json.loads(body)["status"] == "starting"
        gate.set()
        starter.join(10)
        status, _headers, body = http_get(thread.health_port, "/ready")
        assert status == 200 and json.loads(body) == {
            "status": "ready",
            "model_loaded": True,
            "active_sessions": 0,
        }
    finally:
        gate.set()
        thread.stop()


def test_a_model_that_fails_to_load_stops_start_up():
    def broken(_settings, _device):
        raise RuntimeError("checksum mismatch")

    with pytest.raises(StartupError, match="checksum mismatch"):
        ServerThread(TEST_SETTINGS, broken).start()


def test_metrics_json_has_the_seed_fields_and_the_decode_strategy(server):
    stream_native(server.url, word_audio("ab"))
    status, headers, body = http_get(server.health_port, "/metrics")
    data = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    for field in (
        "uptime_seconds",
        "device",
        "request_count",
        "sample_rate",
        "chunk_duration",
        "model_loaded",
    ):
        assert field in data
    assert data["device"] == "cpu" and data["sample_rate"] == 16000 and data["chunk_duration"] == 0.1
    assert data["model_loaded"] is True and data["request_count"] >= 1
    assert data["decode_strategy"] == "streaming"
    assert data["audio_seconds"] == pytest.approx(0.52, abs=0.01)


@pytest.mark.parametrize("accept", ["text/plain", "application/openmetrics-text; version=1.0.0"])
def test_metrics_prometheus_text_for_scrapers(server, accept):
    stream_native(server.url, word_audio("ab"))
    status, headers, body = http_get(server.health_port, "/metrics", accept=accept)
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    for name in (
        "asr_sessions_active",
        "asr_sessions_total",
        "asr_audio_seconds_total",
        "asr_batch_size_bucket",
        "asr_inference_seconds_bucket",
        "asr_partial_latency_seconds_bucket",
        "asr_final_latency_seconds_bucket",
        "asr_event_loop_lag_seconds_bucket",
    ):
        assert name in text, name
    assert 'asr_engine_info{decode_strategy="streaming"' in text
    assert "asr_sessions_total 1.0" in text
    assert "asr_partial_latency_seconds_count 2.0" in text  # "a", "a b"


def test_unknown_path_is_404_and_post_is_405(server):
    assert http_get(server.health_port, "/nope")[0] == 404
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{server.health_port}/ready", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310
    assert error.value.code == 405


def test_routes_can_be_added_by_other_parts(server):
    from asr_service.http import Response

    async def page(_request):
        return Response(200, b"<html></html>", "text/html")

    server.server.http.add_route("/", page)
    status, headers, body = http_get(server.health_port, "/")
    assert status == 200 and body == b"<html></html>" and headers["Content-Type"] == "text/html"
