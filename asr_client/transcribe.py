"""Offline transcription of whole files (the seed's batch transcription, as a command).

    python -m asr_client.transcribe --model model.pt a.wav b.flac ...

Prints one ``path<TAB>text`` line per file, in the order given: greedy CTC over the whole
utterance in one forward pass (``forward_full``), with any checkpoint the server can load (the
shipped streaming demo model, a converted EzSpeech model, ...). Audio of any rate and channel
count that libsndfile reads is mixed to mono and resampled to the model's rate. A file that
cannot be read is reported on stderr and the exit status is 1; the other files are still done.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as audio_functional

# Imported for its side effect: the EzSpeech architecture registers with the checkpoint loader.
import asr_service.ezspeech  # noqa: F401
from asr_service.model.checkpoint import DEFAULT_MODEL_PATH, CheckpointError, LoadedModel, load_checkpoint
from asr_service.model.ctc import greedy_decode

#: Full-context attention grows with the square of the length; longer files are refused, not
#: silently truncated (raise it with --max-seconds where memory allows).
DEFAULT_MAX_SECONDS = 300.0


class AudioFileError(ValueError):
    """A file that cannot be transcribed; the message says why."""


def read_audio(path: Path, sample_rate: int) -> torch.Tensor:
    """Mono float32 samples in [-1, 1] at ``sample_rate``."""
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"cannot read audio: {exc}") from exc
    samples = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if rate != sample_rate:
        samples = audio_functional.resample(samples, rate, sample_rate)
    return samples


def transcribe_samples(loaded: LoadedModel, samples: torch.Tensor, device: torch.device) -> str:
    model = loaded.model
    if samples.numel() == 0:
        return ""
    with torch.inference_mode():
        log_probs, lengths = model.forward_full(
            samples.to(device)[None, :], torch.tensor([samples.numel()], device=device)
        )
    return greedy_decode(log_probs[0].cpu(), loaded.tokens, loaded.blank_id, int(lengths[0]))


def transcribe_files(
    loaded: LoadedModel, paths: Sequence[Path], device: torch.device, max_seconds: float
) -> list[tuple[Path, str | None, str | None]]:
    """(path, text, error) per file; exactly one of text/error is set."""
    results: list[tuple[Path, str | None, str | None]] = []
    rate = int(loaded.model.sample_rate)
    for path in paths:
        try:
            samples = read_audio(path, rate)
            seconds = samples.numel() / rate
            if seconds > max_seconds:
                raise AudioFileError(f"{seconds:.0f} s is longer than --max-seconds={max_seconds:.0f}")
            results.append((path, transcribe_samples(loaded, samples, device), None))
        except AudioFileError as exc:
            results.append((path, None, str(exc)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asr_client.transcribe", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("files", nargs="+", type=Path, help="audio files (wav, flac, ogg, ...)")
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL_PATH, help="checkpoint (default: demo model)"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument(
        "--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="longest file accepted"
    )
    args = parser.parse_args(argv)

    torch.set_grad_enabled(False)
    device = torch.device(args.device)
    try:
        loaded = load_checkpoint(args.model, device=device)
    except CheckpointError as exc:
        print(f"transcribe: {exc}", file=sys.stderr)
        return 2
    failed = False
    for path, text, error in transcribe_files(loaded, args.files, device, args.max_seconds):
        if error is not None:
            failed = True
            print(f"transcribe: {path}: {error}", file=sys.stderr)
        else:
            print(f"{path}\t{text}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
