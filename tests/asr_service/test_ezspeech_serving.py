"""Serving full-context models: the growing-window strategy in the engine, and a converted
EzSpeech checkpoint behind the real server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_client.transcribe import read_audio, transcribe_samples
from asr_service.decoding.growing_window import GrowingWindowSettings, GrowingWindowStrategy
from asr_service.engine import BatchingEngine
from asr_service.model.checkpoint import load_checkpoint
from asr_service.server import load_configured_model
from ezspeech_convert.convert import convert
from tests.asr_service import ezspeech_fakes as fakes
from tests.asr_service.helpers import http_get
from tests.asr_service.region_model import FRAME, RATE, RegionModel, regions, run, run_together, whole_decode
from tests.asr_service.wsclient import stream_native


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
    collectors = run_together(engine, audios)
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


@pytest.mark.parametrize("strategy", ["chunked", "growing-window"])
def test_server_streams_a_converted_ezspeech_model_like_offline_transcription(
    start_server, converted: Path, tmp_path: Path, strategy: str
) -> None:
    # 3 s of audio: less than one chunked window (4.8 s), so both strategies decode it whole.
    server = start_server(
        load_configured_model,
        model_path=str(converted),
        endpoint_silence_ms=60_000.0,
        full_context_strategy=strategy,
    )
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
    assert status == 200 and json.loads(body)["decode_strategy"] == strategy


def test_audio_sent_at_once_is_not_re_decoded_chunk_by_chunk_after_eof(make_engine) -> None:
    model = RegionModel()
    audio = regions(*[(0.4, 0.16)] * 8)  # 4.5 s, 28 chunks, all queued before the worker gets to them
    settings = GrowingWindowSettings(cost_factor=1e6)  # after one decode, wait for more audio than exists
    collector = run(make_engine(model, settings, endpoint_silence_s=10.0), audio, piece=audio.size)
    assert collector.finals() == [whole_decode(model, audio)]
    assert len(model.calls) <= 1 + 2 + 1  # first chunk, at most one before eof landed, the last, whole_decode
