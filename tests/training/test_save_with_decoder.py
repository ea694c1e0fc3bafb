"""Attaching a word decoder rewrites the checkpoint with the same weights and the new decoder."""

from __future__ import annotations

from pathlib import Path

import torch

from asr_service.model.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint
from asr_service.model.lexicon_beam import BeamSettings
from training.lexicon import save_with_decoder


def test_save_with_decoder_keeps_the_weights_and_stores_the_new_lexicon(tmp_path: Path) -> None:
    raw = torch.load(DEFAULT_MODEL_PATH, map_location="cpu", weights_only=True)
    loaded = load_checkpoint(DEFAULT_MODEL_PATH)
    out = tmp_path / "with-decoder.pt"
    words = ["hello", "world", "the"]
    digest = save_with_decoder(
        out,
        loaded,
        raw,
        metadata={"note": "test"},
        lexicon=words,
        decoder_settings=BeamSettings(lm_weight=0.5),
        lexicon_correction=False,
    )
    again = torch.load(out, map_location="cpu", weights_only=True)
    assert len(digest) == 64
    assert again["lexicon"] == sorted(words)
    assert again["tokens"] == raw["tokens"]
    assert again["metadata"]["note"] == "test"
    for name, tensor in raw["state_dict"].items():
        assert torch.equal(again["state_dict"][name], tensor), name
