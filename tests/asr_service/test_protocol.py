"""Protocol parsing and event building: pure functions, no server."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr_service import protocol
from asr_service.decoding.results import Segment
from asr_service.protocol import AudioChunk, CloseCode, ConfigRequest, Eof, ProtocolError, Start


def test_start_defaults_and_validation():
    assert protocol.parse_text_message('{"type": "start"}') == Start(16000, "s16le")
    assert protocol.parse_text_message('{"type": "start", "sample_rate": 44100.0}') == Start(44100, "s16le")
    for rate in ("16000", True, 16000.5):
        with pytest.raises(ProtocolError) as error:
            protocol.parse_text_message(json.dumps({"type": "start", "sample_rate": rate}))
        assert error.value.code == "bad_sample_rate"
    # NaN and Infinity are not JSON (Python's encoder writes them anyway): refused as such.
    for rate in (float("nan"), float("inf"), "1e999"):
        text = json.dumps({"type": "start", "sample_rate": rate}).replace('"1e999"', "1e999")
        with pytest.raises(ProtocolError) as error:
            protocol.parse_text_message(text)
        assert error.value.code == "malformed_json"


@pytest.mark.parametrize(
    ("message", "code", "close"),
    [
        ("[1, 2]", "malformed_message", None),
        ('{"no": "type"}', "missing_type", None),
        ('{"type": "x" }', "unknown_type", None),
        ("{", "malformed_json", None),
        ("[" * 100000, "malformed_json", None),
        ('{"type": "start", "encoding": "opus"}', "unsupported_encoding", CloseCode.UNSUPPORTED),
        ('{"type": "start", "sample_rate": 96000}', "unsupported_sample_rate", CloseCode.UNSUPPORTED),
        ('{"type": "audio_chunk"}', "missing_audio_data", None),
        ('{"type": "audio_chunk", "audio_data": "***"}', "bad_audio_data", None),
        ('{"type": "audio_chunk", "audio_data": "", "is_final": "yes"}', "bad_is_final", None),
        ('{"type": "audio_file", "file_path": "/etc/shadow"}', "audio_file_not_supported", None),
    ],
)
def test_bad_messages_raise_named_errors(message, code, close):
    with pytest.raises(ProtocolError) as error:
        protocol.parse_text_message(message)
    assert error.value.code == code and error.value.close_code == close


def test_seed_messages_parse():
    pcm = b"\x01\x00\xff\xff"
    chunk = protocol.parse_text_message(
        json.dumps({"type": "audio_chunk", "audio_data": base64.b64encode(pcm).decode(), "chunk_id": 7})
    )
    assert chunk == AudioChunk(pcm=pcm, sample_rate=None, chunk_id=7, is_final=False)
    assert protocol.parse_text_message('{"type": "config", "sample_rate": 8000}') == ConfigRequest(8000)
    assert protocol.parse_text_message('{"type": "eof"}') == Eof()


def test_events_encode_compactly_and_keep_unicode():
    event = protocol.final_event(Segment(2, "héllo", 0.5, 1.25, 0.987654, "endpoint"))
    assert json.loads(protocol.encode(event)) == {
        "type": "final",
        "segment_id": 2,
        "text": "héllo",
        "start": 0.5,
        "end": 1.25,
        "confidence": 0.9877,
        "reason": "endpoint",
    }
    assert "é".encode() in protocol.encode(event)  # UTF-8, not \u escapes
    assert protocol.error_event("x", "y") == {"type": "error", "code": "x", "message": "y"}
    assert protocol.error_event("x", "y", CloseCode.TOO_BIG)["close_code"] == 1009
    assert protocol.closing_event("server_draining", CloseCode.GOING_AWAY)["close_code"] == 1001


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
            ),
            max_leaves=10,
        ).map(json.dumps),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["start", "eof", "audio_chunk", "config", "audio_file", "x"])},
            optional={
                "sample_rate": st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.none()),
                "encoding": st.text(max_size=8),
                "audio_data": st.text(max_size=12),
                "is_final": st.one_of(st.booleans(), st.integers()),
                "channels": st.integers(-1, 3),
            },
        ).map(json.dumps),
    )
)
def test_any_text_message_parses_or_raises_a_protocol_error(text):
    try:
        protocol.parse_text_message(text)
    except ProtocolError as error:
        assert error.code and error.message
        assert error.close_code in (None, CloseCode.UNSUPPORTED)
