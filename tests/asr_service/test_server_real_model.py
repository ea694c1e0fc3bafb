"""The real model path: a checkpoint file → the default loader → streaming server.

Uses a small untrained streaming GRU-CTC checkpoint (written with the model package's own
``save_checkpoint``), loaded by the server exactly as in production (MODEL_PATH + MODEL_SHA256).
Streaming through the server must give what the whole-utterance forward gives: that only holds
if the state is carried across chunks, and if batching does not mix streams.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_service.engine import BatchingEngine
from asr_service.model.checkpoint import load_checkpoint
from asr_service.model.ctc import greedy_decode
from asr_service.server import StartupError, load_configured_model
from tests.asr_service.helpers import TEST_SETTINGS, ServerThread, speechy, write_checkpoint
from tests.asr_service.wsclient import stream_native


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("model") / "untrained.pt"
    return path, write_checkpoint(path)


def _offline_text(path: Path, audio: np.ndarray) -> str:
    loaded = load_checkpoint(path)
    with torch.inference_mode():
        log_probs, lengths = loaded.model.forward_full(
            torch.from_numpy(audio)[None], torch.tensor([audio.size])
        )
    return greedy_decode(log_probs[0], loaded.tokens, loaded.blank_id, int(lengths[0]))


def test_streaming_through_the_server_equals_the_whole_utterance_forward(checkpoint):
    path, digest = checkpoint
    settings = TEST_SETTINGS.__class__(
        **{**vars(TEST_SETTINGS), "model_path": str(path), "model_sha256": digest, "endpoint_silence_ms": 1e6}
    )
    thread = ServerThread(settings, load_configured_model).start()
    try:
        audio = speechy(2.0, seed=3)
        events, code = stream_native(thread.url, audio, frame_ms=37)
        expected = _offline_text(path, audio)
        assert code == 1000 and expected
        assert events[-1]["text"] == expected
        assert thread.server.metrics_json()["model_sha256"] == digest
    finally:
        thread.stop()


def test_a_wrong_sha256_refuses_to_start(checkpoint):
    path, _digest = checkpoint
    settings = TEST_SETTINGS.__class__(
        **{**vars(TEST_SETTINGS), "model_path": str(path), "model_sha256": "0" * 64}
    )
    with pytest.raises(StartupError, match="expected 0000"):
        ServerThread(settings, load_configured_model).start()


def test_real_model_streams_alone_and_batched_decode_the_same(checkpoint):
    path, _digest = checkpoint
    model = load_checkpoint(path).model
    audios = [speechy(1.5, seed=s) for s in range(5)]

    def run(engine: BatchingEngine, feed_all_first: bool) -> list[str]:
        results: list[list[str]] = [[] for _ in audios]
        done = [threading.Event() for _ in audios]

        def deliver_for(i):
            def deliver(update):
                results[i].extend(s.text for s in update.finals)
                if update.done:
                    done[i].set()

            return deliver

        streams = [engine.open_stream(deliver_for(i)) for i in range(len(audios))]
        for i, (stream, audio) in enumerate(zip(streams, audios, strict=True)):
            stream.feed(torch.from_numpy(audio))
            stream.finish()
            if not feed_all_first:
                assert done[i].wait(20)
        for event in done:
            assert event.wait(20)
        return [" ".join(r) for r in results]

    alone = BatchingEngine(model, torch.device("cpu"), max_batch_size=1, endpoint_silence_s=1e6)
    together = BatchingEngine(
        model, torch.device("cpu"), max_batch_size=8, max_wait_s=0.05, endpoint_silence_s=1e6
    )
    alone.start()
    together.start()
    try:
        alone_texts = run(alone, feed_all_first=False)
        batched_texts = run(together, feed_all_first=True)
    finally:
        alone.stop()
        together.stop()
    assert all(alone_texts)
    assert batched_texts == alone_texts
    assert together.batches_run < alone.batches_run  # the second run really shared forwards
