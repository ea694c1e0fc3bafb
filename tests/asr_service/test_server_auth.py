"""Optional token auth: Authorization: Bearer or ?token=; a bad token closes 1008."""

from __future__ import annotations

import io

import pytest
import structlog
from websockets.sync.client import connect

from tests.asr_service.conftest import wait_until
from tests.asr_service.fakes import word_audio
from tests.asr_service.wsclient import recv_all, recv_event, stream_native

TOKEN = "s3cr3t-token-value"


@pytest.fixture
def secured(start_server):
    return start_server(auth_tokens=(TOKEN, "other-token"))


def test_bearer_header_is_accepted(secured):
    events, code = stream_native(
        secured.url, word_audio("b"), additional_headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert code == 1000 and events[-1]["text"] == "b"


def test_token_query_parameter_is_accepted(secured):
    events, code = stream_native(f"{secured.url}/?token={TOKEN}", word_audio("b"))
    assert code == 1000 and events[-1]["text"] == "b"


@pytest.mark.parametrize("suffix", ["", "/?token=wrong"])
def test_missing_or_wrong_token_closes_1008_before_any_audio(secured, suffix):
    with connect(secured.url + suffix) as ws:
        events = recv_all(ws)
        assert ws.close_code == 1008
    assert events == [
        {"type": "error", "code": "unauthorized", "message": "a valid token is required", "close_code": 1008}
    ]


def test_tokens_never_reach_the_logs(secured):
    captured = io.StringIO()
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=captured))
    try:
        stream_native(f"{secured.url}/?token={TOKEN}", word_audio("b"))
        with connect(secured.url + "/?token=nope-" + TOKEN) as ws:
            recv_all(ws)
        with connect(secured.url, additional_headers={"Authorization": "Bearer x" + TOKEN}) as ws:
            recv_all(ws)
        wait_until(lambda: not secured.server.sessions)
    finally:
        structlog.reset_defaults()
    logs = captured.getvalue()
    assert "session_summary" in logs
    assert TOKEN not in logs and "other-token" not in logs


def test_the_summary_line_is_logged_once_per_session(server):
    captured = io.StringIO()
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=captured))
    try:
        stream_native(server.url, word_audio("ab"))
        with connect(server.url) as ws:
            recv_event(ws)
        wait_until(lambda: not server.server.sessions)
    finally:
        structlog.reset_defaults()
    summaries = [line for line in captured.getvalue().splitlines() if "session_summary" in line]
    assert len(summaries) == 2
