"""Serving full-context models: the growing-window strategy in the engine, and a converted
EzSpeech checkpoint behind the real server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_client.transcribe import read_audio, transcribe_samples
from asr_service.decoding.growing_window import STRATEGY_NAME, GrowingWindowSettings, GrowingWindowStrategy
from asr_service.engine import BatchingEngine
from asr_service.model.checkpoint import load_checkpoint
from asr_service.model.ctc import tokens_to_text
from asr_service.server import load_configured_model
from ezspeech_convert.convert import convert
from tests.asr_service import ezspeech_fakes as fakes
from tests.asr_service.helpers import Collector, http_get
from tests.asr_service.wsclient import stream_native

RATE = 16000
FRAME = 1280  # 80 ms, like EzSpeech's ×8 subsampled 10 ms frames


class RegionModel(torch.nn.Module):
    """Full-context fake: one token per loud region, naming the region's length in frames.

    A decoder that looked at chunks alone would see regions cut at chunk edges and name them
    wrongly, so the text tells whether words were cut.
    """

    streaming = False
    sample_rate = RATE
    chunk_samples = 2 * FRAME  # 0.16 s: regions span several chunks; windows start on the frame grid
    lookahead_samples = 0
    frame_shift_s = FRAME / RATE
    blank_id = 12

    def __init__(self) -> None:
        super().__init__()
        self.tokens = [*(f"▁r{k}" for k in range(1, 13)), "<blank>"]
        self.calls: list[list[int]] = []  # the lengths of every forward_full

    def num_frames(self, num_samples: int) -> int:
        return num_samples // FRAME

    def initial_state(self, batch_size, device):
        return ()

    def stream_step(self, audio, state):
        raise NotImplementedError

    def forward_full(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls.append(lengths.tolist())
        frames = [self.num_frames(int(n)) for n in lengths]
        width = max(frames)
        best = torch.full((len(frames), width), self.blank_id)
        for row, count in enumerate(frames):
            pieces = audio[row, : count * FRAME].reshape(count, FRAME)
            loud = [*(pieces.pow(2).mean(dim=1).sqrt() > 0.05).tolist(), False]
            start = None
            for frame, is_loud in enumerate(loud):
                if is_loud and start is None:
                    start = frame
                elif not is_loud and start is not None:
                    best[row, (start + frame) // 2] = min(frame - start, 12) - 1
                    start = None
        log_probs = torch.log_softmax(torch.nn.functional.one_hot(best, len(self.tokens)).float() * 20, -1)
        return log_probs, torch.tensor(frames)


def regions(*spec: tuple[float, float]) -> np.ndarray:
    """(loud seconds, quiet seconds) pairs -> audio."""
    parts = []
    for loud, quiet in spec:
        t = np.arange(round(loud * RATE)) / RATE
        parts += [0.3 * np.sin(2 * np.pi * 300 * t), np.zeros(round(quiet * RATE))]
    return np.concatenate(parts).astype(np.float32)


def whole_decode(model: RegionModel, audio: np.ndarray) -> str:
    log_probs, lengths = model.forward_full(torch.from_numpy(audio)[None], torch.tensor([audio.size]))
    best = log_probs[0, : lengths[0]].argmax(-1).tolist()
    return tokens_to_text([t for t in best if t != model.blank_id], model.tokens)


def run(engine: BatchingEngine, audio: np.ndarray, piece: int = 1000) -> Collector:
    collector = Collector()
    stream = engine.open_stream(collector)
    samples = torch.from_numpy(audio)
    for offset in range(0, len(samples), piece):
        stream.feed(samples[offset : offset + piece])
    stream.finish()
    assert collector.done.wait(20)
    return collector


@pytest.fixture
def make_engine():
    engines: list[BatchingEngine] = []

    def make(model: RegionModel, settings: GrowingWindowSettings | None = None, **kwargs) -> BatchingEngine:
        strategy = GrowingWindowStrategy(model, torch.device("cpu"), settings)
        engine = BatchingEngine(model, torch.device("cpu"), strategy=strategy, **kwargs)
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop()


def test_words_across_chunk_boundaries_are_decoded_whole(make_engine) -> None:
    model = RegionModel()
    audio = regions((0.56, 0.16), (0.8, 0.16), (0.24, 0.4))
    collector = run(make_engine(model, endpoint_silence_s=5.0), audio)
    assert collector.finals() == ["r7 r10 r3"] == [whole_decode(model, audio)]
    partials = [u.partial.text for u in collector.updates if u.partial]
    assert partials and partials[-1].startswith("r7")
    # What decoding every chunk on its own (EzSpeech's server) makes of the same audio:
    chunked = " ".join(
        filter(None, (whole_decode(model, audio[i : i + 2 * FRAME]) for i in range(0, audio.size, 2 * FRAME)))
    )
    assert chunked != "r7 r10 r3"


def test_trailing_silence_ends_the_segment_and_times_are_absolute(make_engine) -> None:
    model = RegionModel()
    audio = regions((0.4, 1.2), (0.56, 0.16))
    collector = run(make_engine(model, endpoint_silence_s=0.6), audio)
    segments = [s for u in collector.updates for s in u.finals]
    assert [(s.text, s.reason, s.segment_id) for s in segments] == [("r5", "endpoint", 0), ("r7", "eof", 1)]
    second = segments[1]
    assert second.start_s == pytest.approx(1.6 + 0.24, abs=0.2)  # middle of the second region


def test_long_segment_is_cut_at_a_pause_not_inside_a_word(make_engine) -> None:
    model = RegionModel()
    audio = regions(*[(0.4, 0.16)] * 12)  # 6.7 s of speech with pauses shorter than the endpoint
    settings = GrowingWindowSettings(max_window_s=2.0)
    collector = run(make_engine(model, settings, endpoint_silence_s=10.0), audio)
    longest_window = max(n for call in model.calls for n in call)
    assert longest_window <= (2.0 + 0.6) * RATE
    finals = [s for u in collector.updates for s in u.finals]
    assert len(finals) >= 3  # the cap forced cuts
    assert all(set(s.text.split()) == {"r5"} for s in finals if s.text)
    assert " ".join(s.text for s in finals if s.text) == whole_decode(model, audio)


def test_audio_without_text_is_not_kept(make_engine) -> None:
    model = RegionModel()
    audio = np.zeros(10 * RATE, dtype=np.float32)
    collector = run(make_engine(model, endpoint_silence_s=0.6), audio)
    assert collector.finals() == [""]
    assert max(n for call in model.calls for n in call) <= (1.0 + 0.4) * RATE


def test_last_chunk_padding_is_not_decoded(make_engine) -> None:
    model = RegionModel()
    audio = regions((0.56, 0.3))[: RATE - 77]
    run(make_engine(model, endpoint_silence_s=5.0), audio)
    assert model.calls[-1] == [audio.size]


def test_streams_decoded_in_one_batch_get_their_own_text(make_engine) -> None:
    model = RegionModel()
    engine = make_engine(model, max_batch_size=4, max_wait_s=0.05, endpoint_silence_s=5.0)
    audios = [regions((0.56, 0.16), (0.24, 0.2)), regions((0.8, 0.3))]
    collectors = [Collector() for _ in audios]
    streams = [engine.open_stream(c) for c in collectors]
    for offset in range(0, max(a.size for a in audios), 1600):
        for stream, audio in zip(streams, audios, strict=True):
            if offset < audio.size:
                stream.feed(torch.from_numpy(audio[offset : offset + 1600]))
    for stream in streams:
        stream.finish()
    assert all(c.done.wait(20) for c in collectors)
    assert [c.finals() for c in collectors] == [["r7 r3"], ["r10"]]
    assert any(len(call) == 2 for call in model.calls)


def test_redecode_waits_for_audio_worth_the_last_decode_cost() -> None:
    strategy = GrowingWindowStrategy(
        RegionModel(), torch.device("cpu"), GrowingWindowSettings(cost_factor=2.0)
    )
    decoder = strategy.new_decoder()
    decoder.decodes, decoder.last_cost_s = 1, 0.5
    decoder.append(torch.zeros(RATE // 2))
    assert not strategy.is_due(decoder, last=False)  # 0.5 s of audio < 2 × 0.5 s of compute
    decoder.append(torch.zeros(RATE // 2))
    assert strategy.is_due(decoder, last=False)
    decoder.last_cost_s = 0.001  # a fast device: every chunk
    assert strategy.is_due(decoder, last=False)


# ---------------------------------------------------------------- real server, converted model


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serving")
    source = fakes.write_lightning_ckpt(root / "last.ckpt", fakes.random_state_dict(fakes.layout(), seed=21))
    out = root / "ezspeech.pt"
    convert(source, fakes.train_tokenizer(root / "bpe.model"), out, allow_pickle=True)
    return out


def test_server_streams_a_converted_ezspeech_model_like_offline_transcription(
    start_server, converted: Path, tmp_path: Path
) -> None:
    server = start_server(load_configured_model, model_path=str(converted), endpoint_silence_ms=60_000.0)
    wav = fakes.write_wav(tmp_path / "clip.wav", 3.0, seed=4)
    pcm = read_audio(wav, RATE)
    events, code = stream_native(server.url, pcm.numpy(), frame_ms=100)
    assert code == 1000
    kinds = [e["type"] for e in events]
    assert "partial" in kinds and kinds[-2:] == ["final", "done"]
    finals = [e for e in events if e["type"] == "final"]
    assert len(finals) == 1 and finals[0]["reason"] == "eof"
    expected = transcribe_samples(load_checkpoint(converted), pcm, torch.device("cpu"))
    assert finals[0]["text"] == expected

    status, _headers, body = http_get(server.health_port, "/metrics")
    assert status == 200 and json.loads(body)["decode_strategy"] == STRATEGY_NAME


def test_audio_sent_at_once_is_not_re_decoded_chunk_by_chunk_after_eof(make_engine) -> None:
    model = RegionModel()
    audio = regions(*[(0.4, 0.16)] * 8)  # 4.5 s, 28 chunks, all queued before the worker gets to them
    settings = GrowingWindowSettings(cost_factor=1e6)  # after one decode, wait for more audio than exists
    collector = run(make_engine(model, settings, endpoint_silence_s=10.0), audio, piece=audio.size)
    assert collector.finals() == [whole_decode(model, audio)]
    assert len(model.calls) <= 1 + 2 + 1  # first chunk, at most one before eof landed, the last, whole_decode
