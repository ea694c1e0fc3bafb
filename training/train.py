"""Train the demo streaming CTC model on espeak-ng speech. ``python -m training.train --help``.

CPU-only by design (the budget is one hour on two cores). The model is trained through
``forward_full``, which computes exactly what ``stream_step`` computes chunk by chunk, so the
streaming server gets the model that was trained.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asr_service.model.checkpoint import DEFAULT_MODEL_PATH, save_checkpoint
from asr_service.model.ctc import collapse, tokens_to_text
from asr_service.model.features import LogMelSettings
from asr_service.model.streaming_ctc import ARCH_NAME, CHAR_TOKENS, StreamingGruCtc, StreamingGruCtcConfig
from ops.progress import progress
from training import data
from training.augment import augment
from training.batches import Prefetcher
from training.ctc_step import ctc_update
from training.metrics import error_rates
from training.open_vocab import data as open_data
from training.open_vocab import phoneme_targets
from training.synth import espeak_version

WORK_DIR = data.REPO / "build" / "demo-train"


@dataclass(frozen=True)
class TrainConfig:
    #: Upper bound; on this machine the time budget usually ends training first.
    steps: int = 6000
    batch_seconds: float = 150.0  # padded audio seconds per batch
    lr: float = 2.5e-3
    warmup_steps: int = 150
    weight_decay: float = 1e-5
    grad_clip: float = 2.0
    seed: int = 1234
    #: One thread: on a shared 2-core machine, two OpenMP threads spin against other work and
    #: ran ~5-10x slower than one in our measurements.
    threads: int = 1
    log_every: int = 50
    #: Stop early (and still save) if training would run past this many minutes.
    max_minutes: float = 80.0
    validate_every: int = 250
    validation_utterances: int = 120


class SpecAugment(nn.Module):
    """Two frequency masks and a few short time masks on normalised log-mel [B, T, F]."""

    def __init__(self, freq_width: int = 10, time_width: int = 8, time_masks_per_second: float = 1.0) -> None:
        super().__init__()
        self.freq_width = freq_width
        self.time_width = time_width
        self.time_rate = time_masks_per_second / 100.0  # feature frames are 10 ms

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        feats = feats.clone()
        batch, frames, bins = feats.shape
        for b in range(batch):
            for _ in range(2):
                width = random.randint(0, self.freq_width)
                start = random.randint(0, max(0, bins - width))
                feats[b, :, start : start + width] = 0.0
            for _ in range(max(1, int(frames * self.time_rate))):
                width = random.randint(0, self.time_width)
                start = random.randint(0, max(0, frames - width))
                feats[b, start : start + width] = 0.0
        return feats


def encode_text(sentence: str) -> list[int]:
    index = {t: i for i, t in enumerate(CHAR_TOKENS)}
    return [index["▁" if ch == " " else ch] for ch in sentence]


def make_batches(lengths: list[int], batch_seconds: float, rng: random.Random) -> list[list[int]]:
    """Length-sorted batches whose padded size stays under ``batch_seconds``; shuffled order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    limit = batch_seconds * data.synth.SAMPLE_RATE
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending, so the newcomer is the longest of its batch.
        if current and lengths[i] * (len(current) + 1) > limit:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def collate(audios: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([a.size for a in audios])
    batch = torch.zeros(len(audios), int(lengths.max()))
    for row, audio in enumerate(audios):
        batch[row, : audio.size] = torch.from_numpy(audio)
    return batch, lengths


def feature_statistics(model: StreamingGruCtc, corpus: data.synth.Corpus, rng: np.random.Generator) -> None:
    """Set the model's fixed normalisation from 300 augmented training utterances."""
    feats = []
    with torch.no_grad():
        for i in rng.choice(len(corpus.audio), size=min(300, len(corpus.audio)), replace=False):
            audio = torch.from_numpy(augment(corpus.audio[int(i)], rng))
            feats.append(model.features(audio[None])[0])
    stacked = torch.cat(feats)
    model.set_normalization(stacked.mean(dim=0), stacked.std(dim=0))


def learning_rate(step: int, cfg: TrainConfig, time_fraction: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak. Progress is the larger of the step
    fraction and ``time_fraction`` (share of the time budget used), so that on a slow or shared
    machine the schedule still anneals fully before the budget stops training."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = max((step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps), time_fraction)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@dataclass(frozen=True)
class Targets:
    """What the model learns to write: letters (``CHAR_TOKENS``) or espeak-ng's phonemes
    (``training.open_vocab.phoneme_targets``): the vocabulary, each training utterance's token
    ids, and the validation references in the form ``score`` compares."""

    kind: str
    tokens: list[str]
    train: list[list[int]]
    references: list[str]

    def hypothesis(self, ids: list[int]) -> str:
        if self.kind == "phonemes":
            return phoneme_targets.as_text(ids, self.tokens)
        return tokens_to_text(ids, self.tokens)

    def score(self, hyps: list[str]) -> tuple[float, float]:
        """(WER, CER) for letters; (word-pronunciation error rate, phoneme error rate) for phonemes."""
        refs = self.references[: len(hyps)]
        if self.kind == "phonemes":
            return phoneme_targets.phoneme_error_rate(refs, hyps)
        return error_rates(refs, hyps)


def letter_targets(train_corpus: data.synth.Corpus, test_corpus: data.synth.Corpus) -> Targets:
    return Targets(
        "letters", CHAR_TOKENS, [encode_text(t) for t in train_corpus.texts], list(test_corpus.texts)
    )


def phoneme_targets_for(train_corpus: data.synth.Corpus, test_corpus: data.synth.Corpus) -> Targets:
    """Each utterance's phonemes in its own voice's accent (cached beside the open corpora)."""
    train = phoneme_targets.targets_for(train_corpus.texts, train_corpus.voices, open_data.CACHE_DIR)
    dev = phoneme_targets.targets_for(test_corpus.texts, test_corpus.voices, open_data.CACHE_DIR)
    tokens = phoneme_targets.phoneme_tokens(train)
    known = set(tokens)
    # A development phoneme the training text never shows cannot be written: score it as missed.
    references = [" ".join("_".join(p for p in word if p in known) for word in words) for words in dev]
    ids = [phoneme_targets.encode(words, tokens) for words in train]
    return Targets("phonemes", tokens, ids, references)


def validate(
    model: StreamingGruCtc, test: data.synth.Corpus, count: int, targets: Targets
) -> tuple[float, float, list[str]]:
    """Greedy whole-utterance error rates (``Targets.score``) on the first ``count`` held-out
    utterances."""
    model.eval()
    count = min(count, len(test.texts))
    rng = np.random.default_rng(0)
    hyps: list[str] = []
    with torch.no_grad():
        for start in range(0, count, 16):
            audios = [augment(a, rng, snr_db=(10, 40)) for a in test.audio[start : min(count, start + 16)]]
            batch, lengths = collate(audios)
            log_probs, out_lengths = model.forward_full(batch, lengths)
            best = log_probs.argmax(dim=-1).tolist()
            hyps.extend(
                targets.hypothesis(collapse(row[:n], 0))
                for row, n in zip(best, out_lengths.tolist(), strict=True)
            )
    model.train()
    wer, cer = targets.score(hyps)
    return wer, cer, hyps


def save(model: StreamingGruCtc, path: Path, config: StreamingGruCtcConfig, metadata: dict[str, Any]) -> str:
    return save_checkpoint(
        path,
        arch=ARCH_NAME,
        hparams=config.to_dict(),
        features=model.feature_settings.to_dict(),
        tokens=model.tokens,
        blank_id=0,
        state_dict=model.state_dict(),
        metadata=metadata,
    )


def train(
    cfg: TrainConfig,
    spec: data.DataSpec,
    model_cfg: StreamingGruCtcConfig,
    output: Path,
    workers: int,
    open_spec: open_data.OpenSpec | None = None,
    target_kind: str = "letters",
) -> dict[str, Any]:
    """Train on the grammar sentences, or with ``open_spec`` on the open-vocabulary mix
    (``training.open_vocab.data``: validation then runs on its development sentences).
    ``target_kind`` "phonemes" (open text only) trains on espeak-ng's phonemes instead of letters."""
    if target_kind not in ("letters", "phonemes"):
        raise ValueError(f"target_kind must be letters or phonemes, got {target_kind!r}")
    if target_kind == "phonemes" and open_spec is None:
        raise ValueError("phoneme targets are built for the open-vocabulary recipe (--text open)")
    wall_start = time.time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np_rng = np.random.default_rng(cfg.seed)
    batch_rng = random.Random(cfg.seed)

    if open_spec is not None:
        train_corpus, test_corpus = open_data.training_corpora(open_spec, workers)
    else:
        train_corpus = data.corpus("train", spec, workers=workers)
        test_corpus = data.corpus("test", spec, workers=workers)
        data.check_disjoint(train_corpus.texts, test_corpus.texts)
    targets = (
        phoneme_targets_for(train_corpus, test_corpus)
        if target_kind == "phonemes"
        else letter_targets(train_corpus, test_corpus)
    )
    synth_minutes = (time.time() - wall_start) / 60
    print(
        f"data: {len(train_corpus.texts)} train utterances ({train_corpus.seconds() / 3600:.1f} h), "
        f"{len(test_corpus.texts)} held-out ({test_corpus.seconds() / 60:.1f} min); "
        f"ready after {synth_minutes:.1f} min",
        flush=True,
    )

    model = StreamingGruCtc(model_cfg, LogMelSettings(), targets.tokens)
    feature_statistics(model, train_corpus, np_rng)
    model.spec_augment = SpecAugment()
    model.train()
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {ARCH_NAME} {model_cfg.to_dict()}, {params / 1e6:.2f} M parameters", flush=True)

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    # Length after augmentation padding is at most +0.7 s; sort by the raw length.
    lengths = [a.size + int(0.35 * data.synth.SAMPLE_RATE) for a in train_corpus.audio]
    WORK_DIR.mkdir(parents=True, exist_ok=True)

    step, epoch, train_start = 0, 0, time.time()
    history: list[dict[str, float]] = []
    running = 0.0
    stopped_early = False
    audio_seconds = 0.0
    # The training part of the time budget: what synthesis and set-up left of it.
    train_budget_s = max(60.0, cfg.max_minutes * 60 - (train_start - wall_start))

    def time_fraction() -> float:
        return (time.time() - train_start) / train_budget_s

    prefetch = Prefetcher(train_corpus.audio)
    # A step bar on a terminal (the log lines print above it); in a log, the same lines as always.
    try:
        with progress(cfg.steps, "train", unit="step", stream=sys.stdout) as report:
            say = report.write
            while step < cfg.steps and not stopped_early:
                epoch += 1
                batches = make_batches(lengths, cfg.batch_seconds, batch_rng)
                jobs = [(ids, cfg.seed * 1_000_003 + epoch * 10_007 + n) for n, ids in enumerate(batches)]
                for batch_ids, (batch_np, lens_np) in zip(batches, prefetch.iterate(jobs), strict=False):
                    if step >= cfg.steps:
                        break
                    if time_fraction() >= 1.0:
                        stopped_early = True
                        say(f"time budget of {cfg.max_minutes} min reached at step {step}; stopping")
                        break
                    batch, lens = torch.from_numpy(batch_np), torch.from_numpy(lens_np)
                    audio_seconds += float(lens.sum()) / data.synth.SAMPLE_RATE
                    batch_targets = [targets.train[i] for i in batch_ids]
                    for group in optimizer.param_groups:
                        group["lr"] = learning_rate(step, cfg, time_fraction())
                    log_probs, out_lens = model.forward_full(batch, lens)
                    loss = ctc_update(
                        model=model,
                        optimizer=optimizer,
                        ctc=ctc,
                        log_probs=log_probs,
                        out_lens=out_lens,
                        targets=batch_targets,
                        grad_clip=cfg.grad_clip,
                    )
                    step += 1
                    report.update(1)
                    running = loss if step == 1 else 0.98 * running + 0.02 * loss
                    if step % cfg.log_every == 0:
                        elapsed = time.time() - train_start
                        say(
                            f"step {step} epoch {epoch} loss {running:.3f} "
                            f"lr {optimizer.param_groups[0]['lr']:.2e} "
                            f"{elapsed / step:.2f} s/step {audio_seconds / elapsed:.0f} audio-s/s"
                        )
                    if step % cfg.validate_every == 0 or step == cfg.steps:
                        wer, cer, hyps = validate(model, test_corpus, cfg.validation_utterances, targets)
                        history.append({"step": step, "loss": running, "wer": wer, "cer": cer})
                        say(f"validate step {step}: WER {wer:.2%} CER {cer:.2%}")
                        for ref, hyp in list(zip(targets.references, hyps, strict=False))[:3]:
                            say(f"   ref: {ref}\n   hyp: {hyp}")
                        save(
                            model,
                            WORK_DIR / "latest.pt",
                            model_cfg,
                            {"step": step, "partial": True, "targets": targets.kind},
                        )
    finally:
        prefetch.close()
    if not history or history[-1]["step"] != step:
        wer, cer, _ = validate(model, test_corpus, cfg.validation_utterances, targets)
        history.append({"step": step, "loss": running, "wer": wer, "cer": cer})
        print(f"validate step {step}: WER {wer:.2%} CER {cer:.2%}", flush=True)

    model.spec_augment = None
    model.eval()
    train_minutes = (time.time() - train_start) / 60
    metadata = {
        "name": "ezspeech-aws demo (espeak-ng synthetic English)",
        "steps": step,
        "epochs": epoch,
        "ended_by": "time budget" if stopped_early else "step limit",
        "train_config": asdict(cfg),
        "data": asdict(spec),
        "text": "open" if open_spec is not None else "grammar",
        # For phonemes the validation history's "wer"/"cer" are the word-pronunciation and phoneme
        # error rates of greedy decoding (no lexicon), not word/character error rates.
        "targets": targets.kind,
        **({"open_data": asdict(open_spec)} if open_spec is not None else {}),
        "train_utterances": len(train_corpus.texts),
        "train_hours": round(train_corpus.seconds() / 3600, 2),
        "audio_hours_seen": round(audio_seconds / 3600, 2),
        "synthesis_minutes": round(synth_minutes, 1),
        "training_minutes": round(train_minutes, 1),
        "final_loss": round(running, 4),
        "validation": history,
        "parameters": params,
        "torch": str(torch.__version__),  # TorchVersion would pickle as a class
        "espeak_ng": espeak_version(),
    }
    digest = save(model, output, model_cfg, metadata)
    metadata["sha256"] = digest
    (WORK_DIR / "train-summary.json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(f"wrote {output} (sha256 {digest}) after {(time.time() - wall_start) / 60:.1f} min", flush=True)
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--max-minutes", type=float, default=TrainConfig.max_minutes)
    parser.add_argument("--train-sentences", type=int, default=data.DataSpec.train_sentences)
    parser.add_argument("--test-sentences", type=int, default=data.DataSpec.test_sentences)
    parser.add_argument("--batch-seconds", type=float, default=TrainConfig.batch_seconds)
    parser.add_argument("--hidden", type=int, default=StreamingGruCtcConfig.hidden)
    parser.add_argument("--layers", type=int, default=StreamingGruCtcConfig.layers)
    parser.add_argument("--validate-every", type=int, default=TrainConfig.validate_every)
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes")
    parser.add_argument("--threads", type=int, default=TrainConfig.threads)
    parser.add_argument("--log-every", type=int, default=TrainConfig.log_every)
    parser.add_argument("--text", choices=("grammar", "open"), default="grammar", help="training sentences")
    parser.add_argument("--open-train", type=int, default=open_data.OPEN_TRAIN, help="--text open: WordNet")
    parser.add_argument("--grammar-train", type=int, default=open_data.GRAMMAR_TRAIN, help="--text open")
    parser.add_argument(
        "--targets",
        choices=("letters", "phonemes"),
        default="letters",
        help="what the model writes (phonemes: --text open)",
    )
    args = parser.parse_args(argv)
    cfg = TrainConfig(
        steps=args.steps,
        max_minutes=args.max_minutes,
        batch_seconds=args.batch_seconds,
        validate_every=args.validate_every,
        threads=args.threads,
        log_every=args.log_every,
    )
    spec = data.DataSpec(train_sentences=args.train_sentences, test_sentences=args.test_sentences)
    model_cfg = StreamingGruCtcConfig(hidden=args.hidden, layers=args.layers)
    open_spec = (
        open_data.OpenSpec(open_train=args.open_train, grammar_train=args.grammar_train)
        if args.text == "open"
        else None
    )
    train(cfg, spec, model_cfg, args.output, args.workers, open_spec, args.targets)


if __name__ == "__main__":
    main()
