"""Attach the grammar's vocabulary and a word LM to a checkpoint: ``python -m training.lexicon --model PATH``.

The demo model only ever hears words from ``training/text.py``. Three things are added to the file
(the weights are untouched: it is read with the safe loader's rules and written back):

- the word list, so greedy decoding can snap a misspelled word to the nearest real one
  (``asr_service.model.ctc.Lexicon``);
- a word bigram LM counted on the *training* sentences only (``asr_service.model.word_lm``);
- the beam-search settings (LM weight, word bonus) that give the lowest WER on the development
  sentences (``training.data.dev_sentences``: disjoint from train and from the held-out test set,
  which is never used for tuning).
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr_service.model.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint, save_checkpoint
from asr_service.model.ctc import greedy_decode
from asr_service.model.lexicon_beam import BeamSettings, LexiconBeamDecoder
from asr_service.model.transcribe import stream_log_probs
from asr_service.model.word_lm import BigramLm
from training import data, text
from training.augment import augment
from training.metrics import error_rates

DEV_NOISE_SEED = 11
LM_WEIGHTS = (0.3, 0.5, 0.7, 1.0, 1.4)
WORD_BONUSES = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)


def tune(
    tokens: list[str], blank_id: int, lm: BigramLm, log_probs: list[torch.Tensor], refs: list[str]
) -> tuple[BeamSettings, list[dict[str, Any]]]:
    """Grid search over LM weight and word bonus; lowest WER wins (then CER, then lighter LM)."""
    results = []
    for weight, bonus in itertools.product(LM_WEIGHTS, WORD_BONUSES):
        settings = BeamSettings(lm_weight=weight, word_bonus=bonus)
        decoder = LexiconBeamDecoder(tokens, blank_id, lm.words, lm, settings)
        hyps = [decoder.decode(lp) or greedy_decode(lp, tokens, blank_id) for lp in log_probs]
        wer, cer = error_rates(refs, hyps)
        results.append({"lm_weight": weight, "word_bonus": bonus, "wer": wer, "cer": cer})
    best = min(results, key=lambda r: (round(r["wer"], 6), round(r["cer"], 6), r["lm_weight"]))
    return replace(BeamSettings(), lm_weight=best["lm_weight"], word_bonus=best["word_bonus"]), results


def save_with_decoder(path: Path, loaded: Any, raw: dict[str, Any], **decoder: Any) -> str:
    """Rewrite a checkpoint's weights and features unchanged with a word decoder attached
    (``decoder``: metadata, lexicon, word_lm, decoder_settings, ...); returns its sha256."""
    return save_checkpoint(
        path,
        arch=loaded.arch,
        hparams=loaded.hparams,
        features=loaded.features,
        tokens=loaded.tokens,
        blank_id=loaded.blank_id,
        state_dict=raw["state_dict"],
        **decoder,
    )


def attach(path: Path, workers: int = 2) -> tuple[str, dict[str, Any]]:
    loaded = load_checkpoint(path)  # validates the file before we rewrite it
    raw = torch.load(path, map_location="cpu", weights_only=True)
    words = sorted(text.vocabulary())
    spec = data.DataSpec()
    lm = BigramLm.train(words, data.train_sentences(spec))

    dev = data.corpus("dev", spec, workers=workers)
    rng = np.random.default_rng(DEV_NOISE_SEED)
    torch.set_num_threads(1)
    dev_log_probs = [
        stream_log_probs(loaded.model, torch.from_numpy(augment(audio, rng, snr_db=(10.0, 40.0))))
        for audio in dev.audio
    ]
    settings, grid = tune(loaded.tokens, loaded.blank_id, lm, dev_log_probs, dev.texts)
    picked = (settings.lm_weight, settings.word_bonus)
    chosen = next(r for r in grid if (r["lm_weight"], r["word_bonus"]) == picked)
    decoder_info = {
        "lexicon_words": len(words),
        "lm_bigrams": len(lm.to_payload()["bigrams"]),  # type: ignore[arg-type]
        "lm_trained_on": f"{spec.train_sentences} training sentences",
        "decoder_settings": asdict(settings),
        "tuned_on": f"{len(dev.texts)} development sentences (seed {data.DEV_SEED}), noisy",
        "dev_wer": chosen["wer"],
        "dev_cer": chosen["cer"],
    }
    metadata = dict(raw.get("metadata") or {}) | decoder_info
    digest = save_with_decoder(
        path, loaded, raw, metadata=metadata, lexicon=words, word_lm=lm, decoder_settings=settings
    )
    return digest, {**decoder_info, "grid": grid}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes (first run only)")
    parser.add_argument("--json", type=Path, help="also write the tuning grid here")
    args = parser.parse_args(argv)
    digest, info = attach(args.model, workers=args.workers)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(info, indent=2) + "\n")
    settings = info["decoder_settings"]
    print(
        f"{args.model}: lexicon ({info['lexicon_words']} words) and word LM ({info['lm_bigrams']} bigrams) "
        f"attached; beam settings lm_weight={settings['lm_weight']} word_bonus={settings['word_bonus']} "
        f"(dev WER {info['dev_wer']:.2%}, CER {info['dev_cer']:.2%}); sha256 {digest}"
    )


if __name__ == "__main__":
    main()
