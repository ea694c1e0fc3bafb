"""Speed of EzSpeech's full ctc_sc Conformer (12 layers, d_model 512, 2048 pieces), random weights.

    python bench/ezspeech_rtf.py --device cpu --threads 1
    python bench/ezspeech_rtf.py --device cuda --dtype float16 --batch 1,8,32

Reports the parameter count; the real-time factor of one whole-utterance forward (features +
encoder + CTC head) per batch size (RTF = compute seconds / audio seconds, per stream: below 1 is
faster than real time); and the growing-window strategy that serves it as a stream: how often a
stream's partial is refreshed, the compute that costs, and the time from end of audio to the final.
Random weights time the same as trained ones. Runs in well under a minute on a GPU or a CPU core.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from asr_service.decoding.growing_window import GrowingWindowDecoder, GrowingWindowStrategy
from asr_service.decoding.strategy import StepItem
from asr_service.ezspeech import EzSpeechCTC, EzSpeechHParams, FilterbankSettings

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _timed(device: torch.device, fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` (after one warm-up call), synchronising the GPU."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def build(device: torch.device, dtype: torch.dtype) -> EzSpeechCTC:
    hparams = EzSpeechHParams()
    tokens = [f"▁p{i}" for i in range(hparams.vocab_size)] + ["<blank>"]
    torch.manual_seed(0)
    model = EzSpeechCTC(hparams, FilterbankSettings(), tokens).eval().to(device)
    if dtype != torch.float32:
        model.set_compute_dtype(dtype)  # what MODEL_DTYPE does in the server
    return model


def forward_rtf(model: EzSpeechCTC, device: torch.device, seconds: float, batch: int, repeats: int) -> float:
    samples = int(seconds * model.sample_rate)
    audio = (0.1 * torch.randn(batch, samples)).to(device)
    lengths = torch.full((batch,), samples, device=device)

    def run() -> None:
        with torch.inference_mode():
            model.forward_full(audio, lengths)

    return _timed(device, run, repeats) / seconds


def stream_simulation(model: EzSpeechCTC, device: torch.device, seconds: float) -> dict[str, Any]:
    """One stream through the growing-window strategy, chunk by chunk, as the engine drives it.

    The clock is virtual: chunks are handed over back to back, and the strategy's own measured
    decode times decide when it re-decodes, as they would on this device in real time."""
    strategy = GrowingWindowStrategy(model, device)
    strategy.warm_up(1)
    decoder = strategy.new_decoder()
    chunk = model.chunk_samples
    total = int(seconds * model.sample_rate)
    audio = 0.1 * torch.randn(total)
    decode_costs: list[float] = []
    decode_points_s: list[float] = []
    for offset in range(0, total, chunk):
        piece = audio[offset : offset + chunk]
        last = offset + chunk >= total
        padded = torch.nn.functional.pad(piece, (0, chunk - piece.numel()))
        before = strategy.compute_s
        item = StepItem(decoder, padded, model.num_frames(total) if last else None, piece.numel(), last)
        strategy.step([item])
        if strategy.compute_s > before:
            decode_costs.append(strategy.compute_s - before)
            decode_points_s.append((offset + piece.numel()) / model.sample_rate)
    assert isinstance(decoder, GrowingWindowDecoder)
    intervals = [b - a for a, b in zip([0.0, *decode_points_s], decode_points_s, strict=False)]
    return {
        "strategy": strategy.name,
        "chunk_s": chunk / model.sample_rate,
        "decodes": len(decode_costs),
        "mean_partial_interval_s": round(statistics.mean(intervals[:-1] or intervals), 3),
        "mean_compute_per_partial_s": round(statistics.mean(decode_costs[:-1] or decode_costs), 4),
        "compute_rtf": round(sum(decode_costs) / seconds, 4),
        "time_to_final_s": round(decode_costs[-1], 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--batch", default="1", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-stream", action="store_true", help="skip the growing-window simulation")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = build(device, DTYPES[args.dtype])
    result: dict[str, Any] = {
        "model": "ezspeech ctc_sc (12 layers, d_model 512, 8 heads, 2048 pieces + blank)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "dtype": args.dtype,
        "torch_threads": torch.get_num_threads(),
        "clip_s": args.seconds,
        "rtf_per_stream": {},
    }
    for batch in (int(b) for b in args.batch.split(",")):
        rtf = forward_rtf(model, device, args.seconds, batch, args.repeats)
        result["rtf_per_stream"][str(batch)] = round(rtf / batch, 6)
    if not args.no_stream:
        result["growing_window"] = stream_simulation(model, device, args.seconds)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
