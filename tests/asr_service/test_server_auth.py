"""Token auth on a real server: Authorization: Bearer or ?token=, named clients, one credential
per handshake; anything wrong is the `unauthorized` event and 1008; no credential in any output."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from websockets.sync.client import connect

from asr_service.auth import hash_token, parse_client_tokens
from asr_service.logging_setup import configure_logging
from tests.asr_service.fakes import word_audio
from tests.asr_service.helpers import http_get, wait_until
from tests.asr_service.wsclient import recv_all, recv_event, stream_native

REPO = Path(__file__).resolve().parents[2]
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


# ------------------------------------------------------------------ named clients (the secret's JSON)
WEB_TOKEN = "web-7Yq2pXz9LmN4vB8cR1sT"
BATCH_TOKEN = "batch-Qw3Er5Ty7Ui9Op1As2Df"
SECRETS = (WEB_TOKEN, BATCH_TOKEN, hashlib.sha256(BATCH_TOKEN.encode()).hexdigest())


@pytest.fixture
def named(start_server):
    document = {"web": WEB_TOKEN, "batch": {"tokens": [hash_token(BATCH_TOKEN)], "max_sessions": 1}}
    return start_server(auth_tokens=parse_client_tokens(json.dumps(document)))


@contextlib.contextmanager
def json_logs() -> Iterator[io.StringIO]:
    """The server's structured log lines, as the container writes them, captured in memory."""
    captured = io.StringIO()
    root_handlers = logging.getLogger().handlers[:]
    configure_logging("INFO", stream=captured)
    try:
        yield captured
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers[:] = root_handlers


def records(captured: io.StringIO, event: str) -> list[dict]:
    lines = [json.loads(line) for line in captured.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def prometheus(server) -> str:
    return http_get(server.health_port, "/metrics", accept="text/plain")[2].decode()


def test_named_clients_transcribe_and_are_named_in_summary_and_metrics(named):
    with json_logs() as captured:
        web, code = stream_native(
            named.url, word_audio("ab"), additional_headers={"Authorization": f"Bearer {WEB_TOKEN}"}
        )
        assert code == 1000 and web[-1]["text"] == "a b"
        batch, code = stream_native(f"{named.url}/?token={BATCH_TOKEN}", word_audio("b"))
        assert code == 1000 and batch[-1]["text"] == "b"
        wait_until(lambda: len(records(captured, "session_summary")) == 2)
    summaries = records(captured, "session_summary")
    assert sorted((s["client"], s["close_code"]) for s in summaries) == [("batch", 1000), ("web", 1000)]
    text = prometheus(named)
    assert 'asr_client_sessions_total{client="web"} 1.0' in text
    assert 'asr_client_sessions_total{client="batch"} 1.0' in text
    assert 'asr_client_sessions_active{client="web"} 0.0' in text


@pytest.mark.parametrize(
    ("headers", "suffix"),
    [
        ([("Authorization", f"Bearer {WEB_TOKEN}"), ("Authorization", f"Bearer {WEB_TOKEN}")], ""),
        ([("Authorization", f"Bearer {WEB_TOKEN}"), ("Authorization", f"Bearer {BATCH_TOKEN}")], ""),
        ([("Authorization", f"Bearer {WEB_TOKEN}")], f"/?token={WEB_TOKEN}"),
        ([], f"/?token={WEB_TOKEN}&token={WEB_TOKEN}"),
        ([("Authorization", f"Basic {WEB_TOKEN}")], ""),
        ([("Authorization", "Bearer t\u00f6k\u00e9n")], ""),
        ([("Authorization", "Bearer ")], "/?x=1"),
    ],
    ids=["same-header-twice", "two-clients", "header-and-query", "query-twice", "basic", "latin-1", "empty"],
)
def test_repeated_or_malformed_credentials_get_unauthorized_never_internal_error(named, headers, suffix):
    with json_logs() as captured:
        with connect(named.url + suffix, additional_headers=headers) as ws:
            events = recv_all(ws)
            assert ws.close_code == 1008
        # A refused session never joins server.sessions: wait for its summary line instead.
        wait_until(lambda: bool(records(captured, "session_summary")))
    assert events == [
        {"type": "error", "code": "unauthorized", "message": "a valid token is required", "close_code": 1008}
    ]
    assert not records(captured, "session_failed")
    (summary,) = records(captured, "session_summary")
    assert (summary["client"], summary["close_reason"]) == (None, "unauthorized")
    assert 'asr_sessions_rejected_total{reason="unauthorized"} 1.0' in prometheus(named)


def test_a_client_over_its_session_limit_is_refused_while_others_are_not(named):
    batch_url = f"{named.url}/?token={BATCH_TOKEN}"
    with connect(batch_url) as first:
        assert recv_event(first)["type"] == "connection"
        with connect(batch_url) as second:
            events = recv_all(second)
            assert second.close_code == 1008
        assert events[0]["code"] == "client_session_limit" and "batch" in events[0]["message"]
        # Another client is not held to batch's limit.
        _web, code = stream_native(
            named.url, word_audio("a"), additional_headers={"Authorization": f"Bearer {WEB_TOKEN}"}
        )
        assert code == 1000
    wait_until(lambda: not named.server.sessions)
    _, code = stream_native(batch_url, word_audio("b"))
    assert code == 1000  # the slot is free again once the first session ended
    text = prometheus(named)
    assert 'asr_client_sessions_rejected_total{client="batch",reason="client_session_limit"} 1.0' in text
    assert 'asr_client_sessions_total{client="batch"} 2.0' in text


def test_no_token_or_digest_reaches_logs_metrics_or_emf(named):
    with json_logs() as captured:
        stream_native(f"{named.url}/?token={BATCH_TOKEN}", word_audio("b"))
        stream_native(named.url, word_audio("a"), additional_headers={"Authorization": f"Bearer {WEB_TOKEN}"})
        for suffix, headers in [
            (f"/?token={WEB_TOKEN}x", {}),
            ("", {"Authorization": f"Bearer {BATCH_TOKEN}{WEB_TOKEN}"}),
            (f"/?token={WEB_TOKEN}&token={BATCH_TOKEN}", {}),
        ]:
            with connect(named.url + suffix, additional_headers=headers) as ws:
                recv_all(ws)
        wait_until(lambda: len(records(captured, "session_summary")) == 5)
    emf = named.server.metrics.emf_lines("svc")
    outputs = {
        "logs": captured.getvalue(),
        "prometheus": prometheus(named),
        "metrics json": http_get(named.health_port, "/metrics")[2].decode(),
        "emf": emf,
    }
    assert records(captured, "auth_refused") and '"client": "web"' in outputs["logs"]
    for name, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{name} shows a credential"
    client_records = [r for r in map(json.loads, emf.splitlines()) if "Client" in r]
    assert {(r["Client"], r["ClientSessions"]) for r in client_records} == {("batch", 1), ("web", 1)}
    assert client_records[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["ServiceName", "Client"]]


# ------------------------------------------------------------------ REQUIRE_AUTH (set by Terraform)
@pytest.mark.parametrize(
    ("auth_tokens", "expected"),
    [
        (None, "REQUIRE_AUTH is true but AUTH_TOKENS holds no client token"),
        ("{}", "REQUIRE_AUTH is true but AUTH_TOKENS holds no client token"),
        ('{"web": "sha256:' + "0" * 63 + '"}', "client web: a sha256: credential needs 64"),
        ('{"web": "' + WEB_TOKEN, "AUTH_TOKENS starts with '{' but is not valid JSON"),
    ],
    ids=["unset", "no-clients", "bad-digest", "bad-json"],
)
def test_the_process_refuses_to_start_open_when_auth_is_required(auth_tokens, expected):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "AUTH_", "REQUIRE_"))}
    env.update({"PYTHONPATH": str(REPO), "REQUIRE_AUTH": "true", "SERVER_PORT": "0", "HEALTH_PORT": "0"})
    if auth_tokens is not None:
        env["AUTH_TOKENS"] = auth_tokens
    completed = subprocess.run(
        [sys.executable, "-m", "asr_service"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 2
    assert expected in completed.stderr
    assert WEB_TOKEN not in completed.stderr + completed.stdout
    assert "server_ready" not in completed.stdout
