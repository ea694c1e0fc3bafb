"""Bad input and limits: each close is preceded by an event that says why."""

from __future__ import annotations

import json
import threading
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from asr_service.metrics import current_value
from tests.asr_service.fakes import FakeStreamingModel, word_audio
from tests.asr_service.helpers import fake_loader, wait_until
from tests.asr_service.wsclient import recv_all, recv_event, stream_native


def _send_and_collect(url: str, *messages: str | bytes) -> tuple[list[dict], int | None]:
    with connect(url) as ws:
        recv_event(ws)
        for message in messages:
            ws.send(message)
        events = recv_all(ws)
        return events, ws.close_code


def _start(rate: int = 16000, **extra: object) -> str:
    return json.dumps({"type": "start", "sample_rate": rate, **extra})


def test_malformed_json_is_reported_and_the_session_continues(server):
    events, code = _send_and_collect(server.url, "{not json", _start(), json.dumps({"type": "eof"}))
    assert events[0] == {"type": "error", "code": "malformed_json", "message": "message is not valid JSON"}
    assert [e["type"] for e in events[1:]] == ["final", "done"] and code == 1000


def test_unknown_message_type_is_reported(server):
    events, code = _send_and_collect(
        server.url, json.dumps({"type": "dance"}), _start(), json.dumps({"type": "eof"})
    )
    assert events[0]["type"] == "error" and events[0]["code"] == "unknown_type" and code == 1000


def test_binary_before_start_closes_1008_with_an_error_event(server):
    events, code = _send_and_collect(server.url, b"\x00\x00" * 100)
    assert code == 1008
    assert events == [
        {
            "type": "error",
            "code": "binary_before_start",
            "message": 'send {"type": "start"} before binary audio',
            "close_code": 1008,
        }
    ]


@pytest.mark.parametrize(
    ("start", "code"),
    [
        (_start(encoding="f32le"), "unsupported_encoding"),
        (_start(rate=12345), "unsupported_sample_rate"),
        (_start(channels=2), "unsupported_channels"),
    ],
)
def test_wrong_sample_format_closes_1003(server, start, code):
    events, close = _send_and_collect(server.url, start)
    assert close == 1003
    assert events[-1]["type"] == "error" and events[-1]["code"] == code and events[-1]["close_code"] == 1003


def test_odd_length_pcm_closes_1003(server):
    events, close = _send_and_collect(server.url, _start(), b"\x00\x01\x02")
    assert close == 1003 and events[-1]["code"] == "bad_audio"


def test_too_big_message_closes_1009_with_an_error_event(start_server):
    small = start_server(max_message_bytes=4000)
    events, close = _send_and_collect(small.url, _start(), b"\x00" * 4002)
    assert close == 1009
    assert events[-1]["code"] == "message_too_big" and events[-1]["close_code"] == 1009


def test_sessions_beyond_the_limit_get_503_with_retry_after(start_server):
    limited = start_server(max_sessions=2, retry_after_s=7)
    with connect(limited.url) as first, connect(limited.url) as second:
        recv_event(first), recv_event(second)
        with pytest.raises(InvalidStatus) as refused, connect(limited.url):
            pass
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "7"
    # A slot frees up once a session ends.
    wait_until(lambda: not limited.server.sessions)
    events, code = stream_native(limited.url, word_audio("a"))
    assert code == 1000 and events[-1]["text"] == "a"
    rejected = current_value(limited.server.metrics.sessions_rejected.labels(reason="max_sessions"))
    assert rejected == 1


def test_idle_client_is_closed_1008_after_its_final(start_server):
    impatient = start_server(idle_timeout_s=0.5)
    from asr_service.audio import encode_pcm16

    with connect(impatient.url) as ws:
        recv_event(ws)
        ws.send(_start())
        ws.send(encode_pcm16(word_audio("c")))
        events = recv_all(ws)
        assert ws.close_code == 1008
    assert events[-1]["code"] == "idle_timeout" and events[-1]["close_code"] == 1008
    assert [e["text"] for e in events if e["type"] == "final"] == ["c"]


def test_audio_after_eof_or_second_start_is_refused(server):
    events, close = _send_and_collect(server.url, _start(), _start())
    assert close == 1008 and events[-1]["code"] == "already_started"


class _SlowModel(FakeStreamingModel):
    """80 ms per 60 ms chunk: slower than real time."""

    def stream_step(self, audio, state):
        time.sleep(0.08)
        return super().stream_step(audio, state)


def test_a_client_sending_faster_than_the_engine_is_held_to_the_backlog_bound(start_server):
    slow = start_server(fake_loader(_SlowModel(chunk_samples=960)), max_backlog_s=0.3)
    audio = word_audio("abcdefgh")  # 2 s, sent as fast as possible
    peak = 0.0
    stop = threading.Event()

    def watch():
        nonlocal peak
        while not stop.is_set():
            for session in list(slow.server.sessions):
                if session.stream is not None:
                    peak = max(peak, session.stream.backlog_s)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        events, code = stream_native(slow.url, audio, frame_ms=50)
    finally:
        stop.set()
        watcher.join()
    assert code == 1000
    assert events[-1]["text"] == " ".join("abcdefgh")  # nothing dropped
    assert 0.2 < peak <= 0.3 + 0.05  # the bound plus at most one message


def test_a_peer_that_stops_answering_pings_is_disconnected(start_server):
    import base64
    import os
    import socket

    pinging = start_server(ping_interval_s=0.2, ping_timeout_s=0.2)
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", pinging.server.ws_port), timeout=5) as raw:
        raw.sendall(
            (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        # Read (and never answer) until the server gives up on us and closes the TCP connection.
        received = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = raw.recv(4096)
            if not chunk:
                break
            received += chunk
        else:
            raise AssertionError("the server kept a silent peer open")
    assert b"101 Switching Protocols" in received
    wait_until(lambda: not pinging.server.sessions)


def test_a_handshake_that_races_past_the_503_check_is_closed_1013(start_server, monkeypatch):
    from asr_service.server import AsrServer

    # Let every handshake through, as two arriving at the same instant would be.
    monkeypatch.setattr(AsrServer, "_process_request", lambda self, connection, request: None)
    limited = start_server(max_sessions=1)
    with connect(limited.url) as first:
        recv_event(first)
        with connect(limited.url) as second:
            events = recv_all(second)
            assert second.close_code == 1013
    assert events == [
        {"type": "error", "code": "overloaded", "message": "too many concurrent sessions", "close_code": 1013}
    ]
