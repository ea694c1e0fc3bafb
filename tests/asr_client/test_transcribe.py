"""``python -m asr_client.transcribe``: whole-file greedy CTC with any supported checkpoint."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr_client.transcribe import main, read_audio
from asr_service.model.checkpoint import DEFAULT_MODEL_PATH, LoadedModel, load_checkpoint, save_checkpoint
from asr_service.model.ctc import greedy_decode
from asr_service.model.streaming_ctc import ARCH_NAME, StreamingGruCtcConfig
from ezspeech_convert.convert import convert
from tests.asr_service import ezspeech_fakes as fakes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ezspeech_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("transcribe")
    source = fakes.write_lightning_ckpt(root / "last.ckpt", fakes.random_state_dict(fakes.layout(), seed=11))
    out = root / "ezspeech.pt"
    convert(source, fakes.train_tokenizer(root / "bpe.model"), out, allow_pickle=True)
    return out


@pytest.fixture(scope="module")
def streaming_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight checkpoint of the shipped streaming architecture."""
    from asr_service.model.interface import architecture_builder

    tokens = ["<blank>", "▁", *"abcdefghijklmnopqrstuvwxyz'"]
    hparams = StreamingGruCtcConfig(hidden=32, layers=1).to_dict()
    features: dict[str, object] = {}
    torch.manual_seed(5)
    model = architecture_builder(ARCH_NAME)(hparams, features, tokens)
    out = tmp_path_factory.mktemp("streaming") / "gru.pt"
    save_checkpoint(
        out,
        arch=ARCH_NAME,
        hparams=hparams,
        features=model.feature_settings.to_dict(),  # type: ignore[union-attr, operator]
        tokens=tokens,
        blank_id=0,
        state_dict=model.state_dict(),
    )
    return out


@functools.cache
def _loaded(model_path: Path) -> LoadedModel:
    return load_checkpoint(model_path)


def _expected(model_path: Path, wav: Path) -> str:
    loaded = _loaded(model_path)
    audio = read_audio(wav, int(loaded.model.sample_rate))
    with torch.no_grad():
        log_probs, lengths = loaded.model.forward_full(audio[None], torch.tensor([audio.numel()]))
    return greedy_decode(log_probs[0], loaded.tokens, loaded.blank_id, int(lengths[0]))


def test_prints_one_tab_separated_line_per_file_in_order(
    tmp_path: Path, ezspeech_model: Path, capsys
) -> None:
    first = fakes.write_wav(tmp_path / "first.wav", 2.0, seed=1)
    second = fakes.write_wav(tmp_path / "second.wav", 1.2, seed=2)
    assert main(["--model", str(ezspeech_model), str(first), str(second)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{first}\t{_expected(ezspeech_model, first)}",
        f"{second}\t{_expected(ezspeech_model, second)}",
    ]


def test_other_rates_and_stereo_are_mixed_and_resampled(tmp_path: Path) -> None:
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), 0.5 * np.sin(2 * np.pi * 300 * t)], axis=1) * 0.2
    path = tmp_path / "stereo8k.flac"
    sf.write(path, stereo, 8000)
    audio = read_audio(path, 16000)
    assert audio.shape == (16000,)
    assert float(audio.abs().max()) == pytest.approx(0.15, abs=0.02)  # mean of the two channels


def test_unreadable_file_is_reported_and_the_rest_still_done(
    tmp_path: Path, ezspeech_model: Path, capsys
) -> None:
    good = fakes.write_wav(tmp_path / "good.wav", 1.0)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    code = main(["--model", str(ezspeech_model), str(bad), str(good)])
    captured = capsys.readouterr()
    assert code == 1
    assert f"{bad}: cannot read audio" in captured.err
    assert captured.out.splitlines() == [f"{good}\t{_expected(ezspeech_model, good)}"]


def test_too_long_file_is_refused_not_truncated(tmp_path: Path, ezspeech_model: Path, capsys) -> None:
    wav = fakes.write_wav(tmp_path / "long.wav", 3.0)
    assert main(["--model", str(ezspeech_model), "--max-seconds", "2", str(wav)]) == 1
    assert "longer than --max-seconds=2" in capsys.readouterr().err


def test_bad_checkpoint_exits_2_with_the_loader_message(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["--model", str(junk), str(fakes.write_wav(tmp_path / "a.wav", 0.5))]) == 2
    assert "junk.pt" in capsys.readouterr().err


def test_streaming_architecture_transcribes_too(tmp_path: Path, streaming_model: Path, capsys) -> None:
    wav = fakes.write_wav(tmp_path / "a.wav", 1.5)
    assert main(["--model", str(streaming_model), str(wav)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{wav}\t{_expected(streaming_model, wav)}"]


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="the shipped demo model is not built yet")
def test_command_line_with_the_shipped_demo_model(tmp_path: Path) -> None:
    wav = fakes.write_wav(tmp_path / "a.wav", 1.0)
    result = subprocess.run(
        [sys.executable, "-m", "asr_client.transcribe", str(wav)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    path, _tab, _text = result.stdout.rstrip("\n").partition("\t")
    assert path == str(wav) and _tab == "\t"
