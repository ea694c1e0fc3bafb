"""The shipped demo model behind the real server: demo clips come back as their exact transcripts.

This is the path production and ``make demo`` take: no model configured → the demo checkpoint,
clips at espeak-ng's 22.05 kHz resampled by the server, real-time pacing skipped for speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from asr_service.model.checkpoint import DEFAULT_MODEL_PATH
from asr_service.server import load_configured_model
from tests.asr_service.helpers import TEST_SETTINGS, ServerThread
from tests.asr_service.wsclient import stream_native

REPO = Path(__file__).resolve().parents[2]
CLIPS = REPO / "tests" / "data" / "clips"
TRANSCRIPTS = (
    json.loads((CLIPS / "transcripts.json").read_text()) if (CLIPS / "transcripts.json").exists() else {}
)

pytestmark = pytest.mark.skipif(
    not DEFAULT_MODEL_PATH.is_file() or not TRANSCRIPTS,
    reason="demo model or demo clips not in this checkout",
)


@pytest.fixture(scope="module")
def demo_server():
    thread = ServerThread(
        TEST_SETTINGS.__class__(**{**vars(TEST_SETTINGS), "endpoint_silence_ms": 600.0}),
        load_configured_model,
    ).start()
    yield thread
    thread.stop()


def _stream_clip(server: ServerThread, clip: str) -> list[dict]:
    audio, rate = soundfile.read(str(CLIPS / clip), dtype="float32")
    events, code = stream_native(server.url, audio, sample_rate=rate, frame_ms=40)
    assert code == 1000
    assert any(e["type"] == "partial" for e in events)
    return events


@pytest.mark.parametrize("clip", sorted(TRANSCRIPTS))
def test_demo_clip_streamed_through_the_server_gives_its_exact_transcript(demo_server, clip):
    assert _stream_clip(demo_server, clip)[-1]["text"] == TRANSCRIPTS[clip]


@pytest.mark.parametrize("clip", sorted(TRANSCRIPTS))
def test_the_server_gives_the_model_packages_own_streaming_transcript(demo_server, clip):
    # Batching, resampling, endpointing and the wire change nothing: same words as the model's
    # reference path (right or wrong).
    import torch

    from asr_service.model.checkpoint import load_checkpoint
    from asr_service.model.transcribe import transcribe

    audio, _rate = soundfile.read(str(CLIPS / clip), dtype="float32")
    expected = transcribe(load_checkpoint(DEFAULT_MODEL_PATH).model, torch.from_numpy(audio))
    assert _stream_clip(demo_server, clip)[-1]["text"] == expected


def test_the_client_cli_prints_the_transcript_as_its_last_line(demo_server):
    clip = sorted(TRANSCRIPTS)[0]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr_client",
            "--server",
            demo_server.url,
            "--audio-file",
            str(CLIPS / clip),
            "--no-realtime",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == TRANSCRIPTS[clip]


@pytest.mark.parametrize("rate", [44100, 48000])
def test_a_demo_clip_sent_at_a_higher_rate_is_resampled_to_the_same_transcript(demo_server, rate):
    import torch
    import torchaudio

    clip = sorted(TRANSCRIPTS)[1]
    audio, clip_rate = soundfile.read(str(CLIPS / clip), dtype="float32")
    upsampled = torchaudio.functional.resample(torch.from_numpy(audio), clip_rate, rate).numpy()
    events, code = stream_native(demo_server.url, upsampled, sample_rate=rate, frame_ms=40)
    assert code == 1000 and events[-1]["text"] == TRANSCRIPTS[clip]
