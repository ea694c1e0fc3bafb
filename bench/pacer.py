"""Real-time sends for every stream of a bench step from one task.

The load generator shares the machine with the server it measures, so what it spends per stream
is CPU the server does not get. One ``asyncio.sleep`` and one ``await ws.send`` per frame per
stream cost a timer, a task wake-up and an async context manager each (N x 25 a second at 40 ms
frames). Here one task wakes every ``tick_s`` (5 ms: arrivals keep their spread) and writes each
due frame through the connection's Sans-I/O protocol, the way websockets' own ``send`` does
once it holds its lock. A stream whose socket buffer is over websockets' write limit (the server
stopped reading: backpressure) waits for a later tick, and its lag shows up as slip, as before.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection

TICK_S = 0.005


@dataclass
class PacedStream:
    ws: ClientConnection
    frames: list[bytes]
    frame_s: float
    eof: bytes  # the closing text message
    started: float = 0.0
    sent: list[float] = field(default_factory=list)  # when each frame went out (monotonic)
    slip: float = 0.0  # worst lateness of a send against its schedule
    eof_at: float | None = None
    finished: asyncio.Future[None] | None = None

    def send_due(self, now: float) -> bool:
        """Send what is due; True once the stream has sent its eof."""
        ws = self.ws
        while len(self.sent) < len(self.frames):
            due = self.started + len(self.sent) * self.frame_s
            if due > now:
                return False
            if ws.transport.get_write_buffer_size() > ws.write_limit_high:
                return False  # backpressure: try again next tick
            ws.protocol.send_binary(self.frames[len(self.sent)])
            ws.send_data()
            self.slip = max(self.slip, now - due)
            self.sent.append(now)
        ws.protocol.send_text(self.eof)
        ws.send_data()
        self.eof_at = now
        return True


class Pacer:
    def __init__(self, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s
        self._streams: list[PacedStream] = []
        self._wake = asyncio.Event()
        self._closed = False

    def add(self, stream: PacedStream) -> asyncio.Future[None]:
        """Start pacing ``stream`` now; the future completes once its eof is sent."""
        stream.started = time.monotonic()
        stream.finished = asyncio.get_running_loop().create_future()
        self._streams.append(stream)
        self._wake.set()
        return stream.finished

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        while not self._closed:
            if not self._streams:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = time.monotonic()
            still = []
            for stream in self._streams:
                assert stream.finished is not None
                try:
                    done = stream.send_due(now)
                except Exception as error:  # the connection is gone: that stream fails
                    if not stream.finished.done():
                        stream.finished.set_exception(error)
                    continue
                if done:
                    stream.finished.set_result(None)
                else:
                    still.append(stream)
            self._streams = still
            await asyncio.sleep(self.tick_s - (time.monotonic() - now) % self.tick_s)
