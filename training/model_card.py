"""Write ``MODEL_CARD.md`` next to a checkpoint from its metadata and an eval result.

``python -m training.model_card --model PATH --eval EVAL.json``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from asr_service.model.checkpoint import load_checkpoint
from training import synth


def render(
    path: Path, meta: dict[str, Any], result: dict[str, Any], sha256: str, size: int, notes: list[str]
) -> str:
    cfg = meta.get("train_config", {})
    spec = meta.get("data", {})
    lines = [
        "# Demo model: streaming GRU-CTC, English, espeak-ng synthetic speech",
        "",
        f"File: `{path.name}` ({size / 1e6:.1f} MB), sha256 `{sha256}`.",
        "Reproduce from scratch with `make demo-model` (same code, same seeds); evaluate with `make eval`.",
        "",
        "## What it is",
        "",
        f"- Architecture `{meta.get('arch', 'streaming-gru-ctc')}`: 80-bin log-mel (25 ms / 10 ms), "
        "3 frames stacked (30 ms model frames), causal conv, "
        f"{meta.get('hparams', {}).get('layers', '?')} unidirectional GRU layers of "
        f"{meta.get('hparams', {}).get('hidden', '?')}, character CTC head "
        "(a-z, apostrophe, word boundary, blank).",
        f"- {meta.get('parameters', 0) / 1e6:.2f} M parameters. Chunks of 300 ms; emission delay up to "
        "90 ms (3 flush frames at end of stream).",
        "- Exact streaming: chunked decoding equals whole-utterance decoding (float rounding only).",
        f"- Ships a lexicon of {meta.get('lexicon_words', 0)} words (the grammar's vocabulary) and a "
        f"word bigram LM ({meta.get('lm_bigrams', 0)} bigrams counted on the training sentences only). "
        "Partials are greedy CTC with lexicon correction; each final is re-decoded by a "
        "lexicon-constrained CTC prefix beam search with the LM "
        f"(`asr_service.model.lexicon_beam`, settings {meta.get('decoder_settings', {})}, tuned on "
        f"{meta.get('tuned_on', 'development sentences')}: dev WER {meta.get('dev_wer', 0):.2%}).",
        "",
        "## Data",
        "",
        f"- {meta.get('train_utterances')} training sentences ({meta.get('train_hours')} h of audio), "
        f"{spec.get('test_sentences')} held-out sentences; all from the template grammar in "
        "`training/text.py` (closed vocabulary of about 1,000 words; held-out sentences are "
        "excluded from training and checked in code).",
        f"- Speech: espeak-ng ({meta.get('espeak_ng', '?')}), {len(synth.BASE_VOICES)} English accents × "
        f"{len(synth.VARIANTS)} voice variants, 125-195 words/min, pitch 25-75, word gaps 0-2; "
        "resampled to 16 kHz.",
        "- Augmentation on the fly: 0-0.4 s leading / 0-0.3 s trailing silence, telephone or muffled "
        "band limits (30 %), level -38 to -14 dBFS, white/pink/brown noise at 5-40 dB SNR (85 %), "
        "SpecAugment-style masks.",
        f"- Seeds: train sentences {spec.get('train_seed')}, held-out {spec.get('test_seed')}, "
        f"training {cfg.get('seed')}; development sentences (decoder tuning only): "
        f"{meta.get('tuned_on', '-')}.",
        "",
        "## Training",
        "",
        f"- {meta.get('steps')} steps ({meta.get('epochs')} epochs, {meta.get('audio_hours_seen')} h of "
        f"audio seen), batches of about {cfg.get('batch_seconds')} s of padded audio, AdamW, peak lr "
        f"{cfg.get('lr')}, warm-up {cfg.get('warmup_steps')} steps then cosine decay, grad clip "
        f"{cfg.get('grad_clip')}.",
        f"- Time on this machine ({platform.machine()}, 2 cores shared with other work, "
        f"{cfg.get('threads')} torch threads): synthesis {meta.get('synthesis_minutes')} min, "
        f"training {meta.get('training_minutes')} min"
        + (" (stopped by the time budget)." if meta.get("ended_by") == "time budget" else "."),
        f"- Final training loss (smoothed CTC): {meta.get('final_loss')}. torch {meta.get('torch')}.",
        "",
        "## Results (held-out sentences, streaming path, noisy: SNR 10-40 dB)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| **WER (what the server returns: beam search + word LM)** | **{result['wer']:.2%}** |",
        f"| **CER (what the server returns: beam search + word LM)** | **{result['cer']:.2%}** |",
        "| WER (greedy CTC + lexicon correction: the partials' decoding) "
        f"| {_rate(result, 'lexicon_wer', 0)} |",
        f"| CER (greedy CTC + lexicon correction) | {_rate(result, 'lexicon_cer', 0)} |",
        f"| WER (greedy CTC alone) | {_rate(result, 'greedy_wer', result['wer'])} |",
        f"| CER (greedy CTC alone) | {_rate(result, 'greedy_cer', result['cer'])} |",
        f"| sentences exactly right | {result['sentence_accuracy']:.1%} |",
        "| real-time factor, one stream, 1 CPU thread (model + all decoding) "
        f"| {result['rtf_1_thread']:.4f} |",
        f"| utterances | {result['utterances']} |",
        "",
        f"Lexicon correction: the checkpoint carries the grammar's {result.get('lexicon_words', 0)} words; "
        "a decoded word not in that list is replaced by the nearest listed word within a small edit "
        "distance (`asr_service.model.ctc.Lexicon`). Beam search: only letter sequences that spell "
        "lexicon words survive, and word ends add the LM score, so a weakly heard word can be "
        "recovered from context. The held-out test sentences were used for none of this: not for "
        "training, not for the LM, not for tuning. All three decodings come from the same streamed "
        "log-probs.",
        "",
        "Demo clips (`tests/data/clips`, held-out sentences, fixed voices chosen before training):",
        "",
    ]
    for clip in result.get("clips", []):
        mark = "exact" if clip["exact"] else f"got {clip['got']!r}"
        lines.append(f'- `{clip["clip"]}`: "{clip["expected"]}" — {mark}')
    lines += [
        "",
        "Validation during training (whole-utterance greedy, first held-out sentences):",
        "",
        "| step | loss | WER | CER |"
        if meta.get("targets") != "phonemes"
        else "| step | loss | word-pronunciation error rate | phoneme error rate |",
        "|---|---|---|---|",
    ]
    for row in meta.get("validation", []):
        lines.append(f"| {row['step']} | {row['loss']:.3f} | {row['wer']:.2%} | {row['cer']:.2%} |")
    if notes:
        lines += ["", "## Notes on this build", ""] + [f"- {note}" for note in notes]
    lines += [
        "",
        "## Limits",
        "",
        "- Synthetic speech only, one synthesizer: expect poor results on real human speech, "
        "and words outside the grammar's vocabulary are spelled phonetically at best.",
        "- A demonstration of the serving stack, not a production recogniser: deploy a real model "
        "(for example an EzSpeech checkpoint) with `make upload-model`.",
        "",
    ]
    return "\n".join(lines)


def _rate(result: dict[str, Any], key: str, default: float) -> str:
    """A rate as a percentage; a phoneme model has no greedy word rates (it writes phonemes)."""
    value = result.get(key, default)
    return "n/a (phoneme model: only the word search writes words)" if value is None else f"{value:.2%}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True)
    parser.add_argument("--note", action="append", default=[], help="a line for 'Notes on this build'")
    parser.add_argument("--started-at", type=float, help="epoch seconds when make demo-model began")
    args = parser.parse_args(argv)
    if args.started_at:
        minutes = (time.time() - args.started_at) / 60
        args.note.insert(
            0,
            "make demo-model ran end to end (synthesis, training, word LM and decoder tuning, "
            f"evaluation) in {minutes:.1f} min.",
        )
    loaded = load_checkpoint(args.model)
    meta = dict(loaded.metadata) | {
        "arch": loaded.arch,
        "hparams": loaded.hparams,
        "parameters": loaded.num_parameters,
    }
    result = json.loads(args.eval.read_text())
    card = render(args.model, meta, result, loaded.sha256, args.model.stat().st_size, args.note)
    out = args.model.parent / "MODEL_CARD.md"
    out.write_text(card)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
