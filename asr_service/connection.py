"""What a session needs to know about its WebSocket connection beyond send and receive.

websockets does the protocol; these helpers cover the edges where its defaults would let a
session hang or miscount: who the peer is behind the load balancer, how a close that the
service did not decide happened, a closing handshake while frames still wait unread, a
connection the library failed, and a client that is gone before the event loop has noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from asr_service.settings import Settings

# Closes the WebSocket library decides by itself (the service never gets to send an event first).
LIBRARY_CLOSES = {
    1002: "protocol_error",
    1007: "invalid_utf8",
    1009: "message_too_big",
}
# Frames websockets buffers per connection before it pauses reading the socket (its default is
# 16). A real-time client sends one small frame every 20-100 ms, and a session reads each at
# once unless backpressure holds it, so 4 is plenty and bounds what a fast sender can pile up.
WS_MAX_QUEUE = 4
# How often a session checks whether the library failed its connection (see library_failed).
LIBRARY_CLOSE_CHECK_S = 0.25


def peer_of(connection: ServerConnection) -> str:
    request = connection.request
    if request is not None:
        # The ALB appends the address it saw to whatever the client sent, so the last entry of
        # the last header is the one nobody but the ALB could write. A client may repeat it.
        forwarded = [
            entry.strip()
            for value in request.headers.get_all("X-Forwarded-For")
            for entry in value.split(",")
            if entry.strip()
        ]
        if forwarded:
            return forwarded[-1][:64]
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "unknown"


def observed_close(connection: ServerConnection) -> tuple[int, str]:
    """How a close the service did not decide happened: the client's, the library's, or lost TCP."""
    state = connection.protocol
    sent, received = state.close_sent, state.close_rcvd
    if received is not None and (sent is None or state.close_rcvd_then_sent):
        return received.code, "client_closed"
    if sent is not None:
        if "keepalive" in sent.reason:
            return sent.code, "ping_timeout"
        return sent.code, LIBRARY_CLOSES.get(sent.code, "closed_by_library")
    return 1006, "client_disconnected"


async def close_reading_on(connection: ServerConnection, code: int, reason: str) -> None:
    """The closing handshake, reading (and dropping) what the client still sends meanwhile.

    websockets stops reading the socket while max_queue frames wait unread; a client that was
    mid-stream would then never have its close frame read, and the close would hang for the
    whole close timeout.
    """
    discard = asyncio.create_task(_discard_incoming(connection), name="discard-incoming")
    try:
        await connection.close(code, reason)
    finally:
        discard.cancel()


async def _discard_incoming(connection: ServerConnection) -> None:
    # decode=False: a text frame with invalid UTF-8 is dropped like the rest; decoding it while
    # closing makes websockets wait out its close timeout instead of reading on.
    with contextlib.suppress(ConnectionClosed):
        while True:
            await connection.recv(decode=False)


def library_failed(connection: ServerConnection) -> bool:
    """The library sent a close nobody here decided (1002, 1007, 1009) and stopped parsing.

    It then waits up to close_timeout for the TCP close, but if frames were queued when it
    failed, reading stays paused and the client's FIN is never seen. Let it in; the caller ends
    the session now and the library finishes the teardown by itself.
    """
    state = connection.protocol
    if state.state is not State.CLOSING or state.close_sent is None:
        return False
    transport = connection.transport
    if transport is not None and not transport.is_closing():
        transport.resume_reading()
    return True


async def wait_closed_or_failed(connection: ServerConnection, service_closing: Callable[[], bool]) -> None:
    """Return once the connection is closed, or the library failed it (and the service did not
    start that close itself: ``service_closing`` tells).

    Every session runs this for its whole life, so the check is a plain timer callback every
    ``LIBRARY_CLOSE_CHECK_S``, not a task waking up with a timeout each time.
    """
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    timer: asyncio.TimerHandle | None = None

    def finish(_: object = None) -> None:
        if not finished.done():
            finished.set_result(None)

    def check() -> None:
        nonlocal timer
        if finished.done():
            return
        if not service_closing() and library_failed(connection):
            finish()
        else:
            timer = loop.call_later(LIBRARY_CLOSE_CHECK_S, check)

    closed = asyncio.ensure_future(connection.wait_closed())
    closed.add_done_callback(finish)
    timer = loop.call_later(LIBRARY_CLOSE_CHECK_S, check)
    try:
        await finished
    finally:
        if timer is not None:
            timer.cancel()
        closed.cancel()


#: Linux TCP states (``tcpi_state``) in which the peer has closed its side: CLOSE, CLOSE_WAIT,
#: LAST_ACK, CLOSING.
PEER_CLOSED_STATES = frozenset({7, 8, 9, 11})


def _tcp_state(raw: Any) -> int | None:
    """The socket's TCP state from ``TCP_INFO`` (its first byte), None where unavailable."""
    option = getattr(socket, "TCP_INFO", None)
    if option is None:
        return None
    try:
        return int(raw.getsockopt(socket.IPPROTO_TCP, option, 1)[0])
    except (OSError, IndexError, ValueError):
        return None


def peer_gone(connection: ServerConnection) -> bool:
    """True when the client is already gone, even if the event loop has not noticed yet.

    Only the refusal path asks (server.admission_refusal at capacity): under a storm of
    disconnects the loop can be some way behind the kernel, and a slot whose peer sent its RST
    or FIN is free. Peeking at a duplicate of the socket consumes nothing.
    """
    if connection.state is State.CLOSED:
        return True
    transport = connection.transport
    raw = transport.get_extra_info("socket") if transport is not None else None
    if raw is None:
        return True
    if _tcp_state(raw) in PEER_CLOSED_STATES:
        # The peer's FIN arrived, even if audio it sent before is still unread (a busy loop):
        # the peek below would see that data first and call the peer alive.
        return True
    try:
        with socket.fromfd(raw.fileno(), socket.AF_INET, socket.SOCK_STREAM) as peek:
            return peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""  # b"": FIN
    except BlockingIOError:
        return False  # connected, nothing unread
    except OSError:
        return True  # ECONNRESET and the like


def websocket_options(settings: Settings, process_request: Callable[..., Any]) -> dict[str, Any]:
    """websockets' ``serve()`` options for every connection of the service."""
    return {
        "process_request": process_request,
        # Per-connection memory bound (README "Limits"): at most max_queue frames wait in
        # websockets' buffer before it stops reading the socket, each at most max_size bytes.
        # Our own MAX_MESSAGE_BYTES check answers with an event + 1009; this hard cap lets the
        # library refuse a frame over twice the limit before buffering it (1009, no event).
        "max_size": 2 * settings.max_message_bytes,
        "max_queue": WS_MAX_QUEUE,
        # Audio does not compress: permessage-deflate only cost CPU and opened the door to
        # decompression bombs.
        "compression": None,
        "ping_interval": settings.ping_interval_s,
        "ping_timeout": settings.ping_timeout_s,
        "close_timeout": 5,
        "logger": _quiet_websockets_logger(),
    }


def _quiet_websockets_logger() -> logging.Logger:
    # websockets logs handshake failures with the request line, which may carry ?token=...;
    # keep its logger to errors only so a token can never reach the logs.
    logger = logging.getLogger("asr_service.websockets")
    logger.setLevel(logging.ERROR)
    return logger
