"""moto in server mode, in its own process, on a free loopback port: the demo's stand-in for AWS.

A separate process (rather than ``ThreadedMotoServer`` in ours) keeps moto's global state and
request log away from the demo and from any test that uses ``mock_aws`` in the same interpreter.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_SESSION_TOKEN": "demo",
}


def environment_without_aws() -> dict[str, str]:
    """Our environment minus every AWS_* setting (profile, keys, endpoint, region): children get
    moto's endpoint and fake keys on top of this, so none of them can reach a real account."""
    return {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}


class MotoStartError(RuntimeError):
    """moto did not answer on its port in time."""


def free_loopback_port() -> int:
    """A port nobody listens on right now (the kernel picks it; a tiny race is acceptable here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1; use as a context manager."""

    def __init__(self, log_path: Path, start_timeout_s: float = 30.0) -> None:
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self.port = free_loopback_port()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise MotoStartError(f"moto exited with {self._process.returncode}; see {self.log_path}")
            try:
                # moto's own API answers once every backend is importable.
                url = f"{self.endpoint_url}/moto-api/data.json"
                with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - http://127.0.0.1
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise MotoStartError(f"moto did not answer on {self.endpoint_url} within {self.start_timeout_s} s")

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
