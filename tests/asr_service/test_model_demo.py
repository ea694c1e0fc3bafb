"""The shipped demo model really recognises speech: the demo clips transcribe exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

from asr_service.model.checkpoint import DEFAULT_MODEL_PATH, LoadedModel, load_checkpoint
from asr_service.model.transcribe import stream_log_probs, transcribe, transcribe_segments

CLIPS = Path(__file__).resolve().parent.parent / "data" / "clips"
TRANSCRIPTS: dict[str, str] = json.loads((CLIPS / "transcripts.json").read_text())


@pytest.fixture(scope="module")
def demo() -> LoadedModel:
    torch.set_num_threads(1)
    return load_checkpoint(DEFAULT_MODEL_PATH)


def read_clip(name: str) -> torch.Tensor:
    audio, rate = sf.read(CLIPS / name, dtype="float32")
    assert rate == 16000 and audio.ndim == 1
    return torch.from_numpy(audio)


def test_demo_checkpoint_is_small_and_described(demo: LoadedModel) -> None:
    assert DEFAULT_MODEL_PATH.stat().st_size <= 20 * 1024 * 1024
    assert demo.arch == "streaming-gru-ctc"
    assert demo.metadata["train_utterances"] > 0
    assert (DEFAULT_MODEL_PATH.parent / "MODEL_CARD.md").exists()


# Every clip exact, through the server's own decoding path (greedy partials, beam-search finals).
@pytest.mark.parametrize("name", sorted(TRANSCRIPTS))
def test_demo_clip_transcribes_exactly(demo: LoadedModel, name: str) -> None:
    assert transcribe(demo.model, read_clip(name)) == TRANSCRIPTS[name]


def test_streaming_path_equals_whole_utterance_on_real_audio(demo: LoadedModel) -> None:
    audio = read_clip("clip1_en-us_m3.wav")
    streamed = stream_log_probs(demo.model, audio)
    with torch.no_grad():
        full, lengths = demo.model.forward_full(audio[None], torch.tensor([audio.numel()]))
    assert streamed.shape[0] == int(lengths[0])
    assert (streamed - full[0, : lengths[0]]).abs().max().item() < 1e-4


def test_pause_splits_two_sentences_into_two_segments(demo: LoadedModel) -> None:
    name = next(n for n in TRANSCRIPTS if n.startswith("clip5"))
    # clip5 is a new held-out sentence, a 1.2 s pause, then clip1's sentence (training/data.py).
    second = TRANSCRIPTS["clip1_en-us_m3.wav"]
    first = TRANSCRIPTS[name].removesuffix(" " + second)
    segments = transcribe_segments(demo.model, read_clip(name), min_silence_s=0.6)
    assert len(segments) == 2
    assert segments[0].text == first
    assert segments[1].text == second
    assert segments[0].end_s + 0.6 < segments[1].start_s
    assert all(0.5 < s.confidence <= 1.0 for s in segments)
