"""The streaming model: chunked decoding equals whole-utterance decoding, batches do not leak."""

from __future__ import annotations

import pytest
import torch

from asr_service.model.ctc import greedy_decode
from asr_service.model.features import LogMelSettings
from asr_service.model.interface import AcousticModel
from asr_service.model.streaming_ctc import CHAR_TOKENS, StreamingGruCtc, StreamingGruCtcConfig
from asr_service.model.transcribe import stream_log_probs, transcribe, transcribe_segments

TOLERANCE = 1e-4  # max abs log-prob difference allowed between code paths (float32 rounding)


def make_model(seed: int = 0, **overrides: int) -> StreamingGruCtc:
    torch.manual_seed(seed)
    config = StreamingGruCtcConfig(hidden=64, layers=2, **overrides)
    model = StreamingGruCtc(config, LogMelSettings(), CHAR_TOKENS).eval()
    # Untrained output is nearly uniform; sharpen the head so greedy text is not all blanks.
    with torch.no_grad():
        model.head.weight.mul_(20.0)
    return model


def stream(model: StreamingGruCtc, audios: list[torch.Tensor]) -> list[torch.Tensor]:
    """Run streams the way the engine does: pad with look-ahead zeros to whole chunks, trim."""
    longest = max(a.numel() for a in audios) + model.lookahead_samples
    total = -(-longest // model.chunk_samples) * model.chunk_samples
    batch = torch.zeros(len(audios), total)
    for row, audio in enumerate(audios):
        batch[row, : audio.numel()] = audio
    state = model.initial_state(len(audios), torch.device("cpu"))
    outputs = []
    with torch.no_grad():
        for start in range(0, total, model.chunk_samples):
            out, state = model.stream_step(batch[:, start : start + model.chunk_samples], state)
            assert out.shape[1] == model.config.chunk_frames
            outputs.append(out)
    joined = torch.cat(outputs, dim=1)
    return [joined[row, : model.num_frames(a.numel())] for row, a in enumerate(audios)]


def speechlike(seconds: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    n = int(seconds * 16000)
    t = torch.arange(n) / 16000
    tone = torch.sin(2 * torch.pi * (180 + 40 * torch.rand(1, generator=gen)) * t)
    envelope = (torch.sin(2 * torch.pi * 3 * t) > 0).float()
    return 0.3 * tone * envelope + 0.02 * torch.randn(n, generator=gen)


def test_model_implements_the_engine_interface() -> None:
    model = make_model()
    assert isinstance(model, AcousticModel)
    assert model.chunk_samples <= 0.32 * model.sample_rate
    assert model.frame_shift_s == pytest.approx(0.03)
    assert model.streaming is True


def test_state_tensors_have_batch_first() -> None:
    model = make_model()
    for tensor in model.initial_state(3, torch.device("cpu")):
        assert tensor.shape[0] == 3


@pytest.mark.parametrize("seconds", [0.05, 1.0, 2.345, 4.8])
def test_streaming_equals_whole_utterance(seconds: float) -> None:
    model = make_model()
    audio = speechlike(seconds, seed=1)
    (streamed,) = stream(model, [audio])
    with torch.no_grad():
        full, lengths = model.forward_full(audio[None], torch.tensor([audio.numel()]))
    assert int(lengths[0]) == model.num_frames(audio.numel()) == streamed.shape[0]
    assert (streamed - full[0, : lengths[0]]).abs().max().item() < TOLERANCE
    text = greedy_decode(streamed, CHAR_TOKENS, 0)
    assert text == greedy_decode(full[0], CHAR_TOKENS, 0, int(lengths[0]))
    assert text  # the sharpened random model writes something, so the comparison means something


def test_stream_alone_equals_stream_in_a_batch() -> None:
    model = make_model()
    audios = [speechlike(2.0, seed=2), speechlike(0.7, seed=3), speechlike(3.1, seed=4)]
    alone = stream(model, [audios[0]])[0]
    together = stream(model, audios)
    assert (alone - together[0]).abs().max().item() < TOLERANCE
    for audio, out in zip(audios, together, strict=True):
        assert (stream(model, [audio])[0] - out).abs().max().item() < TOLERANCE


def test_whole_utterance_batch_ignores_padding_content() -> None:
    model = make_model()
    short, long = speechlike(0.9, seed=5), speechlike(2.2, seed=6)
    batch = torch.randn(2, long.numel())  # garbage past the short one's end must not matter
    batch[0, : short.numel()] = short
    batch[1] = long
    with torch.no_grad():
        together, lengths = model.forward_full(batch, torch.tensor([short.numel(), long.numel()]))
        alone, alone_len = model.forward_full(short[None], torch.tensor([short.numel()]))
    assert int(lengths[0]) == int(alone_len[0])
    assert (together[0, : lengths[0]] - alone[0, : alone_len[0]]).abs().max().item() < TOLERANCE


def test_stream_step_rejects_wrong_chunk_size() -> None:
    model = make_model()
    with pytest.raises(ValueError, match="stream_step wants"):
        model.stream_step(torch.zeros(1, 100), model.initial_state(1, torch.device("cpu")))


def test_num_frames_counts_flush_frames() -> None:
    model = make_model()
    assert model.num_frames(0) == model.config.flush_frames
    assert model.num_frames(480 * 10 + 479) == 10 + model.config.flush_frames


def test_transcribe_helper_uses_the_streaming_path() -> None:
    model = make_model()
    audio = speechlike(1.7, seed=8)
    streamed = stream_log_probs(model, audio)
    (reference,) = stream(model, [audio])
    assert torch.equal(streamed, reference)
    segments = transcribe_segments(model, audio)
    assert (
        " ".join(s.text for s in segments)
        == transcribe(model, audio)
        == greedy_decode(streamed, CHAR_TOKENS, 0)
    )
