"""Server fixtures: a real AsrServer on port 0 in a background event loop, reusable by any test
(registered by the root conftest, so tests of the client use them too).

``server`` gives a ready server on the tiny deterministic fake model; ``start_server(...)``
starts more with other settings or another model loader. Talk to them with a real websockets
client (sync ``websockets.sync.client.connect`` or async ``websockets.asyncio.client.connect``)
and plain HTTP for the health port (``helpers.http_get``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.asr_service.helpers import TEST_SETTINGS, ServerThread, fake_loader


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
