"""Train a small CTC Conformer in EzSpeech's ``ctc_sc`` layout on the synthetic corpus.

``python -m training.ezspeech_small --out-dir build/ezspeech-small`` writes what an EzSpeech user
has after training, so the model then takes the user's path into the server
(``make convert-ezspeech``):

- ``tokenizer.model``: a SentencePiece BPE model trained on the training sentences only;
- ``last.ckpt``: a Lightning-style checkpoint, ``{"state_dict": {"encoder.layers.0...": tensor},
  "hyper_parameters": {"config": {"model": {"preprocessor": ..., "encoder": ...}}}}``, with
  EzSpeech's key names (the modules of ``asr_service.ezspeech`` are EzSpeech's, name for name);
- ``train-summary.json``: the recipe, the data, the validation history.

Same maths as the served model (it *is* the served module): per-utterance normalised log-mel
features, depthwise-striding subsampling, rel-pos Conformer layers, a 1x1 conv CTC head whose
last output is the blank. Only the sizes are smaller (and the subsampling 4x instead of ctc_sc's
8x, see :class:`SmallConformerConfig`), so that it trains in 40 minutes on one CPU core.
Some examples are two or three training sentences joined with short pauses, so the model also
sees contexts of 5-10 s, about what a chunked decoding window holds.
"""

from __future__ import annotations

import argparse
import io
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

from asr_service.ezspeech.features import FilterbankSettings
from asr_service.ezspeech.model import BLANK_TOKEN, EzSpeechCTC, EzSpeechHParams
from asr_service.model.ctc import greedy_decode_batch
from ops.progress import progress
from training import data
from training.augment import augment
from training.ctc_step import ctc_update
from training.metrics import error_rates
from training.synth import espeak_version
from training.train import SpecAugment, learning_rate

SAMPLE_RATE = data.synth.SAMPLE_RATE
DEFAULT_OUT = data.REPO / "build" / "ezspeech-small"


@dataclass(frozen=True)
class SmallConformerConfig:
    """Sizes of the small model; everything else is ``ctc_sc``'s (subsampling 8, kernel 9, ...)."""

    vocab_size: int = 128
    d_model: int = 144
    n_layers: int = 5
    n_heads: int = 4
    ff_expansion_factor: int = 4
    conv_kernel_size: int = 9
    #: ctc_sc has 8 (80 ms frames); 4 (40 ms) learns alignments much sooner in a short budget:
    #: at 8, BPE pieces come ~2 frames apart and runs stayed on the CTC plateau (see the model card).
    subsampling_factor: int = 4
    #: Half of d_model, as in ctc_sc (256 for 512): the subsampling convolutions at 50 and 25
    #: frames per second are most of a CPU training step.
    subsampling_conv_channels: int = 72

    def hparams(self) -> EzSpeechHParams:
        return EzSpeechHParams(
            vocab_size=self.vocab_size,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            ff_expansion_factor=self.ff_expansion_factor,
            conv_kernel_size=self.conv_kernel_size,
            subsampling_factor=self.subsampling_factor,
            subsampling_conv_channels=self.subsampling_conv_channels,
            xscaling=False,
        )


@dataclass(frozen=True)
class SmallTrainConfig:
    steps: int = 20000  # an upper bound: the time budget ends training first
    #: 40, not 25: at 25 minutes the validation WER was still falling steeply (0.90 at step
    #: 1000, 0.74 at 1800), and 40 minutes with synthesis is still well under an hour.
    max_minutes: float = 40.0
    batch_seconds: float = 60.0  # padded audio seconds per batch
    lr: float = 1e-3
    warmup_steps: int = 150
    weight_decay: float = 1e-3
    grad_clip: float = 5.0
    seed: int = 1616
    #: One thread: on a shared 2-core machine a second OpenMP thread spins against other work
    #: (measured for training.train, and again here under load).
    threads: int = 1
    #: Chance that an example joins a second (and then a third) sentence.
    join_probability: float = 0.2
    pause_s: tuple[float, float] = (0.15, 0.8)
    #: Augmentation is kept light: in a short budget, SpecAugment and heavy noise kept the
    #: model on the CTC plateau (predicting only the likeliest pieces) for the whole run.
    spec_augment: bool = False
    noise_probability: float = 0.5
    #: Curriculum: for this first fraction of the time budget, single sentences without noise.
    #: A Conformer leaves the CTC plateau sooner on clean single sentences (diagnostic runs at
    #: lr 1e-3: smoothed loss 3.46 at step 350 clean against 3.93 at step 875 with noise and joins).
    clean_fraction: float = 0.5
    snr_db: tuple[float, float] = (15.0, 40.0)
    log_every: int = 25
    validate_every: int = 200
    validation_utterances: int = 100


def train_tokenizer(sentences: list[str], path: Path, vocab_size: int, seed: int) -> list[str]:
    """A BPE SentencePiece model over ``sentences``; returns its pieces in id order."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        num_threads=1,
        # Only <unk> besides the pieces: CTC needs no sentence markers.
        bos_id=-1,
        eos_id=-1,
        minloglevel=2,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.getvalue())
    processor = spm.SentencePieceProcessor(model_file=str(path))
    return [processor.IdToPiece(i) for i in range(processor.GetPieceSize())]


def encode(sentences: list[str], tokenizer: Path) -> list[list[int]]:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(tokenizer))
    return [list(processor.EncodeAsIds(s)) for s in sentences]


def make_examples(count: int, cfg: SmallTrainConfig, rng: random.Random) -> list[list[int]]:
    """Every training sentence once, in groups of one to three (a fresh draw every epoch)."""
    order = list(range(count))
    rng.shuffle(order)
    examples: list[list[int]] = []
    i = 0
    while i < count:
        size = 1
        while size < 3 and rng.random() < cfg.join_probability:
            size += 1
        examples.append(order[i : i + size])
        i += size
    return examples


def batches_of(
    examples: list[list[int]], lengths: list[int], cfg: SmallTrainConfig, rng: random.Random
) -> list[list[list[int]]]:
    """Length-sorted batches whose padded size stays under ``batch_seconds``; shuffled order."""
    sizes = [sum(lengths[i] for i in ex) + int(0.6 * SAMPLE_RATE) * len(ex) for ex in examples]
    order = sorted(range(len(examples)), key=lambda k: (sizes[k], rng.random()))
    limit = cfg.batch_seconds * SAMPLE_RATE
    out: list[list[list[int]]] = []
    current: list[list[int]] = []
    for k in order:
        if current and sizes[k] * (len(current) + 1) > limit:
            out.append(current)
            current = []
        current.append(examples[k])
    if current:
        out.append(current)
    rng.shuffle(out)
    return out


def join_audio(
    corpus_audio: list[np.ndarray], ids: list[int], rng: np.random.Generator, cfg: SmallTrainConfig
) -> np.ndarray:
    parts: list[np.ndarray] = []
    for n, i in enumerate(ids):
        if n:
            parts.append(np.zeros(int(rng.uniform(*cfg.pause_s) * SAMPLE_RATE), np.int16))
        parts.append(corpus_audio[i])
    return np.concatenate(parts)


def collate(audios: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([a.size for a in audios])
    batch = torch.zeros(len(audios), int(lengths.max()))
    for row, audio in enumerate(audios):
        batch[row, : audio.size] = torch.from_numpy(audio)
    return batch, lengths


def log_probs_for_training(
    model: EzSpeechCTC, audio: torch.Tensor, lengths: torch.Tensor, spec_augment: SpecAugment | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``forward_full`` with SpecAugment applied to the normalised features."""
    with torch.no_grad():
        features, frame_lengths = model.preprocessor.featurizer(audio, lengths)
    if spec_augment is not None:
        features = spec_augment(features.transpose(1, 2)).transpose(1, 2)
    encodings, out_lengths = model.encoder(features, frame_lengths)
    return model.ctc_decoder(encodings), out_lengths


def validate(model: EzSpeechCTC, test: data.synth.Corpus, count: int) -> tuple[float, float, list[str]]:
    """Greedy whole-utterance WER/CER on the first ``count`` utterances of ``test`` (seeded noise)."""
    model.eval()
    count = min(count, len(test.texts))
    rng = np.random.default_rng(0)
    hyps: list[str] = []
    with torch.no_grad():
        for start in range(0, count, 16):
            audios = [augment(a, rng, snr_db=(10, 40)) for a in test.audio[start : min(count, start + 16)]]
            batch, lengths = collate(audios)
            log_probs, out_lengths = model.forward_full(batch, lengths)
            hyps.extend(greedy_decode_batch(log_probs, out_lengths, model.tokens, model.blank_id))
    model.train()
    wer, cer = error_rates(test.texts[:count], hyps)
    return wer, cer, hyps


def ezspeech_config(hparams: EzSpeechHParams, features: FilterbankSettings, vocab: int) -> dict[str, Any]:
    """The ``model:`` section of an EzSpeech ``ctc_sc`` training config, for these sizes."""
    return {
        "preprocessor": {
            "_target_": "ezspeech.modules.data.utils.audio.AudioToMelSpectrogramPreprocessor",
            "sample_rate": features.sample_rate,
            "normalize": features.normalize,
            "window_size": features.window_size,
            "window_stride": features.window_stride,
            "window": "hann",
            "features": features.features,
            "n_fft": features.n_fft,
            "log": True,
            "frame_splicing": 1,
            "dither": 0.0,
            "pad_to": 0,
            "preemph": features.preemph,
            "log_zero_guard_type": "add",
            "log_zero_guard_value": features.log_zero_guard_value,
            "mag_power": features.mag_power,
            "exact_pad": False,
        },
        "encoder": {
            "_target_": "ezspeech.modules.encoder.conformer_offline.ConformerOfflineEncoder",
            "feat_in": hparams.feat_in,
            "feat_out": -1,
            "n_layers": hparams.n_layers,
            "d_model": hparams.d_model,
            "subsampling": "dw_striding",
            "subsampling_factor": hparams.subsampling_factor,
            "subsampling_conv_channels": hparams.subsampling_conv_channels,
            "ff_expansion_factor": hparams.ff_expansion_factor,
            "self_attention_model": "rel_pos",
            "n_heads": hparams.n_heads,
            "att_context_size": [-1, -1],
            "xscaling": hparams.xscaling,
            "conv_kernel_size": hparams.conv_kernel_size,
            "conv_norm_type": "batch_norm",
        },
        "ctc_decoder": {
            "_target_": "ezspeech.modules.decoder.ConvASRDecoder",
            "feat_in": hparams.d_model,
            "num_classes": vocab,
        },
    }


def save_lightning_checkpoint(
    path: Path, model: EzSpeechCTC, config: dict[str, Any], step: int, epoch: int
) -> None:
    """EzSpeech's Lightning layout; plain containers where EzSpeech pickles OmegaConf objects."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "epoch": epoch,
            "global_step": step,
            "pytorch-lightning_version": "2.4.0",
            "state_dict": state,
            "hyper_parameters": {"config": {"model": config}},
        },
        tmp,
    )
    tmp.replace(path)


def train(
    cfg: SmallTrainConfig, model_cfg: SmallConformerConfig, spec: data.DataSpec, out_dir: Path
) -> dict[str, Any]:
    wall_start = time.time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    batch_rng = random.Random(cfg.seed)

    train_corpus = data.corpus("train", spec)
    # Progress is watched on the development sentences; the test set is measured once, at the end
    # (and by `make bench-ezspeech`), so that nothing about the run is chosen on it.
    dev_corpus = data.corpus("dev", spec)
    test_corpus = data.corpus("test", spec)
    data.check_disjoint(train_corpus.texts, test_corpus.texts)
    data.check_disjoint(train_corpus.texts, dev_corpus.texts)

    tokenizer = out_dir / "tokenizer.model"
    pieces = train_tokenizer(train_corpus.texts, tokenizer, model_cfg.vocab_size, cfg.seed)
    targets_all = encode(train_corpus.texts, tokenizer)
    hparams = model_cfg.hparams()
    features = FilterbankSettings()
    model = EzSpeechCTC(hparams, features, [*pieces, BLANK_TOKEN])
    model.train()
    spec_augment = (
        SpecAugment(freq_width=15, time_width=10, time_masks_per_second=1.5) if cfg.spec_augment else None
    )
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {hparams.to_dict()}, {params / 1e6:.2f} M parameters; {len(pieces)} pieces", flush=True)

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98)
    )
    ctc = nn.CTCLoss(blank=model.blank_id, zero_infinity=True)
    lengths = [a.size for a in train_corpus.audio]
    schedule = _Schedule(cfg)

    step, epoch, train_start = 0, 0, time.time()
    budget_s = max(60.0, cfg.max_minutes * 60 - (train_start - wall_start))
    history: list[dict[str, float]] = []
    running, audio_seconds, stopped_early = 0.0, 0.0, False
    config = ezspeech_config(hparams, features, model_cfg.vocab_size)
    np_rng = np.random.default_rng(cfg.seed)

    def time_fraction() -> float:
        return (time.time() - train_start) / budget_s

    with progress(cfg.steps, "train", unit="step", stream=sys.stdout) as report:
        say = report.write
        while step < cfg.steps and not stopped_early:
            epoch += 1
            for group in batches_of(make_examples(len(lengths), cfg, batch_rng), lengths, cfg, batch_rng):
                if step >= cfg.steps:
                    break
                if time_fraction() >= 1.0:
                    stopped_early = True
                    say(f"time budget of {cfg.max_minutes} min reached at step {step}; stopping")
                    break
                if time_fraction() < cfg.clean_fraction:
                    group = [ids[:1] for ids in group]
                    noise_prob = 0.0
                else:
                    noise_prob = cfg.noise_probability
                audios = [
                    augment(
                        join_audio(train_corpus.audio, ids, np_rng, cfg),
                        np_rng,
                        snr_db=cfg.snr_db,
                        noise_prob=noise_prob,
                    )
                    for ids in group
                ]
                batch, lens = collate(audios)
                audio_seconds += float(lens.sum()) / SAMPLE_RATE
                targets = [[t for i in ids for t in targets_all[i]] for ids in group]
                for g in optimizer.param_groups:
                    g["lr"] = schedule.lr(step, time_fraction())
                log_probs, out_lens = log_probs_for_training(model, batch, lens, spec_augment)
                loss = ctc_update(
                    model=model,
                    optimizer=optimizer,
                    ctc=ctc,
                    log_probs=log_probs,
                    out_lens=out_lens,
                    targets=targets,
                    grad_clip=cfg.grad_clip,
                )
                step += 1
                report.update(1)
                running = loss if step == 1 else 0.95 * running + 0.05 * loss
                if step % cfg.log_every == 0:
                    elapsed = time.time() - train_start
                    say(
                        f"step {step} epoch {epoch} loss {running:.3f} "
                        f"lr {optimizer.param_groups[0]['lr']:.2e} "
                        f"{elapsed / step:.2f} s/step {audio_seconds / elapsed:.0f} audio-s/s "
                        f"({time_fraction():.0%} of budget)"
                    )
                if step % cfg.validate_every == 0:
                    wer, cer, hyps = validate(model, dev_corpus, cfg.validation_utterances)
                    history.append({"step": step, "loss": running, "wer": wer, "cer": cer})
                    say(f"validate step {step} (dev): WER {wer:.2%} CER {cer:.2%}")
                    for ref, hyp in list(zip(dev_corpus.texts, hyps, strict=False))[:2]:
                        say(f"   ref: {ref}\n   hyp: {hyp}")
                    save_lightning_checkpoint(out_dir / "last.ckpt", model, config, step, epoch)

    model.eval()
    wer, cer, _ = validate(model, dev_corpus, cfg.validation_utterances)
    history.append({"step": step, "loss": running, "wer": wer, "cer": cer})
    print(f"validate step {step} (dev): WER {wer:.2%} CER {cer:.2%}", flush=True)
    test_wer, test_cer, _ = validate(model, test_corpus, cfg.validation_utterances)
    print(f"held-out test, once: WER {test_wer:.2%} CER {test_cer:.2%}", flush=True)
    save_lightning_checkpoint(out_dir / "last.ckpt", model, config, step, epoch)
    summary = {
        "name": "ezspeech ctc_sc small (espeak-ng synthetic English)",
        "model": asdict(model_cfg),
        "hparams": hparams.to_dict(),
        "parameters": params,
        "train_config": asdict(cfg),
        "data": asdict(spec),
        "train_utterances": len(train_corpus.texts),
        "steps": step,
        "epochs": epoch,
        "ended_by": "time budget" if stopped_early else "step limit",
        "audio_hours_seen": round(audio_seconds / 3600, 2),
        "training_minutes": round((time.time() - train_start) / 60, 1),
        "final_loss": round(running, 4),
        "validation": history,
        "validation_set": f"first {cfg.validation_utterances} development sentences (seed {data.DEV_SEED})",
        "held_out_test": {"utterances": cfg.validation_utterances, "wer": test_wer, "cer": test_cer},
        "torch": str(torch.__version__),
        "espeak_ng": espeak_version(),
    }
    (out_dir / "train-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out_dir / 'last.ckpt'} and {tokenizer}", flush=True)
    return summary


class _Schedule:
    """Warm-up then cosine decay, driven by the larger of step and time progress
    (:func:`training.train.learning_rate`)."""

    def __init__(self, cfg: SmallTrainConfig) -> None:
        from training.train import TrainConfig

        self.inner = TrainConfig(steps=cfg.steps, lr=cfg.lr, warmup_steps=cfg.warmup_steps)

    def lr(self, step: int, time_fraction: float) -> float:
        return learning_rate(step, self.inner, time_fraction)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--max-minutes", type=float, default=SmallTrainConfig.max_minutes)
    parser.add_argument("--steps", type=int, default=SmallTrainConfig.steps)
    parser.add_argument("--batch-seconds", type=float, default=SmallTrainConfig.batch_seconds)
    parser.add_argument("--lr", type=float, default=SmallTrainConfig.lr)
    parser.add_argument("--threads", type=int, default=SmallTrainConfig.threads)
    parser.add_argument("--d-model", type=int, default=SmallConformerConfig.d_model)
    parser.add_argument("--layers", type=int, default=SmallConformerConfig.n_layers)
    parser.add_argument("--heads", type=int, default=SmallConformerConfig.n_heads)
    parser.add_argument("--vocab", type=int, default=SmallConformerConfig.vocab_size)
    parser.add_argument("--subsampling", type=int, default=SmallConformerConfig.subsampling_factor)
    parser.add_argument("--validate-every", type=int, default=SmallTrainConfig.validate_every)
    parser.add_argument("--warmup-steps", type=int, default=SmallTrainConfig.warmup_steps)
    parser.add_argument("--join-probability", type=float, default=SmallTrainConfig.join_probability)
    parser.add_argument(
        "--clean-fraction",
        type=float,
        default=SmallTrainConfig.clean_fraction,
        help="first fraction of the budget on single clean sentences",
    )
    parser.add_argument("--spec-augment", action="store_true", help="SpecAugment the features")
    args = parser.parse_args(argv)
    cfg = SmallTrainConfig(
        steps=args.steps,
        max_minutes=args.max_minutes,
        batch_seconds=args.batch_seconds,
        lr=args.lr,
        threads=args.threads,
        validate_every=args.validate_every,
        warmup_steps=args.warmup_steps,
        join_probability=args.join_probability,
        clean_fraction=args.clean_fraction,
        spec_augment=args.spec_augment,
    )
    model_cfg = SmallConformerConfig(
        vocab_size=args.vocab,
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=args.heads,
        subsampling_conv_channels=args.d_model // 2,
        subsampling_factor=args.subsampling,
    )
    if not math.isfinite(cfg.max_minutes) or cfg.max_minutes <= 0:
        parser.error("--max-minutes must be positive")
    if not 0.0 <= cfg.clean_fraction <= 1.0:
        parser.error("--clean-fraction must be between 0 and 1")
    train(cfg, model_cfg, data.DataSpec(), args.out_dir)


if __name__ == "__main__":
    main()
