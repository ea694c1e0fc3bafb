"""``python -m ezspeech_convert``: EzSpeech files (exact key layout, random weights) into the
safe checkpoint format, and the errors a wrong file gets."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from asr_client.transcribe import read_audio
from asr_service.ezspeech import ARCH, EzSpeechCTC, EzSpeechHParams, FilterbankSettings
from asr_service.model.checkpoint import load_checkpoint
from asr_service.model.ctc import collapse, tokens_to_text
from ezspeech_convert.convert import ConversionError, convert, main
from ezspeech_convert.source import PickledObject, load_source
from tests.asr_service import ezspeech_fakes as fakes


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ezspeech")
    return {
        "tokenizer": fakes.train_tokenizer(root / "bpe.model"),
        "wav": fakes.write_wav(root / "clip.wav", 2.5),
        "root": root,
    }


def _convert(tmp_path: Path, files: dict[str, Path], source: Path, **kwargs: bool) -> Path:
    out = tmp_path / "converted.pt"
    convert(source, files["tokenizer"], out, allow_pickle=kwargs.get("allow_pickle", True))
    return out


def test_lightning_checkpoint_converts_loads_and_transcribes(tmp_path: Path, files: dict[str, Path]) -> None:
    state = fakes.random_state_dict(fakes.layout(), seed=3)
    exact = json.loads((fakes.DATA / "state_dict_keys_small.json").read_text())
    assert {key: list(tensor.shape) for key, tensor in state.items()} == exact  # EzSpeech's own layout
    source = fakes.write_lightning_ckpt(tmp_path / "last.ckpt", state)
    out = _convert(tmp_path, files, source)

    loaded = load_checkpoint(out)  # weights_only=True inside: nothing pickled survives conversion
    assert loaded.arch == ARCH
    pieces = fakes.sentencepiece_pieces(files["tokenizer"])
    assert loaded.tokens == [*pieces, "<blank>"]
    assert loaded.blank_id == len(pieces) == fakes.TEST_VOCAB
    assert (
        loaded.hparams
        == EzSpeechHParams(vocab_size=fakes.TEST_VOCAB, d_model=256, n_layers=2, n_heads=4).to_dict()
    )
    for key, tensor in state.items():
        assert torch.equal(loaded.module.state_dict()[key], tensor), key

    # Same numbers as the architecture filled directly with the source weights.
    reference = EzSpeechCTC(
        EzSpeechHParams.from_mapping(loaded.hparams), FilterbankSettings(), loaded.tokens
    ).eval()
    reference.load_state_dict(state)
    audio = read_audio(files["wav"], 16000)
    with torch.no_grad():
        log_probs, lengths = loaded.model.forward_full(audio[None], torch.tensor([audio.numel()]))
        expected, _ = reference.forward_full(audio[None], torch.tensor([audio.numel()]))
    assert torch.allclose(log_probs, expected, atol=1e-5)

    ids = collapse(log_probs[0, : lengths[0]].argmax(-1).tolist(), loaded.blank_id)
    assert all(0 <= i < loaded.blank_id for i in ids)  # only real pieces, never the blank
    text = tokens_to_text(ids, loaded.tokens)
    assert set(text.replace(" ", "")) <= set("".join(pieces).replace("▁", ""))


def test_slim_export_gives_the_same_checkpoint_as_the_lightning_file(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    state = fakes.random_state_dict(fakes.layout(), seed=4)
    lightning = load_checkpoint(
        _convert(tmp_path / "a", files, fakes.write_lightning_ckpt(tmp_path / "l.ckpt", state))
    )
    slim = load_checkpoint(
        _convert(tmp_path / "b", files, fakes.write_slim_export(tmp_path / "s.ckpt", state))
    )
    assert slim.metadata["source_layout"] == "slim" and lightning.metadata["source_layout"] == "lightning"
    assert slim.hparams == lightning.hparams and slim.features == lightning.features
    for key, tensor in lightning.module.state_dict().items():
        assert torch.equal(slim.module.state_dict()[key], tensor), key


def test_pickled_input_is_refused_without_opt_in(tmp_path: Path, files: dict[str, Path], capsys) -> None:
    source = fakes.write_lightning_ckpt(tmp_path / "last.ckpt")
    out = tmp_path / "out.pt"
    code = main([str(source), "--tokenizer", str(files["tokenizer"]), "--out", str(out)])
    assert code == 2
    assert "--allow-pickle" in capsys.readouterr().err
    assert not out.exists()


def test_bare_state_dict_needs_no_opt_in(tmp_path: Path, files: dict[str, Path], capsys) -> None:
    source = tmp_path / "weights.pt"
    torch.save(fakes.random_state_dict(fakes.layout()), source)
    out = tmp_path / "out.pt"
    assert main([str(source), "--tokenizer", str(files["tokenizer"]), "--out", str(out)]) == 0
    assert "ezspeech_ctc_sc" in capsys.readouterr().out
    assert load_checkpoint(out).metadata["source_layout"] == "state_dict"


class _Exploit:
    """Pickles as "call os.system": what a hostile checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_opt_in_reading_never_runs_pickled_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    source = tmp_path / "hostile.ckpt"
    torch.save(
        {"state_dict": fakes.random_state_dict(fakes.layout()), "hyper_parameters": _Exploit(marker)}, source
    )
    loaded = load_source(source, allow_pickle=True)
    assert not marker.exists()
    assert loaded.model_config is None and loaded.layout == "lightning"
    with source.open("rb") as f:  # the same bytes really do run code under a plain unpickler
        assert b"system" in f.read()
    raw = torch.load(source, weights_only=False, pickle_module=_inert_module())
    assert isinstance(raw["hyper_parameters"], PickledObject)
    assert raw["hyper_parameters"].pickled_name.endswith(".system")


def _inert_module() -> object:
    from ezspeech_convert import source

    return source._INERT_PICKLE


def test_missing_key_error_names_the_key(tmp_path: Path, files: dict[str, Path]) -> None:
    state = fakes.random_state_dict(fakes.layout())
    del state["encoder.layers.1.conv.batch_norm.running_var"]
    source = fakes.write_lightning_ckpt(tmp_path / "last.ckpt", state)
    with pytest.raises(
        ConversionError, match=r"missing key 'encoder\.layers\.1\.conv\.batch_norm\.running_var'"
    ):
        _convert(tmp_path, files, source)


def test_shape_mismatch_error_names_the_key_and_both_shapes(tmp_path: Path, files: dict[str, Path]) -> None:
    state = fakes.random_state_dict(fakes.layout())
    state["encoder.layers.1.self_attn.linear_q.weight"] = torch.zeros(256, 128)
    source = fakes.write_lightning_ckpt(tmp_path / "last.ckpt", state)
    with pytest.raises(ConversionError) as error:
        _convert(tmp_path, files, source)
    message = str(error.value)
    assert "'encoder.layers.1.self_attn.linear_q.weight'" in message
    assert "[256, 128]" in message and "[256, 256]" in message


def test_config_that_contradicts_the_weights_is_refused(tmp_path: Path, files: dict[str, Path]) -> None:
    source = fakes.write_lightning_ckpt(tmp_path / "last.ckpt", config=fakes.ctc_sc_config(n_heads=8))
    with pytest.raises(ConversionError, match=r"encoder\.n_heads=8 but the weights have 4"):
        _convert(tmp_path, files, source)


def test_streaming_attention_config_is_refused(tmp_path: Path, files: dict[str, Path]) -> None:
    source = fakes.write_lightning_ckpt(
        tmp_path / "last.ckpt", config=fakes.ctc_sc_config(att_context_size=[70, 13])
    )
    with pytest.raises(ConversionError, match="limited attention context"):
        _convert(tmp_path, files, source)


def test_wrong_tokenizer_is_refused(tmp_path: Path, files: dict[str, Path]) -> None:
    small = fakes.train_tokenizer(tmp_path / "small.model", vocab_size=48)
    source = fakes.write_lightning_ckpt(tmp_path / "last.ckpt")
    with pytest.raises(ConversionError, match="48 pieces but the CTC head has 2049 outputs"):
        convert(source, small, tmp_path / "out.pt", allow_pickle=True)


def test_training_only_heads_are_left_out_and_recorded(tmp_path: Path, files: dict[str, Path]) -> None:
    state = fakes.random_state_dict(fakes.layout())
    state["ctc_decoder_phoneme.decoder_layers.0.weight"] = torch.zeros(65, 256, 1)
    state["back_projector_sc.linear.weight"] = torch.zeros(256, 64)
    out = _convert(tmp_path, files, fakes.write_lightning_ckpt(tmp_path / "last.ckpt", state))
    loaded = load_checkpoint(out)
    assert "ctc_decoder_phoneme.decoder_layers.0.weight" in loaded.metadata["ignored_keys"]
    assert not any(k.startswith("back_projector") for k in loaded.module.state_dict())


def test_not_a_checkpoint_gets_a_clear_error(tmp_path: Path, files: dict[str, Path]) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(pickle.dumps([1, 2, 3]) + b"garbage")
    with pytest.raises(
        ConversionError, match=r"not a readable PyTorch checkpoint|expected a checkpoint dict"
    ):
        _convert(tmp_path, files, junk)


def test_xscaling_follows_the_config_and_its_code_default(tmp_path: Path, files: dict[str, Path]) -> None:
    config = fakes.ctc_sc_config()
    del config["encoder"]["xscaling"]  # EzSpeech's encoder then scales by sqrt(d_model)
    out = _convert(tmp_path, files, fakes.write_lightning_ckpt(tmp_path / "last.ckpt", config=config))
    assert load_checkpoint(out).hparams["xscaling"] is True
    out = _convert(tmp_path / "b", files, fakes.write_lightning_ckpt(tmp_path / "b.ckpt"))
    assert load_checkpoint(out).hparams["xscaling"] is False  # ctc_sc: xscaling: false


def test_weights_that_do_not_compute_leave_no_output(tmp_path: Path, files: dict[str, Path]) -> None:
    state = fakes.random_state_dict(fakes.layout())
    state["encoder.layers.0.norm_out.weight"][3] = float("nan")
    source = fakes.write_lightning_ckpt(tmp_path / "last.ckpt", state)
    out = tmp_path / "out.pt"
    with pytest.raises(ConversionError, match=r"does not work, removed it: .*norm_out\.weight"):
        convert(source, files["tokenizer"], out, allow_pickle=True)
    assert not out.exists()
