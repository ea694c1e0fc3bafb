"""bench/profile_shares.py: py-spy's collapsed stacks → share of server CPU by category."""

from __future__ import annotations

from bench.profile_shares import OTHER, category_of, classify

ROOT = 'process 41:"python -m asr_service.workers.worker";_run (threading.py:1)'
FORWARD = (
    f"{ROOT};_step (/app/asr_service/engine.py:300);step (/app/asr_service/decoding/streaming.py:80);"
    "stream_step (/app/asr_service/model/streaming_ctc.py:120);forward (/v/torch/nn/modules/rnn.py:9) 60"
)
DECODE = (
    f"{ROOT};_step (/app/asr_service/engine.py:300);step (/app/asr_service/decoding/streaming.py:80);"
    "log_softmax (/v/torch/nn/functional.py:2) 20"
)
SEND = (
    'process 41:"python -m asr_service.workers.worker";run (/app/asr_service/session.py:9);'
    "send (/app/asr_service/session.py:200);encode (/app/asr_service/protocol.py:30);"
    "dumps (/usr/lib/python3.11/json/__init__.py:231) 10"
)
FRAMING = "recv (/app/asr_service/session.py:3);parse (/v/websockets/protocol.py:500) 6"
LOOP = "run_forever (/usr/lib/python3.11/asyncio/base_events.py:600) 4"


def test_library_frames_count_for_the_project_code_that_called_them():
    profile = classify([FORWARD, DECODE, SEND, FRAMING, LOOP, "", "garbage"])
    assert profile.samples == 100
    assert profile.by_category == {
        "model forward": 60,
        "decoding": 20,
        "session/protocol": 10,
        "websocket": 6,
        OTHER: 4,
    }
    assert profile.share("model forward") + profile.share("decoding") == 0.8
    assert profile.other_leaves == [("run_forever (/usr/lib/python3.11/asyncio/base_events.py)", 4)]
    assert "| model forward | 60.0 % |" in profile.table()


def test_the_innermost_matching_frame_decides():
    frames = ["run (/a/asr_service/session.py:1)", "send (/v/websockets/asyncio/connection.py:2)"]
    assert category_of(frames) == "websocket"
    assert category_of(frames[:1]) == "session/protocol"
    assert category_of([]) == OTHER
