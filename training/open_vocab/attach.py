"""Attach the broad lexicon and the n-gram word LM to a checkpoint; tune the search on dev sentences.

``python -m training.open_vocab.attach --model PATH [--output OUT]``

The weights are untouched (read with the safe loader, written back). Added:

- the broad lexicon (:func:`training.open_vocab.data.lexicon_words`, ~88,000 words) for the word
  search only (``lexicon_correction`` off: snapping greedy partials to the nearest of that many
  words costs seconds per unknown word and mostly picks a wrong neighbour);
- a modified Kneser-Ney trigram over it, estimated on the LM text (the training text and the
  State of the Union addresses since 1900; :mod:`training.open_vocab.kneser_ney`; trigrams seen
  once pruned), its unigrams mixed with wordfreq's English frequencies (``BACKGROUND_WEIGHT``);
- the LM weight and word bonus with the lowest WER on the development sentences (WordNet
  examples kept out of the LM and of training, conversation lines of another source, grammar
  sentences; never the test set), decoded by the native search; then the search's width and
  threshold: the cheapest setting of ``SEARCH_GRID`` within ``SEARCH_TOLERANCE`` of the best
  dev WER;
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
from training.open_vocab import data, kneser_ney, pronunciations, sources

DEV_NOISE_SEED = 11
LM_ORDER = 3
MIN_TRIGRAM_COUNT = 2
#: The share of wordfreq's frequencies in the LM's unigrams (chosen on the development sentences:
#: 0.2 beat 0 and 0.4 on the conversation and WordNet sets together).
BACKGROUND_WEIGHT = 0.2
LM_WEIGHTS = (0.5, 0.8, 1.2, 1.6, 2.0)
#: Grammar development sentences beside the open ones: the model serves both kinds.
GRAMMAR_DEV = 100
WORD_BONUSES = (-3.0, -2.0, -1.0, 0.0, 1.0)
#: The search (beam × threshold) the weight grid runs with, then the grid the search is picked
#: from. On the development sentences a phoneme model's search over ~88,000 words finds more
#: of them wider and tighter: beam 96 under 10 gave 8.9 % where 12 under 15 (the letter models'
#: search) gave 9.7 %, and cost less (5.6 against 6.6 ms per sentence).
WEIGHT_GRID_SEARCH = (96, 10.0)
SEARCH_GRID = ((12, 48, 96), (10.0, 12.0, 15.0))
#: Dev WER within this of the best counts as a tie, and the cheaper search wins it.
SEARCH_TOLERANCE = 0.001


def background_unigrams(words: list[str]) -> list[float]:
    """wordfreq's English frequencies over ``words`` (0 for a word it lacks), summing to one."""
    frequencies = sources.word_frequencies()
    weights = [frequencies.get(w, 0.0) for w in words]
    total = sum(weights)
    if total <= 0:
        raise RuntimeError("wordfreq knows none of the lexicon's words")
    return [w / total for w in weights]


def build_lm(spec: data.OpenSpec) -> tuple[list[str], NgramLm]:
    words = data.lexicon_words(spec)
    index = {w: i for i, w in enumerate(words)}
    sentences = [[index[w] for w in s.split()] for s in data.lm_sentences(spec)]
    lm = kneser_ney.estimate(
        sentences,
        words,
        order=LM_ORDER,
        min_count=MIN_TRIGRAM_COUNT,
        background=background_unigrams(words),
        background_weight=BACKGROUND_WEIGHT,
    )
    return words, lm


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
    search: tuple[int, float] | None = WEIGHT_GRID_SEARCH,
    search_grid: tuple[tuple[int, ...], tuple[float, ...]] | None = SEARCH_GRID,
) -> tuple[BeamSettings, list[dict[str, Any]]]:
    """Grid over LM weight × word bonus with the native search (one ARPA file, read per setting)
    at ``search`` (beam, threshold; None: the defaults), then, at the best weights, the cheapest
    (beam, threshold) of ``search_grid`` whose dev WER is within ``SEARCH_TOLERANCE`` of that grid's
    best. With ``pronunciations`` (a phoneme model) a segment without words scores as empty text,
    as the server returns it; a letter model falls back to its greedy text. ``labels`` (one per
    sentence) adds each labelled subset's WER to the rows; every pick is on the WER of all."""
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="open-lm-") as scratch:
        arpa = Path(scratch) / "lm.arpa"
        lm.write_arpa(arpa)

        def score(settings: BeamSettings) -> dict[str, Any]:
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
            row = {
                "lm_weight": settings.lm_weight, "word_bonus": settings.word_bonus,
                "beam": settings.beam, "beam_threshold": settings.beam_threshold,
                "wer": wer, "cer": cer, "ms": ms,
            }  # fmt: skip
            for label in sorted(set(labels or ())):
                picked = [i for i, lab in enumerate(labels or ()) if lab == label]
                row[f"wer_{label}"] = error_rates([refs[i] for i in picked], [hyps[i] for i in picked])[0]
            results.append(row)
            per_set = "".join(f" {k[4:]} {v:.2%}" for k, v in row.items() if k.startswith("wer_"))
            print(
                f"  lm_weight {settings.lm_weight} word_bonus {settings.word_bonus} beam {settings.beam} "
                f"threshold {settings.beam_threshold}: dev WER {wer:.2%} CER {cer:.2%}{per_set} {ms:.1f} ms",
                flush=True,
            )
            return row

        base = BeamSettings()
        if search is not None:
            base = replace(base, beam=search[0], beam_threshold=search[1])
        weighed = [
            score(replace(base, lm_weight=weight, word_bonus=bonus))
            for weight, bonus in itertools.product(*grid)
        ]
        best = min(weighed, key=lambda r: (round(r["wer"], 6), round(r["cer"], 6), r["lm_weight"]))
        chosen = replace(base, lm_weight=best["lm_weight"], word_bonus=best["word_bonus"])
        if search_grid is not None:
            searched = [
                score(replace(chosen, beam=beam, beam_threshold=threshold))
                for beam, threshold in itertools.product(*search_grid)
            ]
            lowest = min(r["wer"] for r in searched)
            pick = min((r for r in searched if r["wer"] <= lowest + SEARCH_TOLERANCE), key=lambda r: r["ms"])
            chosen = replace(chosen, beam=pick["beam"], beam_threshold=pick["beam_threshold"])
    return chosen, results


def _row_of(grid: list[dict[str, Any]], settings: BeamSettings) -> dict[str, Any]:
    """The last grid row measured at ``settings`` (the search grid repeats the weight grid's pick)."""
    keys = ("lm_weight", "word_bonus", "beam", "beam_threshold")
    wanted = tuple(getattr(settings, k) for k in keys)
    return [r for r in grid if tuple(r[k] for k in keys) == wanted][-1]


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

    # Both jobs the model has: open text (WordNet development sentences, and conversation lines
    # from a source in no other role: out of the training text's genre, as users' sentences are)
    # and the grammar (its own development sentences, disjoint from its training and test sets).
    # Never a test sentence.
    dev = data.corpus("dev", spec, workers=workers)
    grammar_dev = grammar_data.corpus("dev", grammar_data.DataSpec(), workers=workers)
    talk = data.corpus("dev-conversation", spec, workers=workers)
    open_count = len(dev.texts) if dev_limit is None else min(dev_limit, len(dev.texts))
    grammar_count = GRAMMAR_DEV if dev_limit is None else dev_limit // 3
    talk_count = len(talk.texts) if dev_limit is None else min(dev_limit // 2, len(talk.texts))
    audio = [*dev.audio[:open_count], *grammar_dev.audio[:grammar_count], *talk.audio[:talk_count]]
    refs = [*dev.texts[:open_count], *grammar_dev.texts[:grammar_count], *talk.texts[:talk_count]]
    labels = ["open"] * open_count + ["grammar"] * grammar_count + ["conversation"] * talk_count
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
        loaded.tokens, loaded.blank_id, words, lm, dev_log_probs, refs, points, table, labels,
        search_grid=None if quick else SEARCH_GRID,
    )  # fmt: skip
    chosen = _row_of(grid, settings)
    lm_count, text_count = len(data.lm_sentences(spec)), len(data.text_sentences(spec))
    info = {
        "lexicon_words": len(words),
        "lexicon": "training text ∪ SCOWL american-english (lower-case) ∪ grammar vocabulary",
        "lm_type": f"{LM_ORDER}-gram modified Kneser-Ney, trigrams seen once pruned, unigrams mixed "
        f"with wordfreq's English frequencies (weight {BACKGROUND_WEIGHT})",
        "lm_ngrams": lm.counts(),
        "lm_trained_on": f"{lm_count} sentences: {text_count} of the training text (WordNet examples + "
        f"grammar) + {lm_count - text_count} of the State of the Union addresses since "
        f"{sources.SOTU_FIRST_YEAR}",
        "lm_seconds": round(lm_seconds, 1),
        "decoder_settings": asdict(settings),
        "tuned_on": f"{labels.count('open')} open development sentences (WordNet, seed {data.DEV_SEED}) "
        f"+ {labels.count('conversation')} conversation lines (chatterbot-corpus, "
        f"seed {data.CONVERSATION_SEED}) "
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
