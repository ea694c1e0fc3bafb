"""The seed's JSON protocol (audio_chunk → transcription, config, error) and resampling."""

from __future__ import annotations

import json

import numpy as np
from websockets.sync.client import connect

from tests.asr_service.fakes import word_audio
from tests.asr_service.wsclient import audio_chunk_message, recv_event, stream_native


def _seed_session(url: str, audio: np.ndarray, rate: int | None = None, piece_s: float = 0.25):
    sr = rate or 16000
    piece = int(sr * piece_s)
    pieces = [audio[i : i + piece] for i in range(0, len(audio), piece)]
    events: list[dict] = []
    with connect(url) as ws:
        recv_event(ws)
        for index, chunk in enumerate(pieces):
            last = index == len(pieces) - 1
            ws.send(audio_chunk_message(chunk, index, is_final=last, sample_rate=rate))
        while not events or not events[-1].get("is_final"):
            events.append(recv_event(ws))
    return events


def test_every_audio_chunk_is_answered_by_a_transcription_in_order(server):
    events = _seed_session(server.url, word_audio("bad"))
    assert all(e["type"] == "transcription" for e in events)
    assert [e["chunk_id"] for e in events] == list(range(len(events)))
    assert events[-1]["is_final"] is True and events[-1]["text"] == "b a d"
    texts = [e["text"] for e in events]
    assert texts[0] in ("", "b") and "b a" in texts  # grows as audio is recognised


def test_config_is_answered_and_sets_the_session_sample_rate(server):
    audio48 = word_audio("ce", rate=48000)
    with connect(server.url) as ws:
        recv_event(ws)
        ws.send(json.dumps({"type": "config", "sample_rate": 48000}))
        config = recv_event(ws)
        ws.send(audio_chunk_message(audio48, "only", is_final=True))
        final = recv_event(ws)
    assert config == {
        "type": "config",
        "status": "ok",
        "sample_rate": 48000,
        "model_sample_rate": 16000,
        "chunk_duration": 0.1,
    }
    assert final["text"] == "c e" and final["chunk_id"] == "only"


def test_seed_session_can_send_several_utterances(server):
    with connect(server.url) as ws:
        recv_event(ws)
        ws.send(audio_chunk_message(word_audio("a"), 1, is_final=True))
        first = recv_event(ws)
        ws.send(audio_chunk_message(word_audio("h"), 2, is_final=True))
        second = recv_event(ws)
    assert (first["text"], second["text"]) == ("a", "h")


def test_audio_file_server_paths_are_never_read(server):
    with connect(server.url) as ws:
        recv_event(ws)
        ws.send(json.dumps({"type": "audio_file", "file_path": "/etc/passwd"}))
        error = recv_event(ws)
        # The session stays usable after the refusal.
        ws.send(audio_chunk_message(word_audio("b"), 0, is_final=True))
        after = recv_event(ws)
    assert error["type"] == "error" and error["code"] == "audio_file_not_supported"
    assert "close_code" not in error
    assert after["text"] == "b"


def test_every_common_input_rate_is_resampled_to_the_model_rate(server):
    # Read as 16 kHz, a 48 kHz "b" tone (300 Hz) would land three pitch bands higher.
    for rate in (8000, 16000, 22050, 44100, 48000):
        events, code = stream_native(server.url, word_audio("bdf", rate=rate), sample_rate=rate)
        assert code == 1000, rate
        assert events[-1]["text"] == "b d f", (rate, events[-1])


def test_seed_chunks_with_their_own_sample_rate_are_resampled(server):
    events = _seed_session(server.url, word_audio("ag", rate=22050), rate=22050)
    assert events[-1]["text"] == "a g"
