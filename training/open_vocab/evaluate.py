"""WER of a checkpoint on the open-vocabulary test set (two voice conditions) and the grammar set.

``python -m training.open_vocab.evaluate --model PATH [--json OUT]``

Each set goes through the streaming path exactly as ``training.evaluate`` does it (300 ms chunks,
seeded noise at 10-40 dB SNR, the incremental decoder): greedy CTC alone, greedy + lexicon
correction (only when the checkpoint enables it) and what the server returns (the word search on
finals). Rows:

- ``open / en-us default``: the fortunes test sentences in espeak-ng's default en-us voice;
- ``open / varied voices``: the same sentences, a seeded random voice each (as training speaks);
- ``grammar / varied voices``: the grammar's held-out sentences (the README's original set).

Also the out-of-lexicon rate of each set's reference words, and the most frequent word
confusions (substitutions, deletions, insertions) of the served text.

A phoneme model (``training.open_vocab.phoneme_targets``) writes no text of its own: its greedy
column is the phoneme error rate (PER) against what espeak-ng said in each utterance's accent, and
its "greedy + lexicon" column does not exist (only the word search writes words).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr_service.model.checkpoint import load_checkpoint
from asr_service.model.ctc import collapse
from asr_service.model.interface import AcousticModel
from asr_service.model.transcribe import stream_blocks
from training import data as grammar_data
from training.augment import augment
from training.evaluate import EVAL_SEED, TimedDecoder, _decode, decoding_rates
from training.open_vocab import data, phoneme_targets

SETS = ("open / en-us default", "open / varied voices", "grammar / varied voices")


def align(ref: list[str], hyp: list[str]) -> list[tuple[str, str]]:
    """Edit operations of a minimal Levenshtein alignment: (ref word or "", hyp word or "")."""
    rows, cols = len(ref) + 1, len(hyp) + 1
    cost = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        cost[i][0] = i
    for j in range(cols):
        cost[0][j] = j
    for i in range(1, rows):
        for j in range(1, cols):
            cost[i][j] = min(
                cost[i - 1][j] + 1, cost[i][j - 1] + 1, cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1])
            )
    ops: list[tuple[str, str]] = []
    i, j = len(ref), len(hyp)
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            if ref[i - 1] != hyp[j - 1]:
                ops.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            ops.append((ref[i - 1], ""))
            i -= 1
        else:
            ops.append(("", hyp[j - 1]))
            j -= 1
    return ops[::-1]


def confusions(refs: list[str], hyps: list[str], top: int = 15) -> list[tuple[str, str, int]]:
    counted: Counter[tuple[str, str]] = Counter()
    for ref, hyp in zip(refs, hyps, strict=True):
        counted.update(align(ref.split(), hyp.split()))
    return [(r, h, n) for (r, h), n in counted.most_common(top)]


def test_corpora(
    spec: data.OpenSpec, grammar_sentences: int, workers: int
) -> dict[str, grammar_data.synth.Corpus]:
    grammar_spec = grammar_data.DataSpec(test_sentences=grammar_sentences)
    return {
        SETS[0]: data.corpus("test-default", spec, workers=workers),
        SETS[1]: data.corpus("test-varied", spec, workers=workers),
        SETS[2]: grammar_data.corpus("test", grammar_spec, workers=workers),
    }


def evaluate(
    model_path: Path,
    corpora: dict[str, grammar_data.synth.Corpus],
    word_decoder: str = "native",
    clean: bool = False,
) -> dict[str, Any]:
    loaded = load_checkpoint(model_path, word_decoder=word_decoder)
    search = loaded.word_decoder
    words = set(search.words) if search is not None else set()
    results: dict[str, Any] = {
        "model": str(model_path),
        "sha256": loaded.sha256,
        "lexicon_words": len(words),
        "lexicon_correction": loaded.lexicon is not None,
        "word_decoder": getattr(search, "name", None),
        "audio": "clean" if clean else "noisy (SNR 10-40 dB, level and channel augmentation)",
        "sets": {},
    }
    for name, corpus in corpora.items():
        result = evaluate_set(loaded.model, corpus, clean)
        ref_words = [w for t in corpus.texts for w in t.split()]
        oov = sum(w not in words for w in ref_words) / max(1, len(ref_words))
        result["oov_rate"] = oov if words else None
        results["sets"][name] = result
        greedy = (
            f"greedy {result['greedy_wer']:.2%}"
            if result.get("greedy_wer") is not None
            else f"greedy PER {result['greedy_per']:.2%}"
        )
        print(
            f"{name}: served WER {result['wer']:.2%}  {greedy}"
            + (f"  lexicon {result['lexicon_wer']:.2%}" if loaded.lexicon is not None else "")
            + f"  (OOV {oov if words else 0:.2%}, "
            f"{result['utterances']} utt, {result['ms_per_final']:.1f} ms per final)",
            flush=True,
        )
    return results


def evaluate_set(
    model: AcousticModel, corpus: grammar_data.synth.Corpus, clean: bool = False
) -> dict[str, Any]:
    """One pass over ``corpus`` as ``training.evaluate.evaluate_streaming`` makes it (same noise
    seed, same decoders), keeping every served text for the confusions. ``clean``: the
    synthesized audio as it is (peak-normalised, no noise, level or channel change)."""
    lexicon = getattr(model, "lexicon", None)
    search = getattr(model, "word_decoder", None)
    pronounced = bool(getattr(search, "pronounced", False))
    timed = TimedDecoder(search) if search is not None else None
    rng = np.random.default_rng(EVAL_SEED)
    plain, corrected, served, phones = [], [], [], []
    for audio in corpus.audio:
        if clean:
            signal = torch.from_numpy(audio.astype(np.float32) / 32768.0)
        else:
            signal = torch.from_numpy(augment(audio, rng, snr_db=(10.0, 40.0)))
        blocks = list(stream_blocks(model, signal))
        if pronounced:
            best = torch.cat(blocks).argmax(dim=-1).tolist()
            phones.append(phoneme_targets.as_text(collapse(best, model.blank_id), model.tokens))
        plain.append(_decode(model, blocks, None))
        corrected.append(_decode(model, blocks, lexicon) if lexicon else plain[-1])
        served.append(_decode(model, blocks, lexicon, timed) if timed else corrected[-1])
    result = {
        **decoding_rates(corpus.texts, served, corrected, plain, examples=10),
        "ms_per_final": timed.ms_per_final if timed else 0.0,
        "confusions": confusions(corpus.texts, served),
    }
    if pronounced:
        # What espeak-ng said, in each utterance's accent, as the model was trained to write it.
        spoken = phoneme_targets.targets_for(corpus.texts, corpus.voices, data.CACHE_DIR)
        refs = [" ".join("_".join(word) for word in words) for words in spoken]
        pwer, per = phoneme_targets.phoneme_error_rate(refs, phones)
        result |= {
            "greedy_wer": None,
            "greedy_cer": None,
            "greedy_per": per,
            "greedy_pronunciation_wer": pwer,
        }
    return result


def table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown rows: one per (model label, set)."""
    lines = [
        "| decoder | test set | served WER | greedy + lexicon WER | greedy WER | sentences exact | OOV |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, result in rows.items():
        for name, r in result["sets"].items():
            lexicon = f"{r['lexicon_wer']:.2%}" if result["lexicon_correction"] else "n/a (off)"
            greedy = (
                f"{r['greedy_wer']:.2%}" if r.get("greedy_wer") is not None else f"PER {r['greedy_per']:.2%}"
            )
            oov = f"{r['oov_rate']:.2%}" if r.get("oov_rate") is not None else "-"
            lines.append(
                f"| {label} | {name} | **{r['wer']:.2%}** | {lexicon} | {greedy} | "
                f"{r['sentence_accuracy']:.1%} | {oov} |"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, action="append", required=True, help="repeatable")
    parser.add_argument("--label", action="append", help="one per --model, for the table")
    parser.add_argument("--grammar-sentences", type=int, default=grammar_data.DataSpec.test_sentences)
    parser.add_argument("--test-sentences", type=int, default=data.TEST_SENTENCES)
    parser.add_argument("--word-decoder", choices=("native", "python", "auto"), default="native")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clean", action="store_true", help="no noise/level/channel augmentation")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = data.OpenSpec(test_sentences=args.test_sentences)
    corpora = test_corpora(spec, args.grammar_sentences, args.workers)
    labels = args.label or [str(m) for m in args.model]
    rows = {
        label: evaluate(path, corpora, args.word_decoder, args.clean)
        for label, path in zip(labels, args.model, strict=True)
    }
    print("\n".join(table(rows)))
    for label, result in rows.items():
        for name, r in result["sets"].items():
            shown = ", ".join(f"{a or '∅'}→{b or '∅'} ×{n}" for a, b, n in r["confusions"][:10])
            print(f"{label} / {name} confusions: {shown}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
