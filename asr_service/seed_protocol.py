"""The seed-compatible JSON protocol, as an adapter over a session's stream.

``audio_chunk`` carries base64 PCM16 and is answered by ``transcription``: one reply per chunk,
sent once the engine has consumed that chunk's audio (so replies carry real progress, not an
echo), and a final reply for ``is_final``. ``config`` reports or sets the client's sample rate.
The native protocol never goes through here; the session hands seed messages and engine updates
to this adapter once the client has chosen the seed protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from asr_service import protocol
from asr_service.protocol import CloseCode, ProtocolError

DEFAULT_SEED_SAMPLE_RATE = 16000


class SeedStream(Protocol):
    """What the adapter uses of its session."""

    stream_rate: int
    fed_samples: int
    segments: int

    @property
    def has_stream(self) -> bool: ...

    @property
    def chunk_samples(self) -> int: ...

    @property
    def consumed_samples(self) -> int: ...

    def open_stream(self, rate: int) -> None: ...

    def feed(self, pcm: bytes) -> None: ...

    async def finish_stream(self) -> None: ...

    def reset_stream(self) -> None: ...

    def utterance_text(self) -> str: ...

    async def send(self, event: dict[str, Any]) -> None: ...


@dataclass
class _Ack:
    chunk_id: Any
    needed_samples: int  # model-rate samples the engine must have consumed


class SeedAdapter:
    def __init__(self, session: SeedStream, model_sample_rate: int, chunk_duration_s: float) -> None:
        self.session = session
        self.model_sample_rate = model_sample_rate
        self.chunk_duration_s = chunk_duration_s
        self.client_rate = DEFAULT_SEED_SAMPLE_RATE
        self._acks: list[_Ack] = []

    async def on_config(self, request: protocol.ConfigRequest) -> None:
        if request.sample_rate is not None:
            if self.session.has_stream and request.sample_rate != self.session.stream_rate:
                raise ProtocolError("config_during_stream", "sample_rate cannot change during a stream")
            self.client_rate = request.sample_rate
        await self.session.send(
            protocol.config_event(self.client_rate, self.model_sample_rate, self.chunk_duration_s)
        )

    async def on_audio_chunk(self, chunk: protocol.AudioChunk) -> None:
        session = self.session
        rate = chunk.sample_rate or self.client_rate
        if not session.has_stream:
            session.open_stream(rate)
        elif rate != session.stream_rate:
            raise ProtocolError(
                "sample_rate_changed",
                f"sample_rate changed from {session.stream_rate} to {rate} within an utterance",
                CloseCode.UNSUPPORTED,
            )
        session.feed(chunk.pcm)
        if chunk.is_final:
            await session.finish_stream()
            await session.send(
                protocol.transcription_event(session.utterance_text(), chunk.chunk_id, True, session.segments)
            )
            session.reset_stream()
            self._acks = []
            return
        whole_chunks = (session.fed_samples // session.chunk_samples) * session.chunk_samples
        self._acks.append(_Ack(chunk.chunk_id, whole_chunks))
        await self.flush_acks(session.consumed_samples)

    async def flush_acks(self, consumed: int) -> None:
        """Reply to every chunk whose audio the engine has now consumed, in order."""
        while self._acks and self._acks[0].needed_samples <= consumed:
            ack = self._acks.pop(0)
            await self.session.send(
                protocol.transcription_event(
                    self.session.utterance_text(), ack.chunk_id, False, self.session.segments
                )
            )
