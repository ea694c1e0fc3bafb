"""``python -m asr_service`` on free loopback ports for the bench and the soak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from bench.cpu import tree_cpu_seconds, tree_status_mb

REPO = Path(__file__).resolve().parents[1]


class ServerProcess:
    """``python -m asr_service`` on free loopback ports; ``log_lines`` keeps its stdout if asked."""

    def __init__(self, server_args: list[str], env: dict[str, str], *, keep_log: bool = False) -> None:
        self.server_args = server_args
        self.env = env
        self.keep_log = keep_log
        self.log_lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self.ws_port = self.health_port = 0

    def __enter__(self) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if k != "WORKERS"}  # `make bench WORKERS=` is ours
        # The repository first, then whatever the caller's PYTHONPATH holds (packages installed
        # with --target on a machine whose site-packages we may not write, say).
        path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        env = {**env, "PYTHONPATH": path, **self.env}
        command = [
            sys.executable,
            "-m",
            "asr_service",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--health-port",
            "0",
        ]
        self.process = subprocess.Popen(  # noqa: S603 - our own module
            [*command, "--log-level", "INFO", "--max-sessions", "1000", *self.server_args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if '"server_ready"' in line:
                ready = json.loads(line)
                self.ws_port, self.health_port = ready["ws_port"], ready["health_port"]
                break
            if '"startup_failed"' in line:
                raise SystemExit(f"server failed to start: {line.strip()}")
        else:
            raise SystemExit("server exited before it was ready")
        # Keep draining stdout (session summaries) so the pipe never fills and blocks the server.
        stdout = self.process.stdout
        drain = (lambda: self.log_lines.extend(stdout)) if self.keep_log else stdout.read
        threading.Thread(target=drain, name="server-stdout", daemon=True).start()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_mb(self) -> float:
        return tree_status_mb(self.pid, "VmRSS:")

    def cpu_seconds(self) -> float:
        """CPU seconds of the server: the process and its worker processes, if any."""
        return tree_cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float:
        return tree_status_mb(self.pid, "VmHWM:")

    def metrics(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/metrics", timeout=5) as r:
            return dict(json.load(r))

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
