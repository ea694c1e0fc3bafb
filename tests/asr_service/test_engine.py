"""The batching engine without a server: batching, invariance, endpointing, eof, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr_service.decoding.streaming import CtcStreamDecoder
from asr_service.engine import BatchingEngine
from tests.asr_service.fakes import TOKENS, FakeStreamingModel, silence, word_audio
from tests.asr_service.helpers import Collector


@pytest.fixture
def engine_factory():
    engines = []

    def make(model=None, **kwargs) -> BatchingEngine:
        engine = BatchingEngine(model or FakeStreamingModel(), torch.device("cpu"), **kwargs)
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.stop()


def _run(engine: BatchingEngine, audio: np.ndarray, piece: int = 700) -> Collector:
    collector = Collector()
    stream = engine.open_stream(collector)
    samples = torch.from_numpy(audio)
    for offset in range(0, len(samples), piece):
        stream.feed(samples[offset : offset + piece])
    stream.finish()
    assert collector.done.wait(10)
    return collector


def test_streams_fed_together_are_batched_into_one_forward(engine_factory):
    model = FakeStreamingModel()
    engine = engine_factory(model, max_batch_size=8, max_wait_s=0.2)
    audios = [word_audio(letters) for letters in ("ab", "cd", "ef", "gh")]
    collectors = [Collector() for _ in audios]
    streams = [engine.open_stream(c) for c in collectors]
    # Every stream's first chunk arrives before the worker looks (fed under the engine's
    # re-entrant lock), so the batch does not depend on how a loaded machine schedules threads.
    with engine._cond:
        for stream, audio in zip(streams, audios, strict=True):
            stream.feed(torch.from_numpy(audio[:1600]))
    for stream, audio in zip(streams, audios, strict=True):
        stream.feed(torch.from_numpy(audio[1600:]))
        stream.finish()
    for c in collectors:
        assert c.done.wait(10)
    assert max(model.batch_sizes) == 4
    assert [c.finals() for c in collectors] == [["a b"], ["c d"], ["e f"], ["g h"]]


def test_a_stream_alone_and_inside_a_batch_gives_the_same_result(engine_factory):
    target = np.concatenate([word_audio("hgfe"), silence(0.5), word_audio("abc")])
    alone = _run(engine_factory(max_batch_size=1, endpoint_silence_s=0.3), target)
    batched_engine = engine_factory(max_batch_size=16, max_wait_s=0.05, endpoint_silence_s=0.3)
    others = [Collector() for _ in range(6)]
    streams = [batched_engine.open_stream(c) for c in others]
    with batched_engine._cond:  # all six backlogs arrive at once, however threads are scheduled
        for i, stream in enumerate(streams):
            stream.feed(torch.from_numpy(word_audio("abcdefgh"[i:] + "a")))
    inside = _run(batched_engine, target, piece=1600)
    for stream in streams:
        stream.finish()
    assert max(batched_engine.model.batch_sizes) > 1
    assert inside.finals() == alone.finals() == ["h g f e", "a b c"]
    strip = [(s.text, s.start_s, s.end_s, s.reason) for u in inside.updates for s in u.finals]
    assert strip == [(s.text, s.start_s, s.end_s, s.reason) for u in alone.updates for s in u.finals]


def test_partial_updates_only_when_text_changes_and_eof_gives_done(engine_factory):
    collector = _run(engine_factory(), word_audio("aa"))
    partials = [u.partial.text for u in collector.updates if u.partial]
    assert partials == ["a", "a a"]
    assert collector.updates[-1].done and collector.updates[-1].finals[0].reason == "eof"
    assert collector.updates[-1].consumed_samples == len(word_audio("aa"))


def test_endpoint_after_trailing_silence(engine_factory):
    engine = engine_factory(endpoint_silence_s=0.3)
    collector = _run(engine, np.concatenate([word_audio("b"), silence(0.5), word_audio("c")]))
    finals = [s for u in collector.updates for s in u.finals]
    assert [(s.text, s.reason) for s in finals] == [("b", "endpoint"), ("c", "eof")]
    assert finals[1].start_s > finals[0].end_s


def test_a_failing_forward_reports_an_error_to_the_streams_in_the_batch(engine_factory):
    model = FakeStreamingModel()
    engine = engine_factory(model)

    def explode(audio, state):
        raise RuntimeError("CUDA out of memory")

    model.stream_step = explode  # type: ignore[method-assign]
    collector = Collector()
    engine.open_stream(collector).feed(torch.zeros(1600))
    assert collector.done.wait(5)
    assert collector.updates[-1].error == "inference_failed"
    assert engine.open_streams == 0


def test_cancelled_streams_are_dropped_without_decoding(engine_factory):
    model = FakeStreamingModel()
    engine = engine_factory(model)
    stream = engine.open_stream(Collector())
    stream.cancel()
    stream.feed(torch.zeros(0))
    engine.warm_up()
    assert engine.open_streams in (0, 1)  # dropped on the worker's next pass


@pytest.mark.parametrize(
    ("streaming", "full_context", "expected"),
    [
        (True, None, "streaming"),
        (True, "growing-window", "streaming"),  # a streaming model needs neither
        (False, None, "chunked"),
        (False, "chunked", "chunked"),
        (False, "growing-window", "growing-window"),
    ],
)
def test_the_engine_picks_the_strategy_from_the_models_kind_and_the_setting(
    streaming, full_context, expected
):
    model = FakeStreamingModel()
    model.streaming = streaming
    kwargs = {} if full_context is None else {"full_context_strategy": full_context}
    assert BatchingEngine(model, torch.device("cpu"), **kwargs).strategy_name == expected


def test_an_unknown_full_context_strategy_is_refused():
    model = FakeStreamingModel()
    model.streaming = False
    with pytest.raises(ValueError, match="one of chunked, growing-window, got 'sliding'"):
        BatchingEngine(model, torch.device("cpu"), full_context_strategy="sliding")


def test_stream_decoder_numbers_segments_and_gives_eof_an_empty_final():
    decoder = CtcStreamDecoder(TOKENS, 0, 0.02)
    ids = [0, 1, 1, 0, 1, 2, 2, 0, 0]
    log_probs = torch.log_softmax(
        torch.nn.functional.one_hot(torch.tensor(ids), len(TOKENS)).float() * 20, -1
    )
    decoder.accept(log_probs)
    assert decoder.current().text == "a a b"
    assert decoder.trailing_silence_s() == pytest.approx(0.04)
    segment = decoder.finalize("endpoint")
    assert (segment.segment_id, segment.text, segment.reason) == (0, "a a b", "endpoint")
    assert (segment.start_s, segment.end_s) == (0.02, pytest.approx(0.14))
    assert segment.confidence == pytest.approx(1.0)
    assert decoder.trailing_silence_s() == 0.0  # a new segment starts with no silence behind it
    empty = decoder.finalize("eof")
    assert (empty.segment_id, empty.text, empty.reason) == (1, "", "eof")


def test_a_model_lexicon_corrects_finals_and_the_finished_words_of_partials(engine_factory):
    from asr_service.model.ctc import Lexicon

    model = FakeStreamingModel()
    object.__setattr__(model, "lexicon", Lexicon(["a", "c", "h"]))  # as load_checkpoint attaches it
    collector = _run(engine_factory(model), word_audio("bdh"))
    partials = [u.partial.text for u in collector.updates if u.partial]
    assert partials == ["b", "a d", "a a h"]  # the last word may still grow: left as heard
    assert collector.finals() == ["a a h"]  # nearest listed word, ties alphabetical
