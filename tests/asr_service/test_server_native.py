"""Native protocol against a real server on port 0 (fake model: pitch bands spell letters)."""

from __future__ import annotations

import json

import numpy as np
from websockets.sync.client import connect

from tests.asr_service.fakes import silence, word_audio
from tests.asr_service.wsclient import final_text, recv_all, recv_event, stream_native


def test_native_stream_gets_partials_then_final_then_done_and_close_1000(server):
    events, code = stream_native(server.url, word_audio("bad"))
    kinds = [e["type"] for e in events]
    assert code == 1000
    assert kinds[-1] == "done" and kinds[-2] == "final"
    partials = [e["text"] for e in events if e["type"] == "partial"]
    assert partials == ["b", "b a", "b a d"]  # grows while audio arrives
    assert final_text(events) == "b a d"
    assert events[-1]["text"] == "b a d"
    final = events[-2]
    assert final["reason"] == "eof" and final["segment_id"] == 0
    assert 0 <= final["start"] < final["end"] <= 0.8


def test_trailing_silence_ends_a_segment_with_an_endpoint_final(server):
    audio = np.concatenate([word_audio("ab"), silence(0.6), word_audio("h")])
    events, _ = stream_native(server.url, audio)
    finals = [e for e in events if e["type"] == "final"]
    assert [(f["text"], f["reason"], f["segment_id"]) for f in finals] == [
        ("a b", "endpoint", 0),
        ("h", "eof", 1),
    ]
    # The endpoint final arrives before any partial of the next segment.
    first_final = events.index(finals[0])
    assert all(e.get("segment_id") == 1 for e in events[first_final + 1 :] if e["type"] == "partial")
    assert events[-1]["text"] == "a b h"


def test_connection_event_describes_the_session(server):
    with connect(server.url) as ws:
        event = recv_event(ws)
    assert event["type"] == "connection" and event["status"] == "connected"
    assert event["sample_rate"] == 16000 and len(event["session_id"]) == 16
    assert 16000 in event["supported_sample_rates"]


def test_eof_without_audio_still_gets_a_final_and_done(server):
    with connect(server.url) as ws:
        recv_event(ws)
        ws.send(json.dumps({"type": "start", "sample_rate": 16000}))
        ws.send(json.dumps({"type": "eof"}))
        events = recv_all(ws)
        assert ws.close_code == 1000
    assert [e["type"] for e in events] == ["final", "done"]
    assert events[0]["text"] == "" and events[1]["audio_seconds"] == 0
