"""A session ends cleanly whatever the client does: released once, fast, with its real close code.

These are the production bug's regressions (clients that reset mid-stream or after ``eof``
locked a task out for good) and the hostile inputs that ended in tracebacks or dropped TCP.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import struct
import time

import pytest
import structlog
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from asr_service.audio import encode_pcm16
from asr_service.metrics import current_value
from tests.asr_service.fakes import word_audio
from tests.asr_service.helpers import http_get, wait_until
from tests.asr_service.wsclient import audio_chunk_message, recv_all, recv_event, stream_native

START = json.dumps({"type": "start", "sample_rate": 16000})
EOF = json.dumps({"type": "eof"})


def _reset(ws: ClientConnection) -> None:
    """TCP RST, as a crashed client or a dropped mobile network does."""
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


async def _abrupt(url: str, phase: str) -> None:
    ws = await async_connect(url)
    await ws.recv()
    if phase != "before_start":
        await ws.send(START)
        for _ in range(5):
            await ws.send(encode_pcm16(word_audio("abc")))
    if phase == "after_eof":
        await ws.send(EOF)
    _reset(ws)


def _summaries(captured: io.StringIO) -> list[dict]:
    lines = [json.loads(line) for line in captured.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "session_summary"]


@pytest.fixture
def captured_logs():
    captured = io.StringIO()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.JSONRenderer()],
        logger_factory=structlog.WriteLoggerFactory(file=captured),
    )
    yield captured
    structlog.reset_defaults()


@pytest.mark.parametrize("phase", ["before_start", "mid_stream", "after_eof"])
def test_clients_that_reset_never_lock_the_task_out(start_server, phase):
    limited = start_server(max_sessions=4)

    async def storm() -> None:
        for _ in range(3):  # three times the limit, four at a time
            await asyncio.gather(*(_abrupt(limited.url, phase) for _ in range(4)))

    asyncio.run(storm())
    started = time.monotonic()
    wait_until(lambda: not limited.server.sessions, timeout=5)
    assert time.monotonic() - started < 1.0
    assert current_value(limited.server.metrics.sessions_active) == 0
    # Every slot is usable again: four full sessions at once, none refused.
    with (
        connect(limited.url) as a,
        connect(limited.url) as b,
        connect(limited.url) as c,
        connect(limited.url) as d,
    ):
        assert all(recv_event(ws)["type"] == "connection" for ws in (a, b, c, d))
    assert http_get(limited.health_port, "/ready")[0] == 200


def test_every_session_logs_exactly_one_summary_with_how_it_ended(server, captured_logs):
    async def scenario() -> None:
        await _abrupt(server.url, "mid_stream")
        async with async_connect(server.url) as polite:
            await polite.recv()
            await polite.send(START)
            await polite.send(encode_pcm16(word_audio("ab")))
            await polite.close(1000, "bye")
        async with async_connect(server.url) as bad_utf8:
            await bad_utf8.recv()
            await bad_utf8.send(b"\xff\xfe", text=True)
            with pytest.raises(ConnectionClosed):
                while True:
                    await bad_utf8.recv()

    asyncio.run(scenario())
    stream_native(server.url, word_audio("ab"))
    # Each session logs its summary as it ends: wait for all four rather than for a fixed time.
    wait_until(lambda: len(_summaries(captured_logs)) >= 4)
    ends = sorted((s["close_code"], s["close_reason"]) for s in _summaries(captured_logs))
    assert ends == [
        (1000, "client_closed"),
        (1000, "done"),
        (1006, "client_disconnected"),
        (1007, "invalid_utf8"),
    ]


def test_drain_after_a_storm_of_abrupt_clients_is_quick(start_server):
    drained = start_server(drain_timeout_s=30.0)

    async def storm() -> None:
        await asyncio.gather(*(_abrupt(drained.url, "mid_stream") for _ in range(8)))

    asyncio.run(storm())
    started = time.monotonic()
    drained.drain_async().result(timeout=10)
    assert time.monotonic() - started < 2.0


def test_a_client_mid_stream_gets_its_close_at_once_when_the_server_ends_the_session(start_server):
    # Frames still queued in websockets used to stall the closing handshake for close_timeout.
    strict = start_server(idle_timeout_s=0.5)
    with connect(strict.url) as ws:
        recv_event(ws)
        ws.send(START)
        for _ in range(20):
            ws.send(encode_pcm16(word_audio("a")))
        started = time.monotonic()
        events = recv_all(ws, timeout=5)
        assert ws.close_code == 1008 and events[-1]["code"] == "idle_timeout"
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "message",
    [
        '{"type": 1' + "1" * 5000 + "}",
        '{"type": "start", "sample_rate": ' + "9" * 4301 + "}",
        '{"type": "audio_chunk", "audio_data": "AAAA", "chunk_id": ' + "[" * 980 + "]" * 980 + "}",
        '{"type": "start", "sample_rate": NaN}',
    ],
    ids=["huge-type", "huge-rate", "deep-chunk-id", "nan"],
)
def test_hostile_json_is_malformed_json_and_the_session_goes_on(server, message):
    with connect(server.url) as ws:
        recv_event(ws)
        ws.send(message)
        assert recv_event(ws)["code"] == "malformed_json"
        ws.send(START)
        ws.send(encode_pcm16(word_audio("b")))
        ws.send(EOF)
        events = recv_all(ws)
        assert events[-1]["type"] == "done" and ws.close_code == 1000


def test_a_lone_surrogate_in_an_echoed_chunk_id_gets_a_reply_not_a_dropped_connection(server):
    with connect(server.url) as ws:
        recv_event(ws)
        message = audio_chunk_message(word_audio("b"), "id-\ud800", is_final=True)
        assert "\\ud800" in message  # json.dumps escapes it: valid JSON, not valid UTF-8 once decoded
        ws.send(message)
        reply = recv_event(ws)
    assert reply["type"] == "transcription" and reply["is_final"] is True
    assert reply["chunk_id"] == "id-?"


def test_the_message_cap_counts_bytes_not_characters(start_server):
    small = start_server(max_message_bytes=1000)
    emoji = json.dumps({"type": "start", "pad": "\U0001f600" * 300}, ensure_ascii=False)
    assert len(emoji) < 1000 < len(emoji.encode())
    with connect(small.url) as ws:
        recv_event(ws)
        ws.send(emoji)
        events = recv_all(ws)
        assert ws.close_code == 1009
    assert events[-1]["code"] == "message_too_big"


def test_repeated_forwarded_for_headers_are_served_and_the_alb_entry_is_logged(server, captured_logs):
    headers = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-For", "198.51.100.9, 192.0.2.1")]
    events, code = stream_native(server.url, word_audio("b"), additional_headers=headers)
    assert code == 1000 and events[-1]["type"] == "done"
    wait_until(lambda: len(_summaries(captured_logs)) >= 1)
    (summary,) = _summaries(captured_logs)
    assert summary["peer"] == "192.0.2.1"  # the last entry: the one the load balancer added


def test_compression_is_never_negotiated(server):
    with connect(server.url, compression="deflate") as ws:
        recv_event(ws)
        assert ws.protocol.extensions == []
