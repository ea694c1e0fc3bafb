"""Attach the broad lexicon and the n-gram word LM to a checkpoint; tune the search on dev sentences.

``python -m training.open_vocab.attach --model PATH [--output OUT]``

The weights are untouched (read with the safe loader, written back). Added:

- the broad lexicon (:func:`training.open_vocab.data.lexicon_words`, ~88,000 words) for the word
  search only (``lexicon_correction`` off: snapping greedy partials to the nearest of that many
  words costs seconds per unknown word and mostly picks a wrong neighbour);
- a modified Kneser-Ney trigram over it, estimated on the training text only
  (:mod:`training.open_vocab.kneser_ney`; trigrams seen once pruned);
- the LM weight and word bonus with the lowest WER on the open development sentences (WordNet
  examples kept out of the LM and of training; never the test set), decoded by the native search;
- for a phoneme model (``metadata.targets == "phonemes"``), the pronunciation table
  (:mod:`training.open_vocab.pronunciations`): the search finds words by sound, and writes every
  text the model returns.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr_service.model.checkpoint import load_checkpoint
from asr_service.model.ctc import greedy_decode
from asr_service.model.lexicon_beam import BeamSettings
from asr_service.model.native_lexicon import NativeLexiconDecoder
from asr_service.model.ngram_lm import NgramLm
from asr_service.model.transcribe import stream_log_probs
from training import data as grammar_data
from training import synth
from training.augment import augment
from training.lexicon import save_with_decoder
from training.metrics import error_rates
from training.open_vocab import data, kneser_ney, pronunciations

DEV_NOISE_SEED = 11
LM_ORDER = 3
MIN_TRIGRAM_COUNT = 2
LM_WEIGHTS = (0.5, 0.8, 1.2, 1.6, 2.0)
#: Grammar development sentences beside the 300 open ones: the model serves both kinds.
GRAMMAR_DEV = 100
WORD_BONUSES = (-3.0, -2.0, -1.0, 0.0, 1.0)


def build_lm(spec: data.OpenSpec) -> tuple[list[str], NgramLm]:
    words = data.lexicon_words(spec)
    index = {w: i for i, w in enumerate(words)}
    sentences = [[index[w] for w in s.split()] for s in data.lm_sentences(spec)]
    return words, kneser_ney.estimate(sentences, words, order=LM_ORDER, min_count=MIN_TRIGRAM_COUNT)


def tune(
    tokens: list[str],
    blank_id: int,
    words: list[str],
    lm: NgramLm,
    log_probs: list[torch.Tensor],
    refs: list[str],
    grid: tuple[tuple[float, ...], tuple[float, ...]] = (LM_WEIGHTS, WORD_BONUSES),
    pronunciations: dict[str, list[list[str]]] | None = None,
    labels: list[str] | None = None,
) -> tuple[BeamSettings, list[dict[str, Any]]]:
    """Grid over LM weight × word bonus with the native search (one ARPA file, read per setting).
    With ``pronunciations`` (a phoneme model) a segment without words scores as empty text, as
    the server returns it; a letter model falls back to its greedy text. ``labels`` (one per
    sentence) adds each labelled subset's WER to the grid; the pick is on the WER of all."""
    results = []
    with tempfile.TemporaryDirectory(prefix="open-lm-") as scratch:
        arpa = Path(scratch) / "lm.arpa"
        lm.write_arpa(arpa)
        for weight, bonus in itertools.product(*grid):
            settings = BeamSettings(lm_weight=weight, word_bonus=bonus)
            decoder = NativeLexiconDecoder(
                tokens, blank_id, words, None, settings, arpa_path=arpa, pronunciations=pronunciations
            )
            started = time.perf_counter()
            hyps = [
                decoder.decode(lp) or ("" if pronunciations else greedy_decode(lp, tokens, blank_id))
                for lp in log_probs
            ]
            ms = 1000 * (time.perf_counter() - started) / max(1, len(log_probs))
            wer, cer = error_rates(refs, hyps)
            row = {"lm_weight": weight, "word_bonus": bonus, "wer": wer, "cer": cer, "ms": ms}
            for label in sorted(set(labels or ())):
                picked = [i for i, lab in enumerate(labels or ()) if lab == label]
                row[f"wer_{label}"] = error_rates([refs[i] for i in picked], [hyps[i] for i in picked])[0]
            results.append(row)
            per_set = "".join(f" {k[4:]} {v:.2%}" for k, v in row.items() if k.startswith("wer_"))
            print(
                f"  lm_weight {weight} word_bonus {bonus}: dev WER {wer:.2%} CER {cer:.2%}{per_set} "
                f"{ms:.1f} ms"
            )
    best = min(results, key=lambda r: (round(r["wer"], 6), round(r["cer"], 6), r["lm_weight"]))
    return replace(BeamSettings(), lm_weight=best["lm_weight"], word_bonus=best["word_bonus"]), results


def attach(
    path: Path,
    output: Path | None = None,
    spec: data.OpenSpec | None = None,
    workers: int = 2,
    dev_limit: int | None = None,
    quick: bool = False,
) -> tuple[str, dict[str, Any]]:
    """``dev_limit`` and ``quick`` (one grid point) are for smoke runs only."""
    spec = spec or data.OpenSpec()
    output = output or path
    loaded = load_checkpoint(path, word_decoder="python")  # validates the file before we rewrite it
    raw = torch.load(path, map_location="cpu", weights_only=True)
    started = time.perf_counter()
    words, lm = build_lm(spec)
    lm_seconds = time.perf_counter() - started

    # Both jobs the model has: open text (WordNet development sentences) and the grammar (its own
    # development sentences, disjoint from its training and test sets). Never a test sentence.
    dev = data.corpus("dev", spec, workers=workers)
    grammar_dev = grammar_data.corpus("dev", grammar_data.DataSpec(), workers=workers)
    open_count = len(dev.texts) if dev_limit is None else min(dev_limit, len(dev.texts))
    grammar_count = GRAMMAR_DEV if dev_limit is None else dev_limit // 3
    audio = [*dev.audio[:open_count], *grammar_dev.audio[:grammar_count]]
    refs = [*dev.texts[:open_count], *grammar_dev.texts[:grammar_count]]
    labels = ["open"] * open_count + ["grammar"] * grammar_count
    rng = np.random.default_rng(DEV_NOISE_SEED)
    torch.set_num_threads(1)
    dev_log_probs = [
        stream_log_probs(loaded.model, torch.from_numpy(augment(clip, rng, snr_db=(10.0, 40.0))))
        for clip in audio
    ]
    phonemes = (raw.get("metadata") or {}).get("targets") == "phonemes"
    table: dict[str, list[list[str]]] | None = None
    spoken: dict[str, Any] = {}
    if phonemes:
        started = time.perf_counter()
        built = pronunciations.lexicon_table(words, spec, workers=workers)
        # A form using a phoneme the model never learned cannot be heard: leave it out (counted).
        writable = set(loaded.tokens)
        table = {
            w: kept
            for w, forms in built.items()
            if (kept := [list(form) for form in sorted(forms) if set(form) <= writable])
        }
        spoken = {
            "pronunciations": pronunciations.stats(built, loaded.tokens)
            | {"words_heard": len(table), "seconds": round(time.perf_counter() - started, 1)},
            "pronunciation_sources": f"each word alone in {len(synth.BASE_VOICES)} espeak-ng accents + "
            f"in-context forms seen {pronunciations.MIN_CONTEXT_COUNT}+ times in the training targets",
        }
        print(f"pronunciation table: {spoken['pronunciations']}", flush=True)
    points = ((0.8,), (-1.0,)) if quick else (LM_WEIGHTS, WORD_BONUSES)
    settings, grid = tune(
        loaded.tokens, loaded.blank_id, words, lm, dev_log_probs, refs, points, table, labels
    )
    chosen = next(
        r for r in grid if (r["lm_weight"], r["word_bonus"]) == (settings.lm_weight, settings.word_bonus)
    )
    info = {
        "lexicon_words": len(words),
        "lexicon": "training text ∪ SCOWL american-english (lower-case) ∪ grammar vocabulary",
        "lm_type": f"{LM_ORDER}-gram modified Kneser-Ney, trigrams seen once pruned",
        "lm_ngrams": lm.counts(),
        "lm_trained_on": f"{len(data.lm_sentences(spec))} training sentences (WordNet examples + grammar)",
        "lm_seconds": round(lm_seconds, 1),
        "decoder_settings": asdict(settings),
        "tuned_on": f"{labels.count('open')} open development sentences (WordNet, seed {data.DEV_SEED}) "
        f"+ {labels.count('grammar')} grammar development sentences (seed {grammar_data.DEV_SEED}), noisy",
        "dev_wer": chosen["wer"],
        "dev_cer": chosen["cer"],
        "dev_wer_by_set": {k[4:]: v for k, v in chosen.items() if k.startswith("wer_")},
        "text_sources": data.source_versions(),
        **spoken,
    }
    metadata = dict(raw.get("metadata") or {}) | info
    if output != path:
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, output)
    digest = save_with_decoder(
        output,
        loaded,
        raw,
        metadata=metadata,
        lexicon=words,
        word_lm=lm,
        decoder_settings=settings,
        lexicon_correction=False,
        pronunciations=table,
    )
    return digest, {**info, "grid": grid, "bytes": output.stat().st_size}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--output", type=Path, help="write here instead of rewriting --model")
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes (first run only)")
    parser.add_argument("--json", type=Path, help="also write the tuning grid here")
    parser.add_argument("--dev-limit", type=int, help="tune on the first N dev sentences (smoke runs)")
    parser.add_argument("--quick", action="store_true", help="one grid point (smoke runs)")
    args = parser.parse_args(argv)
    digest, info = attach(
        args.model, args.output, workers=args.workers, dev_limit=args.dev_limit, quick=args.quick
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(info, indent=2) + "\n")
    settings = info["decoder_settings"]
    print(
        f"{args.output or args.model}: lexicon ({info['lexicon_words']} words), {info['lm_type']} "
        f"{info['lm_ngrams']} attached; lm_weight={settings['lm_weight']} "
        f"word_bonus={settings['word_bonus']} "
        f"(dev WER {info['dev_wer']:.2%}); {info['bytes'] / 1e6:.1f} MB, sha256 {digest}"
    )


if __name__ == "__main__":
    main()
