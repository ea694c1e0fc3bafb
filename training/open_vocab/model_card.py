"""Model card for an open-vocabulary demo model: the grammar card plus both test sets in one table.

``python -m training.open_vocab.model_card --model PATH --eval EVAL.json --open-eval OPEN.json``

``EVAL.json`` is ``training.evaluate``'s result (grammar set, demo clips, real-time factor);
``OPEN.json`` is ``training.open_vocab.evaluate``'s (open set in two voice conditions and the
grammar set). The card is ``training.model_card``'s with the lexicon and data lines rewritten for
the open recipe and a section holding the combined table, the sources and the remaining confusions.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from asr_service.model.checkpoint import load_checkpoint
from training import model_card
from training.open_vocab import data
from training.open_vocab.evaluate import table


def _utterances(open_eval: dict[str, Any]) -> int:
    for result in open_eval.values():
        for name, r in result["sets"].items():
            if name.startswith("open"):
                return int(r["utterances"])
    return data.TEST_SENTENCES


def open_section(meta: dict[str, Any], open_eval: dict[str, Any]) -> list[str]:
    lines = [
        "## Results on both test sets (streaming path, noisy: SNR 10-40 dB)",
        "",
        f"- **open**: {_utterances(open_eval)} sentences from the `fortunes` "
        "cookie files (quotations, proverbs, jokes), a source used for nothing else: no test sentence "
        "is in the training or LM text and no training text comes from that package (both checked in "
        "code). Spoken twice: espeak-ng's default en-us voice, and a seeded random voice each.",
        "- **grammar**: the held-out sentences of the template grammar (the original test set).",
        "",
        *table(open_eval),
        "",
        "Served = what the server returns (native lexicon search + word LM on finals); "
        "greedy = the partials' decoding (for a phoneme model: PER, the phoneme error rate of greedy "
        "CTC against what espeak-ng said; its partials come from the word search too). "
        "OOV = reference words missing from the lexicon.",
        "",
        "Most frequent confusions of the served text (reference → hypothesis, ∅ = nothing):",
        "",
    ]
    for label, result in open_eval.items():
        for name, r in result["sets"].items():
            shown = ", ".join(f"{a or '∅'} → {b or '∅'} ×{n}" for a, b, n in r["confusions"][:8])
            lines.append(f"- {label}, {name}: {shown}")
    lines += ["", "Text sources (Debian, npm and PyPI packages; see `training/open_vocab/SOURCES.md`):", ""]
    lines += ["| source | package | version | licence | role |", "|---|---|---|---|---|"]
    for name, s in (meta.get("text_sources") or data.source_versions()).items():
        lines.append(f"| {name} | `{s['package']}` | {s['installed']} | {s['licence']} | {s['role']} |")
    return [*lines, ""]


def _lm_text(meta: dict[str, Any]) -> str:
    """What the LM was estimated on, as attach recorded it (older checkpoints: the training text)."""
    return str(meta.get("lm_trained_on") or "the training text only")


def render_open(
    path: Path,
    meta: dict[str, Any],
    result: dict[str, Any],
    open_eval: dict[str, Any],
    sha256: str,
    size: int,
    notes: list[str],
) -> str:
    card = model_card.render(path, meta, result, sha256, size, notes)
    lines = card.split("\n")
    spec = meta.get("open_data", {})
    counts = meta.get("lm_ngrams", [])
    phonemes = meta.get("targets") == "phonemes"
    for i, line in enumerate(lines):
        if line.startswith("- Ships a lexicon") and phonemes:
            table = meta.get("pronunciations", {})
            lines[i] = (
                f"- Writes espeak-ng phonemes, not letters ({max(0, len(meta.get('tokens', [])) - 2)} "
                "symbols, stress marks dropped; the targets are what espeak-ng said in each utterance's "
                "accent, in context). Ships a broad lexicon of "
                f"{meta.get('lexicon_words', 0)} words ({meta.get('lexicon', '')}) with a pronunciation "
                f"table of {table.get('pronunciations', '-')} pronunciations "
                f"({meta.get('pronunciation_sources', '')}), and a {meta.get('lm_type', 'word n-gram LM')} "
                f"({' / '.join(map(str, counts))} n-grams) estimated on {_lm_text(meta)}. Every "
                "text the server returns, partial and final, is written by the native lexicon search "
                "over those pronunciations with the LM (words that sound alike are told apart by the LM) "
                f"(settings {meta.get('decoder_settings', {})}, tuned on {meta.get('tuned_on', '-')}: "
                f"dev WER {meta.get('dev_wer', 0):.2%})."
            )
        elif line.startswith("- Ships a lexicon"):
            lines[i] = (
                f"- Ships a broad lexicon of {meta.get('lexicon_words', 0)} words "
                f"({meta.get('lexicon', '')}) "
                f"and a {meta.get('lm_type', 'word n-gram LM')} ({' / '.join(map(str, counts))} n-grams) "
                f"estimated on {_lm_text(meta)}. Partials are greedy CTC (no lexicon snapping with "
                "this many words); each final is re-decoded by the native lexicon search with the LM "
                f"(settings {meta.get('decoder_settings', {})}, tuned on {meta.get('tuned_on', '-')}: "
                f"dev WER {meta.get('dev_wer', 0):.2%})."
            )
        elif line.startswith(f"- {meta.get('train_utterances')} training sentences"):
            lines[i] = (
                f"- {meta.get('train_utterances')} training sentences "
                f"({meta.get('train_hours')} h of audio): "
                f"{spec.get('open_train')} WordNet 3.0 example sentences and {spec.get('grammar_train')} "
                "sentences of the template grammar (`training/text.py`), mixed. Validation during "
                "training uses the open development sentences; the test sets are below."
            )
    symbols = max(0, len(meta.get("tokens", [])) - 2)
    replacements = {
        "character CTC head (a-z, apostrophe, word boundary, blank).": (
            f"phoneme CTC head ({symbols} espeak-ng phonemes, word boundary, blank)."
            if phonemes
            else "character CTC head (a-z, apostrophe, word boundary, blank)."
        ),
        "evaluate with `make eval`.": (
            "evaluate with `make eval-open MODEL=...` (both test sets) and `make eval`."
        ),
        "and words outside the grammar's vocabulary are spelled phonetically at best.": (
            "and words outside its lexicon can never be returned by the word search"
            + (
                ": it returns the nearest-sounding lexicon words."
                if phonemes
                else " (the greedy partials spell them as heard)."
            )
        ),
    }
    for i, line in enumerate(lines):
        if line.startswith("- Seeds:"):
            lines[i] = (
                f"- Seeds: training sentences {spec.get('train_seed')}, open test sentences "
                f"{spec.get('test_seed')}, open development sentences {data.DEV_SEED}, "
                f"conversation development lines {data.CONVERSATION_SEED}, grammar held-out "
                f"{meta.get('data', {}).get('test_seed')}, "
                f"training {meta.get('train_config', {}).get('seed')}."
            )
        for old, new in replacements.items():
            lines[i] = lines[i].replace(old, new)
    if phonemes:
        # The grammar card explains letter decoding; a phoneme model has one decoding only.
        lines = [
            (
                "Word search: the model's phonemes go through the native lexicon search over the "
                "pronunciation table and the word LM, frame by frame as the audio streams (partials "
                "and finals alike). The held-out test sentences were used for none of this: not for "
                "training, not for the LM, not for tuning."
            )
            if ln.startswith("Lexicon correction: the checkpoint carries")
            else ln
            for ln in lines
        ]
    results_at = next(i for i, ln in enumerate(lines) if ln.startswith("## Results"))
    lines[results_at:results_at] = open_section(meta, open_eval)
    lines = [
        ln.replace("## Results (held-out sentences,", "## Grammar set in detail (held-out sentences,")
        for ln in lines
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True)
    parser.add_argument("--open-eval", type=Path, required=True)
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--started-at", type=float)
    args = parser.parse_args(argv)
    if args.started_at:
        minutes = (time.time() - args.started_at) / 60
        args.note.insert(
            0,
            "The recipe ran end to end (synthesis, phoneme targets, training, lexicon, pronunciations, LM "
            f"and tuning, both evaluations) in {minutes:.1f} min.",
        )
    loaded = load_checkpoint(args.model)
    meta = dict(loaded.metadata) | {
        "arch": loaded.arch,
        "hparams": loaded.hparams,
        "parameters": loaded.num_parameters,
        "tokens": loaded.tokens,
    }
    card = render_open(
        args.model,
        meta,
        json.loads(args.eval.read_text()),
        json.loads(args.open_eval.read_text()),
        loaded.sha256,
        args.model.stat().st_size,
        args.note,
    )
    out = args.model.parent / "MODEL_CARD.md"
    out.write_text(card)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
