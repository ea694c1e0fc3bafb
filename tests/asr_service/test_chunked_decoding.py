"""Strategy ``chunked``: fixed windows of left context + chunk + right context, only the chunk's
frames kept; its geometry, merging, bounded state, endpoints and batching, on the region fake."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr_service.decoding.chunked import ChunkedSettings, ChunkedStrategy
from asr_service.decoding.strategy import StepItem
from asr_service.engine import BatchingEngine
from tests.asr_service.helpers import Collector
from tests.asr_service.region_model import FRAME, RATE, RegionModel, regions, run, run_together, whole_decode

SETTINGS = ChunkedSettings(chunk_s=0.64, left_s=0.96, right_s=0.48)
WINDOW = round(SETTINGS.window_s * RATE)


@pytest.fixture
def make_engine():
    engines: list[BatchingEngine] = []

    def make(model: RegionModel, settings: ChunkedSettings = SETTINGS, **kwargs) -> BatchingEngine:
        engine = BatchingEngine(
            model,
            torch.device("cpu"),
            strategy=ChunkedStrategy(model, torch.device("cpu"), settings),
            **kwargs,
        )
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_s": 0.0}, "chunk_s must be > 0"),
        ({"chunk_s": -1.6}, "chunk_s must be > 0"),
        ({"left_s": -0.08}, "must be >= 0"),
        ({"right_s": float("nan")}, "must be a number"),
        ({"left_s": 50.0, "chunk_s": 8.0, "right_s": 4.0}, "longer than 60 s"),
        ({"chunk_s": 3.2, "max_segment_s": 1.6}, "at least chunk_s"),
    ],
)
def test_chunked_settings_reject_what_cannot_work(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        ChunkedSettings(**kwargs)


def test_window_edges_must_fall_on_the_models_output_frames() -> None:
    with pytest.raises(ValueError, match=r"chunk_s=1\.0 is not a multiple of the model.s 80 ms"):
        ChunkedStrategy(RegionModel(), torch.device("cpu"), ChunkedSettings(chunk_s=1.0))
    strategy = ChunkedStrategy(RegionModel(), torch.device("cpu"), ChunkedSettings(1.6, 2.4, 0.8))
    assert (strategy.left_frames, strategy.chunk_frames, strategy.right_frames) == (30, 20, 10)


def test_streaming_models_are_refused() -> None:
    model = RegionModel()
    model.streaming = True
    with pytest.raises(ValueError, match="full-context"):
        ChunkedStrategy(model, torch.device("cpu"))


def test_words_across_window_boundaries_are_decoded_whole_and_once(make_engine) -> None:
    model = RegionModel()
    # Regions of 3..7 frames at offsets that straddle every chunk boundary (chunks of 8 frames).
    audio = regions(*[(0.08 * n, 0.16) for n in (5, 7, 3, 6, 4, 7, 5, 3, 6)])
    collector = run(make_engine(model, endpoint_silence_s=10.0), audio)
    assert max(n for call in model.calls for n in call) <= WINDOW
    assert collector.finals() == [whole_decode(model, audio)] == ["r5 r7 r3 r6 r4 r7 r5 r3 r6"]


def test_partials_cover_the_tentative_tail_and_refresh_every_step(make_engine) -> None:
    model = RegionModel()
    audio = regions((0.4, 0.16), (0.24, 0.4), (0.4, 0.16), (0.32, 0.8))
    collector = run(make_engine(model, endpoint_silence_s=10.0), audio, piece=2 * FRAME)
    partials = [u.partial for u in collector.updates if u.partial]
    # One step in (0.64 s), before the first window's right context has arrived, the preview:
    # all of it tentative, r3 still cut short by the end of the audio so far.
    assert (partials[0].text, partials[0].end_s) == ("r5 r1", pytest.approx(0.64, abs=0.09))
    assert model.calls[0] == [round(SETTINGS.chunk_s * RATE)]
    # The first window (0-1.12 s) keeps 0-0.64 s, where r5 is; r3 (centre 0.68 s) is in its tail.
    assert partials[1].text == "r5 r3"
    assert partials[1].end_s == pytest.approx(1.12, abs=0.09)
    later = [p.text for p in partials[1:]]
    assert later == sorted(set(later), key=len)  # from the first window on, only grows
    assert partials[-1].text == collector.finals()[0] == whole_decode(model, audio)


def test_the_preview_commits_nothing_and_comes_only_once() -> None:
    model = RegionModel()
    strategy = ChunkedStrategy(model, torch.device("cpu"), SETTINGS)
    decoder = strategy.new_decoder()
    audio = torch.from_numpy(regions((0.4, 0.16), (0.24, 0.4), (0.4, 0.16), (0.32, 0.8)))
    step = round(SETTINGS.chunk_s * RATE)
    strategy.step([StepItem(decoder, audio[:step], None, step, last=False)])
    assert decoder.step_start == 0 and decoder.current().text == "r5 r1"  # tail only
    more = round(0.16 * RATE)
    strategy.step([StepItem(decoder, audio[step : step + more], None, more, last=False)])
    assert len(model.calls) == 1  # no second preview while the first window is not due


def test_state_and_window_stay_bounded_on_a_long_stream() -> None:
    model = RegionModel()
    strategy = ChunkedStrategy(model, torch.device("cpu"), SETTINGS)
    decoder = strategy.new_decoder()
    audio = torch.from_numpy(regions(*[(0.4, 0.24)] * 95))  # 61 s
    chunk = model.chunk_samples
    buffered = []
    for offset in range(0, audio.numel(), chunk):
        piece = audio[offset : offset + chunk]
        last = offset + chunk >= audio.numel()
        strategy.step([StepItem(decoder, piece, None, piece.numel(), last=last)])
        buffered.append(decoder.buffered_samples)
    assert max(buffered) <= WINDOW + chunk
    assert max(n for call in model.calls for n in call) <= WINDOW
    # Every window is the same size in steady state: the cost per audio second is flat.
    steady = [n for call in model.calls[3:-2] for n in call]
    assert set(steady) == {WINDOW}
    assert len(model.calls) == pytest.approx(audio.numel() / (SETTINGS.chunk_s * RATE), abs=2)
    text = decoder.finalize("eof").text
    assert text == whole_decode(model, audio.numpy()) == " ".join(["r5"] * 95)


def test_the_final_comes_with_the_eof_step(make_engine) -> None:
    model = RegionModel()
    audio = regions((0.4, 0.16), (0.56, 0.1))
    collector = run(make_engine(model, endpoint_silence_s=10.0), audio)
    last = collector.updates[-1]
    assert last.done and [s.text for s in last.finals] == ["r5 r7"]


def test_silence_after_committed_speech_ends_the_segment(make_engine) -> None:
    model = RegionModel()
    audio = regions((0.4, 1.6), (0.56, 0.24), (0.24, 0.1))
    collector = run(make_engine(model, endpoint_silence_s=0.6), audio)
    segments = [s for u in collector.updates for s in u.finals]
    assert [(s.text, s.reason, s.segment_id) for s in segments] == [
        ("r5", "endpoint", 0),
        ("r7 r3", "eof", 1),
    ]
    assert segments[0].start_s == pytest.approx(0.16, abs=0.09)  # the middle of the first region
    assert segments[1].start_s == pytest.approx(2.0 + 0.24, abs=0.09)  # times are stream times


def test_a_long_segment_without_pauses_is_cut_between_words(make_engine) -> None:
    model = RegionModel()
    audio = regions(*[(0.4, 0.16)] * 14)  # 7.8 s, pauses shorter than the endpoint
    settings = ChunkedSettings(chunk_s=0.64, left_s=0.96, right_s=0.48, max_segment_s=2.0)
    collector = run(make_engine(model, settings, endpoint_silence_s=10.0), audio)
    finals = [s for u in collector.updates for s in u.finals]
    assert len(finals) >= 3
    assert all(set(s.text.split()) == {"r5"} for s in finals)
    assert " ".join(s.text for s in finals) == whole_decode(model, audio)


def test_streams_batched_together_get_what_they_get_alone(make_engine) -> None:
    audios = [regions((0.56, 0.16), (0.24, 0.2), (0.4, 0.5)), regions((0.8, 0.3), (0.32, 1.0))]
    alone = [run(make_engine(RegionModel(), endpoint_silence_s=10.0), a).finals() for a in audios]
    model = RegionModel()
    engine = make_engine(model, max_batch_size=4, max_wait_s=0.05, endpoint_silence_s=10.0)
    collectors = run_together(engine, audios)
    assert [c.finals() for c in collectors] == alone
    assert any(len(call) == 2 for call in model.calls)  # some windows really were batched


class ShapeRecordingModel(RegionModel):
    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, int]] = []

    def forward_full(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.shapes.append((audio.shape[0], audio.shape[1]))
        return super().forward_full(audio, lengths)


def test_gpu_batches_take_only_warmed_up_shapes_and_change_no_result(make_engine) -> None:
    """On a GPU (``fixed_shapes``) rows are padded to a power of two and samples to one window, so
    every forward has a shape the warm-up ran; what each stream gets is what it gets alone."""
    audios = [
        regions((0.56, 0.16), (0.24, 0.2), (0.4, 0.5)),
        regions((0.8, 0.3), (0.32, 1.0)),
        regions((0.3, 0.4)),
    ]
    alone = [run(make_engine(RegionModel(), endpoint_silence_s=10.0), a).finals() for a in audios]
    model = ShapeRecordingModel()
    strategy = ChunkedStrategy(model, torch.device("cpu"), SETTINGS)
    strategy.fixed_shapes = True  # what a CUDA device sets
    engine = BatchingEngine(
        model,
        torch.device("cpu"),
        strategy=strategy,
        max_batch_size=4,
        max_wait_s=0.05,
        endpoint_silence_s=10.0,
    )
    engine.warm_up()
    warmed = set(model.shapes)
    assert warmed == {(1, WINDOW), (2, WINDOW), (4, WINDOW)}
    model.shapes.clear()
    engine.start()
    try:
        collectors = run_together(engine, audios)
    finally:
        engine.stop()
    assert [c.finals() for c in collectors] == alone
    assert model.shapes and set(model.shapes) <= warmed


def test_three_windows_due_together_run_as_four_rows_with_their_own_results() -> None:
    """The padding itself, without the engine's timing deciding what falls due together."""
    audios = [
        regions((0.56, 0.16), (0.24, 0.2), (0.4, 0.5), (0.3, 0.2)),
        regions((0.8, 0.3), (0.32, 1.0)),
        regions((0.3, 0.4), (0.5, 0.9)),
    ]

    def one_step(fixed_shapes: bool) -> tuple[list[tuple[int, int]], list[str]]:
        model = ShapeRecordingModel()
        strategy = ChunkedStrategy(model, torch.device("cpu"), SETTINGS)
        strategy.fixed_shapes = fixed_shapes
        strategy.warm_up(4)
        model.shapes.clear()
        decoders = [strategy.new_decoder() for _ in audios]
        items = [
            StepItem(d, torch.from_numpy(a[:WINDOW]), None) for d, a in zip(decoders, audios, strict=True)
        ]
        strategy.step(items)
        return model.shapes, [d.current().text for d in decoders]

    padded_shapes, padded_texts = one_step(True)
    exact_shapes, exact_texts = one_step(False)
    # Two rounds of windows fall due in that audio; each round is three windows.
    assert len(padded_shapes) == len(exact_shapes) == 2
    assert all(rows == 3 for rows, _samples in exact_shapes)
    assert padded_shapes == [(4, WINDOW)] * 2
    assert padded_texts == exact_texts and all(padded_texts)


def test_an_empty_stream_gets_an_empty_final_without_a_decode(make_engine) -> None:
    model = RegionModel()
    engine = make_engine(model)
    collector = Collector()
    engine.open_stream(collector).finish()
    assert collector.done.wait(5)
    assert collector.finals() == [""]
    assert model.calls == []


def test_a_stream_shorter_than_a_window_is_decoded_whole_once_after_at_most_the_preview(make_engine) -> None:
    model = RegionModel()
    audio = regions((0.4, 0.3))[: RATE - 77]
    collector = run(make_engine(model, endpoint_silence_s=5.0), audio)
    # At most the preview (one step in) before eof, then the whole stream once.
    assert model.calls[-1] == [audio.size] and len(model.calls) <= 2
    assert collector.finals() == [whole_decode(model, audio)]


def test_a_stream_within_one_window_gets_a_whole_utterance_final(make_engine) -> None:
    model = RegionModel()
    # 1.9 s: longer than chunk + right (a window is decoded for partials before eof), shorter
    # than one window (2.08 s); the 0.9 s region crosses the first step's edge.
    audio = regions((0.3, 0.2), (0.9, 0.5))
    collector = run(make_engine(model, endpoint_silence_s=5.0), audio)
    assert len(model.calls) >= 2 and model.calls[0] != [audio.size]
    assert model.calls[-1] == [audio.size]  # the eof decode is the whole stream
    assert collector.finals() == [whole_decode(model, audio)]


def test_longer_streams_and_streams_after_an_endpoint_keep_their_windows(make_engine) -> None:
    model = RegionModel()
    longer = regions((0.3, 0.2), (0.9, 0.2), (0.6, 0.3))  # 2.5 s > one window
    run(make_engine(model, endpoint_silence_s=5.0), longer)
    assert all(max(call) <= WINDOW for call in model.calls)
    # 1.7 s with an endpoint after the first word: the eof final holds only the second word
    # (re-decoding the whole stream would say the first one again).
    paused = regions((0.3, 0.9), (0.3, 0.2))
    collector = run(make_engine(RegionModel(), endpoint_silence_s=0.5), paused)
    segments = [s for u in collector.updates for s in u.finals]
    assert [(s.text, s.reason) for s in segments] == [("r4", "endpoint"), ("r4", "eof")]


def test_audio_sent_at_once_costs_one_decode_per_step(make_engine) -> None:
    model = RegionModel()
    audio = regions(*[(0.4, 0.16)] * 8)  # 4.5 s queued before the worker reads any of it
    collector = run(make_engine(model, endpoint_silence_s=10.0), audio, piece=audio.size)
    steps = int(np.ceil(audio.size / (SETTINGS.chunk_s * RATE)))
    assert len(model.calls) <= steps + 1
    assert collector.finals() == [whole_decode(model, audio)]
