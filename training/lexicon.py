"""Attach the grammar's closed vocabulary to a checkpoint: ``python -m training.lexicon --model PATH``.

The demo model only ever hears words from ``training/text.py``; shipping that list lets the decoder
snap a misspelled word to the nearest real one (``asr_service.model.ctc.Lexicon``). The weights are
untouched: the file is read with the safe loader's rules and written back with the lexicon added.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from asr_service.model.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint, save_checkpoint
from training import text


def attach(path: Path) -> str:
    loaded = load_checkpoint(path)  # validates the file before we rewrite it
    raw = torch.load(path, map_location="cpu", weights_only=True)
    words = sorted(text.vocabulary())
    metadata = dict(raw.get("metadata") or {}) | {"lexicon_words": len(words)}
    return save_checkpoint(
        path,
        arch=loaded.arch,
        hparams=loaded.hparams,
        features=loaded.features,
        tokens=loaded.tokens,
        blank_id=loaded.blank_id,
        state_dict=raw["state_dict"],
        metadata=metadata,
        lexicon=words,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    args = parser.parse_args(argv)
    digest = attach(args.model)
    print(f"{args.model}: lexicon attached (sha256 {digest})")


if __name__ == "__main__":
    main()
