"""Hostile client input for the soak: every kind of message a careless or malicious client sends.

Each generator takes a seeded ``random.Random`` and returns one message (``str`` is sent as a
text frame, ``bytes`` as binary, :class:`InvalidText` as a text frame holding invalid UTF-8,
:class:`RawFrame` is written straight to the TCP stream). The server must answer every one with
a typed ``error`` event (or the documented close) and never with a traceback, an
``internal_error`` or a dropped TCP connection.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class InvalidText:
    """Bytes sent in a *text* frame: the WebSocket library must refuse them (1007)."""

    data: bytes


@dataclass(frozen=True)
class RawFrame:
    """Bytes written straight to the TCP stream: a frame the WebSocket library must refuse (1002)."""

    data: bytes


Message = str | bytes | InvalidText | RawFrame
Generator = Callable[[random.Random], Message]


def _audio_chunk(**fields: object) -> str:
    return json.dumps({"type": "audio_chunk", "audio_data": "AAAA", **fields})


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def malformed_json(rng: random.Random) -> Message:
    return rng.choice(
        ["{", "{not json", "", " ", "}", '{"type": "start",}', '{"type": "start"', "\x00", "'start'"]
    )


def not_an_object(rng: random.Random) -> Message:
    return rng.choice(["null", "[]", "123", '"start"', "true", '[{"type": "start"}]'])


def deep_nesting(rng: random.Random) -> Message:
    depth = rng.choice([9, 50, 500, 980, 5000, 50_000])
    where = rng.choice(["chunk_id", "type", "sample_rate", "extra"])
    body = '{"type": "audio_chunk", "audio_data": "AAAA", "%s": %s}' % (where, _nested(depth))  # noqa: UP031
    return body if rng.random() < 0.8 else _nested(depth)


def huge_integer(rng: random.Random) -> Message:
    digits = "9" * rng.choice([21, 4301, 5000, 100_000])
    field = rng.choice(["type", "sample_rate", "chunk_id", "channels"])
    base = {"type": "start"} if field in ("sample_rate", "channels") else {"type": "audio_chunk"}
    text = json.dumps({**base, field: "__N__", "audio_data": "AAAA"})
    return text.replace('"__N__"', ("-" if rng.random() < 0.3 else "") + digits)


def non_finite(rng: random.Random) -> Message:
    value = rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
    field = rng.choice(["sample_rate", "chunk_id"])
    kind = "start" if field == "sample_rate" else "audio_chunk"
    return '{"type": "%s", "audio_data": "AAAA", "%s": %s}' % (kind, field, value)  # noqa: UP031


def lone_surrogate(rng: random.Random) -> Message:
    value = rng.choice(["\\ud800", "\\udfff", "a\\ud83d", "\\ud800\\ud800x"])
    field = rng.choice(["chunk_id", "type", "encoding"])
    kind = "start" if field == "encoding" else "audio_chunk"
    if field == "type":
        return '{"type": "%s"}' % value  # noqa: UP031
    return '{"type": "%s", "audio_data": "AAAA", "%s": "%s"}' % (kind, field, value)  # noqa: UP031


def wrong_types(rng: random.Random) -> Message:
    choices: list[Message] = [
        json.dumps({"type": ["start"]}),
        json.dumps({"type": {"a": 1}}),
        json.dumps({"type": 7}),
        json.dumps({"type": None}),
        json.dumps({"type": "start", "sample_rate": "16000"}),
        json.dumps({"type": "start", "sample_rate": True}),
        json.dumps({"type": "start", "sample_rate": [16000]}),
        json.dumps({"type": "start", "sample_rate": -16000}),
        json.dumps({"type": "start", "sample_rate": 0}),
        json.dumps({"type": "start", "sample_rate": 16000.5}),
        json.dumps({"type": "start", "sample_rate": 12345}),
        json.dumps({"type": "start", "encoding": "f32le"}),
        json.dumps({"type": "start", "encoding": {"x": "y" * 1000}}),
        json.dumps({"type": "start", "channels": 2}),
        json.dumps({"type": "config", "sample_rate": "fast"}),
        _audio_chunk(audio_data=123),
        _audio_chunk(audio_data="not base64!"),
        _audio_chunk(audio_data="AAA"),  # odd-length PCM after decoding
        _audio_chunk(is_final="yes"),
        _audio_chunk(chunk_id={"nested": [1, 2]}),
        _audio_chunk(chunk_id="x" * 10_000),
        _audio_chunk(sample_rate=8000),
        json.dumps({"type": "audio_file", "file_path": "/etc/passwd"}),
        json.dumps({"type": "dance"}),
        json.dumps({"no": "type"}),
        json.dumps({"type": "x" * 100_000}),
    ]
    return rng.choice(choices)


def out_of_order(rng: random.Random) -> Message:
    choices: list[Message] = [
        json.dumps({"type": "eof"}),
        json.dumps({"type": "start", "sample_rate": 16000}),
        json.dumps({"type": "config", "sample_rate": 8000}),
        b"\x00\x01" * rng.randint(1, 800),
        b"\x00",  # odd-length PCM
        b"",
        _audio_chunk(),
    ]
    return rng.choice(choices)


def oversized(rng: random.Random) -> Message:
    # The default MAX_MESSAGE_BYTES is 1 MiB; the library refuses over twice that by itself.
    limit = 1 << 20
    kind = rng.randrange(4)
    if kind == 0:
        return b"\x00" * (limit + 2)
    if kind == 1:
        return json.dumps({"type": "start", "pad": "x" * (limit + 10)})
    if kind == 2:  # fewer characters than the limit, more bytes once UTF-8 encoded
        return json.dumps({"type": "start", "pad": "\U0001f600" * (limit // 4 + 10)}, ensure_ascii=False)
    return b"\x00" * (2 * limit + 2)


def invalid_utf8(rng: random.Random) -> Message:
    return InvalidText(rng.choice([b"\xff\xfe", b'{"type": "\xc3"}', b"\xed\xa0\x80"]))


def _frame(first_byte: int, payload: bytes, *, masked: bool = True, length: int | None = None) -> bytes:
    size = len(payload) if length is None else length
    mask_bit = 0x80 if masked else 0
    if size < 126:
        header = bytes([first_byte, mask_bit | size])
    elif size < 1 << 16:
        header = bytes([first_byte, mask_bit | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first_byte, mask_bit | 127]) + size.to_bytes(8, "big")
    if not masked:
        return header + payload
    return header + b"\x00\x00\x00\x00" + payload  # a zero mask: the payload goes as is


def bad_frame(rng: random.Random) -> Message:
    """Framing errors: reserved bits, unknown opcodes, unmasked, oversized or fragmented control."""
    choices = [
        lambda: _frame(0xF1, b"{}"),  # RSV1-3 set on a text frame
        lambda: _frame(0x83, b"x"),  # reserved data opcode
        lambda: _frame(0x8B, b"x"),  # reserved control opcode
        lambda: _frame(0x81, b'{"type": "eof"}', masked=False),  # clients must mask
        lambda: _frame(0x89, b"p" * 200),  # ping over 125 bytes
        lambda: _frame(0x09, b"ping"),  # fragmented control frame
        lambda: _frame(0x80, b"orphan continuation"),
        lambda: _frame(0x88, b"\x03"),  # close with a 1-byte payload
        lambda: _frame(0x88, (999).to_bytes(2, "big")),  # close with an invalid code
        lambda: _frame(0x82, b"", length=(1 << 63) - 1),  # a length nobody can send
    ]
    return RawFrame(rng.choice(choices)())


# Weighted: the cheap, varied ones often, the megabyte-sized ones rarely.
GENERATORS: tuple[tuple[Generator, int], ...] = (
    (malformed_json, 10),
    (not_an_object, 6),
    (deep_nesting, 6),
    (huge_integer, 6),
    (non_finite, 5),
    (lone_surrogate, 8),
    (wrong_types, 25),
    (out_of_order, 20),
    (oversized, 1),
    (invalid_utf8, 2),
    (bad_frame, 3),
)


def hostile_message(rng: random.Random) -> tuple[str, Message]:
    """(generator name, message), drawn by weight."""
    generators = [g for g, _w in GENERATORS]
    (chosen,) = rng.choices(generators, weights=[w for _g, w in GENERATORS])
    return chosen.__name__, chosen(rng)


HTTP_JUNK = (
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # no upgrade
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello to a plain port
    b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
    b"\r\n\r\n\r\n",
)


def hostile_headers(rng: random.Random) -> list[tuple[str, str]]:
    """Handshake headers a proxy or client may repeat or forge."""
    choices = [
        [],
        [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-For", "198.51.100.9")],
        [("X-Forwarded-For", "a, b, c, " + "d" * 200)],
        [("Authorization", "Bearer one"), ("Authorization", "Bearer two")],
        [("Authorization", "Basic " + "x" * 300)],
    ]
    return rng.choice(choices)
