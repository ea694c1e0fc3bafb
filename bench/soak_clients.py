"""The soak's clients: clean, polite, abrupt (TCP reset), hostile and non-WebSocket ones.

Each returns an :class:`Outcome`: what the client saw (events, the server's close code, a refused
handshake, a hang), for ``bench.soak_report`` to judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.hostile import HTTP_JUNK, InvalidText, Message, RawFrame, hostile_headers, hostile_message

FRAME_MS = 100
JOB_TIMEOUT_S = 30.0
START = json.dumps({"type": "start", "sample_rate": 16000, "encoding": "s16le"})
EOF = json.dumps({"type": "eof"})


@dataclass
class Outcome:
    kind: str
    events: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None  # code of the server's close frame; None: none arrived
    aborted: bool = False  # we reset the TCP connection ourselves
    status: int | None = None  # HTTP status of a refused handshake
    hung: bool = False
    messages: int = 0  # hostile messages sent
    error: str = ""


def reset_connection(ws: ClientConnection) -> None:
    """Drop the connection with a TCP RST, as a crashed client or a dead network path does."""
    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


def close_code_of(ws: ClientConnection) -> int | None:
    received = ws.protocol.close_rcvd
    return received.code if received is not None else None


async def events_until_close(ws: ClientConnection) -> list[dict[str, Any]]:
    events = []
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            events.append(json.loads(message))
    return events


async def send_message(ws: ClientConnection, message: Message) -> bool:
    """Send; False once the server has closed the connection."""
    try:
        if isinstance(message, InvalidText):
            await ws.send(message.data, text=True)
        elif isinstance(message, RawFrame):
            ws.transport.write(message.data)
        else:
            await ws.send(message)
    except ConnectionClosed:
        return False
    return True


class Clients:
    def __init__(self, url: str, pcm: bytes, rate: int, hostile_target: int = 0) -> None:
        self.url = url
        self.pcm = pcm
        self.frame = rate * FRAME_MS // 1000 * 2
        # Hostile connections stop once this many hostile messages went out (a close ends a
        # connection early, so how many connections that takes is only known while running).
        self.hostile_target = hostile_target
        self.hostile_sent = 0

    def _connect(self, headers: list[tuple[str, str]] | None = None) -> Any:
        return connect(
            self.url,
            additional_headers=headers,
            max_size=None,
            ping_interval=None,
            compression=None,
            open_timeout=10,
            close_timeout=5,
        )

    def frames(self, rng: random.Random, count: int) -> list[bytes]:
        start = rng.randrange(0, len(self.pcm) - self.frame * count) // 2 * 2
        return [self.pcm[start + i * self.frame : start + (i + 1) * self.frame] for i in range(count)]

    async def clean(self, rng: random.Random) -> Outcome:
        async with self._connect() as ws:
            await ws.recv()
            await ws.send(START)
            for frame in self.frames(rng, rng.randint(5, 20)):
                await ws.send(frame)
            await ws.send(EOF)
            events = await events_until_close(ws)
            return Outcome("clean", events, close_code_of(ws))

    async def polite(self, rng: random.Random) -> Outcome:
        async with self._connect() as ws:
            await ws.recv()
            await ws.send(START)
            for frame in self.frames(rng, rng.randint(1, 15)):
                await ws.send(frame)
            await asyncio.sleep(rng.random() * 0.05)
            await ws.close(1000, "bye")
            return Outcome("polite", [], close_code_of(ws))

    async def abrupt(self, rng: random.Random, phase: str) -> Outcome:
        ws = await self._connect()
        if rng.random() < 0.7 or phase != "before_start":
            await ws.recv()
        if phase != "before_start":
            await ws.send(START)
            for frame in self.frames(rng, rng.randint(1, 15)):
                await ws.send(frame)
        if phase == "after_eof":
            await ws.send(EOF)
            await asyncio.sleep(rng.random() * 0.02)
        reset_connection(ws)
        return Outcome(f"abrupt_{phase}", aborted=True)

    async def http_junk(self, rng: random.Random) -> Outcome:
        """Not a WebSocket at all: the listener must answer or close, and log no traceback."""
        host, port = self.url.removeprefix("ws://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(rng.choice(HTTP_JUNK))
            await writer.drain()
            await reader.read(65536)
        finally:
            writer.close()
        return Outcome("http_junk")

    async def hostile(self, rng: random.Random, budget: int) -> Outcome:
        if self.hostile_sent >= self.hostile_target:
            return Outcome("skipped")
        headers = hostile_headers(rng) if rng.random() < 0.3 else None
        outcome = Outcome("hostile")
        async with self._connect(headers) as ws:
            await ws.recv()
            if rng.random() < 0.5:
                await ws.send(START)
            for _ in range(min(budget, rng.randint(1, 6))):
                _name, message = hostile_message(rng)
                if not await send_message(ws, message):
                    break
                outcome.messages += 1
                self.hostile_sent += 1
                if rng.random() < 0.3 and not await send_message(ws, self.frames(rng, 1)[0]):
                    break
            await send_message(ws, EOF)
            outcome.events = await events_until_close(ws)
            outcome.close_code = close_code_of(ws)
        return outcome


async def guarded(kind: str, job: Callable[[], Awaitable[Outcome]]) -> Outcome:
    try:
        async with asyncio.timeout(JOB_TIMEOUT_S):
            return await job()
    except TimeoutError:
        return Outcome(kind, hung=True)
    except InvalidStatus as refused:
        return Outcome(kind, status=refused.response.status_code)
    except (ConnectionClosed, OSError) as error:
        return Outcome(kind, error=f"{type(error).__name__}: {error}")
