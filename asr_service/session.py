"""One WebSocket connection: protocol state, audio → engine, engine results → events.

The session never runs the model: it resamples the client's audio (cheap, and per connection)
and feeds the engine; a pump task turns the engine's updates into events. Every close is
preceded by an event that says why, and every session ends with exactly one summary log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from asr_service import protocol
from asr_service.audio import AudioFormatError, StreamingResampler, decode_pcm16
from asr_service.auth import Client, CredentialError, authenticate
from asr_service.engine import EngineClosedError, EngineStream, StreamUpdate
from asr_service.logging_setup import get_logger
from asr_service.protocol import CloseCode, ProtocolError

if TYPE_CHECKING:
    from asr_service.server import AsrServer

log = get_logger(component="session")

DEFAULT_SEED_SAMPLE_RATE = 16000


class _SessionEndError(Exception):
    """Internal: end the session with this event and close code."""

    def __init__(self, event: dict[str, Any], code: int, reason: str) -> None:
        super().__init__(reason)
        self.event = event
        self.code = code
        self.reason = reason


def peer_of(connection: ServerConnection) -> str:
    request = connection.request
    forwarded = request.headers.get("X-Forwarded-For") if request is not None else None
    if forwarded:
        return forwarded.split(",")[0].strip()  # the ALB appends the client address
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "unknown"


@dataclass
class _SeedAck:
    chunk_id: Any
    needed_samples: int  # model-rate samples the engine must have consumed


class Session:
    def __init__(self, connection: ServerConnection, server: AsrServer) -> None:
        self.connection = connection
        self.server = server
        self.settings = server.settings
        self.engine = server.engine
        self.metrics = server.metrics
        self.session_id = uuid.uuid4().hex[:16]
        self.started = time.monotonic()
        self.protocol_name: str | None = None  # "native" | "seed", fixed by the first audio message
        self.stream: EngineStream | None = None
        self.resampler: StreamingResampler | None = None
        self.stream_rate = 0
        self.fed_samples = 0  # model-rate samples given to the engine for the current stream
        self.seed_rate = DEFAULT_SEED_SAMPLE_RATE
        self.seed_acks: list[_SeedAck] = []
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

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        structlog.contextvars.bind_contextvars(session_id=self.session_id, peer=peer_of(self.connection))
        pump: asyncio.Task[None] | None = None
        try:
            self._admit()
            self.server.sessions.add(self)
            self.metrics.sessions_active.inc()
            self.metrics.sessions_total.inc()
            await self._send(
                protocol.connection_event(
                    self.session_id, self.engine.sample_rate, self.engine.chunk_duration_s
                )
            )
            pump = asyncio.create_task(self._pump_updates(), name=f"pump-{self.session_id}")
            await self._receive_loop()
        except _SessionEndError as close:
            await self._close(close.event, close.code, close.reason)
        except ConnectionClosed:
            self.close_code = self.close_code or (self.connection.close_code or 1006)
            self.close_reason = self.close_reason or "client_disconnected"
        except Exception:
            log.exception("session_failed")
            await self._close(
                protocol.error_event("internal_error", "internal server error", CloseCode.INTERNAL),
                CloseCode.INTERNAL,
                "internal_error",
            )
        finally:
            if self.stream is not None and not self.stream_done.is_set():
                self.stream.cancel()
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            if self in self.server.sessions:
                self.server.sessions.discard(self)
                self.server.sessions_changed.set()
                self.metrics.sessions_active.dec()
                self.metrics.client_closed(self.client.name if self.client else None)
            self._log_summary()
            structlog.contextvars.unbind_contextvars("session_id", "peer", "client")

    def _admit(self) -> None:
        self._authenticate()
        if self.server.draining:
            self.metrics.reject("draining")
            raise _SessionEndError(
                protocol.closing_event("server_draining", CloseCode.GOING_AWAY),
                CloseCode.GOING_AWAY,
                "draining",
            )
        if len(self.server.sessions) >= self.settings.max_sessions:
            # Handshakes that raced past process_request's check land here.
            self.metrics.reject("max_sessions")
            raise _SessionEndError(
                protocol.error_event("overloaded", "too many concurrent sessions", CloseCode.OVERLOADED),
                CloseCode.OVERLOADED,
                "overloaded",
            )
        if self.client is not None:
            self.metrics.client_admitted(self.client.name)

    def _authenticate(self) -> None:
        """Who is calling (``self.client``), or the ``unauthorized`` event and 1008, whatever is wrong."""
        if not self.settings.auth_enabled:
            return
        request = self.connection.request
        try:
            if request is None:
                raise CredentialError("missing")
            self.client = authenticate(self.settings.auth_tokens, request.headers, request.path)
        except CredentialError as refused:
            self.metrics.reject("unauthorized")
            log.warning("auth_refused", reason=refused.reason)  # the reason only, never the credential
            raise _SessionEndError(
                protocol.error_event("unauthorized", "a valid token is required", CloseCode.POLICY),
                CloseCode.POLICY,
                "unauthorized",
            ) from None
        structlog.contextvars.bind_contextvars(client=self.client.name)  # every later line names it
        name, limit = self.client.name, self.client.max_sessions
        if (
            limit is not None
            and sum(s.client is not None and s.client.name == name for s in self.server.sessions) >= limit
        ):
            self.metrics.reject("client_session_limit", name)
            raise _SessionEndError(
                protocol.error_event(
                    "client_session_limit",
                    f"client {name} already has {limit} open sessions",
                    CloseCode.POLICY,
                ),
                CloseCode.POLICY,
                "client_session_limit",
            )

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

    async def _send(self, event: dict[str, Any]) -> None:
        await self.connection.send(protocol.encode(event))

    async def _close(self, event: dict[str, Any], code: int, reason: str) -> None:
        self.close_code, self.close_reason = int(code), reason
        with contextlib.suppress(ConnectionClosed):
            await self._send(event)
            await self.connection.close(code, reason)

    # ------------------------------------------------------------------ receiving
    async def _receive_loop(self) -> None:
        while True:
            await self._wait_for_room()
            try:
                async with asyncio.timeout(self.settings.idle_timeout_s):
                    message = await self.server.until_draining(self.connection.recv())
            except TimeoutError:
                await self._finish_stream()
                raise _SessionEndError(
                    protocol.error_event(
                        "idle_timeout",
                        f"no message for {self.settings.idle_timeout_s:g} s",
                        CloseCode.POLICY,
                    ),
                    CloseCode.POLICY,
                    "idle_timeout",
                ) from None
            if message is None:  # the server is draining
                await self._finish_stream()
                raise _SessionEndError(
                    protocol.closing_event("server_draining", CloseCode.GOING_AWAY),
                    CloseCode.GOING_AWAY,
                    "draining",
                )
            if len(message) > self.settings.max_message_bytes:
                self.metrics.reject("message_too_big")
                raise _SessionEndError(
                    protocol.error_event(
                        "message_too_big",
                        f"message of {len(message)} bytes exceeds {self.settings.max_message_bytes}",
                        CloseCode.TOO_BIG,
                    ),
                    CloseCode.TOO_BIG,
                    "message_too_big",
                )
            try:
                if isinstance(message, bytes):
                    await self._on_binary(message)
                else:
                    finished = await self._on_text(message)
                    if finished:
                        return
            except ProtocolError as error:
                if error.close_code is None:
                    await self._send(protocol.error_event(error.code, error.message))
                    continue
                raise _SessionEndError(
                    protocol.error_event(error.code, error.message, error.close_code),
                    error.close_code,
                    error.code,
                ) from None

    async def _wait_for_room(self) -> None:
        # Backpressure: while the engine is behind on this stream, stop reading; websockets then
        # stops reading the socket and TCP flow control slows the client down.
        while self.stream is not None and self.stream.backlog_s > self.settings.max_backlog_s:
            self.room.clear()
            await self.server.until_draining(self.room.wait())
            if self.server.draining:
                return

    async def _on_binary(self, data: bytes) -> None:
        if self.protocol_name != "native" or self.stream is None:
            raise ProtocolError(
                "binary_before_start", 'send {"type": "start"} before binary audio', CloseCode.POLICY
            )
        if self.eof_at is not None:
            raise ProtocolError("audio_after_eof", "audio after eof", CloseCode.POLICY)
        self._feed(data)

    async def _on_text(self, text: str) -> bool:
        """Handle one JSON message; True when the session is complete."""
        message = protocol.parse_text_message(text)
        if isinstance(message, protocol.Start):
            if self.protocol_name is not None:
                raise ProtocolError("already_started", "start was already sent", CloseCode.POLICY)
            self.protocol_name = "native"
            self._open_stream(message.sample_rate)
            return False
        if isinstance(message, protocol.Eof):
            if self.protocol_name != "native" or self.stream is None:
                raise ProtocolError("eof_before_start", "eof before start", CloseCode.POLICY)
            await self._finish_stream()
            await self._send(
                protocol.done_event(
                    " ".join(t for t in self.final_texts if t), self.segments, self.audio_seconds
                )
            )
            self.close_code, self.close_reason = int(CloseCode.DONE), "done"
            await self.connection.close(CloseCode.DONE, "done")
            return True
        if isinstance(message, protocol.ConfigRequest):
            if message.sample_rate is not None:
                if self.stream is not None and message.sample_rate != self.stream_rate:
                    raise ProtocolError("config_during_stream", "sample_rate cannot change during a stream")
                self.seed_rate = message.sample_rate
            await self._send(
                protocol.config_event(self.seed_rate, self.engine.sample_rate, self.engine.chunk_duration_s)
            )
            return False
        if isinstance(message, protocol.AudioChunk):
            await self._on_audio_chunk(message)
            return False
        raise ProtocolError("unknown_type", "unsupported message")  # pragma: no cover - parse covers all

    async def _on_audio_chunk(self, chunk: protocol.AudioChunk) -> None:
        if self.protocol_name == "native":
            raise ProtocolError(
                "mixed_protocols", "audio_chunk after start: use binary frames", CloseCode.POLICY
            )
        self.protocol_name = "seed"
        rate = chunk.sample_rate or self.seed_rate
        if self.stream is None:
            self._open_stream(rate)
        elif rate != self.stream_rate:
            raise ProtocolError(
                "sample_rate_changed",
                f"sample_rate changed from {self.stream_rate} to {rate} within an utterance",
                CloseCode.UNSUPPORTED,
            )
        self._feed(chunk.pcm)
        if chunk.is_final:
            await self._finish_stream()
            await self._send(
                protocol.transcription_event(self._utterance_text(), chunk.chunk_id, True, self.segments)
            )
            self._reset_stream()
            return
        chunk_samples = self.engine.chunk_samples
        ack = _SeedAck(chunk.chunk_id, (self.fed_samples // chunk_samples) * chunk_samples)
        self.seed_acks.append(ack)
        await self._flush_seed_acks(self._consumed_samples())

    # ------------------------------------------------------------------ audio
    def _open_stream(self, rate: int) -> None:
        self.stream_rate = rate
        self.resampler = StreamingResampler(rate, self.engine.sample_rate)
        self.fed_samples = 0
        self.stream_done.clear()
        self.stream = self.engine.open_stream(self._deliver_threadsafe())

    def _reset_stream(self) -> None:
        self.stream = None
        self.resampler = None
        self.final_texts = []
        self.partial_text = ""
        self.eof_at = None
        self.seed_acks = []

    def _deliver_threadsafe(self) -> Any:
        loop = asyncio.get_running_loop()
        queue = self.updates

        def deliver(update: StreamUpdate) -> None:  # runs in the engine thread
            loop.call_soon_threadsafe(queue.put_nowait, update)

        return deliver

    def _feed(self, data: bytes) -> None:
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

    async def _finish_stream(self) -> None:
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
        await self.stream_done.wait()

    def _consumed_samples(self) -> int:
        return self.stream.consumed_samples if self.stream is not None else 0

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
            await self._close(
                protocol.error_event(update.error, "recognition failed", CloseCode.INTERNAL),
                CloseCode.INTERNAL,
                update.error,
            )
            return
        if update.partial is not None and update.partial.text:
            self.partial_text = update.partial.text
            if self.protocol_name == "native":
                p = update.partial
                await self._send(
                    protocol.partial_event(p.segment_id, p.text, round(p.start_s, 3), round(p.end_s, 3))
                )
                self.metrics.partial_latency.observe(now - update.ready_at)
        for segment in update.finals:
            self.final_texts.append(segment.text)
            self.partial_text = ""
            self.segments += 1
            if self.protocol_name == "native":
                await self._send(
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
        if self.protocol_name == "seed":
            await self._flush_seed_acks(update.consumed_samples)
        if update.done:
            self.stream_done.set()

    async def _flush_seed_acks(self, consumed: int) -> None:
        while self.seed_acks and self.seed_acks[0].needed_samples <= consumed:
            ack = self.seed_acks.pop(0)
            await self._send(
                protocol.transcription_event(self._utterance_text(), ack.chunk_id, False, self.segments)
            )

    def _utterance_text(self) -> str:
        return " ".join(t for t in [*self.final_texts, self.partial_text] if t)
