"""Does half precision change an EzSpeech Conformer's tokens? (``MODEL_DTYPE``)

    python -m bench.ezspeech_precision --device cuda --audio build/gpu/heldout.npz
    python -m bench.ezspeech_precision --write-audio build/gpu/heldout.npz --sentences 100

Decodes held-out sentences (whole-utterance forward in padded batches, greedy CTC, as a 4.4 s
chunked window is decoded) in float32 and in each half-precision format, with the trained small
model and with EzSpeech's full-size ctc_sc (random weights), and reports per model and format:

- utterances whose token sequence equals float32's, and token edits against float32 per 100
  float32 tokens (the question the issue asks: does the format change the tokens);
- WER against the references (the trained model only: random weights have no meaningful WER);
- wall seconds per audio second of the batched forward (synchronised on a GPU).

On a GPU float32 itself is not the CPU's float32 (cuDNN convolutions may use TF32, kernels sum in
other orders), so a GPU run adds a "float32 on cpu" row: the differences any change of hardware
brings, to read the half-precision rows against.

Random weights are the harsh case: their posteriors are nearly flat, so a rounding difference
flips an argmax far more often than in a trained model, whose best token usually wins by a wide
margin. (The full-size model is ``bench.ezspeech_full_model``'s, whose CTC head is centred so that
its argmaxes follow the audio; an untouched random Conformer emits one piece on every frame,
which no rounding changes.) The audio can be written once where espeak-ng runs
(``--write-audio``) and read on a machine without it (``--audio``): the GPU machines have no
espeak-ng.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr_service.ezspeech import EzSpeechCTC, EzSpeechHParams
from asr_service.model.checkpoint import load_checkpoint
from asr_service.model.ctc import collapse, tokens_to_text
from asr_service.model.precision import TORCH_DTYPES
from asr_service.model.wer import edit_distance, error_rates
from bench.ezspeech_strategies import held_out, publish

REPO = Path(__file__).resolve().parent.parent
SMALL_MODEL = REPO / "asr_service" / "model_files" / "ezspeech-small" / "ctc_sc_small.pt"
BATCH = 32


def write_audio(path: Path, count: int) -> None:
    """The first ``count`` held-out test sentences (seeded noise) as int16 in one ``.npz``."""
    texts, audio = held_out(count, "test")
    save_audio(path, texts, audio)


def save_audio(path: Path, texts: list[str], audio: list[np.ndarray]) -> None:
    """Float clips in [-1, 1] as int16, concatenated, with their offsets and transcripts (no pickle)."""
    pcm = [np.clip(np.round(a * 32767), -32768, 32767).astype(np.int16) for a in audio]
    offsets = np.cumsum([0] + [p.size for p in pcm])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, pcm=np.concatenate(pcm), offsets=offsets, texts=np.array(texts))


def read_audio(path: Path) -> tuple[list[str], list[torch.Tensor]]:
    with np.load(path, allow_pickle=False) as data:
        pcm, offsets, texts = data["pcm"], data["offsets"], [str(t) for t in data["texts"]]
    audio = [
        torch.from_numpy(pcm[a:b].astype(np.float32) / 32768.0)
        for a, b in itertools.pairwise(offsets.tolist())
    ]
    return texts, audio


def decode_all(
    model: EzSpeechCTC, audio: list[torch.Tensor], device: torch.device
) -> tuple[list[list[int]], float]:
    """Greedy token ids of every utterance and the wall seconds of the forwards."""
    ids: list[list[int]] = []
    wall = 0.0
    for first in range(0, len(audio), BATCH):
        clips = audio[first : first + BATCH]
        lengths = torch.tensor([c.numel() for c in clips])
        batch = torch.zeros(len(clips), int(lengths.max()))
        for row, clip in enumerate(clips):
            batch[row, : clip.numel()] = clip
        batch, lengths = batch.to(device), lengths.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        with torch.inference_mode():
            log_probs, frames = model.forward_full(batch, lengths)
        best = log_probs.argmax(-1).cpu()
        wall += time.perf_counter() - started  # .cpu() waited for the GPU
        for row in range(len(clips)):
            ids.append(collapse(best[row, : int(frames[row])].tolist(), model.blank_id))
    return ids, wall


def compare(
    model: EzSpeechCTC,
    texts: list[str],
    audio: list[torch.Tensor],
    device: torch.device,
    dtypes: list[str],
    trained: bool,
) -> list[dict[str, Any]]:
    audio_s = sum(a.numel() for a in audio) / model.sample_rate
    decode_all(model, audio[:BATCH], device)  # warm-up (kernels, allocator)
    reference, wall = decode_all(model, audio, device)
    rows = []
    names = ["float32", *dtypes] + (["float32 on cpu"] if device.type != "cpu" else [])
    for name in names:
        if name == "float32":
            ids, seconds = reference, wall
        elif name == "float32 on cpu":
            on_cpu = copy.deepcopy(model).to("cpu")
            ids, seconds = decode_all(on_cpu, audio, torch.device("cpu"))
            del on_cpu
        else:
            half = copy.deepcopy(model)
            half.set_compute_dtype(TORCH_DTYPES[name])
            decode_all(half, audio[:BATCH], device)
            ids, seconds = decode_all(half, audio, device)
            del half
        same = sum(a == b for a, b in zip(ids, reference, strict=True))
        edits = sum(
            edit_distance([str(t) for t in r], [str(t) for t in h])
            for r, h in zip(reference, ids, strict=True)
        )
        row: dict[str, Any] = {
            "dtype": name,
            "utterances": len(ids),
            "identical_utterances": same,
            "token_edits_per_100": round(100 * edits / max(1, sum(len(r) for r in reference)), 3),
            "wall_s_per_audio_s": round(seconds / audio_s, 6),
        }
        if trained:
            hyps = [tokens_to_text(i, model.tokens) for i in ids]
            row["wer"] = round(error_rates(texts, hyps)[0], 4)
        rows.append(row)
    return rows


def render(result: dict[str, Any]) -> str:
    lines = [
        f"device: {result['device']}; {result['utterances']} held-out sentences, "
        f"{result['audio_s']:.0f} s of audio; batches of {BATCH}",
        "",
        "| model | dtype | same tokens as float32 | token edits per 100 | WER | wall s per audio s |",
        "|---|---|---|---|---|---|",
    ]
    for model, rows in result["models"].items():
        for r in rows:
            wer = f"{r['wer']:.2%}" if "wer" in r else "—"
            lines.append(
                f"| {model} | {r['dtype']} | {r['identical_utterances']}/{r['utterances']} | "
                f"{r['token_edits_per_100']:.2f} | {wer} | {r['wall_s_per_audio_s']:.5f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--audio", type=Path, help=".npz written by --write-audio (default: synthesise)")
    parser.add_argument("--write-audio", type=Path, help="write the held-out audio here and stop")
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--model", type=Path, default=SMALL_MODEL, help="trained converted checkpoint")
    parser.add_argument("--dtypes", default="float16,bfloat16")
    parser.add_argument("--no-full-size", action="store_true", help="skip the 78 M-parameter model")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    if args.write_audio:
        write_audio(args.write_audio, args.sentences)
        print(f"wrote {args.write_audio}")
        return 0
    if args.audio:
        texts, audio = read_audio(args.audio)
    else:
        texts, arrays = held_out(args.sentences, "test")
        audio = [torch.from_numpy(a) for a in arrays]
    texts, audio = texts[: args.sentences], audio[: args.sentences]
    device = torch.device(args.device)
    dtypes = [d for d in args.dtypes.split(",") if d]
    unknown = set(dtypes) - set(TORCH_DTYPES)
    if unknown:
        parser.error(f"unknown dtype(s) {sorted(unknown)}; choose from {', '.join(TORCH_DTYPES)}")
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "utterances": len(audio),
        "audio_s": round(sum(a.numel() for a in audio) / 16000, 1),
        "models": {},
    }
    small = load_checkpoint(args.model, device=device).module
    if not isinstance(small, EzSpeechCTC):
        parser.error(f"{args.model} is not an EzSpeech ctc_sc checkpoint")
    result["models"][f"{args.model.stem} (trained)"] = compare(small, texts, audio, device, dtypes, True)
    if not args.no_full_size:
        from bench.ezspeech_full_model import random_model

        pieces = [f"▁p{i}" for i in range(EzSpeechHParams().vocab_size)]
        full = random_model(pieces).to(device)
        result["models"]["full-size ctc_sc (random)"] = compare(full, texts, audio, device, dtypes, False)
    publish(render(result), result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
