"""``python -m asr_service`` as the container runs it: env config, exit codes, SIGTERM drain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from asr_service.audio import encode_pcm16
from tests.asr_service.helpers import http_get, speechy, write_checkpoint
from tests.asr_service.wsclient import recv_all, recv_event

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("model") / "untrained.pt"
    return path, write_checkpoint(path)


def _spawn(env_extra: dict[str, str], *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "AUTH_"))}
    # The single-process server (WORKERS=1); tests/asr_service/test_server_workers.py runs several.
    env.update({"PYTHONPATH": str(REPO), "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0", "HEALTH_PORT": "0"})
    env.setdefault("WORKERS", "1")
    env.update(env_extra)
    return subprocess.Popen(
        [sys.executable, "-m", "asr_service", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_log(process: subprocess.Popen[str], event: str, timeout: float = 60) -> dict:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(
                f"process exited before {event!r}: {process.stderr.read() if process.stderr else ''}"
            )
        if line.startswith("{") and json.loads(line).get("event") == event:
            return json.loads(line)
    raise AssertionError(f"no {event!r} log line within {timeout} s")


def test_sigterm_drains_streams_in_flight_and_exits_zero(checkpoint):
    path, digest = checkpoint
    process = _spawn({"MODEL_PATH": str(path), "MODEL_SHA256": digest, "DRAIN_TIMEOUT_S": "20"})
    try:
        ready = _wait_for_log(process, "server_ready")
        assert ready["model_sha256"] == digest
        assert http_get(ready["health_port"], "/ready")[0] == 200
        with connect(f"ws://127.0.0.1:{ready['ws_port']}") as ws:
            recv_event(ws)
            ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
            ws.send(encode_pcm16(speechy(1.0, seed=5)))
            time.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            events = recv_all(ws)
            assert ws.close_code == 1001
        assert [e["type"] for e in events][-2:] == ["final", "closing"]
        assert events[-2]["reason"] == "eof"
        assert process.wait(20) == 0
        assert process.stdout is not None
        rest = [json.loads(line) for line in process.stdout.read().splitlines() if line.startswith("{")]
        drained = next(line for line in rest if line.get("event") == "drain_finished")
        assert drained["drained_sessions"] == 1 and drained["forced_sessions"] == 0
        (summary,) = [line for line in rest if line.get("event") == "session_summary"]
        assert summary["close_code"] == 1001 and summary["protocol"] == "native"
        assert len(summary["session_id"]) == 16 and summary["peer"].startswith("127.0.0.1:")
        assert summary["audio_seconds"] == 1.0 and summary["segments"] == 1
    finally:
        process.kill()
        process.wait()


def test_a_model_failing_verification_exits_non_zero_with_a_clear_log_line(checkpoint):
    path, _digest = checkpoint
    process = _spawn({"MODEL_URI": str(path), "MODEL_SHA256": "1" * 64})
    try:
        failure = _wait_for_log(process, "startup_failed")
        assert "expected " + "1" * 64 in failure["error"] and failure["level"] == "error"
        assert process.wait(20) == 1
    finally:
        process.kill()
        process.wait()


def test_invalid_configuration_exits_2_naming_the_setting():
    process = _spawn({"MAX_SESSIONS": "many"})
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "MAX_SESSIONS must be an integer, got 'many'" in err


def test_an_unknown_full_context_strategy_stops_the_start_naming_the_choices():
    process = _spawn({"FULL_CONTEXT_STRATEGY": "sliding"})
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "FULL_CONTEXT_STRATEGY must be one of chunked, growing-window, got 'sliding'" in err
