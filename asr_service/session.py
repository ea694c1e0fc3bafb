"""One WebSocket connection: protocol state, audio → engine, engine results → events.

The session never runs the model: it resamples the client's audio (cheap, and per connection)
and feeds the engine; a pump task turns the engine's updates into events.

A session's end is structural. Three tasks run under one ``asyncio.TaskGroup``: the
conversation (receive loop), the pump, and a watcher that fails the group the moment the
connection is closed. Whichever ends first, by a client's RST, a close frame at any point, a
send to a closed peer, a decode error, a drain or a bug, cancels the others, and ``run``'s
``finally`` releases the session from the server's table, the gauges and the engine and writes
its one summary line, exactly once. Nothing waits on a peer that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from asr_service import protocol
from asr_service.audio import AudioFormatError, StreamingResampler, decode_pcm16
from asr_service.auth import Client, CredentialError, authenticate
from asr_service.engine import BatchingEngine, EngineClosedError, EngineStream, StreamUpdate
from asr_service.logging_setup import get_logger
from asr_service.metrics import ServiceMetrics
from asr_service.protocol import CloseCode, ProtocolError
from asr_service.seed_protocol import SeedAdapter
from asr_service.settings import Settings

log = get_logger(component="session")

T = TypeVar("T")

# Closes the WebSocket library decides by itself (we never get to send an event first).
_LIBRARY_CLOSES = {
    1002: "protocol_error",
    1007: "invalid_utf8",
    1009: "message_too_big",
}


# How often a session checks whether the library failed its connection (see _failed_by_library).
_LIBRARY_CLOSE_CHECK_S = 0.25


async def _done_within(future: asyncio.Future[Any], seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await asyncio.shield(future)
    return future.done()


class SessionHost(Protocol):
    """The narrow view of the server that a session needs: settings, engine, admission, registry."""

    settings: Settings
    engine: BatchingEngine
    metrics: ServiceMetrics

    @property
    def draining(self) -> bool: ...

    def admission_refusal(self) -> str | None:
        """None when a new session may start, else why not (and the refusal is counted)."""
        ...

    def sessions_of(self, client: str) -> int:
        """Open sessions of this named client (its optional per-client limit)."""
        ...

    def register(self, session: Session) -> None: ...

    def release(self, session: Session) -> None: ...

    async def until_draining(self, awaitable: Awaitable[T]) -> T | None: ...


class _SessionEndError(Exception):
    """Internal: end the session with this event and close code."""

    def __init__(self, event: dict[str, Any], code: int, reason: str) -> None:
        super().__init__(reason)
        self.event = event
        self.code = code
        self.reason = reason

    @classmethod
    def error(cls, code: str, message: str, close_code: CloseCode) -> _SessionEndError:
        return cls(protocol.error_event(code, message, close_code), close_code, code)


class _PeerGoneError(Exception):
    """Internal: the connection is closed; stop everything the session is doing."""


_REFUSALS = {
    "draining": _SessionEndError(
        protocol.closing_event("server_draining", CloseCode.GOING_AWAY), CloseCode.GOING_AWAY, "draining"
    ),
    "max_sessions": _SessionEndError.error(
        "overloaded", "too many concurrent sessions", CloseCode.OVERLOADED
    ),
    "not_ready": _SessionEndError.error("not_ready", "the server is still starting", CloseCode.OVERLOADED),
}


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


class Session:
    def __init__(self, connection: ServerConnection, host: SessionHost) -> None:
        self.connection = connection
        self.host = host
        self.settings = host.settings
        self.engine = host.engine
        self.metrics = host.metrics
        self.session_id = uuid.uuid4().hex[:16]
        self.started = time.monotonic()
        self.protocol_name: str | None = None  # "native" | "seed", fixed by the first audio message
        self.seed: SeedAdapter | None = None
        self.stream: EngineStream | None = None
        self.resampler: StreamingResampler | None = None
        self.stream_rate = 0
        self.fed_samples = 0  # model-rate samples given to the engine for the current stream
        self.updates: asyncio.Queue[StreamUpdate] = asyncio.Queue()
        self.room = asyncio.Event()  # set whenever the engine consumed audio (backpressure)
        self.stream_done = asyncio.Event()
        self.final_texts: list[str] = []
        self.partial_text = ""
        self.segments = 0
        self.audio_seconds = 0.0
        self.compute_s = 0.0
        self.eof_at: float | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.client: Client | None = None  # who authenticated (None when auth is off)
        self._registered = False
        self._released = False

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Serve the connection to its end; never raises, always releases exactly once."""
        structlog.contextvars.bind_contextvars(session_id=self.session_id, peer=peer_of(self.connection))
        try:
            refusal = self._refusal()
            if refusal is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self._close(refusal.event, refusal.code, refusal.reason)
                return
            self.host.register(self)
            self._registered = True
            if self.client is not None:
                self.metrics.client_admitted(self.client.name)
            await self._serve()
        finally:
            self._release()
            structlog.contextvars.unbind_contextvars("session_id", "peer", "client")

    async def _serve(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                pump = tasks.create_task(self._pump_updates(), name=f"pump-{self.session_id}")
                watcher = tasks.create_task(self._watch_peer(), name=f"peer-{self.session_id}")
                try:
                    await self._converse()
                finally:
                    pump.cancel()
                    watcher.cancel()
        except* (_PeerGoneError, ConnectionClosed):
            pass  # the connection is closed: _release() records how
        except* _SessionEndError as group:  # the pump ends the session (recognition failed)
            end = group.exceptions[0]
            if isinstance(end, _SessionEndError):
                with contextlib.suppress(ConnectionClosed):
                    await self._close(end.event, end.code, end.reason)
        except* Exception as group:
            log.error("session_failed", exc_info=group.exceptions[0])
            with contextlib.suppress(ConnectionClosed):
                await self._close(
                    protocol.error_event("internal_error", "internal server error", CloseCode.INTERNAL),
                    CloseCode.INTERNAL,
                    "internal_error",
                )

    async def _converse(self) -> None:
        try:
            await self.send(
                protocol.connection_event(
                    self.session_id, self.engine.sample_rate, self.engine.chunk_duration_s
                )
            )
            await self._receive_loop()
        except _SessionEndError as end:
            await self._close(end.event, end.code, end.reason)

    async def _watch_peer(self) -> None:
        closed = asyncio.ensure_future(self.connection.wait_closed())
        try:
            while not await _done_within(closed, _LIBRARY_CLOSE_CHECK_S):
                if self._failed_by_library():
                    break
        finally:
            closed.cancel()
        raise _PeerGoneError

    def _failed_by_library(self) -> bool:
        """The library sent a close we did not decide (1002, 1007, 1009) and stopped parsing.

        It then waits up to close_timeout for the TCP close, but if frames were queued when it
        failed, reading stays paused and the client's FIN is never seen. Let it in, and end the
        session now: the library finishes the teardown by itself.
        """
        state = self.connection.protocol
        if state.state is not State.CLOSING or state.close_sent is None or self.close_code is not None:
            return False
        transport = self.connection.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()
        return True

    def _refusal(self) -> _SessionEndError | None:
        refused = self._authenticate()
        if refused is not None:
            return refused
        # Handshakes that raced past process_request's check land here.
        reason = self.host.admission_refusal()
        return None if reason is None else _REFUSALS[reason]

    def _authenticate(self) -> _SessionEndError | None:
        """Who is calling (``self.client``), or the ``unauthorized`` event and 1008, whatever is wrong."""
        if not self.settings.auth_enabled:
            return None
        request = self.connection.request
        try:
            if request is None:
                raise CredentialError("missing")
            self.client = authenticate(self.settings.auth_tokens, request.headers, request.path)
        except CredentialError as refused:
            self.metrics.reject("unauthorized")
            log.warning("auth_refused", reason=refused.reason)  # the reason only, never the credential
            return _SessionEndError.error("unauthorized", "a valid token is required", CloseCode.POLICY)
        structlog.contextvars.bind_contextvars(client=self.client.name)  # every later line names it
        name, limit = self.client.name, self.client.max_sessions
        if limit is not None and self.host.sessions_of(name) >= limit:
            self.metrics.reject("client_session_limit", name)
            return _SessionEndError.error(
                "client_session_limit", f"client {name} already has {limit} open sessions", CloseCode.POLICY
            )
        return None

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        if self.stream is not None and not self.stream_done.is_set():
            self.stream.cancel()
        if self._registered:
            self.host.release(self)
            self.metrics.client_closed(self.client.name if self.client else None)
        if self.close_code is None:
            self.close_code, self.close_reason = self._observed_close()
        self._log_summary()

    def _observed_close(self) -> tuple[int, str]:
        """How a close we did not decide happened: the client's, the library's, or a lost TCP."""
        state = self.connection.protocol
        sent, received = state.close_sent, state.close_rcvd
        if received is not None and (sent is None or state.close_rcvd_then_sent):
            return received.code, "client_closed"
        if sent is not None:
            if "keepalive" in sent.reason:
                return sent.code, "ping_timeout"
            return sent.code, _LIBRARY_CLOSES.get(sent.code, "closed_by_library")
        return 1006, "client_disconnected"

    def _log_summary(self) -> None:
        duration = time.monotonic() - self.started
        log.info(
            "session_summary",
            client=self.client.name if self.client else None,
            protocol=self.protocol_name,
            audio_seconds=round(self.audio_seconds, 3),
            segments=self.segments,
            duration_s=round(duration, 3),
            real_time_factor=round(self.compute_s / self.audio_seconds, 4) if self.audio_seconds else None,
            close_code=self.close_code,
            close_reason=self.close_reason,
        )

    async def send(self, event: dict[str, Any]) -> None:
        await self.connection.send(protocol.encode(event), text=True)

    async def _close(self, event: dict[str, Any], code: int, reason: str) -> None:
        self.close_code, self.close_reason = int(code), reason
        await self.send(event)
        await self._close_connection(code, reason)

    async def _close_connection(self, code: int, reason: str) -> None:
        """The closing handshake, reading (and dropping) what the client still sends meanwhile.

        websockets stops reading the socket while max_queue frames wait unread; a client that
        was mid-stream would then never have its close frame read, and the close would hang
        for the whole close timeout.
        """
        discard = asyncio.create_task(self._discard_incoming(), name=f"discard-{self.session_id}")
        try:
            await self.connection.close(code, reason)
        finally:
            discard.cancel()

    async def _discard_incoming(self) -> None:
        # decode=False: a text frame with invalid UTF-8 is dropped like the rest; decoding it
        # while closing makes websockets wait out its close timeout instead of reading on.
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.connection.recv(decode=False)

    def peer_gone(self) -> bool:
        """True when the client is already gone, even if the event loop has not noticed yet.

        Only the refusal path asks (server.admission_refusal at capacity): under a storm of
        disconnects the loop can be some way behind the kernel, and a slot whose peer sent its
        RST or FIN is free. Peeking at a duplicate of the socket consumes nothing.
        """
        if self.connection.state is State.CLOSED:
            return True
        transport = self.connection.transport
        raw = transport.get_extra_info("socket") if transport is not None else None
        if raw is None:
            return True
        try:
            with socket.fromfd(raw.fileno(), socket.AF_INET, socket.SOCK_STREAM) as peek:
                return peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""  # b"": FIN
        except BlockingIOError:
            return False  # connected, nothing unread
        except OSError:
            return True  # ECONNRESET and the like

    # ------------------------------------------------------------------ receiving
    async def _receive_loop(self) -> None:
        while True:
            await self._wait_for_room()
            try:
                async with asyncio.timeout(self.settings.idle_timeout_s):
                    message = await self.host.until_draining(self.connection.recv())
            except TimeoutError:
                await self.finish_stream()
                raise _SessionEndError.error(
                    "idle_timeout", f"no message for {self.settings.idle_timeout_s:g} s", CloseCode.POLICY
                ) from None
            if message is None:  # the server is draining
                await self.finish_stream()
                raise _REFUSALS["draining"]
            self._check_size(message)
            try:
                if isinstance(message, bytes):
                    self._on_binary(message)
                elif await self._on_text(message):
                    return
            except ProtocolError as error:
                if error.close_code is None:
                    await self.send(protocol.error_event(error.code, error.message))
                    continue
                raise _SessionEndError.error(error.code, error.message, error.close_code) from None

    def _check_size(self, message: str | bytes) -> None:
        limit = self.settings.max_message_bytes
        size = len(message)
        # A text message arrives decoded: up to 4 bytes per character on the wire. Count the
        # bytes only when the characters alone cannot settle it.
        if isinstance(message, str) and size * 4 > limit >= size:
            size = len(message.encode("utf-8"))
        if size > limit:
            self.metrics.reject("message_too_big")
            raise _SessionEndError.error(
                "message_too_big", f"message of {size} bytes exceeds {limit}", CloseCode.TOO_BIG
            )

    async def _wait_for_room(self) -> None:
        # Backpressure: while the engine is behind on this stream, stop reading; websockets then
        # stops reading the socket and TCP flow control slows the client down.
        while self.stream is not None and self.stream.backlog_s > self.settings.max_backlog_s:
            self.room.clear()
            await self.host.until_draining(self.room.wait())
            if self.host.draining:
                return

    def _on_binary(self, data: bytes) -> None:
        if self.protocol_name != "native" or self.stream is None:
            raise ProtocolError(
                "binary_before_start", 'send {"type": "start"} before binary audio', CloseCode.POLICY
            )
        if self.eof_at is not None:
            raise ProtocolError("audio_after_eof", "audio after eof", CloseCode.POLICY)
        self.feed(data)

    async def _on_text(self, text: str) -> bool:
        """Handle one JSON message; True when the session is complete."""
        message = protocol.parse_text_message(text)
        if isinstance(message, protocol.Start):
            if self.protocol_name is not None:
                raise ProtocolError("already_started", "start was already sent", CloseCode.POLICY)
            self.protocol_name = "native"
            self.open_stream(message.sample_rate)
            return False
        if isinstance(message, protocol.Eof):
            if self.protocol_name != "native" or self.stream is None:
                raise ProtocolError("eof_before_start", "eof before start", CloseCode.POLICY)
            await self.finish_stream()
            await self.send(
                protocol.done_event(
                    " ".join(t for t in self.final_texts if t), self.segments, self.audio_seconds
                )
            )
            self.close_code, self.close_reason = int(CloseCode.DONE), "done"
            await self._close_connection(CloseCode.DONE, "done")
            return True
        if isinstance(message, protocol.ConfigRequest):
            await self._seed().on_config(message)
            return False
        if self.protocol_name == "native":
            raise ProtocolError(
                "mixed_protocols", "audio_chunk after start: use binary frames", CloseCode.POLICY
            )
        self.protocol_name = "seed"
        await self._seed().on_audio_chunk(message)
        return False

    def _seed(self) -> SeedAdapter:
        if self.seed is None:
            self.seed = SeedAdapter(self, self.engine.sample_rate, self.engine.chunk_duration_s)
        return self.seed

    # ------------------------------------------------------------------ the stream (also the seed adapter's)
    @property
    def has_stream(self) -> bool:
        return self.stream is not None

    @property
    def chunk_samples(self) -> int:
        return self.engine.chunk_samples

    @property
    def consumed_samples(self) -> int:
        return self.stream.consumed_samples if self.stream is not None else 0

    def open_stream(self, rate: int) -> None:
        self.stream_rate = rate
        self.resampler = StreamingResampler(rate, self.engine.sample_rate)
        self.fed_samples = 0
        self.stream_done.clear()
        self.stream = self.engine.open_stream(self._deliver_threadsafe())

    def reset_stream(self) -> None:
        self.stream = None
        self.resampler = None
        self.final_texts = []
        self.partial_text = ""
        self.eof_at = None

    def _deliver_threadsafe(self) -> Any:
        loop = asyncio.get_running_loop()
        queue = self.updates

        def deliver(update: StreamUpdate) -> None:  # runs in the engine thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, update)

        return deliver

    def feed(self, data: bytes) -> None:
        if self.stream is None or self.resampler is None:
            raise ProtocolError("no_stream", "no open stream", CloseCode.POLICY)
        try:
            samples = decode_pcm16(data)
        except AudioFormatError as error:
            raise ProtocolError("bad_audio", str(error), CloseCode.UNSUPPORTED) from None
        self.metrics.requests.inc()
        seconds = samples.numel() / self.stream_rate
        self.audio_seconds += seconds
        self.metrics.audio_seconds.inc(seconds)
        resampled = self.resampler.push(samples)
        self.fed_samples += resampled.numel()
        try:
            self.stream.feed(resampled)
        except EngineClosedError:
            raise ProtocolError("stream_closed", "the stream is already finished", CloseCode.POLICY) from None

    async def finish_stream(self) -> None:
        """Flush the stream and wait until its last final has been sent."""
        if self.stream is None or self.stream_done.is_set():
            return
        if self.eof_at is None:
            self.eof_at = time.monotonic()
            if self.resampler is not None:
                tail = self.resampler.flush()
                self.fed_samples += tail.numel()
                if tail.numel():
                    self.stream.feed(tail)
            self.stream.finish()
        # The pump sets this; if the peer goes away meanwhile, the watcher cancels this wait.
        await self.stream_done.wait()

    def utterance_text(self) -> str:
        return " ".join(t for t in [*self.final_texts, self.partial_text] if t)

    # ------------------------------------------------------------------ results
    async def _pump_updates(self) -> None:
        while True:
            update = await self.updates.get()
            await self._on_update(update)

    async def _on_update(self, update: StreamUpdate) -> None:
        self.room.set()
        self.compute_s += update.compute_s
        now = time.monotonic()
        if update.error is not None:
            self.stream_done.set()
            raise _SessionEndError.error(update.error, "recognition failed", CloseCode.INTERNAL)
        native = self.protocol_name == "native"
        if update.partial is not None and update.partial.text:
            self.partial_text = update.partial.text
            if native:
                p = update.partial
                await self.send(
                    protocol.partial_event(p.segment_id, p.text, round(p.start_s, 3), round(p.end_s, 3))
                )
                self.metrics.partial_latency.observe(now - update.ready_at)
        for segment in update.finals:
            self.final_texts.append(segment.text)
            self.partial_text = ""
            self.segments += 1
            if native:
                await self.send(
                    protocol.final_event(
                        segment.segment_id,
                        segment.text,
                        round(segment.start_s, 3),
                        round(segment.end_s, 3),
                        segment.confidence,
                        segment.reason,
                    )
                )
            started = self.eof_at if segment.reason == "eof" and self.eof_at is not None else update.ready_at
            self.metrics.final_latency.observe(now - started)
        if self.seed is not None and self.protocol_name == "seed":
            await self.seed.flush_acks(update.consumed_samples)
        if update.done:
            self.stream_done.set()
