"""Streaming a full-context model: ``chunked`` vs ``growing-window`` vs whole-utterance decoding.

    python -m bench.ezspeech_strategies [--model asr_service/model_files/ezspeech-small/ctc_sc_small.pt]

With the small trained ctc_sc-layout model (``make ezspeech-small-model``) on held-out synthetic
sentences (never in its training set; seeded noise, SNR 10-40 dB):

- WER of each way of decoding, on single sentences and on 20 s streams of joined sentences;
- compute (CPU seconds of the decoding thread) per audio second of one stream of 5, 20 and 60 s,
  and end of audio → final (the compute of the step that makes the final);

and with EzSpeech's full-size ctc_sc (78 M parameters, random weights: they time like trained
ones) the chunked compute per audio second, hence real-time streams per CPU core.

Streams are driven exactly as the engine drives them (0.32 s chunks, its endpoint rule), on a
virtual clock: chunks are handed over back to back, and growing-window's own measured decode times
decide when it re-decodes, as they would in real time. One torch thread; CPU time is measured with
``time.thread_time``, so other load on the machine inflates it less than wall time (it still
inflates it through shared caches and memory bandwidth).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr_service.decoding.chunked import ChunkedSettings, ChunkedStrategy
from asr_service.decoding.growing_window import GrowingWindowStrategy
from asr_service.decoding.strategy import DecodeStrategy, StepItem
from asr_service.ezspeech import EzSpeechCTC
from asr_service.model.checkpoint import load_checkpoint
from asr_service.model.ctc import greedy_decode
from asr_service.model.wer import error_rates

REPO = Path(__file__).resolve().parent.parent
SMALL_MODEL = REPO / "asr_service" / "model_files" / "ezspeech-small" / "ctc_sc_small.pt"
ENDPOINT_SILENCE_S = 0.6  # the server's default ENDPOINT_SILENCE_MS
STREAM_SECONDS = (5.0, 20.0, 60.0)
NOISE_SEED = 7

StrategyFactory = Callable[[EzSpeechCTC], DecodeStrategy]


@dataclass
class StreamRun:
    text: str
    cpu_s: float
    wall_s: float
    audio_s: float
    final_cpu_s: float  # the last step: eof → final
    decodes: int
    finals: list[str] = field(default_factory=list)


def run_stream(strategy: DecodeStrategy, model: EzSpeechCTC, audio: torch.Tensor) -> StreamRun:
    """One stream through ``strategy`` as the engine drives it: fixed chunks, the last one
    zero-padded with its real length given, endpoint finals, the eof final."""
    decoder = strategy.new_decoder()
    chunk = int(model.chunk_samples)
    total = audio.numel()
    finals: list[str] = []
    cpu = wall = step_cpu = 0.0
    decodes_before = getattr(strategy, "decodes", 0)
    offsets = list(range(0, total, chunk)) or [0]
    for offset in offsets:
        piece = audio[offset : offset + chunk]
        last = offset == offsets[-1]
        padded = torch.nn.functional.pad(piece, (0, chunk - piece.numel()))
        item = StepItem(decoder, padded, model.num_frames(total) if last else None, piece.numel(), last)
        c0, w0 = time.thread_time(), time.perf_counter()
        strategy.step([item])
        step_cpu = time.thread_time() - c0
        cpu += step_cpu
        wall += time.perf_counter() - w0
        # The engine's rule (asr_service.engine.BatchingEngine._update_for).
        if last:
            finals.append(decoder.finalize("eof").text)
        elif decoder.current().text and (
            decoder.cut_requested() or decoder.trailing_silence_s() >= ENDPOINT_SILENCE_S
        ):
            finals.append(decoder.finalize("endpoint").text)
    return StreamRun(
        text=" ".join(t for t in finals if t),
        cpu_s=cpu,
        wall_s=wall,
        audio_s=total / model.sample_rate,
        final_cpu_s=step_cpu,
        decodes=getattr(strategy, "decodes", 0) - decodes_before,
        finals=finals,
    )


def whole_utterance(model: EzSpeechCTC, audio: torch.Tensor) -> StreamRun:
    c0, w0 = time.thread_time(), time.perf_counter()
    with torch.inference_mode():
        log_probs, lengths = model.forward_full(audio[None], torch.tensor([audio.numel()]))
    text = greedy_decode(log_probs[0], model.tokens, model.blank_id, int(lengths[0]))
    cpu, wall = time.thread_time() - c0, time.perf_counter() - w0
    return StreamRun(text, cpu, wall, audio.numel() / model.sample_rate, cpu, 1, [text])


def strategies(chunked: ChunkedSettings) -> dict[str, StrategyFactory]:
    return {
        "chunked": lambda m: ChunkedStrategy(m, torch.device("cpu"), chunked),
        "growing-window": lambda m: GrowingWindowStrategy(m, torch.device("cpu")),
    }


def held_out(count: int, part: str = "test") -> tuple[list[str], list[np.ndarray]]:
    """The first ``count`` held-out sentences with seeded noise: training.data's ``test`` set, or
    its ``dev`` set (for choosing settings, so that the test set stays a held-out measure)."""
    from training import data
    from training.augment import augment

    corpus = data.corpus(part, data.DataSpec(), log=False)
    rng = np.random.default_rng(NOISE_SEED)
    count = min(count, len(corpus.texts))
    audio = [augment(a, rng, snr_db=(10.0, 40.0)) for a in corpus.audio[:count]]
    return corpus.texts[:count], audio


#: Pauses between joined sentences: the WER streams have some long enough for an endpoint (0.6 s);
#: the cost streams are continuous speech (no endpoint), the case where a growing window grows.
WER_PAUSES_S = (0.2, 1.0)
CONTINUOUS_PAUSES_S = (0.1, 0.35)


def join(
    texts: Sequence[str],
    audio: Sequence[np.ndarray],
    seconds: float,
    start: int,
    rng: np.random.Generator,
    pauses_s: tuple[float, float] = WER_PAUSES_S,
) -> tuple[str, torch.Tensor, int]:
    """Sentences from ``start`` on, joined with pauses drawn from ``pauses_s``, until ``seconds`` are filled
    (the last sentence is kept whole, so the stream may run a little over). Returns the joined
    transcript, the audio and the index after the last sentence used."""
    parts: list[np.ndarray] = []
    words: list[str] = []
    filled, i = 0, start
    while filled < seconds * 16000:
        k = i % len(audio)
        pause = np.zeros(int(rng.uniform(*pauses_s) * 16000), np.float32)
        parts += [audio[k], pause]
        words.append(texts[k])
        filled += audio[k].size + pause.size
        i += 1
    return " ".join(words), torch.from_numpy(np.concatenate(parts)), i


def exact_length(audio: torch.Tensor, seconds: float) -> torch.Tensor:
    return audio[: int(seconds * 16000)]


def wer_table(
    model: EzSpeechCTC, chunked: ChunkedSettings, sentences: int, streams: int, part: str = "test"
) -> dict[str, Any]:
    texts, audio = held_out(sentences, part)
    out: dict[str, Any] = {"sentences": len(texts), "streams_20s": streams}
    factories = strategies(chunked)
    single: dict[str, list[str]] = {"whole-utterance": [], **{name: [] for name in factories}}
    for clip in audio:
        signal = torch.from_numpy(clip)
        single["whole-utterance"].append(whole_utterance(model, signal).text)
        for name, make in factories.items():
            single[name].append(run_stream(make(model), model, signal).text)
    out["single"] = {name: error_rates(texts, hyps)[0] for name, hyps in single.items()}
    rng = np.random.default_rng(NOISE_SEED)
    refs: list[str] = []
    joined: dict[str, list[str]] = {"whole-utterance": [], **{name: [] for name in factories}}
    start = 0
    for _ in range(streams):
        ref, signal, start = join(texts, audio, 20.0, start, rng)
        refs.append(ref)
        joined["whole-utterance"].append(whole_utterance(model, signal).text)
        for name, make in factories.items():
            joined[name].append(run_stream(make(model), model, signal).text)
    out["joined_20s"] = {name: error_rates(refs, hyps)[0] for name, hyps in joined.items()}
    return out


def cost_table(model: EzSpeechCTC, chunked: ChunkedSettings, repeats: int) -> dict[str, Any]:
    """CPU seconds per audio second and eof → final for one stream of each length (best of
    ``repeats``: the least disturbed by other load)."""
    texts, audio = held_out(60)
    rng = np.random.default_rng(NOISE_SEED + 1)
    _ref, long_stream, _ = join(texts, audio, max(STREAM_SECONDS) + 2, 0, rng, CONTINUOUS_PAUSES_S)
    factories = strategies(chunked)
    out: dict[str, Any] = {}
    run_stream(factories["chunked"](model), model, exact_length(long_stream, 5.0))  # warm-up
    for seconds in STREAM_SECONDS:
        signal = exact_length(long_stream, seconds)
        row: dict[str, Any] = {}
        runs = [whole_utterance(model, signal) for _ in range(repeats)]
        row["whole-utterance"] = _cost(runs)
        for name, make in factories.items():
            runs = [run_stream(make(model), model, signal) for _ in range(repeats)]
            row[name] = _cost(runs)
        out[f"{seconds:g}s"] = row
    return out


def _cost(runs: list[StreamRun]) -> dict[str, float]:
    best = min(runs, key=lambda r: r.cpu_s)
    return {
        "cpu_per_audio_s": round(best.cpu_s / best.audio_s, 5),
        "wall_per_audio_s": round(best.wall_s / best.audio_s, 5),
        "eof_to_final_cpu_s": round(best.final_cpu_s, 4),
        "decodes": best.decodes,
    }


def full_size(chunked: ChunkedSettings, seconds: float, dtype: torch.dtype, repeats: int) -> dict[str, Any]:
    """EzSpeech's full ctc_sc (random weights) through the chunked strategy: streams per core."""
    from bench.ezspeech_rtf import build

    model = build(torch.device("cpu"), dtype)
    rng = np.random.default_rng(3)
    audio = torch.from_numpy((0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32))
    out: dict[str, Any] = {"parameters": sum(p.numel() for p in model.parameters()), "stream_s": seconds}
    for name, make in strategies(chunked).items():
        run_stream(make(model), model, audio[: 16000 * 5])  # warm-up
        runs = [run_stream(make(model), model, audio) for _ in range(repeats)]
        cost = _cost(runs)
        cost["streams_per_core"] = round(1.0 / cost["cpu_per_audio_s"], 1)
        out[name] = cost
    return out


def verdict(result: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """The issue's done-when, computed from this run's numbers."""
    wer = result["wer"]
    cost = result["cost"]
    checks = []
    for part in ("single", "joined_20s"):
        gap = wer[part]["chunked"] - wer[part]["whole-utterance"]
        checks.append(
            (
                f"chunked WER within 1 point of whole-utterance ({part})",
                gap <= 0.01,
                f"{gap * 100:+.2f} points",
            )
        )
    c5, c60 = cost["5s"]["chunked"]["cpu_per_audio_s"], cost["60s"]["chunked"]["cpu_per_audio_s"]
    checks.append(("chunked compute/audio-s at 60 s <= 1.2 x at 5 s", c60 <= 1.2 * c5, f"{c60 / c5:.2f} x"))
    g20, k20 = cost["20s"]["growing-window"]["cpu_per_audio_s"], cost["20s"]["chunked"]["cpu_per_audio_s"]
    checks.append(("growing-window / chunked compute on 20 s >= 3", g20 >= 3 * k20, f"{g20 / k20:.1f} x"))
    return checks


def render(result: dict[str, Any]) -> str:
    lines = []
    w = result["wer"]
    s = result["chunked_settings"]
    lines.append(
        f"model: {result['model']} ({result['parameters']:,} parameters); chunked window: "
        f"left {s['left_s']} s + chunk {s['chunk_s']} s + right {s['right_s']} s; 1 torch thread; "
        f"load average at start {result['load_average'][0]:.2f}"
    )
    lines.append("")
    lines.append(
        "| decoding | WER, held-out sentences | WER, 20 s streams | CPU s per audio s: 5 s | 20 s | 60 s "
        "| eof → final (CPU s), 20 s |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for name in ("whole-utterance", "chunked", "growing-window"):
        c = result["cost"]
        lines.append(
            f"| {name} | {w['single'][name]:.2%} | {w['joined_20s'][name]:.2%} | "
            f"{c['5s'][name]['cpu_per_audio_s']:.4f} | {c['20s'][name]['cpu_per_audio_s']:.4f} | "
            f"{c['60s'][name]['cpu_per_audio_s']:.4f} | {c['20s'][name]['eof_to_final_cpu_s']:.3f} |"
        )
    if "full_size" in result:
        f = result["full_size"]
        lines.append("")
        lines.append(
            f"| full-size ctc_sc ({f['parameters']:,} parameters, random weights), "
            f"{f['stream_s']:g} s stream "
            "| CPU s per audio s | real-time streams per core | eof → final (CPU s) |"
        )
        lines.append("|---|---|---|---|")
        for name in ("chunked", "growing-window"):
            lines.append(
                f"| {name} | {f[name]['cpu_per_audio_s']:.4f} | {f[name]['streams_per_core']:g} | "
                f"{f[name]['eof_to_final_cpu_s']:.3f} |"
            )
    lines.append("")
    for text, ok, value in result["done_when"]:
        lines.append(f"{'met   ' if ok else 'MISSED'}  {text}: {value}")
    return "\n".join(lines)


def publish(table: str, result: dict[str, Any], json_path: Path | None) -> None:
    """Print a bench's table and, with ``--json``, keep its whole result next to it."""
    print(table)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=SMALL_MODEL)
    parser.add_argument("--sentences", type=int, default=200, help="held-out sentences for WER")
    parser.add_argument("--streams", type=int, default=20, help="20 s joined streams for WER")
    parser.add_argument("--repeats", type=int, default=5, help="cost runs per stream (best is kept)")
    parser.add_argument("--chunk-s", type=float, default=ChunkedSettings.chunk_s)
    parser.add_argument("--left-s", type=float, default=ChunkedSettings.left_s)
    parser.add_argument("--right-s", type=float, default=ChunkedSettings.right_s)
    parser.add_argument("--full-size-seconds", type=float, default=20.0)
    parser.add_argument("--no-full-size", action="store_true", help="skip the 78 M-parameter model")
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="full-size model's encoder dtype (bfloat16 on a CPU is slow; GPU runs are not measured here)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    chunked = ChunkedSettings(chunk_s=args.chunk_s, left_s=args.left_s, right_s=args.right_s)
    loaded = load_checkpoint(args.model)
    model = loaded.model
    if not isinstance(model, EzSpeechCTC):
        parser.error(f"{args.model} is not an EzSpeech ctc_sc checkpoint")
    model.eval()
    result: dict[str, Any] = {
        "model": args.model.name,
        "parameters": loaded.num_parameters,
        "machine": platform.processor() or platform.machine(),
        "load_average": list(_load_average()),
        "chunked_settings": {
            "chunk_s": chunked.chunk_s,
            "left_s": chunked.left_s,
            "right_s": chunked.right_s,
        },
    }
    result["wer"] = wer_table(model, chunked, args.sentences, args.streams)
    result["cost"] = cost_table(model, chunked, args.repeats)
    if not args.no_full_size:
        dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
        result["full_size"] = full_size(chunked, args.full_size_seconds, dtype, args.repeats)
    result["done_when"] = verdict(result)
    result["load_average_end"] = list(_load_average())
    publish(render(result), result, args.json)
    return 0


def _load_average() -> tuple[float, float, float]:
    import os

    return os.getloadavg()


if __name__ == "__main__":
    raise SystemExit(main())
