"""Choosing the ``chunked`` window geometry: WER on the development sentences against compute.

    python -m bench.chunked_geometry [--model ...ctc_sc_small.pt] [--geometry 2.4,1.6,0.8 ...]

Each geometry is ``left,chunk,right`` in seconds. For each one, with the small trained model:
WER on single development sentences and on 20 s streams of them (``training.data``'s ``dev``
set, never the held-out test set, so that ``make bench-ezspeech`` stays a held-out measure of
the geometry chosen here), and CPU seconds per audio second of one continuous 5, 20 and 60 s
stream. Whole-utterance decoding is the WER reference. Compute per audio second is roughly
``cost(left + chunk + right) / chunk``: a longer chunk or a shorter left context is cheaper; the
question this answers is what that costs in accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr_service.decoding.chunked import ChunkedSettings, ChunkedStrategy
from asr_service.ezspeech import EzSpeechCTC
from asr_service.model.checkpoint import load_checkpoint
from asr_service.model.wer import error_rates
from bench.ezspeech_strategies import (
    CONTINUOUS_PAUSES_S,
    NOISE_SEED,
    SMALL_MODEL,
    STREAM_SECONDS,
    StreamRun,
    exact_length,
    held_out,
    join,
    publish,
    run_stream,
    whole_utterance,
)

DEFAULT_GEOMETRIES = (
    "1.6,1.6,0.8",
    "2.4,1.6,0.8",
    "1.6,1.6,1.2",
    "2.4,1.6,1.2",
    "3.2,1.6,0.8",
    "2.4,2.4,1.2",
)


def parse_geometry(text: str) -> ChunkedSettings:
    try:
        left, chunk, right = (float(part) for part in text.split(","))
        return ChunkedSettings(chunk_s=chunk, left_s=left, right_s=right)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"a geometry is left,chunk,right in seconds, got {text!r}: {exc}"
        ) from None


def chunked_run(model: EzSpeechCTC, settings: ChunkedSettings, audio: torch.Tensor) -> StreamRun:
    """One stream through a fresh chunked strategy (the engine holds one per model)."""
    return run_stream(ChunkedStrategy(model, torch.device("cpu"), settings), model, audio)


def sweep(
    model: EzSpeechCTC, geometries: list[ChunkedSettings], sentences: int, streams: int, repeats: int
) -> dict[str, Any]:
    texts, audio = held_out(sentences, "dev")
    rng = np.random.default_rng(NOISE_SEED)
    joined: list[tuple[str, torch.Tensor]] = []
    start = 0
    for _ in range(streams):
        ref, signal, start = join(texts, audio, 20.0, start, rng)
        joined.append((ref, signal))
    _ref, long_stream, _ = join(
        texts, audio, max(STREAM_SECONDS) + 2, 0, np.random.default_rng(NOISE_SEED + 1), CONTINUOUS_PAUSES_S
    )
    clips = [torch.from_numpy(a) for a in audio]
    refs = [r for r, _ in joined]
    whole = {
        "single_wer": error_rates(texts, [whole_utterance(model, c).text for c in clips])[0],
        "joined_wer": error_rates(refs, [whole_utterance(model, s).text for _, s in joined])[0],
    }
    rows = []
    for settings in geometries:
        chunked_run(model, settings, exact_length(long_stream, 5.0))  # warm-up
        cost = {}
        for seconds in STREAM_SECONDS:
            signal = exact_length(long_stream, seconds)
            best = min((chunked_run(model, settings, signal) for _ in range(repeats)), key=lambda r: r.cpu_s)
            cost[f"{seconds:g}s"] = round(best.cpu_s / best.audio_s, 5)
        single = [chunked_run(model, settings, c).text for c in clips]
        streamed = [chunked_run(model, settings, s).text for _, s in joined]
        rows.append(
            {
                "left_s": settings.left_s,
                "chunk_s": settings.chunk_s,
                "right_s": settings.right_s,
                "single_wer": error_rates(texts, single)[0],
                "joined_wer": error_rates(refs, streamed)[0],
                "cpu_per_audio_s": cost,
            }
        )
        print(render_row(rows[-1]), flush=True)
    return {"sentences": len(texts), "streams_20s": streams, "whole_utterance": whole, "geometries": rows}


def render_row(row: dict[str, Any]) -> str:
    c = row["cpu_per_audio_s"]
    return (
        f"| {row['left_s']:g} + {row['chunk_s']:g} + {row['right_s']:g} | {row['single_wer']:.2%} | "
        f"{row['joined_wer']:.2%} | {c['5s']:.4f} | {c['20s']:.4f} | {c['60s']:.4f} | "
        f"{c['60s'] / c['5s']:.2f} |"
    )


def render(result: dict[str, Any]) -> str:
    w = result["whole_utterance"]
    lines = [
        f"development sentences: {result['sentences']}, 20 s streams: {result['streams_20s']}; "
        f"whole-utterance WER {w['single_wer']:.2%} (sentences), {w['joined_wer']:.2%} (20 s streams)",
        "",
        "| left + chunk + right (s) | WER, sentences | WER, 20 s streams "
        "| CPU s per audio s: 5 s | 20 s | 60 s | 60 s / 5 s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [render_row(row) for row in result["geometries"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=SMALL_MODEL)
    parser.add_argument("--geometry", type=parse_geometry, action="append", help="left,chunk,right (repeat)")
    parser.add_argument("--sentences", type=int, default=200, help="development sentences")
    parser.add_argument("--streams", type=int, default=10, help="20 s streams of development sentences")
    parser.add_argument("--repeats", type=int, default=5, help="cost runs per stream (best is kept)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    model = load_checkpoint(args.model).model
    if not isinstance(model, EzSpeechCTC):
        parser.error(f"{args.model} is not an EzSpeech ctc_sc checkpoint")
    model.eval()
    geometries = args.geometry or [parse_geometry(g) for g in DEFAULT_GEOMETRIES]
    result = sweep(model, geometries, args.sentences, args.streams, args.repeats)
    publish(render(result), result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
