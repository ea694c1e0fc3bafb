"""A session's reads from its client: the next message, ended early by a drain or an idle client.

The obvious way, ``asyncio.timeout`` plus a race against the drain signal around every
``recv()``, costs a timer, a task and an ``asyncio.wait`` per audio message: at 25 messages a
second per stream that was a measurable share of the server's CPU. Here a read is a plain
``await connection.recv()``; one timer per session checks idleness about once per
``IDLE_TIMEOUT_S``, and a drain interrupts the read by cancelling it (websockets documents
``recv()`` as safe to cancel: no message is lost).
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection


class Receiver:
    def __init__(self, connection: ServerConnection, idle_timeout_s: float) -> None:
        self._connection = connection
        self._idle_timeout_s = idle_timeout_s
        self._reader: asyncio.Task[object] | None = None  # the task awaiting recv(), while it is
        self._since = 0.0  # when the current read began (loop time)
        self._interrupt: str | None = None  # "idle" or "drain" once one was requested
        self._timer: asyncio.TimerHandle | None = None

    async def next(self) -> str | bytes | None:
        """The client's next message; None when a drain interrupts the wait; TimeoutError when
        the client sends nothing for ``idle_timeout_s``."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Receiver.next() must run in a task")
        self._reader, self._interrupt, self._since = task, None, loop.time()
        if self._timer is None:
            self._timer = loop.call_later(self._idle_timeout_s, self._check_idle)
        try:
            return await self._connection.recv()
        except asyncio.CancelledError:
            reason = self._interrupt
            if reason is None:  # a cancellation from elsewhere (the session is ending): not ours
                raise
            if task.uncancel() > 0:  # someone else cancelled the session as well: theirs wins
                raise
            if reason == "idle":
                raise TimeoutError from None
            return None
        finally:
            self._reader = self._interrupt = None

    def interrupt(self) -> None:
        """A drain began: the read in progress (if any) returns None."""
        self._cancel_read("drain")

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_idle(self) -> None:
        self._timer = None
        if self._reader is None:  # not reading (backpressure, or a reply being sent): re-armed by next()
            return
        waited = asyncio.get_running_loop().time() - self._since
        if waited >= self._idle_timeout_s:
            self._cancel_read("idle")
        else:
            self._timer = asyncio.get_running_loop().call_later(
                self._idle_timeout_s - waited, self._check_idle
            )

    def _cancel_read(self, reason: str) -> None:
        if self._reader is not None and self._interrupt is None:
            self._interrupt = reason
            self._reader.cancel()
