"""Cost of a broad lexicon + n-gram LM: checkpoint size, load time, memory, time per final.

``python -m training.open_vocab.measure --model A.pt --model B.pt [--lexicon-sizes 50000 0]``

- For each checkpoint, in a fresh process each time (``--runs`` times): seconds to
  ``load_checkpoint`` it (what the server does before warm-up; torch import excluded) and the
  resident memory it adds.
- For each lexicon size (0 = the whole broad lexicon; otherwise the training-text words plus a
  seeded sample of the word list up to that size): the native decoder's build time, the memory
  it adds, and its mean time per final on ``--utterances`` development sentences decoded by the
  shipped model.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr_service.model.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint
from asr_service.model.lexicon_beam import BeamSettings
from asr_service.model.native_lexicon import NativeLexiconDecoder
from asr_service.model.transcribe import stream_log_probs
from training.augment import augment
from training.open_vocab import data, kneser_ney

_LOAD_PROBE = """
import resource, sys, time, torch
from asr_service.model.checkpoint import load_checkpoint
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
load_checkpoint(sys.argv[1], word_decoder="native")
print(time.perf_counter() - started, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:  # noqa: PTH123
        return int(handle.read().split()[1]) * 4096 / 2**20


def load_cost(path: Path, runs: int) -> dict[str, Any]:
    seconds, memory = [], []
    for _ in range(runs):
        out = subprocess.run(  # noqa: S603
            [sys.executable, "-c", _LOAD_PROBE, str(path)], capture_output=True, text=True, check=True
        ).stdout.split()
        seconds.append(float(out[0]))
        memory.append(float(out[1]))
    return {
        "model": str(path),
        "bytes": path.stat().st_size,
        "load_s_median": statistics.median(seconds),
        "load_s": seconds,
        "added_max_rss_mb": statistics.median(memory),
    }


def lexicon_of_size(size: int, spec: data.OpenSpec) -> list[str]:
    full = data.lexicon_words(spec)
    if not size or size >= len(full):
        return full
    text_words = {w for s in data.lm_sentences(spec) for w in s.split()}
    rest = sorted(set(full) - text_words)
    extra = random.Random(5).sample(rest, max(0, size - len(text_words)))
    return sorted(text_words | set(extra))


def decoder_cost(size: int, log_probs: list[torch.Tensor], spec: data.OpenSpec) -> dict[str, Any]:
    words = lexicon_of_size(size, spec)
    index = {w: i for i, w in enumerate(words)}
    sentences = [[index[w] for w in s.split()] for s in data.lm_sentences(spec)]
    lm = kneser_ney.estimate(sentences, words, order=3, min_count=2)
    rss = _rss_mb()
    started = time.perf_counter()
    decoder = NativeLexiconDecoder(
        ["<blank>", "▁", *"abcdefghijklmnopqrstuvwxyz'"],
        0,
        words,
        lm,
        BeamSettings(lm_weight=0.8, word_bonus=-1.0),
    )
    build_s = time.perf_counter() - started
    added = _rss_mb() - rss
    started = time.perf_counter()
    for lp in log_probs:
        decoder.decode(lp)
    ms = 1000 * (time.perf_counter() - started) / max(1, len(log_probs))
    return {
        "lexicon_words": len(words),
        "ngrams": lm.counts(),
        "build_s": build_s,
        "added_rss_mb": added,
        "ms_per_final": ms,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, action="append", default=[])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lexicon-sizes", type=int, nargs="*", default=[50000, 0])
    parser.add_argument("--utterances", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result: dict[str, Any] = {"load": [load_cost(m, args.runs) for m in args.model], "decoder": []}
    for row in result["load"]:
        print(
            f"{row['model']}: {row['bytes'] / 1e6:.1f} MB, load {row['load_s_median']:.2f} s (median of "
            f"{args.runs}), +{row['added_max_rss_mb']:.0f} MB max RSS",
            flush=True,
        )
    spec = data.OpenSpec()
    shipped = load_checkpoint(DEFAULT_MODEL_PATH, word_decoder="python")
    dev = data.corpus("dev", spec)
    rng = np.random.default_rng(11)
    log_probs = [
        stream_log_probs(shipped.model, torch.from_numpy(augment(a, rng, snr_db=(10.0, 40.0))))
        for a in dev.audio[: args.utterances]
    ]
    for size in args.lexicon_sizes:
        row = decoder_cost(size, log_probs, spec)
        result["decoder"].append(row)
        print(
            f"native decoder, {row['lexicon_words']} words, n-grams {row['ngrams']}: "
            f"build {row['build_s']:.2f} s, "
            f"+{row['added_rss_mb']:.0f} MB RSS, {row['ms_per_final']:.1f} ms per final",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
