"""WER/CER of a checkpoint on the held-out sentences, through the streaming path.

``python -m training.evaluate [--model PATH]``. Every utterance is decoded exactly as the server
does it: 300 ms chunks through ``stream_step`` with carried state, look-ahead zeros at end of
stream, and the incremental decoder (greedy CTC; with the model's lexicon and word LM, the
beam-search second pass on the final). The held-out audio gets seeded noise/level/channel
augmentation (SNR 10-40 dB), so the numbers are for noisy synthetic speech, not clean.
Also measures the real-time factor of one stream on one CPU thread, decoding included.
Three decodings of the same streamed log-probs are reported: what the server returns (all the
model ships), greedy + lexicon correction, and greedy CTC alone. For a model with a word LM, each
installed word decoder (native flashlight-text, Python) also decodes the same log-probs, with its
WER and its mean time per final (the second pass alone); ``--word-decoder`` picks the one reported
as served, as ``WORD_DECODER`` does in the server.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from asr_service.model.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint
from asr_service.model.ctc import IncrementalGreedyDecoder, Lexicon, WordDecoder
from asr_service.model.interface import AcousticModel
from asr_service.model.native_lexicon import native_available
from asr_service.model.transcribe import stream_blocks, transcribe
from training import data
from training.augment import augment
from training.metrics import error_rates

EVAL_SEED = 7


def _decode(
    model: AcousticModel,
    blocks: list[torch.Tensor],
    lexicon: Lexicon | None,
    word_decoder: WordDecoder | None = None,
) -> str:
    decoder = IncrementalGreedyDecoder(
        model.tokens, model.blank_id, model.frame_shift_s, lexicon=lexicon, word_decoder=word_decoder
    )
    for block in blocks:
        decoder.accept(block)
    segment = decoder.finalize()
    return segment.text if segment else ""


class TimedDecoder:
    """A word decoder that adds up the time its second passes take (ms per final)."""

    def __init__(self, inner: WordDecoder) -> None:
        self.inner = inner
        # A phoneme model's search writes all its text; timed here as whole-segment finals.
        self.pronounced = bool(getattr(inner, "pronounced", False))
        self.seconds = 0.0
        self.calls = 0

    def decode(self, log_probs: torch.Tensor) -> str | None:
        started = time.perf_counter()
        try:
            return self.inner.decode(log_probs)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1

    @property
    def ms_per_final(self) -> float:
        return 1000 * self.seconds / max(1, self.calls)


def evaluate_streaming(
    model: AcousticModel,
    corpus: data.synth.Corpus,
    word_decoders: dict[str, WordDecoder] | None = None,
) -> dict[str, Any]:
    """Stream every held-out utterance once; decode its blocks three ways (see module doc), and
    once more with each of ``word_decoders`` (name → search) on the same blocks, timed."""
    lexicon: Lexicon | None = getattr(model, "lexicon", None)
    word_decoder: WordDecoder | None = getattr(model, "word_decoder", None)
    others = {name: TimedDecoder(d) for name, d in (word_decoders or {}).items()}
    rng = np.random.default_rng(EVAL_SEED)
    plain, corrected, served = [], [], []
    by_decoder: dict[str, list[str]] = {name: [] for name in others}
    for audio in corpus.audio:
        noisy = torch.from_numpy(augment(audio, rng, snr_db=(10.0, 40.0)))
        blocks = list(stream_blocks(model, noisy))
        plain.append(_decode(model, blocks, None))
        corrected.append(_decode(model, blocks, lexicon) if lexicon else plain[-1])
        served.append(_decode(model, blocks, lexicon, word_decoder) if word_decoder else corrected[-1])
        for name, timed in others.items():
            by_decoder[name].append(_decode(model, blocks, lexicon, timed))
    compared = {}
    for name, timed in others.items():
        d_wer, d_cer = error_rates(corpus.texts, by_decoder[name])
        compared[name] = {"wer": d_wer, "cer": d_cer, "ms_per_final": timed.ms_per_final}
    rates = decoding_rates(corpus.texts, served, corrected, plain, examples=8)
    if getattr(word_decoder, "pronounced", False):
        # A phoneme model's greedy text is phonemes: no word rates without the word search
        # (``training.open_vocab.evaluate`` reports its phoneme error rate instead).
        rates |= {k: None for k in ("lexicon_wer", "lexicon_cer", "greedy_wer", "greedy_cer")}
    return {
        **rates,
        "lexicon_words": len(lexicon.words) if lexicon else 0,
        "word_lm": word_decoder is not None,
        "word_decoder": getattr(word_decoder, "name", None),
        "word_decoders": compared,
    }


def decoding_rates(
    refs: list[str], served: list[str], corrected: list[str], plain: list[str], examples: int
) -> dict[str, Any]:
    """WER/CER of the three decodings of the same log-probs (served = word search, corrected =
    greedy + lexicon snapping, plain = greedy), the share of exact sentences, and the first
    ``examples`` wrong (reference, served) pairs: the figures both evaluations report."""
    wer, cer = error_rates(refs, served)
    lexicon_wer, lexicon_cer = error_rates(refs, corrected)
    greedy_wer, greedy_cer = error_rates(refs, plain)
    wrong = [(r, h) for r, h in zip(refs, served, strict=True) if r != h]
    return {
        "utterances": len(served),
        "wer": wer,
        "cer": cer,
        "lexicon_wer": lexicon_wer,
        "lexicon_cer": lexicon_cer,
        "greedy_wer": greedy_wer,
        "greedy_cer": greedy_cer,
        "sentence_accuracy": 1 - len(wrong) / max(1, len(served)),
        "examples_wrong": wrong[:examples],
    }


def real_time_factor(model: AcousticModel, audios: list[np.ndarray]) -> float:
    """Seconds of compute per second of audio for one stream on ONE thread: the model, the
    incremental greedy decoder and, for a model with a word LM, the final's beam search."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        signal = [torch.from_numpy(a.astype(np.float32) / 32768.0) for a in audios]
        transcribe(model, signal[0])  # warm-up
        start = time.perf_counter()
        for audio in signal:
            transcribe(model, audio)
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return elapsed / (sum(a.size for a in audios) / model.sample_rate)


def evaluate_clips(model: AcousticModel, directory: Path = data.CLIPS_DIR) -> list[dict[str, Any]]:
    transcripts = json.loads((directory / "transcripts.json").read_text())
    results = []
    for name, expected in transcripts.items():
        audio, rate = sf.read(directory / name, dtype="float32")
        if rate != model.sample_rate:
            raise ValueError(f"{name} is {rate} Hz, the model wants {model.sample_rate}")
        text = transcribe(model, torch.from_numpy(audio))
        results.append({"clip": name, "expected": expected, "got": text, "exact": text == expected})
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument(
        "--word-decoder",
        choices=("auto", "native", "python"),
        default="auto",
        help="the search whose WER is reported as served (both are measured when installed)",
    )
    parser.add_argument("--test-sentences", type=int, default=data.DataSpec.test_sentences)
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes (first run only)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    torch.set_num_threads(2)
    loaded = load_checkpoint(args.model, word_decoder=args.word_decoder)
    spec = data.DataSpec(test_sentences=args.test_sentences)
    corpus = data.corpus("test", spec, workers=args.workers)
    print(f"model: {args.model} (sha256 {loaded.sha256[:16]}…, {loaded.num_parameters / 1e6:.2f} M params)")
    # Both searches on the same streamed log-probs, so their WERs differ only by the search.
    kinds = ("native", "python") if native_available() else ("python",)
    searches: dict[str, WordDecoder] = {}
    if loaded.word_decoder is not None:
        for kind in kinds:
            search = load_checkpoint(args.model, word_decoder=kind).word_decoder
            if search is not None:
                searches[kind] = search
    result = evaluate_streaming(loaded.model, corpus, searches)
    result["rtf_1_thread"] = real_time_factor(loaded.model, corpus.audio[:40])
    clips = evaluate_clips(loaded.model) if (data.CLIPS_DIR / "transcripts.json").exists() else []
    result["clips"] = clips
    print(
        f"held-out ({result['utterances']} utterances, streaming path): "
        f"WER {result['wer']:.2%}  CER {result['cer']:.2%}  "
        f"sentences exact {result['sentence_accuracy']:.1%}"
        + (f" (lexicon + word LM beam search, {result['word_decoder']})" if result["word_lm"] else "")
        + (" (greedy + lexicon)" if result["lexicon_words"] and not result["word_lm"] else "")
    )
    for kind, numbers in result["word_decoders"].items():
        print(
            f"  word decoder {kind}: WER {numbers['wer']:.2%}  CER {numbers['cer']:.2%}  "
            f"{numbers['ms_per_final']:.2f} ms per final (second pass only, one thread)"
        )
    if result["greedy_wer"] is None:
        print("greedy CTC: phonemes, not words (make eval-open reports their phoneme error rate)")
    elif result["word_lm"]:
        print(
            "greedy CTC + lexicon correction: "
            f"WER {result['lexicon_wer']:.2%}  CER {result['lexicon_cer']:.2%}"
        )
    if result["lexicon_words"] and result["greedy_wer"] is not None:
        print(
            f"greedy CTC alone (no lexicon): WER {result['greedy_wer']:.2%}  CER {result['greedy_cer']:.2%}"
        )
    print(f"real-time factor, one stream, 1 thread: {result['rtf_1_thread']:.4f}")
    for clip in clips:
        mark = "ok " if clip["exact"] else "BAD"
        print(
            f"clip {mark} {clip['clip']}: {clip['got']!r}"
            + ("" if clip["exact"] else f" != {clip['expected']!r}")
        )
    for ref, hyp in result["examples_wrong"]:
        print(f"  ref: {ref}\n  hyp: {hyp}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
