"""The small trained model in EzSpeech's ctc_sc layout (``make ezspeech-small-model``): the
full-context path recognizes speech, through the real server, with either strategy; and chunked
decoding gives the tokens whole-utterance decoding gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from asr_client.transcribe import read_audio
from asr_service.decoding.chunked import ChunkedStrategy
from asr_service.decoding.strategy import StepItem
from asr_service.ezspeech import EzSpeechCTC, EzSpeechHParams, FilterbankSettings
from asr_service.model.checkpoint import load_checkpoint
from asr_service.model.ctc import collapse, greedy_decode, tokens_to_text
from asr_service.model.wer import error_rates
from asr_service.server import StartupError, load_configured_model
from tests.asr_service.helpers import http_get
from tests.asr_service.wsclient import stream_native

REPO = Path(__file__).resolve().parents[2]
SMALL_MODEL = REPO / "asr_service" / "model_files" / "ezspeech-small" / "ctc_sc_small.pt"
CLIPS = REPO / "tests" / "data" / "clips"
TRANSCRIPTS: dict[str, str] = json.loads((CLIPS / "transcripts.json").read_text())
RATE = 16000
#: Served character error rate over the five demo clips (held-out sentences, voices fixed before
#: training). The small model has a 40-minute budget and is still weak (train-summary.json beside
#: it: greedy CER 0.45 on held-out sentences; served 0.47 chunked, 0.48 growing-window on these
#: clips), so the bound is on characters: it holds for the trained weights and fails for random
#: weights of the same architecture (the test after this one; seeds 0-2 give 0.95-1.6).
MAX_CER = 0.60


@pytest.fixture(scope="module")
def small():
    return load_checkpoint(SMALL_MODEL)


def _clip(name: str) -> torch.Tensor:
    return read_audio(CLIPS / name, RATE)


@pytest.mark.parametrize("strategy", ["chunked", "growing-window"])
def test_the_trained_model_recognizes_the_demo_clips_through_the_server(start_server, strategy) -> None:
    server = start_server(
        load_configured_model,
        model_path=str(SMALL_MODEL),
        endpoint_silence_ms=600.0,
        full_context_strategy=strategy,
    )
    refs, hyps = [], []
    for name, transcript in sorted(TRANSCRIPTS.items()):
        events, code = stream_native(server.url, _clip(name).numpy(), frame_ms=40)
        assert code == 1000
        assert any(e["type"] == "partial" for e in events)
        refs.append(transcript)
        hyps.append(" ".join(e["text"] for e in events if e["type"] == "final" and e["text"]))
    _wer, cer = error_rates(refs, hyps)
    assert cer <= MAX_CER, list(zip(refs, hyps, strict=True))
    status, _headers, body = http_get(server.health_port, "/metrics")
    assert status == 200 and json.loads(body)["decode_strategy"] == strategy


def test_half_precision_serves_the_trained_model_as_well_and_says_so(start_server) -> None:
    """MODEL_DTYPE=bfloat16 (the half format a CPU runs): the same bound on the demo clips, and
    ``/metrics`` names the format. (float16 on a CPU is slow; bench/ezspeech_precision.py measures
    both formats' token changes on a GPU.)"""
    server = start_server(load_configured_model, model_path=str(SMALL_MODEL), model_dtype="bfloat16")
    refs, hyps = [], []
    for name, transcript in sorted(TRANSCRIPTS.items()):
        events, code = stream_native(server.url, _clip(name).numpy(), frame_ms=40)
        assert code == 1000
        refs.append(transcript)
        hyps.append(" ".join(e["text"] for e in events if e["type"] == "final" and e["text"]))
    assert error_rates(refs, hyps)[1] <= MAX_CER, list(zip(refs, hyps, strict=True))
    assert server.server.engine.model.encoder.pre_encode.out.weight.dtype == torch.bfloat16
    status, _headers, body = http_get(server.health_port, "/metrics")
    assert status == 200 and json.loads(body)["model_dtype"] == "bfloat16"


def test_half_precision_is_refused_for_a_model_that_computes_in_float32_only(start_server) -> None:
    with pytest.raises(StartupError, match=r"MODEL_DTYPE=float16: the [\w-]+ model computes in float32 only"):
        start_server(load_configured_model, model_dtype="float16")  # the demo model


def test_the_same_architecture_with_random_weights_fails_that_bound(small) -> None:
    torch.manual_seed(0)
    hparams = EzSpeechHParams.from_mapping(small.hparams)
    random_model = EzSpeechCTC(hparams, FilterbankSettings.from_mapping(small.features), small.tokens).eval()
    refs, hyps = [], []
    for name, transcript in sorted(TRANSCRIPTS.items()):
        audio = _clip(name)
        with torch.inference_mode():
            log_probs, lengths = random_model.forward_full(audio[None], torch.tensor([audio.numel()]))
        refs.append(transcript)
        hyps.append(greedy_decode(log_probs[0], random_model.tokens, random_model.blank_id, int(lengths[0])))
    assert error_rates(refs, hyps)[1] > MAX_CER


def _chunked_ids(strategy: ChunkedStrategy, audio: torch.Tensor, chunk: int) -> list[int]:
    decoder = strategy.new_decoder()
    ids: list[int] = []
    for offset in range(0, audio.numel(), chunk):
        piece = audio[offset : offset + chunk]
        last = offset + chunk >= audio.numel()
        padded = torch.nn.functional.pad(piece, (0, chunk - piece.numel()))
        strategy.step([StepItem(decoder, padded, None, piece.numel(), last)])
        assert decoder.buffered_samples <= strategy.settings.window_s * RATE + chunk
    ids += [token for token, _frame, _p in decoder._segment_tokens]
    return ids


def test_chunked_decoding_across_windows_is_as_accurate_as_whole_utterance_decoding(small) -> None:
    # The two-sentence clip (6.4 s) spans several chunked windows (shorter clips fit one window and
    # get a whole-utterance final by design). That the merge neither splits nor repeats a piece is
    # checked exactly in test_chunked_decoding.py; with a trained model the question is whether
    # cutting the context into windows costs accuracy. This weak model does not agree with itself
    # piece for piece (it hears a different word when a window cuts its context: 4 of 11 pieces
    # differ), so the check is on the transcript against the reference.
    model = small.model
    audio = _clip("clip5_two_sentences.wav")
    reference = TRANSCRIPTS["clip5_two_sentences.wav"]
    with torch.inference_mode():
        log_probs, lengths = model.forward_full(audio[None], torch.tensor([audio.numel()]))
    whole = collapse(log_probs[0, : int(lengths[0])].argmax(-1).tolist(), model.blank_id)
    strategy = ChunkedStrategy(model, torch.device("cpu"))
    chunked = _chunked_ids(strategy, audio, int(model.chunk_samples))
    assert strategy.decodes >= 3  # several windows, merged
    whole_cer = error_rates([reference], [tokens_to_text(whole, model.tokens)])[1]
    chunked_cer = error_rates([reference], [tokens_to_text(chunked, model.tokens)])[1]
    assert chunked_cer <= whole_cer + 0.05, (
        tokens_to_text(whole, model.tokens),
        tokens_to_text(chunked, model.tokens),
    )
