"""``python -m asr_service`` with WORKERS=2: a supervisor and two worker processes on one port,
the shipped demo model, real clips, a real websockets client (asr_service/workers)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from asr_service.audio import encode_pcm16
from bench.soak_clients import reset_connection
from tests.asr_service.helpers import http_get, wait_until
from tests.asr_service.wsclient import final_text, recv_all, recv_event

REPO = Path(__file__).resolve().parents[2]
CLIPS = REPO / "tests" / "data" / "clips"
TRANSCRIPTS = json.loads((CLIPS / "transcripts.json").read_text())


def clip(name: str) -> np.ndarray:
    data, rate = soundfile.read(str(CLIPS / name), dtype="int16")
    assert rate == 16000
    return data.astype(np.float32) / 32768.0


class TaskProcess:
    """The task as the container runs it; its JSON log lines collected as they come."""

    def __init__(self, **env_extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "AUTH_", "GOLDEN_"))}
        env.update(
            {
                "PYTHONPATH": str(REPO),
                "SERVER_HOST": "127.0.0.1",
                "SERVER_PORT": "0",
                "HEALTH_PORT": "0",
                "WORKERS": "2",
                "DRAIN_TIMEOUT_S": "20",
                **env_extra,
            }
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "asr_service"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
        )
        self.records: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self.wait_for("server_ready", timeout=120)
        self.ws_port, self.health_port = int(ready["ws_port"]), int(ready["health_port"])
        self.url = f"ws://127.0.0.1:{self.ws_port}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.records.append(json.loads(line))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in list(self.records) if r.get("event") == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while len(self.events(name)) < count:
            if self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"exited ({self.process.returncode}) before {name!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {name!r} x{count} within {timeout} s")
            time.sleep(0.05)
        return self.events(name)[count - 1]

    def readiness(self) -> tuple[int, dict[str, Any]]:
        status, _headers, body = http_get(self.health_port, "/ready")
        return status, json.loads(body)

    def metrics(self, prometheus: bool = False) -> Any:
        _status, _headers, body = http_get(self.health_port, "/metrics", "text/plain" if prometheus else None)
        return body.decode() if prometheus else json.loads(body)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(40)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._reader.join(5)


def sample(text: str, name: str) -> float:
    """One unlabelled sample of the Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the exposition")


def open_stream(url: str) -> ClientConnection:
    ws = connect(url, legacy=True)  # closed by the caller, not a with block
    assert recv_event(ws)["type"] == "connection"
    ws.send(json.dumps({"type": "start", "sample_rate": 16000, "encoding": "s16le"}))
    return ws


@pytest.fixture(scope="module")
def task() -> Iterator[TaskProcess]:
    process = TaskProcess(MAX_SESSIONS="3")
    yield process
    process.stop()


def test_two_workers_each_serve_clips_and_metrics_add_up(task: TaskProcess):
    names = ["clip1_en-us_m3.wav", "clip2_en_f2.wav"]
    # Both sessions open before either streams: the supervisor gives the second to the idle worker.
    sockets = [open_stream(task.url) for _ in names]
    texts = []
    for ws, name in zip(sockets, names, strict=True):
        pcm = encode_pcm16(clip(name))
        for offset in range(0, len(pcm), 3200):
            ws.send(pcm[offset : offset + 3200])
        ws.send(json.dumps({"type": "eof"}))
    for ws in sockets:
        texts.append(final_text(recv_all(ws)))
        ws.close()
    assert texts == [TRANSCRIPTS[name] for name in names]
    task.wait_for("session_summary", count=2)
    assert sorted(s["worker"] for s in task.events("session_summary")[:2]) == [0, 1]
    audio = sum(len(clip(name)) / 16000 for name in names)
    wait_until(lambda: task.readiness()[1]["active_sessions"] == 0)
    metrics = task.metrics()
    assert metrics["workers"] == 2 and metrics["ready"] is True
    assert metrics["audio_seconds"] == pytest.approx(audio, abs=0.01)
    assert metrics["max_sessions"] == 3
    text = task.metrics(prometheus=True)
    assert sample(text, "asr_sessions_total") == 2
    assert sample(text, "asr_audio_seconds_total") == pytest.approx(audio, abs=0.01)
    assert sample(text, "asr_workers") == 2 and sample(text, "asr_ready") == 1
    assert sample(text, "asr_final_latency_seconds_count") == 2  # histograms merged


def test_max_sessions_holds_for_the_whole_task(task: TaskProcess):
    sockets = [open_stream(task.url) for _ in range(3)]
    try:
        wait_until(lambda: task.readiness()[1]["active_sessions"] == 3)
        per_worker = [w["connections"] for w in task.readiness()[1]["workers"]]
        assert sorted(per_worker) == [1, 2]  # spread over both workers, yet one limit
        with pytest.raises(InvalidStatus) as refused:
            connect(task.url)
        assert refused.value.response.status_code == 503
        assert b"too many concurrent sessions" in refused.value.response.body
    finally:
        sockets.pop().close()
    wait_until(lambda: task.readiness()[1]["active_sessions"] == 2)
    with connect(task.url) as ws:  # a slot is free again
        assert recv_event(ws)["type"] == "connection"
    for ws in sockets:
        ws.close()
    assert task.metrics()["rejected_sessions"] >= 1


def test_a_killed_worker_closes_its_clients_and_is_replaced():
    task = TaskProcess()
    try:
        ws = open_stream(task.url)
        ws.send(encode_pcm16(clip("clip1_en-us_m3.wav")[:8000]))
        wait_until(lambda: task.readiness()[1]["active_sessions"] == 1)
        (busy,) = [w for w in task.readiness()[1]["workers"] if w["connections"] == 1]
        os.kill(busy["pid"], signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=10)  # a hang would raise TimeoutError, not ConnectionClosed
        assert time.monotonic() - started < 5
        died = task.wait_for("worker_died")
        assert died["pid"] == busy["pid"] and died["connections_lost"] == 1
        assert task.readiness()[0] == 503  # one worker short until its replacement is ready
        wait_until(lambda: task.readiness()[0] == 200, timeout=60)
        pids = {w["pid"] for w in task.readiness()[1]["workers"]}
        assert busy["pid"] not in pids and len(pids) == 2
        assert sample(task.metrics(prometheus=True), "asr_worker_restarts_total") == 1
        for _ in range(2):  # both workers, the new one included, serve
            events_and_code = _stream_clip(task.url, "clip4_en-us_f4.wav")
            assert events_and_code == (TRANSCRIPTS["clip4_en-us_f4.wav"], 1000)
    finally:
        assert task.stop() == 0


def _stream_clip(url: str, name: str) -> tuple[str, int | None]:
    with open_stream(url) as ws:
        pcm = encode_pcm16(clip(name))
        for offset in range(0, len(pcm), 3200):
            ws.send(pcm[offset : offset + 3200])
        ws.send(json.dumps({"type": "eof"}))
        events = recv_all(ws)
    return final_text(events), ws.close_code


def test_sigterm_drains_sessions_on_every_worker_and_exits_zero():
    task = TaskProcess()
    sockets = [open_stream(task.url) for _ in range(2)]
    for ws in sockets:
        ws.send(encode_pcm16(clip("clip2_en_f2.wav")))
    wait_until(lambda: sorted(w["connections"] for w in task.readiness()[1]["workers"]) == [1, 1])
    time.sleep(0.5)
    task.process.send_signal(signal.SIGTERM)
    for ws in sockets:
        events = recv_all(ws, timeout=20)
        assert [e["type"] for e in events][-2:] == ["final", "closing"]
        assert events[-2]["text"] == TRANSCRIPTS["clip2_en_f2.wav"]
        assert ws.close_code == 1001
    assert task.stop() == 0
    drained = task.events("drain_finished")
    assert sorted(d["worker"] for d in drained) == [0, 1]
    assert all(d["drained_sessions"] == 1 and d["forced_sessions"] == 0 for d in drained)
    assert [e["exit_status"] for e in task.events("worker_exited")] == [0, 0]


def test_workers_1_is_the_single_process_server():
    task = TaskProcess(WORKERS="1")
    try:
        assert task.events("worker_started") == []
        children = Path(f"/proc/{task.process.pid}/task/{task.process.pid}/children").read_text().split()
        assert children == []  # no supervisor, no worker: the server itself
        assert "workers" not in task.metrics()
        assert _stream_clip(task.url, "clip2_en_f2.wav") == (TRANSCRIPTS["clip2_en_f2.wav"], 1000)
    finally:
        assert task.stop() == 0


def test_one_autoscaling_line_per_interval_counts_the_streams_of_every_worker():
    task = TaskProcess(EMF_INTERVAL_S="1")
    sockets = [open_stream(task.url) for _ in range(2)]
    try:
        wait_until(lambda: sorted(w["sessions"] for w in task.readiness()[1]["workers"]) == [1, 1])
        seen = len(task.records)
        time.sleep(3.5)
        lines = [r for r in task.records[seen:] if "ActiveStreams" in r]
        assert len(lines) >= 2
        assert [line["ActiveStreams"] for line in lines] == [2] * len(lines)  # no per-worker lines
        assert set(lines[0]) == {
            "_aws",
            "ServiceName",
            "ActiveStreams",
            "RejectedSessions",
            "AudioSecondsProcessed",
        }
    finally:
        for ws in sockets:
            ws.close()
        assert task.stop() == 0


def test_workers_drain_and_exit_when_their_supervisor_is_killed():
    task = TaskProcess()
    pids = [w["pid"] for w in task.readiness()[1]["workers"]]
    try:
        task.process.kill()  # no SIGTERM for the workers: they see the channel close
        task.process.wait(10)

        def gone(pid: int) -> bool:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                return True
            return state == "Z"  # exited, waiting for a parent that is gone to reap it

        wait_until(lambda: all(gone(pid) for pid in pids), timeout=30)
        assert len(task.events("supervisor_gone")) == 2
    finally:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_a_stalled_worker_whose_clients_left_does_not_make_the_other_refuse():
    """A worker whose event loop cannot run (SIGSTOP stands in for a long model step holding
    the GIL) cannot tell the supervisor that its clients left. Their slots are free all the
    same: the other worker must admit new sessions up to MAX_SESSIONS, not answer 503."""
    task = TaskProcess(MAX_SESSIONS="4")
    stalled = 0

    async def scenario() -> list[int]:
        nonlocal stalled
        first = []
        for _ in range(4):  # two on each worker (each newcomer goes to the one with fewer)
            ws = await async_connect(task.url)
            await ws.recv()
            await ws.send(json.dumps({"type": "start", "sample_rate": 16000, "encoding": "s16le"}))
            first.append(ws)
        await asyncio.to_thread(
            wait_until, lambda: [w["sessions"] for w in task.readiness()[1]["workers"]] == [2, 2]
        )
        stalled = task.readiness()[1]["workers"][1]["pid"]
        os.kill(stalled, signal.SIGSTOP)
        for ws in first:
            reset_connection(ws)  # all four vanish; only worker 0 can notice
        # (in a thread: the resets leave the socket when this loop runs again)
        await asyncio.to_thread(wait_until, lambda: task.readiness()[1]["workers"][0]["sessions"] == 0)
        # Worker 0 now has the fewest connections, so it gets the three newcomers (a tie goes
        # to it too). With worker 1's two gone clients still counted, the third was refused.
        statuses = []
        newcomers = []
        for _ in range(3):
            try:
                ws = await async_connect(task.url, open_timeout=10)
            except InvalidStatus as refused:
                statuses.append(refused.response.status_code)
                continue
            statuses.append(101)
            assert json.loads(await ws.recv())["type"] == "connection"
            newcomers.append(ws)
        for ws in newcomers:
            await ws.close()
        return statuses

    try:
        assert asyncio.run(scenario()) == [101, 101, 101]
    finally:
        if stalled:
            os.kill(stalled, signal.SIGCONT)
        assert task.stop() == 0
