"""Wire protocol: parse client messages and build server events. Pure functions, no I/O.

Two protocols share one connection handler (the README's "Protocol" section is the reference):

* native: ``start`` (JSON) → binary s16le PCM frames → ``eof``; the server answers with
  ``partial`` / ``final`` events and ``done`` before closing 1000;
* seed-compatible: ``audio_chunk`` (base64 PCM16 in JSON) answered by ``transcription``,
  plus ``config``. The seed's ``audio_file`` (a path read on the server) is refused.

Every close is preceded by an event that says why: ``done`` (1000), ``closing`` (1001) or
``error`` (every other code), so a browser, which never sees close reasons reliably, still knows.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from asr_service.decoding.results import Partial, Segment

SUPPORTED_SAMPLE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
SUPPORTED_ENCODINGS = ("s16le", "pcm_s16le")

# Bounds checked before or while parsing, so no client JSON can reach a library limit (Python's
# 4,300-digit int conversion, the recursion limit) and end in a traceback instead of an event.
MAX_JSON_DEPTH = 8  # no message of either protocol nests deeper than 2
MAX_INT_DIGITS = 20  # a signed 64-bit integer has at most 19 digits
MAX_CHUNK_ID_CHARS = 256  # chunk_id is echoed back: keep it an identifier, not a payload
_SHOWN_CHARS = 40  # how much of a bad value an error message quotes
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


class CloseCode(IntEnum):
    DONE = 1000
    GOING_AWAY = 1001  # server draining
    UNSUPPORTED = 1003  # unsupported audio format
    POLICY = 1008  # authentication, idle timeout, misuse
    TOO_BIG = 1009
    INTERNAL = 1011
    OVERLOADED = 1013


class ProtocolError(Exception):
    """Bad client input. ``close_code`` None means: report it, keep the session open."""

    def __init__(self, code: str, message: str, close_code: CloseCode | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


class SessionEndError(Exception):
    """End the session: send ``event`` (why), then close with ``code``; ``reason`` is logged."""

    def __init__(self, event: dict[str, Any], code: int, reason: str) -> None:
        super().__init__(reason)
        self.event = event
        self.code = code
        self.reason = reason

    @classmethod
    def error(cls, code: str, message: str, close_code: CloseCode) -> SessionEndError:
        return cls(error_event(code, message, close_code), close_code, code)


# ------------------------------------------------------------------ client → server
@dataclass(frozen=True)
class Start:
    sample_rate: int
    encoding: str


@dataclass(frozen=True)
class Eof:
    pass


@dataclass(frozen=True)
class AudioChunk:
    pcm: bytes
    sample_rate: int | None
    chunk_id: Any
    is_final: bool


@dataclass(frozen=True)
class ConfigRequest:
    sample_rate: int | None


ClientMessage = Start | Eof | AudioChunk | ConfigRequest


def _optional_sample_rate(value: Any) -> int | None:
    return None if value is None else _sample_rate(value)


def _sample_rate(value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
        or int(value) != value
    ):
        raise ProtocolError("bad_sample_rate", f"sample_rate must be an integer, got {_shown(value)}")
    rate = int(value)
    if rate not in SUPPORTED_SAMPLE_RATES:
        rates = ", ".join(str(r) for r in SUPPORTED_SAMPLE_RATES)
        raise ProtocolError(
            "unsupported_sample_rate",
            f"sample_rate {rate} is not supported (supported: {rates})",
            CloseCode.UNSUPPORTED,
        )
    return rate


def _shown(value: Any) -> str:
    """A short, always-encodable quote of a client value for an error message."""
    shown: Any = value
    if isinstance(value, str):
        shown = value[:_SHOWN_CHARS]
    elif not (isinstance(value, bool | int | float) or value is None):
        shown = type(value).__name__
    return ascii(shown)  # ascii(): a lone surrogate is escaped, never an unencodable reply


def _json_depth(text: str) -> int:
    """Deepest nesting of arrays/objects outside string literals."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ProtocolError("malformed_json", f"integers may have at most {MAX_INT_DIGITS} digits")
    return int(digits)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ProtocolError("malformed_json", "numbers must be finite")
    return value


def _no_constant(name: str) -> Any:
    raise ProtocolError("malformed_json", f"{name} is not valid JSON")


def _load_json(text: str) -> Any:
    # Counting brackets is one C pass; only a message with many of them pays for the exact depth.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _json_depth(text) > MAX_JSON_DEPTH:
        raise ProtocolError("malformed_json", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(
            text, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant
        )
    except (json.JSONDecodeError, RecursionError, ValueError):
        raise ProtocolError("malformed_json", "message is not valid JSON") from None


def _chunk_id(value: Any) -> Any:
    """The seed's chunk_id is echoed in every reply: a scalar, strings short and encodable."""
    if isinstance(value, str):
        if len(value) > MAX_CHUNK_ID_CHARS:
            raise ProtocolError("bad_chunk_id", f"chunk_id may be at most {MAX_CHUNK_ID_CHARS} characters")
        # A lone surrogate (valid in JSON text, not in UTF-8) would make the reply unsendable.
        return value.encode("utf-8", "replace").decode("utf-8")
    if value is None or isinstance(value, bool | int | float):
        return value
    raise ProtocolError("bad_chunk_id", "chunk_id must be a string, a number or null")


def parse_text_message(text: str) -> ClientMessage:
    """Decode one JSON text message; raise ProtocolError for anything malformed or unknown."""
    data = _load_json(text)
    if not isinstance(data, dict):
        raise ProtocolError("malformed_message", "message must be a JSON object")
    kind = data.get("type")
    if kind is not None and not isinstance(kind, str):
        raise ProtocolError("bad_type", f"'type' must be a string, got {_shown(kind)}")
    if kind == "start":
        encoding = data.get("encoding", "s16le")
        if encoding not in SUPPORTED_ENCODINGS:
            raise ProtocolError(
                "unsupported_encoding",
                f"encoding {_shown(encoding)} is not supported (send little-endian 16-bit PCM: 's16le')",
                CloseCode.UNSUPPORTED,
            )
        channels = data.get("channels", 1)
        if channels != 1:
            raise ProtocolError("unsupported_channels", "only mono audio is supported", CloseCode.UNSUPPORTED)
        return Start(sample_rate=_sample_rate(data.get("sample_rate", 16000)), encoding="s16le")
    if kind == "eof":
        return Eof()
    if kind == "audio_chunk":
        encoded = data.get("audio_data")
        if not isinstance(encoded, str):
            raise ProtocolError("missing_audio_data", "audio_chunk needs base64 PCM16 in 'audio_data'")
        try:
            pcm = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("bad_audio_data", "audio_data is not valid base64") from None
        is_final = data.get("is_final", False)
        if not isinstance(is_final, bool):
            raise ProtocolError("bad_is_final", "is_final must be true or false")
        return AudioChunk(
            pcm=pcm,
            sample_rate=_optional_sample_rate(data.get("sample_rate")),
            chunk_id=_chunk_id(data.get("chunk_id")),
            is_final=is_final,
        )
    if kind == "config":
        return ConfigRequest(sample_rate=_optional_sample_rate(data.get("sample_rate")))
    if kind == "audio_file":
        # The seed read any path on the server's disk: never honoured.
        raise ProtocolError(
            "audio_file_not_supported",
            "audio_file (a server-side path) is not supported; send the audio itself",
        )
    if kind is None:
        raise ProtocolError("missing_type", "message has no 'type'")
    raise ProtocolError("unknown_type", f"unknown message type {_shown(kind)}")


# ------------------------------------------------------------------ server → client
def encode(event: dict[str, Any]) -> bytes:
    """UTF-8 JSON, sent as a text frame. Encoding here (not in the library) means a stray lone
    surrogate can only become U+FFFD in a reply, never an exception that drops the connection."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")


def connection_event(session_id: str, model_sample_rate: int, chunk_duration_s: float) -> dict[str, Any]:
    return {
        "type": "connection",
        "status": "connected",
        "session_id": session_id,
        "sample_rate": model_sample_rate,
        "chunk_duration": round(chunk_duration_s, 4),
        "supported_sample_rates": list(SUPPORTED_SAMPLE_RATES),
        "encoding": "s16le",
    }


def partial_event(partial: Partial) -> dict[str, Any]:
    return {
        "type": "partial",
        "segment_id": partial.segment_id,
        "text": partial.text,
        "start": round(partial.start_s, 3),
        "end": round(partial.end_s, 3),
    }


def final_event(segment: Segment) -> dict[str, Any]:
    return {
        "type": "final",
        "segment_id": segment.segment_id,
        "text": segment.text,
        "start": round(segment.start_s, 3),
        "end": round(segment.end_s, 3),
        "confidence": round(segment.confidence, 4),
        "reason": segment.reason,
    }


def done_event(text: str, segments: int, audio_seconds: float) -> dict[str, Any]:
    return {"type": "done", "text": text, "segments": segments, "audio_seconds": round(audio_seconds, 3)}


def transcription_event(text: str, chunk_id: Any, is_final: bool, segment_id: int) -> dict[str, Any]:
    return {
        "type": "transcription",
        "text": text,
        "chunk_id": chunk_id,
        "is_final": is_final,
        "segment_id": segment_id,
    }


def config_event(sample_rate: int, model_sample_rate: int, chunk_duration_s: float) -> dict[str, Any]:
    return {
        "type": "config",
        "status": "ok",
        "sample_rate": sample_rate,
        "model_sample_rate": model_sample_rate,
        "chunk_duration": round(chunk_duration_s, 4),
    }


def error_event(code: str, message: str, close_code: int | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if close_code is not None:
        event["close_code"] = int(close_code)
    return event


def closing_event(reason: str, close_code: int) -> dict[str, Any]:
    return {"type": "closing", "reason": reason, "close_code": int(close_code)}
