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
import time
import uuid
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from asr_service import admission, protocol
from asr_service.audio import AudioFormatError, StreamingResampler, decode_pcm16
from asr_service.auth import Client
from asr_service.connection import (
    close_reading_on,
    observed_close,
    peer_gone,
    peer_of,
    wait_closed_or_failed,
)
from asr_service.decoding.results import StreamUpdate
from asr_service.engine import BatchingEngine, EngineClosedError, EngineStream, deliver_to_queue
from asr_service.logging_setup import get_logger
from asr_service.metrics import ServiceMetrics
from asr_service.protocol import CloseCode, ProtocolError, SessionEndError
from asr_service.receiver import Receiver
from asr_service.seed_protocol import SeedAdapter
from asr_service.settings import Settings

log = get_logger(component="session")

T = TypeVar("T")


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


class _PeerGoneError(Exception):
    """Internal: the connection is closed; stop everything the session is doing."""


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
        self.receiver = Receiver(connection, self.settings.idle_timeout_s)
        self._registered = False
        self._released = False

    def peer_gone(self) -> bool:
        """The client is gone even if the loop has not noticed yet (see connection.peer_gone)."""
        return peer_gone(self.connection)

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
        except* SessionEndError as group:  # the pump ends the session (recognition failed)
            end = group.exceptions[0]
            if isinstance(end, SessionEndError):
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
        except SessionEndError as end:
            await self._close(end.event, end.code, end.reason)

    async def _watch_peer(self) -> None:
        await wait_closed_or_failed(self.connection, lambda: self.close_code is not None)
        raise _PeerGoneError

    def _refusal(self) -> SessionEndError | None:
        try:
            self.client = admission.authenticate_client(self.connection, self.settings, self.metrics)
            if self.client is not None:
                structlog.contextvars.bind_contextvars(client=self.client.name)  # later lines name it
                admission.check_client_limit(self.client, self.host.sessions_of, self.metrics)
        except SessionEndError as refused:
            return refused
        # Handshakes that raced past process_request's check land here.
        reason = self.host.admission_refusal()
        return None if reason is None else admission.REFUSALS[reason]

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        self.receiver.close()
        if self.stream is not None and not self.stream_done.is_set():
            self.stream.cancel()
        if self._registered:
            self.host.release(self)
            self.metrics.client_closed(self.client.name if self.client else None)
        if self.close_code is None:
            self.close_code, self.close_reason = observed_close(self.connection)
        self._log_summary()

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
        await close_reading_on(self.connection, code, reason)

    # ------------------------------------------------------------------ receiving
    async def _receive_loop(self) -> None:
        while True:
            await self._wait_for_room()
            try:
                message = None if self.host.draining else await self.receiver.next()
            except TimeoutError:
                await self.finish_stream()
                raise SessionEndError.error(
                    "idle_timeout", f"no message for {self.settings.idle_timeout_s:g} s", CloseCode.POLICY
                ) from None
            if message is None:  # the server is draining
                await self.finish_stream()
                raise admission.REFUSALS["draining"]
            admission.check_message_size(message, self.settings.max_message_bytes, self.metrics)
            try:
                if isinstance(message, bytes):
                    self._on_binary(message)
                elif await self._on_text(message):
                    return
            except ProtocolError as error:
                if error.close_code is None:
                    await self.send(protocol.error_event(error.code, error.message))
                    continue
                raise SessionEndError.error(error.code, error.message, error.close_code) from None

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
            await close_reading_on(self.connection, CloseCode.DONE, "done")
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
        self.stream = self.engine.open_stream(deliver_to_queue(self.updates))

    def reset_stream(self) -> None:
        self.stream = None
        self.resampler = None
        self.final_texts = []
        self.partial_text = ""
        self.eof_at = None

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
            raise SessionEndError.error(update.error, "recognition failed", CloseCode.INTERNAL)
        native = self.protocol_name == "native"
        if update.partial is not None and update.partial.text:
            self.partial_text = update.partial.text
            if native:
                await self.send(protocol.partial_event(update.partial))
                self.metrics.partial_latency.observe(now - update.ready_at)
        for segment in update.finals:
            self.final_texts.append(segment.text)
            self.partial_text = ""
            self.segments += 1
            if native:
                await self.send(protocol.final_event(segment))
            started = self.eof_at if segment.reason == "eof" and self.eof_at is not None else update.ready_at
            self.metrics.final_latency.observe(now - started)
        if self.seed is not None and self.protocol_name == "seed":
            await self.seed.flush_acks(update.consumed_samples)
        if update.done:
            self.stream_done.set()
