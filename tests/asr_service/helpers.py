"""What the asr_service tests share: a real AsrServer on port 0 in a background event loop
(``ServerThread``, the settings it starts with), HTTP to its health port, polling for server-side
effects, and small checkpoints written with the model package's own code.

The fixtures built on these (``server``, ``start_server``) are in conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr_service.decoding.results import StreamUpdate
from asr_service.model.checkpoint import FORMAT_TAG, FORMAT_VERSION, save_checkpoint
from asr_service.model.features import LogMelSettings
from asr_service.model.streaming_ctc import ARCH_NAME, CHAR_TOKENS, StreamingGruCtc, StreamingGruCtcConfig
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


class Collector:
    def __init__(self) -> None:
        self.updates: list[StreamUpdate] = []
        self.done = threading.Event()

    def __call__(self, update: StreamUpdate) -> None:
        self.updates.append(update)
        if update.done or update.error:
            self.done.set()

    def finals(self) -> list[str]:
        return [segment.text for u in self.updates for segment in u.finals]


SMALL_CONFIG = StreamingGruCtcConfig(hidden=32, layers=1)


def small_model() -> StreamingGruCtc:
    torch.manual_seed(0)
    return StreamingGruCtc(SMALL_CONFIG, LogMelSettings(), CHAR_TOKENS)


def payload(model: StreamingGruCtc | None = None) -> dict[str, Any]:
    model = model or small_model()
    return {
        "format": FORMAT_TAG,
        "version": FORMAT_VERSION,
        "arch": ARCH_NAME,
        "hparams": SMALL_CONFIG.to_dict(),
        "features": LogMelSettings().to_dict(),
        "tokens": list(CHAR_TOKENS),
        "blank_id": 0,
        "state_dict": model.state_dict(),
        "metadata": {"note": "test"},
    }


def to_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


SERVER_MODEL_CONFIG = StreamingGruCtcConfig(hidden=48, layers=1, chunk_frames=4)


def write_checkpoint(path: Path) -> str:
    """A small untrained streaming GRU-CTC checkpoint (blanks made rarer so the text is not empty)."""
    torch.manual_seed(1)
    model = StreamingGruCtc(SERVER_MODEL_CONFIG, LogMelSettings(), CHAR_TOKENS)
    with torch.no_grad():
        model.head.bias[0] -= 3.0  # untrained: make blanks rarer so the text is not empty
    return save_checkpoint(
        path,
        arch=ARCH_NAME,
        hparams=SERVER_MODEL_CONFIG.to_dict(),
        features=LogMelSettings().to_dict(),
        tokens=CHAR_TOKENS,
        blank_id=0,
        state_dict=model.state_dict(),
    )


def speechy(seconds: float, seed: int, rate: int = 16000) -> np.ndarray:
    """Seeded speech-like audio: a few tones under a syllable-rate envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    voice = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in rng.uniform(150, 2500, 6))
    return (0.1 * envelope * voice + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
