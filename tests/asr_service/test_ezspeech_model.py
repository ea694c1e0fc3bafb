"""The EzSpeech ctc_sc architecture: exact parameter names/shapes, and the maths of its parts
checked against plain re-derivations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from asr_service.ezspeech import ARCH, EzSpeechCTC, EzSpeechHParams, FilterbankSettings
from asr_service.ezspeech.attention import (
    RelPositionMultiHeadAttention,
    relative_to_absolute,
    sinusoid_relative_embedding,
)
from asr_service.model.interface import AcousticModel, architecture_builder

DATA = Path(__file__).resolve().parents[1] / "data" / "ezspeech"
SMALL = EzSpeechHParams(d_model=256, n_layers=2, n_heads=4)


def _tokens(hparams: EzSpeechHParams) -> list[str]:
    return [f"▁t{i}" for i in range(hparams.vocab_size)] + ["<blank>"]


def _reference_layout(name: str) -> dict[str, list[int]]:
    return json.loads((DATA / name).read_text())


def _layout(hparams: EzSpeechHParams) -> dict[str, list[int]]:
    with torch.device("meta"):
        model = EzSpeechCTC(hparams, FilterbankSettings(), _tokens(hparams))
    return {key: list(value.shape) for key, value in model.state_dict().items()}


@pytest.mark.parametrize(
    ("hparams", "reference"),
    [(EzSpeechHParams(), "state_dict_keys.json"), (SMALL, "state_dict_keys_small.json")],
    ids=["ctc_sc-12-layer", "reduced-2-layer"],
)
def test_state_dict_keys_and_shapes_equal_ezspeech(hparams: EzSpeechHParams, reference: str) -> None:
    expected = _reference_layout(reference)
    actual = _layout(hparams)
    assert sorted(set(expected) - set(actual)) == []
    assert sorted(set(actual) - set(expected)) == []
    assert list(actual) == list(expected)  # same order too, so diffs against EzSpeech read alike
    assert actual == expected


def test_full_config_parameter_count() -> None:
    with torch.device("meta"):
        model = EzSpeechCTC(EzSpeechHParams(), FilterbankSettings(), _tokens(EzSpeechHParams()))
    params = sum(p.numel() for p in model.parameters())
    reference = _reference_layout("state_dict_keys.json")
    buffers = ("window", ".fb", "running_mean", "running_var", "num_batches_tracked")
    expected = sum(math.prod(shape) for key, shape in reference.items() if not key.endswith(buffers))
    assert params == expected == 78_251_009


def test_relative_to_absolute_picks_distance_i_minus_j() -> None:
    time = 5
    scores = torch.randn(2, 3, time, 2 * time - 1)
    shifted = relative_to_absolute(scores)
    for i in range(time):
        for j in range(time):
            # column c holds distance T-1-c
            column = time - 1 - (i - j)
            assert torch.equal(shifted[:, :, i, j], scores[:, :, i, column])


def test_relative_embedding_is_sinusoid_of_signed_distance() -> None:
    table = sinusoid_relative_embedding(4, 6, torch.device("cpu"))[0]
    assert table.shape == (7, 6)
    distance = 3 - 1  # row 1 holds distance +2
    assert table[1, 0].item() == pytest.approx(math.sin(distance))
    assert table[1, 1].item() == pytest.approx(math.cos(distance))
    assert table[1, 2].item() == pytest.approx(math.sin(distance / 10000 ** (2 / 6)))
    assert torch.allclose(table[3], torch.tensor([0.0, 1.0] * 3))  # distance 0


def test_attention_matches_transformer_xl_formula() -> None:
    torch.manual_seed(0)
    heads, d_model, time = 2, 8, 6
    attn = RelPositionMultiHeadAttention(heads, d_model).eval()
    x = torch.randn(1, time, d_model)
    pos = sinusoid_relative_embedding(time, d_model, torch.device("cpu"))
    with torch.no_grad():
        got = attn(x, pos, None)
        d_k = d_model // heads
        q = attn.linear_q(x)[0].view(time, heads, d_k)
        k = attn.linear_k(x)[0].view(time, heads, d_k)
        v = attn.linear_v(x)[0].view(time, heads, d_k)
        p = attn.linear_pos(pos)[0].view(2 * time - 1, heads, d_k)
        out = torch.zeros(time, heads, d_k)
        for h in range(heads):
            scores = torch.zeros(time, time)
            for i in range(time):
                for j in range(time):
                    rel = p[(time - 1) - (i - j), h]
                    scores[i, j] = (q[i, h] + attn.pos_bias_u[h]) @ k[j, h] + (
                        q[i, h] + attn.pos_bias_v[h]
                    ) @ rel
            out[:, h] = torch.softmax(scores / math.sqrt(d_k), dim=-1) @ v[:, h]
        expected = attn.linear_out(out.reshape(1, time, d_model))
    assert torch.allclose(got, expected, atol=1e-5)


def _numpy_features(audio: np.ndarray, fb: np.ndarray, s: FilterbankSettings) -> np.ndarray:
    """Independent log-mel: pre-emphasis, reflect-padded frames, symmetric Hann, |rfft|², mel,
    log, per-bin normalisation with the unbiased std."""
    x = np.concatenate([audio[:1], audio[1:] - s.preemph * audio[:-1]])
    half = s.n_fft // 2
    x = np.pad(x, (half, half), mode="reflect")
    n = np.arange(s.win_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / (s.win_length - 1))
    left = (s.n_fft - s.win_length) // 2
    full_window = np.zeros(s.n_fft)
    full_window[left : left + s.win_length] = window
    frames = 1 + (len(x) - s.n_fft) // s.hop_length
    spec = np.stack(
        [
            np.abs(np.fft.rfft(x[t * s.hop_length : t * s.hop_length + s.n_fft] * full_window)) ** 2
            for t in range(frames)
        ],
        axis=1,
    )
    logmel = np.log(fb @ spec + s.log_zero_guard_value)
    mean = logmel.mean(axis=1, keepdims=True)
    std = logmel.std(axis=1, ddof=1, keepdims=True) + 1e-5
    return (logmel - mean) / std


def test_features_match_independent_numpy_pipeline() -> None:
    settings = FilterbankSettings()
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    model = EzSpeechCTC(SMALL, settings, _tokens(SMALL))
    featurizer = model.preprocessor.featurizer
    feats, lengths = featurizer(torch.from_numpy(audio)[None], torch.tensor([audio.size]))
    expected = _numpy_features(audio.astype(np.float64), featurizer.fb[0].double().numpy(), settings)
    assert lengths.tolist() == [expected.shape[1]] == [feats.shape[-1]]
    np.testing.assert_allclose(feats[0].numpy(), expected, atol=2e-3)


def test_padded_batch_gives_each_utterance_its_own_result() -> None:
    torch.manual_seed(1)
    model = EzSpeechCTC(SMALL, FilterbankSettings(), _tokens(SMALL)).eval()
    audio = torch.randn(2, 16000) * 0.1
    audio[1, 11000:] = 0.0
    with torch.no_grad():
        batched, lengths = model.forward_full(audio, torch.tensor([16000, 11000]))
        alone, alone_lengths = model.forward_full(audio[1:, :11000], torch.tensor([11000]))
    assert lengths[1] == alone_lengths[0] == alone.shape[1]
    assert torch.allclose(batched[1, : alone.shape[1]], alone[0], atol=1e-4)


@pytest.mark.parametrize("num_samples", [100, 160, 1599, 16000, 16001, 40321])
def test_num_frames_matches_forward(num_samples: int) -> None:
    model = EzSpeechCTC(SMALL, FilterbankSettings(), _tokens(SMALL)).eval()
    with torch.no_grad():
        log_probs, lengths = model.forward_full(torch.zeros(1, num_samples), torch.tensor([num_samples]))
    assert log_probs.shape[1] == lengths[0] == model.num_frames(num_samples)
    assert torch.isfinite(log_probs).all()
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(1, log_probs.shape[1]), atol=1e-4)


def test_builder_is_registered_and_model_meets_the_engine_interface() -> None:
    hparams = SMALL.to_dict()
    model = architecture_builder(ARCH)(hparams, FilterbankSettings().to_dict(), _tokens(SMALL))
    assert isinstance(model, AcousticModel)
    assert model.streaming is False
    assert model.blank_id == SMALL.vocab_size == len(model.tokens) - 1
    assert model.frame_shift_s == pytest.approx(0.08)
    with pytest.raises(NotImplementedError, match="full-context"):
        model.stream_step(torch.zeros(1, model.chunk_samples), model.initial_state(1, torch.device("cpu")))


def test_builder_rejects_inconsistent_settings() -> None:
    with pytest.raises(ValueError, match="2049 outputs"):
        EzSpeechCTC(SMALL, FilterbankSettings(), ["a", "b"])
    with pytest.raises(ValueError, match="unknown ezspeech_ctc_sc hparams: d_modle"):
        EzSpeechHParams.from_mapping({"d_modle": 3})
    with pytest.raises(ValueError, match="not divisible"):
        EzSpeechHParams(d_model=250, n_heads=4)
