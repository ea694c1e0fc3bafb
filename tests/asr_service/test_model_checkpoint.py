"""The checkpoint format: round trip, and refusal of wrong, truncated or hostile files."""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from asr_service.model.checkpoint import (
    DEFAULT_MODEL_PATH,
    FORMAT_TAG,
    FORMAT_VERSION,
    CheckpointError,
    CheckpointFormatError,
    CheckpointModelError,
    UnreadableCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from asr_service.model.features import LogMelSettings
from asr_service.model.interface import AcousticModel
from asr_service.model.streaming_ctc import (
    ARCH_NAME,
    CHAR_TOKENS,
)
from tests.asr_service.helpers import SMALL_CONFIG, payload, small_model, to_bytes


def test_round_trip_gives_the_same_model(tmp_path: Path) -> None:
    model = small_model().eval()
    path = tmp_path / "m.pt"
    digest = save_checkpoint(
        path,
        arch=ARCH_NAME,
        hparams=SMALL_CONFIG.to_dict(),
        features=LogMelSettings().to_dict(),
        tokens=CHAR_TOKENS,
        blank_id=0,
        state_dict=model.state_dict(),
        metadata={"steps": 12},
    )
    # The file is plain data: the strictest torch loader reads it.
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT_TAG and raw["version"] == FORMAT_VERSION
    loaded = load_checkpoint(path)
    assert loaded.sha256 == digest
    assert loaded.metadata["steps"] == 12 and "created_at" in loaded.metadata
    assert loaded.tokens == CHAR_TOKENS and loaded.blank_id == 0
    assert isinstance(loaded.model, AcousticModel)
    assert not loaded.module.training
    audio = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        expected, _ = model.forward_full(audio, torch.tensor([8000]))
        got, _ = loaded.model.forward_full(audio, torch.tensor([8000]))
    assert torch.equal(expected, got)
    assert load_checkpoint(path.read_bytes()).sha256 == digest


def expect_refusal(data: bytes, error: type[CheckpointError], match: str) -> None:
    with pytest.raises(error, match=match):
        load_checkpoint(data)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": "something-else"}, "format tag"),
        ({"version": 99}, "format version 99"),
        ({"tokens": "abc"}, "'tokens' has type"),
        ({"blank_id": 400}, "blank_id 400"),
    ],
)
def test_bad_header_is_refused(change: dict[str, Any], match: str) -> None:
    expect_refusal(to_bytes(payload() | change), CheckpointFormatError, match)


@pytest.mark.parametrize("key", ["arch", "hparams", "state_dict", "tokens"])
def test_missing_key_is_refused(key: str) -> None:
    data = payload()
    del data[key]
    expect_refusal(to_bytes(data), CheckpointFormatError, f"missing keys: {key}")


def test_not_a_dict_is_refused() -> None:
    expect_refusal(to_bytes([1, 2, 3]), CheckpointFormatError, "expected a dict")


def test_unknown_architecture_is_refused() -> None:
    expect_refusal(to_bytes(payload() | {"arch": "no-such-net"}), CheckpointModelError, "no-such-net")


def test_bad_hparams_are_refused() -> None:
    data = payload()
    data["hparams"] = SMALL_CONFIG.to_dict() | {"heads": 4}
    expect_refusal(to_bytes(data), CheckpointModelError, "unknown hparams")


def test_tensor_shape_mismatch_is_refused() -> None:
    data = payload()
    data["state_dict"]["head.weight"] = torch.zeros(5, 5)
    expect_refusal(to_bytes(data), CheckpointModelError, r"'head.weight' has shape \(5, 5\)")


def test_missing_and_unexpected_tensors_are_refused() -> None:
    data = payload()
    del data["state_dict"]["head.bias"]
    expect_refusal(to_bytes(data), CheckpointModelError, "missing 1 tensors")
    data = payload()
    data["state_dict"]["extra.weight"] = torch.zeros(1)
    expect_refusal(to_bytes(data), CheckpointModelError, "unexpected 1 tensors")


def test_nan_weights_are_refused() -> None:
    data = payload()
    data["state_dict"]["head.bias"] = torch.full_like(data["state_dict"]["head.bias"], float("nan"))
    expect_refusal(to_bytes(data), CheckpointModelError, "NaN")


def test_truncated_file_is_refused() -> None:
    data = to_bytes(payload())
    expect_refusal(data[: len(data) // 2], UnreadableCheckpointError, "truncated or corrupt")


@pytest.mark.parametrize("data", [b"", b"hello, I am not a model", random.Random(0).randbytes(4096)])
def test_garbage_is_refused(data: bytes) -> None:
    # Random bytes may look like an unsupported pickle opcode (unsafe) or like nothing (unreadable).
    with pytest.raises((UnreadableCheckpointError, UnsafeCheckpointError), match="checkpoint bytes"):
        load_checkpoint(data)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnreadableCheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "nope.pt")


class Exploit:
    """Unpickling this would create the marker file (it never must)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    raw_pickle = pickle.dumps(Exploit(marker))
    inside_torch_file = to_bytes(payload() | {"metadata": {"x": Exploit(marker)}})
    for data in (raw_pickle, inside_torch_file):
        with pytest.raises(UnsafeCheckpointError, match="nothing was executed"):
            load_checkpoint(data)
        assert not marker.exists()
    # The exploit is real: the ordinary unpickler does create the file.
    pickle.loads(raw_pickle)  # noqa: S301
    assert marker.exists()


def test_default_model_path_is_inside_the_package() -> None:
    assert DEFAULT_MODEL_PATH.name == "demo.pt"
    assert DEFAULT_MODEL_PATH.parent.parent.parent.name == "asr_service"


def test_lexicon_travels_with_the_checkpoint(tmp_path: Path) -> None:
    model = small_model()
    path = tmp_path / "lex.pt"
    save_checkpoint(
        path,
        arch=ARCH_NAME,
        hparams=SMALL_CONFIG.to_dict(),
        features=LogMelSettings().to_dict(),
        tokens=CHAR_TOKENS,
        blank_id=0,
        state_dict=model.state_dict(),
        lexicon=["zebra", "apple", "apple"],
    )
    loaded = load_checkpoint(path)
    assert loaded.lexicon is not None and loaded.lexicon.words == {"apple", "zebra"}
    assert loaded.module.lexicon is loaded.lexicon
    assert load_checkpoint(to_bytes(payload())).lexicon is None
    expect_refusal(to_bytes(payload() | {"lexicon": [1, 2]}), CheckpointFormatError, "'lexicon'")
