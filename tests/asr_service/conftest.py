"""Server fixtures: a real AsrServer on port 0 in a background event loop, reusable by any test.

``server`` gives a ready server on the tiny deterministic fake model; ``start_server(...)``
starts more with other settings or another model loader. Talk to them with a real websockets
client (sync ``websockets.sync.client.connect`` or async ``websockets.asyncio.client.connect``)
and plain HTTP for the health port (``http_get``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from asr_service.server import AsrServer
from asr_service.settings import Settings
from tests.asr_service.fakes import FakeStreamingModel

TEST_SETTINGS = Settings(
    host="127.0.0.1",
    port=0,
    health_port=0,
    max_sessions=8,
    idle_timeout_s=10.0,
    drain_timeout_s=10.0,
    endpoint_silence_ms=300.0,
    batch_max_wait_ms=2.0,
    emf_interval_s=3600.0,
)


def fake_loader(model: Any = None) -> Callable[[Settings, torch.device], tuple[Any, dict[str, Any]]]:
    def load(_settings: Settings, _device: torch.device) -> tuple[Any, dict[str, Any]]:
        return (model if model is not None else FakeStreamingModel()), {"model_source": "fake"}

    return load


class ServerThread:
    """An AsrServer running its own event loop in a daemon thread."""

    def __init__(self, settings: Settings, loader: Callable[..., Any]) -> None:
        self.settings = settings
        self.server = AsrServer(settings, loader)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stopped: asyncio.Event | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as error:
            self._error = error
            self._ready.set()
            await self.server.stop()
            return
        self._ready.set()
        await self._stopped.wait()

    def start(self, timeout: float = 30) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("server did not become ready")
        if self._error is not None:
            raise self._error
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.ws_port}"

    @property
    def health_port(self) -> int:
        return self.server.health_port

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def drain_async(self) -> Any:
        """Start the SIGTERM drain; returns a concurrent future that completes when it is done."""
        return asyncio.run_coroutine_threadsafe(self.server.drain(), self.loop)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if not self.server.draining:
            with contextlib.suppress(Exception):  # a test may have stopped it already
                self.call(self.server.stop())
        if self._stopped is not None:
            self.loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def start(loader: Callable[..., Any] | None = None, **overrides: Any) -> ServerThread:
        settings = dataclasses.replace(TEST_SETTINGS, **overrides)
        thread = ServerThread(settings, loader or fake_loader())
        started.append(thread)
        return thread.start()

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture
def server(start_server: Callable[..., ServerThread]) -> ServerThread:
    return start_server()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` (server-side effects land a moment after the client sees a close)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)


def http_get(port: int, path: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - local test server
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
