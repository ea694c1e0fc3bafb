"""The real ASR server run as a local ECS "task": from a task definition's container environment.

ECS would start the container with the task definition's environment and route traffic once the
target group's health check (``/ready``) passes; on a new deployment it starts the new task
beside the old one (maximumPercent 200) and SIGTERMs the old one after. ``LocalTask`` does the
same with a subprocess: ``python -m asr_service`` with that environment, its own loopback ports
(two tasks can run side by side), polled on ``/ready``, stopped with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo.moto_server import free_loopback_port

REPO_ROOT = Path(__file__).resolve().parent.parent


class TaskStartError(RuntimeError):
    """The server exited (or never turned ready) before it could take traffic."""

    def __init__(self, message: str, exit_code: int | None, log_tail: list[str]) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.log_tail = log_tail


@dataclass(frozen=True)
class StopReport:
    exit_code: int
    seconds: float
    log_tail: list[str]


def environment_at_task_start(
    ecs: Any, task_definition_arn: str, container_name: str, secretsmanager: Any = None
) -> dict[str, str]:
    """The env vars ECS would give the container ``container_name`` of this revision.

    Plain ``environment`` entries as they are, and each ``secrets`` entry resolved the way the ECS
    agent resolves it at task start (with the execution role): GetSecretValue of the secret named
    by ``valueFrom``, at its pinned version if it names one, else its AWSCURRENT version.
    """
    definition = ecs.describe_task_definition(taskDefinition=task_definition_arn)["taskDefinition"]
    for container in definition["containerDefinitions"]:
        if container["name"] == container_name:
            env = {item["name"]: item["value"] for item in container.get("environment", [])}
            for item in container.get("secrets", []):
                if secretsmanager is None:
                    raise TaskStartError(f"{item['name']} is a secret: no Secrets Manager client", None, [])
                env[item["name"]] = resolve_secret(secretsmanager, item["valueFrom"])
            return env
    raise KeyError(f"{task_definition_arn} has no container named {container_name!r}")


def resolve_secret(secretsmanager: Any, value_from: str) -> str:
    """ECS's ``valueFrom`` forms for Secrets Manager: ARN[:json-key:version-stage:version-id]."""
    parts = value_from.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager":
        raise TaskStartError(f"only Secrets Manager secrets are resolved here, not {parts[2:3]}", None, [])
    arn = ":".join(parts[:7])
    json_key, stage, version = ([*parts[7:], "", "", ""])[:3]
    request: dict[str, str] = {"SecretId": arn}
    if version:
        request["VersionId"] = version
    elif stage:
        request["VersionStage"] = stage
    try:
        text = str(secretsmanager.get_secret_value(**request)["SecretString"])
    except secretsmanager.exceptions.ResourceNotFoundException:
        # What ECS reports when the secret has no value yet: the task never starts.
        raise TaskStartError(
            f"ResourceInitializationError: unable to retrieve secret {arn} (no value)", None, []
        ) from None
    return str(json.loads(text)[json_key]) if json_key else text


class LocalTask:
    """One ``python -m asr_service`` process started from a container environment."""

    def __init__(
        self,
        label: str,
        container_env: dict[str, str],
        platform_env: dict[str, str],
        scratch_dir: Path,
    ) -> None:
        self.label = label
        self.container_env = container_env
        self.platform_env = platform_env
        self.scratch_dir = scratch_dir
        self.log_path = scratch_dir / "task.log"
        self.server_port = 0
        self.health_port = 0
        self.started_at = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.server_port}"

    @property
    def pid(self) -> int:
        return self._process.pid if self._process else 0

    def start(self) -> LocalTask:
        self.server_port, self.health_port = free_loopback_port(), free_loopback_port()
        env = {
            # A clean environment, like a container's: only the platform's and the task's variables.
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 (fallback only)
            "PYTHONPATH": str(REPO_ROOT),
            **self.platform_env,
            **self.container_env,
            # What the container platform gives each task that a process here must get otherwise:
            # its own network namespace (the task definition says 8765/8080 on all interfaces;
            # here each task gets its own loopback ports so old and new run side by side) and
            # its own scratch volume (/tmp in the task definition).
            "SERVER_HOST": "127.0.0.1",
            "SERVER_PORT": str(self.server_port),
            "HEALTH_PORT": str(self.health_port),
            "MODEL_CACHE_DIR": str(self.scratch_dir / "asr-models"),
            "TMPDIR": str(self.scratch_dir),
        }
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "asr_service"],
                env=env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started_at = time.monotonic()
        return self

    def _ready_status(self) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/ready", timeout=1) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def prometheus_text(self) -> str:
        """The Prometheus exposition of /metrics ("" when the task does not answer)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.health_port}/metrics", headers={"Accept": "text/plain"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as reply:  # noqa: S310 - http://127.0.0.1
                return str(reply.read().decode())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return ""

    def active_sessions(self) -> int:
        """Open WebSocket sessions, from the Prometheus text on /metrics (``asr_sessions_active``)."""
        text = self.prometheus_text()
        for line in text.splitlines():
            if line.startswith("asr_sessions_active "):
                return int(float(line.split()[1]))
        return 0

    def is_ready(self) -> bool:
        return self._ready_status() == 200

    def wait_ready(self, timeout_s: float = 90.0) -> float:
        """Seconds from start to ``/ready`` 200; raises TaskStartError if it exits or times out."""
        assert self._process is not None, "start() first"
        deadline = self.started_at + timeout_s
        while time.monotonic() < deadline:
            exit_code = self._process.poll()
            if exit_code is not None:
                raise TaskStartError(
                    f"task {self.label} exited with code {exit_code} before it was ready",
                    exit_code,
                    self.log_tail(),
                )
            if self._ready_status() == 200:
                return time.monotonic() - self.started_at
            time.sleep(0.2)
        self.kill()
        raise TaskStartError(
            f"task {self.label} was not ready within {timeout_s:.0f} s", None, self.log_tail()
        )

    def stop(self, timeout_s: float = 30.0) -> StopReport:
        """SIGTERM (what ECS sends), then wait for the drain to finish; SIGKILL only past the timeout."""
        assert self._process is not None, "start() first"
        started = time.monotonic()
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return StopReport(
            exit_code=int(self._process.returncode),
            seconds=time.monotonic() - started,
            log_tail=self.log_tail(),
        )

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 8) -> list[str]:
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(errors="replace").splitlines()[-lines:]

    def log_events(self) -> list[dict[str, Any]]:
        """The server's structured (JSON) log lines, for picking out drain and error events."""
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                events.append(record)
        return events


@dataclass(frozen=True)
class Transcription:
    text: str
    seconds: float


@dataclass(frozen=True)
class ClientRun:
    exit_code: int
    text: str
    stderr: list[str]
    seconds: float


def run_client(
    ws_url: str, audio_file: Path, env: dict[str, str], token: str | None = None, timeout_s: float = 120
) -> ClientRun:
    """Stream ``audio_file`` through the real client CLI (the token in ``ASR_TOKEN``, not argv)."""
    started = time.monotonic()
    completed = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [
            sys.executable,
            "-m",
            "asr_client",
            "--server",
            ws_url,
            "--audio-file",
            str(audio_file),
            "--no-realtime",
        ],
        capture_output=True,
        env={**env, "PYTHONPATH": str(REPO_ROOT), **({"ASR_TOKEN": token} if token else {})},
        cwd=REPO_ROOT,
        timeout=timeout_s,
        check=False,
    )
    lines = completed.stdout.decode(errors="replace").strip().splitlines()
    return ClientRun(
        exit_code=completed.returncode,
        text=lines[-1].strip() if lines else "",
        stderr=completed.stderr.decode(errors="replace").strip().splitlines()[-3:],
        seconds=time.monotonic() - started,
    )


def transcribe(
    ws_url: str, audio_file: Path, env: dict[str, str], timeout_s: float = 120, token: str | None = None
) -> Transcription:
    """Stream ``audio_file`` through the real client CLI; its last stdout line is the transcript."""
    ran = run_client(ws_url, audio_file, env, token, timeout_s)
    if ran.exit_code != 0:
        raise RuntimeError(f"client exited {ran.exit_code}: {' | '.join(ran.stderr)[-800:]}")
    return Transcription(text=ran.text, seconds=ran.seconds)


class BackgroundStream:
    """The real client streaming a file at real-time pace in the background (a live user)."""

    def __init__(self, ws_url: str, audio_file: Path, env: dict[str, str], token: str | None = None) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "asr_client", "--server", ws_url, "--audio-file", str(audio_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**env, "PYTHONPATH": str(REPO_ROOT), **({"ASR_TOKEN": token} if token else {})},
            cwd=REPO_ROOT,
        )

    def finish(self, timeout_s: float = 60) -> tuple[int, str, list[str]]:
        """(exit code, final transcript = last stdout line, the client's last stderr lines)."""
        try:
            out, err = self._process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            out, err = self._process.communicate()
        lines = out.decode(errors="replace").strip().splitlines()
        return (
            int(self._process.returncode),
            lines[-1].strip() if lines else "",
            err.decode(errors="replace").strip().splitlines()[-2:],
        )

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
