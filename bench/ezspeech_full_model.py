"""EzSpeech's full-size ctc_sc with random weights, saved as EzSpeech saves a trained one.

    python -m bench.ezspeech_full_model --out-dir build/ezspeech-full
    make convert-ezspeech CKPT=build/ezspeech-full/last.ckpt \\
        TOKENIZER=build/ezspeech-full/tokenizer.model OUT=build/ezspeech-full/ctc_sc_full.pt ALLOW_PICKLE=1

Writes ``tokenizer.model`` (2048 SentencePiece BPE pieces over the training sentences, or a copy
of ``--tokenizer``) and ``last.ckpt`` (Lightning layout, ctc_sc's sizes: 12 layers, d_model 512,
78 M parameters, seeded random weights). Converting it takes the user's path into the server, so
a load test of the converted file (``make bench ... -- --model-path ...``) measures what serving a
real EzSpeech model costs: random weights compute exactly as trained ones do. The file is 313 MB,
so it is made where it is used, not shipped.

One adjustment, or a load test would time nothing: a random Conformer's encodings share one large
component on every frame, so every frame's argmax is the same piece, the text never changes and
the server sends no partials (it sends one only when the text changes). The CTC head's bias is
set so that the mean encoding of the demo clips scores every piece equally; argmaxes then follow
the audio, and the text changes step by step as a real model's does. The computation is the same.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from asr_service.ezspeech.features import FilterbankSettings
from asr_service.ezspeech.model import EzSpeechCTC, EzSpeechHParams
from asr_service.wav import read_wav
from ezspeech_convert.convert import read_tokenizer
from training.ezspeech_small import ezspeech_config, save_lightning_checkpoint, train_tokenizer

SEED = 0
CLIPS = Path(__file__).resolve().parents[1] / "tests" / "data" / "clips"


def centre_head(model: EzSpeechCTC, clips: list[Path]) -> None:
    """Set the CTC head's bias to ``-W @ mean encoding`` over ``clips`` (see the module doc)."""
    if not clips:
        raise SystemExit(f"no clips in {CLIPS} to centre the CTC head on")
    encodings = []
    with torch.inference_mode():
        for path in clips:
            pcm, _rate = read_wav(path)
            audio = torch.from_numpy(pcm.astype("float32") / 32768.0)[None]
            features, frames = model.preprocessor.featurizer(audio, torch.tensor([audio.shape[1]]))
            encoded, lengths = model.encoder(features, frames)
            encodings.append(encoded[0, : int(lengths[0])])
    mean = torch.cat(encodings).mean(dim=0)
    head = model.ctc_decoder.decoder_layers[0]
    if not isinstance(head, torch.nn.Conv1d) or head.bias is None:
        raise TypeError("the CTC head is not a 1x1 convolution with a bias")
    with torch.no_grad():
        head.bias.copy_(-(head.weight[:, :, 0] @ mean))


def random_model(pieces: list[str]) -> EzSpeechCTC:
    """ctc_sc's sizes, seeded random weights, the CTC head centred; ``pieces`` without the blank."""
    torch.manual_seed(SEED)
    model = EzSpeechCTC(EzSpeechHParams(), FilterbankSettings(), [*pieces, "<blank>"]).eval()
    centre_head(model, sorted(CLIPS.glob("*.wav")))
    return model


def write(out_dir: Path, tokenizer: Path | None) -> None:
    hparams = EzSpeechHParams()
    target = out_dir / "tokenizer.model"
    if tokenizer is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tokenizer, target)
        pieces = read_tokenizer(target)
    else:
        from training import data

        pieces = train_tokenizer(data.train_sentences(data.DataSpec()), target, hparams.vocab_size, SEED)
    if len(pieces) != hparams.vocab_size:
        raise SystemExit(f"{target}: {len(pieces)} pieces, ctc_sc has {hparams.vocab_size}")
    model = random_model(pieces)
    config = ezspeech_config(hparams, model.settings, hparams.vocab_size + 1)
    save_lightning_checkpoint(out_dir / "last.ckpt", model, config, step=0, epoch=0)
    count = sum(p.numel() for p in model.parameters())
    print(f"wrote {out_dir}/last.ckpt ({count:,} parameters, random weights) and {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("build/ezspeech-full"))
    parser.add_argument("--tokenizer", type=Path, help="a 2048-piece SentencePiece model to use instead")
    parser.add_argument(
        "--tokenizer-only", type=Path, help="train the tokenizer into this file and stop (for --tokenizer)"
    )
    args = parser.parse_args(argv)
    if args.tokenizer_only:
        from training import data

        sentences = data.train_sentences(data.DataSpec())
        train_tokenizer(sentences, args.tokenizer_only, EzSpeechHParams().vocab_size, SEED)
        print(f"wrote {args.tokenizer_only}")
        return 0
    write(args.out_dir, args.tokenizer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
