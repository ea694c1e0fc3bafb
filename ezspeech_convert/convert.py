"""Convert an EzSpeech checkpoint into this project's safe checkpoint format.

    python -m ezspeech_convert last.ckpt --tokenizer bpe.model --out model.pt --allow-pickle

Reads a PyTorch Lightning ``.ckpt`` or an EzSpeech slim export of the ``ctc_sc`` CTC Conformer,
checks every weight against the architecture (names and shapes), embeds the SentencePiece
tokenizer's pieces (blank appended last, where the model's CTC head puts it) and writes one file
that ``torch.load(weights_only=True)`` can read. The input needs ``--allow-pickle`` because
EzSpeech stores its config as pickled objects; the output never does, and the server only ever
reads outputs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from asr_service.ezspeech.model import ARCH, BLANK_TOKEN
from asr_service.model_fetch import sha256_file
from ezspeech_convert.layout import Layout, LayoutError, resolve
from ezspeech_convert.source import EzSpeechSource, SourceError, load_source

if TYPE_CHECKING:
    from asr_service.model.checkpoint import LoadedModel


class ConversionError(ValueError):
    """Anything that stops a conversion; the message is meant for the person running it."""


@dataclass(frozen=True)
class ConversionReport:
    output: Path
    sha256: str
    layout: str
    parameters: int
    vocab_size: int
    ignored_keys: list[str]
    notes: list[str]


def read_tokenizer(path: Path) -> list[str]:
    """The pieces of a SentencePiece model, in id order."""
    import sentencepiece

    if not path.is_file():
        raise ConversionError(f"{path}: no such tokenizer file")
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.Load(str(path))
    except (OSError, RuntimeError) as exc:
        raise ConversionError(f"{path}: not a SentencePiece model ({exc})") from exc
    return [processor.IdToPiece(i) for i in range(processor.GetPieceSize())]


def _verify(output: Path) -> LoadedModel:
    """Read the result back the way the server will, and run one second of audio through it."""
    from asr_service.model.checkpoint import CheckpointError, load_checkpoint

    try:
        loaded = load_checkpoint(output)
        rate = int(loaded.model.sample_rate)
        with torch.inference_mode():
            log_probs, _ = loaded.model.forward_full(torch.zeros(1, rate), torch.tensor([rate]))
        if not bool(torch.isfinite(log_probs).all()):
            raise ConversionError("the converted model produces NaN/inf on silence")
    except (CheckpointError, ConversionError) as exc:
        output.unlink(missing_ok=True)
        raise ConversionError(f"the converted checkpoint does not work, removed it: {exc}") from exc
    return loaded


def convert(checkpoint: Path, tokenizer: Path, output: Path, *, allow_pickle: bool) -> ConversionReport:
    from asr_service.model.checkpoint import save_checkpoint

    try:
        source: EzSpeechSource = load_source(checkpoint, allow_pickle=allow_pickle)
        layout: Layout = resolve(source.state_dict, source.model_config)
    except (SourceError, LayoutError) as exc:
        raise ConversionError(str(exc)) from exc
    except ValueError as exc:  # hparams/feature settings that the architecture rejects
        raise ConversionError(f"{checkpoint}: {exc}") from exc

    pieces = read_tokenizer(tokenizer)
    if len(pieces) != layout.hparams.vocab_size:
        raise ConversionError(
            f"the tokenizer has {len(pieces)} pieces but the CTC head has {layout.hparams.vocab_size + 1} "
            f"outputs ({layout.hparams.vocab_size} pieces + blank): wrong tokenizer for this model?"
        )
    if BLANK_TOKEN in pieces:
        raise ConversionError(
            f"the tokenizer already has a piece {BLANK_TOKEN!r}; the blank must be separate"
        )

    output.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        output,
        arch=ARCH,
        hparams=layout.hparams.to_dict(),
        features=layout.features.to_dict(),
        tokens=[*pieces, BLANK_TOKEN],
        blank_id=layout.hparams.vocab_size,
        state_dict=layout.state_dict,
        metadata={
            "converted_from": checkpoint.name,
            "source_sha256": sha256_file(checkpoint),
            "source_layout": source.layout,
            "tokenizer": tokenizer.name,
            "ignored_keys": ",".join(layout.ignored_keys),
        },
    )
    loaded = _verify(output)
    return ConversionReport(
        output=output,
        sha256=loaded.sha256,
        layout=source.layout,
        parameters=loaded.num_parameters,
        vocab_size=layout.hparams.vocab_size,
        ignored_keys=layout.ignored_keys,
        notes=source.notes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ezspeech_convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="EzSpeech Lightning .ckpt or slim export")
    parser.add_argument(
        "--tokenizer", type=Path, required=True, help="SentencePiece .model of that checkpoint"
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the converted checkpoint")
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read pickled objects in the input (needed for EzSpeech files; no pickled code is run)",
    )
    args = parser.parse_args(argv)
    try:
        report = convert(args.checkpoint, args.tokenizer, args.out, allow_pickle=args.allow_pickle)
    except ConversionError as exc:
        print(f"convert: {exc}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.ignored_keys:
        sample = ", ".join(report.ignored_keys[:3])
        print(
            f"note: ignored {len(report.ignored_keys)} keys of training-only modules ({sample}, ...)",
            file=sys.stderr,
        )
    print(
        f"wrote {report.output} ({ARCH}, {report.parameters:,} parameters, "
        f"{report.vocab_size} pieces + blank, from a {report.layout} checkpoint) sha256={report.sha256}"
    )
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    raise SystemExit(main())
